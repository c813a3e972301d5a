"""Slow and oversized clients against a real uvicorn server on loopback.

Connections that trickle half a request body must not take the places of requests
being handled, and are closed when their body stops coming; request headers are capped.
Loops are bounded and every wait has a generous timeout, so a hang fails the test.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from imagegen import jpeg_bytes
from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.types import Item
from imgsearch.web import create_app
from imgsearch.web.limits import Limits
from imgsearch.web.serve import uvicorn_options

LIMITS = Limits(max_in_flight=4, body_timeout_s=1.5, deadline_s=30, max_header_bytes=16_384,
                header_timeout_s=1.5)
SLOW_CLIENTS = 12  # three times the gate


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = Settings(image_encoder="descriptor", text_encoder="fake", ingest_workers=2)
    engine = Engine.open(Path(tmp_path_factory.mktemp("slow")) / "c", settings)
    engine.ingest_items([(Item(id=f"p{i}", title=f"hat {i}"), jpeg_bytes(i)) for i in range(4)])
    sock = socket.create_server(("127.0.0.1", 0))
    options = {**uvicorn_options(LIMITS), "log_level": "warning"}
    server = uvicorn.Server(uvicorn.Config(create_app(engine, limits=LIMITS), **options))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "the server did not start"
    yield f"127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(10)
    sock.close()
    engine.close()


def _half_body(address: str) -> socket.socket:
    host, port = address.split(":")
    conn = socket.create_connection((host, int(port)), timeout=20)
    body = b'{"text": "hat", "limit": 3}'
    conn.sendall(b"POST /v1/search HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                 b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body[:8])
    return conn


def _status_line(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n", 1)[0]


def _whole_response(conn: socket.socket) -> bytes:
    """One response with a Content-Length, read to its last byte; its status line."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        assert chunk, "the connection was closed without an answer"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        chunk = conn.recv(4096)
        assert chunk, "the connection was closed in the middle of an answer"
        body += chunk
    return head.split(b"\r\n", 1)[0]


def test_half_sent_bodies_do_not_fill_the_gate(server: str) -> None:
    slow = [_half_body(server) for _ in range(SLOW_CLIENTS)]
    try:
        time.sleep(0.3)  # let the server see them all
        with httpx.Client(base_url=f"http://{server}", timeout=20) as client:
            for _ in range(3):
                text = client.get("/v1/search/text", params={"q": "hat"})
                assert text.status_code == 200, text.text
                posted = client.post("/v1/search", json={"text": "hat"})
                assert posted.status_code == 200, posted.text
        # each stalled body is answered 408 and its connection closed
        for conn in slow:
            assert _status_line(conn).startswith(b"HTTP/1.1 408"), "no 408 for a stalled body"
            assert conn.recv(65536) is not None
    finally:
        for conn in slow:
            conn.close()


def test_request_headers_are_capped(server: str) -> None:
    host, port = server.split(":")
    with socket.create_connection((host, int(port)), timeout=20) as conn:
        conn.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\nX-Big: ")
        try:
            for _ in range(64):  # up to 1 MiB, far past the 16 KiB cap
                conn.sendall(b"a" * 16_384)
        except OSError:
            pass  # the server may close while we are still sending
        status = _status_line(conn)
    assert status.startswith(b"HTTP/1.1 431"), status
    with httpx.Client(base_url=f"http://{server}", timeout=20) as client:
        assert client.get("/health", headers={"X-Fine": "a" * 8000}).status_code == 200


def test_a_body_sent_with_its_headers_is_not_counted_as_headers(server: str) -> None:
    # one write: headers and a JSON body four times the header cap, as curl sends a
    # small PUT; only the headers count towards the cap
    body = b'{"text": "hat", "limit": 3, "pad": "' + b"x" * 65_536 + b'"}'
    host, port = server.split(":")
    with socket.create_connection((host, int(port)), timeout=20) as conn:
        conn.sendall(b"POST /v1/search HTTP/1.1\r\nHost: test\r\n"
                     b"Content-Type: application/json\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        status = _status_line(conn)
    assert not status.startswith(b"HTTP/1.1 431"), status
    assert status.split(b" ")[1] in {b"200", b"422"}, status


def test_headers_sent_slowly_or_never_are_cut_off(server: str) -> None:
    host, port = server.split(":")
    silent = socket.create_connection((host, int(port)), timeout=20)
    partial = socket.create_connection((host, int(port)), timeout=20)
    try:
        partial.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\n")  # never finished
        with httpx.Client(base_url=f"http://{server}", timeout=20) as client:
            assert client.get("/health").status_code == 200
        assert _status_line(partial).startswith(b"HTTP/1.1 408")
        assert _status_line(silent).startswith(b"HTTP/1.1 408")
    finally:
        silent.close()
        partial.close()


def test_keep_alive_connection_is_reused_after_a_pause(server: str) -> None:
    host, port = server.split(":")
    request = b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n"
    with socket.create_connection((host, int(port)), timeout=20) as conn:
        for _ in range(2):
            conn.sendall(request)
            assert _whole_response(conn).startswith(b"HTTP/1.1 200")
            time.sleep(2)  # longer than the header timeout: idle is not "slow headers"
