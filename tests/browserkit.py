"""What the browser tests share: a live server over an engine, chromium launched by
Playwright, and pages that leave a screenshot in ``test-artifacts/``.

The test modules check for playwright and chromium themselves (and skip, saying why)
before they use this.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from imgsearch.engine import Engine

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def serve(engine: Engine) -> Iterator[str]:
    """The web app over ``engine`` on a loopback port, in a thread; yields its base URL
    and closes the engine afterwards."""
    import uvicorn

    from imgsearch.web import create_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(engine), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "the test server did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
        engine.close()


def launch(chromium: str) -> Iterator[Any]:
    """Debian's chromium, driven by Playwright."""
    from playwright import sync_api

    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS,
                                              headless=True)
        yield launched
        launched.close()


def opened_page(browser: Any, base_url: str, test_name: str,
                **context_options: Any) -> Iterator[Any]:
    """A page in a context of its own; its screenshot is left in test-artifacts/."""
    context = browser.new_context(base_url=base_url, **context_options)
    context.set_default_timeout(15_000)
    opened = context.new_page()
    yield opened
    ARTIFACTS.mkdir(exist_ok=True)
    opened.screenshot(path=str(ARTIFACTS / f"{test_name}.png"), full_page=True)
    context.close()
