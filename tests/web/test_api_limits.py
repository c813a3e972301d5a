"""Body-size cap (also for chunked uploads), overload answers and the request deadline."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from apihelp import assert_error, b64
from fastapi.testclient import TestClient

from imagegen import jpeg_bytes
from imgsearch.engine import Engine
from imgsearch.web import create_app
from imgsearch.web.limits import Limits

CAP = 30_000


@pytest.fixture(scope="module")
def small_client(web_engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(web_engine, limits=Limits(max_body_bytes=CAP))) as client:
        yield client


def _chunks(total: int, size: int = 4096) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        yield b"x" * min(size, total - sent)
        sent += size


def test_oversized_body_with_content_length(small_client: TestClient) -> None:
    big = b64(b"\xff" * CAP)
    assert_error(small_client.post("/v1/search", json={"image_base64": big}), 413,
                 "body_too_large")
    upload = small_client.post("/v1/search/image",
                               files={"file": ("big.jpg", b"\xff" * (CAP + 1))})
    assert_error(upload, 413, "body_too_large")
    assert_error(small_client.put("/v1/items/big", json={"image_base64": big}), 413,
                 "body_too_large")
    assert_error(small_client.get("/v1/items/big"), 404, "item_not_found")


@pytest.mark.parametrize(("path", "method", "content_type"), [
    ("/v1/search", "POST", "application/json"),
    ("/v1/search/image", "POST", "multipart/form-data; boundary=xyz"),
    ("/v1/items/chunked", "PUT", "application/json"),
    ("/v1/items/chunked", "PUT", "multipart/form-data; boundary=xyz"),
    ("/v1/items:batch", "POST", "application/json"),
])
def test_oversized_chunked_body(small_client: TestClient, path: str, method: str,
                                content_type: str) -> None:
    response = small_client.request(method, path, content=_chunks(CAP * 3),
                                    headers={"content-type": content_type})
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "body_too_large")


def test_a_body_under_the_cap_passes(small_client: TestClient) -> None:
    image = jpeg_bytes(3)
    assert len(image) < CAP
    response = small_client.post("/v1/search/image", files={"file": ("q.jpg", image)})
    assert response.status_code == 200 and response.json()["results"][0]["id"] == "p3"


class _Blocker:
    """Wraps ``Engine.search``: holds every call until released, then searches."""

    def __init__(self, search: Any) -> None:
        self.search = search
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, query: Any) -> Any:
        self.entered.set()
        self.release.wait(timeout=10)
        return self.search(query)


async def _wait(event: threading.Event) -> None:
    for _ in range(1000):
        if event.is_set():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the engine was never called")


def test_overload_answers_503_with_retry_after(web_engine: Engine,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = _Blocker(web_engine.search)
    app = create_app(web_engine, limits=Limits(max_in_flight=1, deadline_s=5))
    monkeypatch.setattr(web_engine, "search", blocker)

    async def scenario() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            held = asyncio.create_task(client.post("/v1/search", json={"text": "hat"}))
            await _wait(blocker.entered)
            refused = await client.get("/v1/search/text", params={"q": "hat"})
            health = await client.get("/health")
            blocker.release.set()
            return refused, health, await held

    try:
        refused, health, held = asyncio.run(scenario())
    finally:
        blocker.release.set()
    assert_error(refused, 503, "overloaded")
    assert int(refused.headers["retry-after"]) >= 1
    assert health.status_code == 200  # probes are never turned away
    assert held.status_code == 200 and held.json()["query_kind"] == "text"


def test_deadline_answers_504(web_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = _Blocker(web_engine.search)
    app = create_app(web_engine, limits=Limits(deadline_s=0.2, max_in_flight=4))
    state = app.state.imgsearch
    monkeypatch.setattr(web_engine, "search", blocker)
    try:
        with TestClient(app) as client:
            response = client.post("/v1/search", json={"text": "hat"})
            assert blocker.entered.is_set()
            # the abandoned engine call still holds its place until it really ends
            assert state.gate.orphans == 1
    finally:
        blocker.release.set()
    assert_error(response, 504, "deadline_exceeded")


def test_a_request_with_a_body_is_gated_once_its_body_has_arrived(
        web_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = _Blocker(web_engine.search)
    app = create_app(web_engine, limits=Limits(max_in_flight=1, deadline_s=5))
    monkeypatch.setattr(web_engine, "search", blocker)

    async def scenario() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            held = asyncio.create_task(client.post("/v1/search", json={"text": "hat"}))
            await _wait(blocker.entered)
            refused = await client.post("/v1/search", json={"text": "hat"})
            blocker.release.set()
            return refused, await held

    try:
        refused, held = asyncio.run(scenario())
    finally:
        blocker.release.set()
    assert_error(refused, 503, "overloaded")
    assert int(refused.headers["retry-after"]) >= 1
    assert held.status_code == 200
    assert app.state.imgsearch.gate.in_flight == 0  # every place given back
