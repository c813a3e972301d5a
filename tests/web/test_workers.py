"""Several server processes over one collection: a reader hands writes to the writer and
sees each acknowledged write at its next search."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from imagegen import jpeg_bytes
from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.types import Item
from imgsearch.web import create_app
from imgsearch.web.forward import WRITER_FILE, publish_writer

SETTINGS = Settings(image_encoder="descriptor", text_encoder="none", ingest_workers=2)


def _image(seed: int) -> str:
    return base64.b64encode(jpeg_bytes(seed)).decode()


def _seeded(directory: Path) -> Path:
    with Engine.open(directory, SETTINGS) as engine:
        report = engine.ingest_items([(Item(id=f"p{i}", title=f"item {i}"), jpeg_bytes(i))
                                      for i in range(8)])
        assert report.ok, report.failed
    return directory


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[Path]:
    """The collection's writer, served on a loopback port it publishes."""
    directory = _seeded(tmp_path / "collection")
    engine = Engine.open(directory, SETTINGS)
    sock = socket.create_server(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(engine), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "the writer did not start"
    publish_writer(directory, f"http://127.0.0.1:{sock.getsockname()[1]}")
    yield directory
    server.should_exit = True
    thread.join(10)
    sock.close()
    engine.close()


def test_a_reader_forwards_writes_and_sees_them_at_once(writer: Path):
    app = create_app(collection=writer, settings=SETTINGS, forward_writes=True)
    with TestClient(app) as reader:
        assert reader.get("/health").json()["role"] == "reader"
        put = reader.put("/v1/items/fresh", json={"title": "fresh one",
                                                  "image_base64": _image(100)})
        assert put.status_code == 201, put.text
        assert put.json()["status"] == "added"
        found = reader.post("/v1/search", json={"image_base64": _image(100), "limit": 3})
        assert found.json()["results"][0]["id"] == "fresh"
        assert reader.get("/v1/items/fresh").json()["title"] == "fresh one"

        batch = reader.post("/v1/items:batch", json={"operations": [
            {"op": "delete", "id": "fresh"}, {"op": "delete", "id": "p1"}]})
        assert batch.status_code == 200, batch.text
        assert reader.get("/v1/items/fresh").status_code == 404
        similar = reader.get("/v1/items/p0/similar", params={"limit": 20,
                                                             "min_confidence": 0})
        assert {"fresh", "p1"}.isdisjoint(h["id"] for h in similar.json()["results"])

        # the writer's answer comes back as it is, errors included
        bad = reader.put("/v1/items/x", json={"title": "no image"})
        assert bad.status_code == 400 and "needs an image" in bad.json()["error"]["message"]
        assert reader.delete("/v1/items/never-was").status_code == 404


def test_a_reader_without_a_writer_answers_503_and_keeps_serving(tmp_path: Path):
    directory = _seeded(tmp_path / "collection")
    app = create_app(collection=directory, settings=SETTINGS, forward_writes=True)
    with TestClient(app) as reader:
        put = reader.put("/v1/items/fresh", json={"title": "t", "image_base64": _image(3)})
        assert put.status_code == 503 and put.headers["retry-after"] == "1"
        assert put.json()["error"]["code"] == "writer_unavailable"
        publish_writer(directory, "http://127.0.0.1:9")  # nothing listens there
        put = reader.put("/v1/items/fresh", json={"title": "t", "image_base64": _image(3)})
        assert put.status_code == 503
        assert reader.get("/v1/items/p2").status_code == 200
        assert "fresh" not in Engine.open(directory, SETTINGS, readonly=True).catalog.ids_of(
            list(range(100))).values()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_with_two_workers(tmp_path: Path):
    directory = _seeded(tmp_path / "collection")
    port = _free_port()
    env = dict(os.environ, IMGSEARCH_IMAGE_ENCODER="descriptor", IMGSEARCH_TEXT_ENCODER="none")
    proc = subprocess.Popen([sys.executable, "-m", "imgsearch.cli", "serve", "-c", str(directory),
                             "--port", str(port), "--workers", "2"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        roles: dict[str, set[int]] = {}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(roles) < 2:
            try:  # a new connection each time: either process may take it
                health = httpx.get(base + "/health", headers={"connection": "close"}).json()
                roles.setdefault(health["role"], set()).add(health["pid"])
            except httpx.HTTPError:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                time.sleep(0.2)
        assert set(roles) == {"reader", "writer"} and len(roles["writer"]) == 1
        assert (directory / WRITER_FILE).exists()
        for i in range(6):
            with httpx.Client(base_url=base, headers={"connection": "close"}) as c:
                put = c.put(f"/v1/items/new{i}", json={"image_base64": _image(200 + i)})
                assert put.status_code == 201, put.text
            with httpx.Client(base_url=base, headers={"connection": "close"}) as c:
                hits = c.post("/v1/search", json={"image_base64": _image(200 + i),
                                                  "limit": 1}).json()["results"]
                assert hits[0]["id"] == f"new{i}"
    finally:
        proc.terminate()
        proc.wait(30)
    assert proc.returncode == 0 or proc.returncode == -15
    assert not (directory / WRITER_FILE).exists()
    with Engine.open(directory, SETTINGS, readonly=True) as engine:
        assert engine.catalog.count() == 14


def test_serve_stops_when_its_first_process_cannot_open_the_collection(tmp_path: Path):
    not_a_collection = tmp_path / "file"
    not_a_collection.write_text("not a directory")
    proc = subprocess.run([sys.executable, "-m", "imgsearch.cli", "serve", "-c",
                           str(not_a_collection), "--port", str(_free_port()),
                           "--workers", "2"], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "could not open" in proc.stderr
