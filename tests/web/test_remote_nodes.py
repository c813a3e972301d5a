"""Stateless API nodes over one milvus collection: a write through one node is found by
a search through another; a node whose Milvus is gone answers 503, naming it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from apihelp import b64
from fastapi.testclient import TestClient

import backendkit as kit
import milvuskit
from imagegen import jpeg_bytes
from imgsearch.config import Settings
from imgsearch.engine.backends.milvus import MilvusBackend
from imgsearch.engine.remote import RemoteEngine, spaces_for
from imgsearch.web.remote_app import create_remote_app

SETTINGS = Settings(image_encoder="fake", text_encoder="fake", ingest_workers=1)


def node(uri: str) -> TestClient:
    backend = MilvusBackend.open(uri, spaces_for(SETTINGS))
    return TestClient(create_remote_app(RemoteEngine(backend, SETTINGS), owns_engine=True))


@pytest.fixture
def two_nodes(milvus_lite_address: str) -> Iterator[tuple[TestClient, TestClient]]:
    uri = f"milvus://{milvus_lite_address}/{kit.collection_name('nodes')}"
    with node(uri) as first, node(uri) as second:
        yield first, second


def test_a_write_through_one_node_is_found_through_the_other(two_nodes) -> None:
    first, second = two_nodes
    for i in range(6):
        put = first.put(f"/v1/items/p{i}", json={"title": f"striped parasol {i}",
                                                 "category": "garden" if i % 2 else "beach",
                                                 "image_base64": b64(jpeg_bytes(i))})
        assert put.status_code == 201, put.text
    assert second.get("/v1/items/p3").json()["title"] == "striped parasol 3"
    found = second.post("/v1/search", json={"image_base64": b64(jpeg_bytes(3)), "limit": 3})
    assert found.status_code == 200, found.text
    assert found.json()["results"][0]["id"] == "p3"
    filtered = second.post("/v1/search", json={"text": "parasol", "limit": 10,
                                               "filters": {"categories": ["garden"]}})
    assert filtered.status_code == 200, filtered.text
    assert {h["id"] for h in filtered.json()["results"]} == {"p1", "p3", "p5"}
    similar = second.get("/v1/items/p2/similar?limit=2")
    assert similar.status_code == 200, similar.text
    assert "p2" not in {h["id"] for h in similar.json()["results"]}
    assert first.delete("/v1/items/p3").status_code == 200
    assert second.get("/v1/items/p3").status_code == 404
    assert second.get("/v1/stats").json()["items"] == 5
    # near-duplicates from stored hashes and fetched vectors (tests/web/test_api.py
    # finds a copy on both backends); a thumbnail written through one node is served
    # by the other
    dupes = second.get("/v1/items/p2/duplicates")
    assert dupes.status_code == 200, dupes.text
    assert "p2" not in {d["id"] for d in dupes.json()["duplicates"]}
    thumbnail = second.get("/v1/thumbnails/p2")
    assert thumbnail.status_code == 200 and thumbnail.content.startswith(b"\xff\xd8\xff")


def test_a_node_whose_milvus_is_gone_answers_503_then_reconnects(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    servers = milvuskit.milvus_lite(tmp_path)
    address = next(servers)
    client = node(f"milvus://{address}/gone")
    with client:
        assert client.get("/ready").status_code == 200
        servers.close()  # stops the server
        monkeypatch.setattr("imgsearch.engine.backends.milvus_target._BACKOFF_S", 0.01)
        answer = client.post("/v1/search", json={"text": "anything"})
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"]["code"] == "backend_unavailable"
        assert f"milvus://{address}/gone" in answer.json()["error"]["message"]
        assert client.get("/ready").status_code == 503
        # the default backoff (0.2 s doubling): long enough for gRPC to connect again
        monkeypatch.setattr("imgsearch.engine.backends.milvus_target._BACKOFF_S", 0.2)
        back = milvuskit.milvus_lite(tmp_path, port=int(address.rpartition(":")[2]))
        assert next(back) == address  # the same server again, on the same data
        try:
            # as a load balancer would: poll readiness until the node is back
            deadline = time.monotonic() + 60
            readiness = client.get("/ready")
            while readiness.status_code != 200 and time.monotonic() < deadline:
                readiness = client.get("/ready")
            assert readiness.status_code == 200, readiness.text
            again = client.post("/v1/search", json={"text": "anything"})
            assert again.status_code == 200, again.text
        finally:
            back.close()
