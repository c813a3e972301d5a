"""`imgsearch watch` and `serve --watch` as a user runs them: real processes, a real
folder, a real watcher. Waits poll for an outcome with a generous limit."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

import imagegen as gen
from imgsearch.config import Settings
from imgsearch.engine import Engine

# faulthandler: a process that will not stop is sent SIGABRT, and prints where each of
# its threads stands (see ``exit_code``)
ENV = dict(os.environ, IMGSEARCH_IMAGE_ENCODER="descriptor", IMGSEARCH_TEXT_ENCODER="none",
           PYTHONFAULTHANDLER="1")
SETTINGS = Settings(image_encoder="descriptor", text_encoder="none")
LIMIT_S = 60.0


def wait_for(condition: Callable[[], bool], limit_s: float = LIMIT_S) -> bool:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


class Lines:
    """The lines a process writes to a pipe, collected by a thread."""

    def __init__(self, pipe: object) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe: object) -> None:
        for line in iter(pipe.readline, b""):  # type: ignore[attr-defined]
            self.lines.append(line.decode(errors="replace").rstrip("\n"))

    def has(self, text: str) -> bool:
        return any(text in line for line in self.lines)


@contextlib.contextmanager
def sigint_caught() -> Iterator[None]:
    """A child started within gets SIGINT's default action, as from a terminal: a shell
    without job control starts a background job (`make test &`) with SIGINT ignored,
    and an ignored signal stays ignored across exec (Python then never raises
    KeyboardInterrupt), while a caught one goes back to its default."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def exit_code(proc: subprocess.Popen[bytes], err: Lines, limit_s: float = LIMIT_S) -> int:
    """The process's exit status once it ends; if it has not within ``limit_s``, the
    test fails with what it wrote, its threads' tracebacks included."""
    try:
        return proc.wait(limit_s)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        time.sleep(0.5)  # the reading thread takes the last lines
        raise AssertionError(f"still running {limit_s:g} s later:\n" + "\n".join(err.lines)
                             ) from None


def _ids(collection: Path) -> set[str]:
    with Engine.open(collection, SETTINGS, readonly=True) as engine:
        return {item.id for item in engine.catalog.iter_items()}


def test_watch_command_mirrors_the_folder_and_reports_failures(tmp_path: Path) -> None:
    photos, collection = tmp_path / "photos", tmp_path / "collection"
    gen.write_image(photos / "first.jpg", 1)
    with sigint_caught():  # Ctrl-C below, as at a terminal
        proc = subprocess.Popen([sys.executable, "-m", "imgsearch.cli", "watch", str(photos),
                                 "-c", str(collection)], env=ENV,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = Lines(proc.stderr)
    try:
        assert wait_for(lambda: err.has("watching") or proc.poll() is not None), err.lines
        # the initial sync, reported as index does (a file written less than the settle
        # time before the start is held back by it and added by the next sync)
        assert wait_for(lambda: err.has("added 1,")), err.lines
        gen.write_image(photos / "holiday" / "second.png", 2)
        (photos / "broken.jpg").write_bytes(gen.truncated_jpeg(3))
        assert wait_for(lambda: _ids(collection) == {"first.jpg", "holiday/second.png"})
        assert wait_for(lambda: err.has("failed: "))
        failed = [line for line in err.lines if line.startswith("failed: ")]
        assert len(failed) == 1 and f"{photos / 'broken.jpg'}: " in failed[0], failed
        assert "truncated" in failed[0]
        (photos / "first.jpg").unlink()
        assert wait_for(lambda: _ids(collection) == {"holiday/second.png"})
        proc.send_signal(signal.SIGINT)
        assert exit_code(proc, err) == 0
        assert wait_for(lambda: err.has("stopped watching"), 10), err.lines
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_watch_keeps_the_served_collection_in_sync(tmp_path: Path) -> None:
    photos, collection = tmp_path / "photos", tmp_path / "collection"
    gen.write_image(photos / "first.jpg", 1)
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "imgsearch.cli", "serve", "-c",
                             str(collection), "--port", str(port), "--watch", str(photos)],
                            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = Lines(proc.stderr)
    base = f"http://127.0.0.1:{port}"

    def status(item_id: str) -> int:
        try:
            return httpx.get(f"{base}/v1/items/{item_id}").status_code
        except httpx.HTTPError:
            assert proc.poll() is None, err.lines
            return 0

    try:
        assert wait_for(lambda: status("first.jpg") == 200), err.lines
        gen.write_image(photos / "new.jpg", 2)
        assert wait_for(lambda: status("new.jpg") == 200)
        os.rename(photos / "new.jpg", photos / "renamed.jpg")
        assert wait_for(lambda: status("renamed.jpg") == 200 and status("new.jpg") == 404)
    finally:
        proc.terminate()
        proc.wait(30)


def test_watching_a_missing_folder_is_refused(tmp_path: Path) -> None:
    for command in (["watch", str(tmp_path / "nowhere"), "-c", str(tmp_path / "c")],
                    ["serve", "-c", str(tmp_path / "c"), "--port", str(_free_port()),
                     "--watch", str(tmp_path / "nowhere")]):
        done = subprocess.run([sys.executable, "-m", "imgsearch.cli", *command], env=ENV,
                              capture_output=True, timeout=120)
        assert done.returncode == 2, done.stderr
        assert b"nowhere: not a folder" in done.stderr
