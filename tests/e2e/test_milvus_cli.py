"""The command line over a milvus collection, as a user runs it: ``index`` into it,
``migrate`` a local collection into it, and ``serve`` it from two nodes at once."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

import backendkit as kit
import imagegen as gen
from rediskit import free_port

ENV = dict(os.environ, IMGSEARCH_TEXT_ENCODER="fake", IMGSEARCH_IMAGE_ENCODER="fake")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "imgsearch.cli", *map(str, args)],
                          capture_output=True, text=True, env=ENV, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc


def photos(folder: Path, n: int) -> Path:
    for i in range(n):
        gen.write_image(folder / f"photo-{i}.jpg", i)
    return folder


def serve(uri: str, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "imgsearch.cli", "serve", "-c", uri,
                             "--port", str(port)], env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def ready(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the node exited"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"node on port {port} never got ready")


@pytest.mark.slow
def test_index_then_two_nodes_serve_one_collection(tmp_path: Path,
                                                   milvus_lite_address: str) -> None:
    uri = f"milvus://{milvus_lite_address}/{kit.collection_name('cli')}"
    done = run("index", photos(tmp_path / "photos", 8), "--collection", uri)
    assert "added 8" in done.stderr
    ports = free_port(), free_port()
    nodes = [serve(uri, port) for port in ports]
    try:
        for port, proc in zip(ports, nodes, strict=True):
            ready(port, proc)
        first, second = (f"http://127.0.0.1:{p}" for p in ports)
        put = httpx.put(f"{first}/v1/items/fresh", json={
            "title": "brand new", "image_base64": b64(gen.jpeg_bytes(40))})
        assert put.status_code == 201, put.text
        found = httpx.post(f"{second}/v1/search", json={
            "image_base64": b64(gen.jpeg_bytes(40)), "limit": 1}).json()
        assert found["results"][0]["id"] == "fresh"
        # browsing through the other node: the newest first
        listed = httpx.post(f"{second}/v1/search", json={"limit": 2}).json()
        assert [h["id"] for h in listed["results"]][:1] == ["fresh"]
        # a click through one node counts in the other's report, and the command's
        search = httpx.post(f"{first}/v1/search", json={"similar_to": "fresh",
                                                         "limit": 3}).json()
        assert httpx.post(f"{first}/v1/feedback/click", json={
            "search_id": search["search_id"], "item_id": search["results"][1]["id"],
            "position": 2}).json() == {"recorded": True}
        report = httpx.get(f"{second}/v1/report").json()
        assert report["item"] == {**report["item"], "searches": 1, "click_through_rate": 1.0,
                                  "mrr_of_clicks": 0.5}
        printed = json.loads(run("report", "-c", uri, "--json").stdout)
        assert printed["item"]["mrr_of_clicks"] == 0.5
        nodes[0].terminate()
        nodes[0].wait(30)
        again = httpx.post(f"{second}/v1/search", json={
            "image_base64": b64(gen.jpeg_bytes(3)), "limit": 1})
        assert again.status_code == 200
        assert again.json()["results"][0]["id"] == "photo-3.jpg"
    finally:
        for proc in nodes:
            proc.terminate()
            proc.wait(30)


def test_migrate_copies_vectors_without_encoding(tmp_path: Path,
                                                 milvus_lite_address: str) -> None:
    from imgsearch.engine.backends.local import LocalBackend
    from imgsearch.engine.backends.milvus import MilvusBackend

    run("index", photos(tmp_path / "photos", 10), "--collection", tmp_path / "shop")
    uri = f"milvus://{milvus_lite_address}/{kit.collection_name('migrated')}"
    done = run("migrate", tmp_path / "shop", uri)
    assert "copied 10 items" in done.stderr
    local = LocalBackend.open(tmp_path / "shop", create=False, readonly=True)
    remote = MilvusBackend.open(uri)
    try:
        assert remote.spaces() == local.spaces()
        assert remote.encoders() == local.encoders()  # recorded, checked at every open
        assert remote.get(["photo-4.jpg"])["photo-4.jpg"].width == \
            local.get(["photo-4.jpg"])["photo-4.jpg"].width
        for item_id in ("photo-1.jpg", "photo-7.jpg"):
            vector = local.fetch_vectors("image", [item_id])[item_id]
            np.testing.assert_array_equal(remote.fetch_vectors("image", [item_id])[item_id],
                                          vector)  # bit for bit: nothing encoded again
            a, b = local.search("image", vector, 10), remote.search("image", vector, 10)
            assert [h.id for h in a] == [h.id for h in b]
            np.testing.assert_allclose([h.score for h in a], [h.score for h in b], atol=1e-5)
    finally:
        local.close()
        remote.close()
