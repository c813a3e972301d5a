"""Consuming a Redis stream into a collection, against a real redis-server on loopback."""

from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import rediskit
from imagegen import jpeg_bytes, write_image
from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.engine.stream import StreamAddress, StreamConsumer
from imgsearch.types import Query

redis = pytest.importorskip("redis", reason="the redis package is not installed")
if shutil.which("redis-server") is None:
    pytest.skip("redis-server is not installed (Debian package redis-server)",
                allow_module_level=True)

SETTINGS = Settings(image_encoder="descriptor", text_encoder="fake", ingest_workers=1)


@pytest.fixture(scope="module")
def redis_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    yield from rediskit.redis_server(tmp_path_factory.mktemp("redis"))


@pytest.fixture
def stream(redis_port: int, request: pytest.FixtureRequest) -> tuple[StreamAddress, object]:
    name = f"items-{request.node.name}"[:100]
    client = redis.Redis(port=redis_port, decode_responses=True)
    client.delete(name, f"{name}:dead")
    return StreamAddress("127.0.0.1", redis_port, name), client


def _upsert(item_id: str, seed: int, **fields: str) -> dict[str, str]:
    return {"id": item_id, "image_base64": base64.b64encode(jpeg_bytes(seed)).decode(),
            **fields}


def test_upserts_and_deletes_are_applied_and_acknowledged(tmp_path, stream):
    address, client = stream
    for i in range(6):
        client.xadd(address.stream, _upsert(f"i{i}", i, title=f"thing {i}", price="9.5"))
    client.xadd(address.stream, {"op": "delete", "id": "i2"})
    client.xadd(address.stream, {"op": "delete", "id": "never-there"})
    with Engine.open(tmp_path / "c", SETTINGS) as engine:
        consumer = StreamConsumer(engine, address, consumer="one", batch_size=4, block_ms=50)
        stats = consumer.run(stop_when_idle=True)
        assert (stats.upserted, stats.deleted, stats.dead) == (6, 1, 0)
        assert sorted(i.id for i in engine.catalog.iter_items()) == [
            "i0", "i1", "i3", "i4", "i5"]
        assert engine.get("i4").price == 9.5
        assert engine.search(Query(images=[jpeg_bytes(4)], limit=1)).hits[0].id == "i4"
        assert consumer.lag() == {"lag": 0, "pending": 0}


def test_a_message_applied_twice_changes_nothing(tmp_path, stream):
    address, client = stream
    client.xadd(address.stream, _upsert("a", 1, title="same"))
    client.xadd(address.stream, _upsert("a", 1, title="same"))  # a producer's retry
    with Engine.open(tmp_path / "c", SETTINGS) as engine:
        consumer = StreamConsumer(engine, address, batch_size=1, block_ms=50)
        stats = consumer.run(stop_when_idle=True)
        assert (stats.upserted, stats.unchanged) == (1, 1)
        assert engine.catalog.count() == 1
        assert len(engine.spaces["image"]) == 1
        before = engine.get("a").content_hash
        client.xadd(address.stream, _upsert("a", 2, title="same"))  # a new image
        assert consumer.run(stop_when_idle=True).upserted == 2
        assert engine.catalog.count() == 1
        assert engine.get("a").content_hash not in (None, before)


def test_a_failed_commit_is_neither_acknowledged_nor_dead_lettered(tmp_path, stream,
                                                                   monkeypatch):
    """Writes go through Engine.upsert_many; when its commit fails (a full disk), the
    batch stays pending and is applied by the next round, not sent to the dead letters."""
    from imgsearch.errors import StorageFullError

    address, client = stream
    client.xadd(address.stream, _upsert("kept", 3, title="kept"))
    with Engine.open(tmp_path / "c", SETTINGS) as engine:
        real = engine.writer.commit
        calls = []

        def full_once(prepared):  # type: ignore[no-untyped-def]
            calls.append(len(prepared))
            if len(calls) == 1:
                raise StorageFullError(f"no space left on the device of {tmp_path}")
            return real(prepared)

        monkeypatch.setattr(engine.writer, "commit", full_once)  # under upsert_many
        consumer = StreamConsumer(engine, address, consumer="one", block_ms=50)
        consumer.ensure_group()
        with pytest.raises(StorageFullError):
            consumer.poll()
        assert consumer.lag()["pending"] == 1 and client.xlen(address.dead_letters) == 0
        assert "kept" not in engine
        assert consumer.poll() == 1  # its own pending message first
        assert engine.get("kept").title == "kept"
        assert consumer.lag() == {"lag": 0, "pending": 0}
        assert calls == [1, 1]


def test_what_cannot_be_applied_goes_to_the_dead_letter_stream(tmp_path, stream):
    address, client = stream
    images = tmp_path / "images"
    write_image(images / "ok.png", 3)
    client.xadd(address.stream, _upsert("good", 1))
    client.xadd(address.stream, {"id": "no-image"})
    client.xadd(address.stream, {"id": "text", "image_base64":
                                 base64.b64encode(b"hello, not a picture").decode()})
    client.xadd(address.stream, {"id": "escape", "image": "../../etc/passwd"})
    client.xadd(address.stream, {"id": "path", "image": "ok.png"})
    client.xadd(address.stream, _upsert("pricey", 2, price="a lot"))
    with Engine.open(tmp_path / "c", SETTINGS) as engine:
        consumer = StreamConsumer(engine, address, image_roots=[images], block_ms=50)
        stats = consumer.run(stop_when_idle=True)
        assert sorted(i.id for i in engine.catalog.iter_items()) == ["good", "path"]
        assert stats.dead == 4
    dead = [entry for _, entry in client.xrange(address.dead_letters)]
    codes = {entry["field_id"]: entry["code"] for entry in dead}
    assert set(codes) == {"no-image", "text", "escape", "pricey"}
    assert codes["no-image"] == "missing_image"
    assert codes["text"] == "unsupported_format"
    assert codes["escape"] == "path_not_allowed"
    reasons = {entry["field_id"]: entry["reason"] for entry in dead}
    assert "outside the allowed image root" in reasons["escape"]
    assert "price" in reasons["pricey"]
    text = next(entry for entry in dead if entry["field_id"] == "text")
    assert base64.b64decode(text["field_image_base64"]) == b"hello, not a picture"
    assert all(entry["message_id"] for entry in dead)  # the stream entry it was
    assert consumer.lag() == {"lag": 0, "pending": 0}


def test_a_message_the_code_cannot_handle_does_not_block_the_stream(tmp_path, stream,
                                                                    monkeypatch):
    address, client = stream
    for item_id in ("a", "poison", "b"):
        client.xadd(address.stream, _upsert(item_id, len(item_id)))
    with Engine.open(tmp_path / "c", SETTINGS) as engine:
        real = engine.writer.commit

        def commit(prepared):  # type: ignore[no-untyped-def]
            if any(p.item.id == "poison" for p in prepared):
                raise RuntimeError("unforeseen")
            return real(prepared)

        monkeypatch.setattr(engine.writer, "commit", commit)  # under upsert_many
        consumer = StreamConsumer(engine, address, batch_size=3, block_ms=50)
        stats = consumer.run(stop_when_idle=True)
        assert sorted(i.id for i in engine.catalog.iter_items()) == ["a", "b"]
        assert stats.dead == 1
        assert consumer.lag() == {"lag": 0, "pending": 0}
    [(_, dead)] = client.xrange(address.dead_letters)
    assert (dead["field_id"], dead["code"]) == ("poison", "internal_error")
    assert "RuntimeError: unforeseen" in dead["reason"]


def test_a_dead_consumers_pending_messages_are_claimed(tmp_path, stream):
    address, client = stream
    for i in range(5):
        client.xadd(address.stream, _upsert(f"p{i}", i))
    with Engine.open(tmp_path / "c", SETTINGS) as engine:
        first = StreamConsumer(engine, address, consumer="dies", batch_size=3)
        first.ensure_group()
        taken = first._read(">")  # read, then "killed" before applying: left pending
        assert len(taken) == 3
        assert first.lag()["pending"] == 3
        second = StreamConsumer(engine, address, consumer="takes-over", claim_idle_ms=0,
                                block_ms=50, batch_size=1)  # several claims, none missed
        stats = second.run(stop_when_idle=True)
        assert stats.reclaimed == 3
        assert engine.catalog.count() == 5
        assert second.lag() == {"lag": 0, "pending": 0}


def _consume(collection: Path, address: StreamAddress, consumer: str, *extra: str
             ) -> subprocess.Popen[bytes]:
    env = dict(os.environ, IMGSEARCH_TEXT_ENCODER="fake", IMGSEARCH_INGEST_WORKERS="1")
    return subprocess.Popen(
        [sys.executable, "-m", "imgsearch.cli", "consume", str(address), "-c",
         str(collection), "--consumer", consumer, "--batch-size", "3", *extra],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_kill_9_of_the_consumer_loses_nothing_and_duplicates_nothing(tmp_path, stream):
    address, client = stream
    total = 60
    for i in range(total):
        client.xadd(address.stream, _upsert(f"k{i:03d}", 100 + i, title=f"item {i}"))
    collection = tmp_path / "c"
    proc = _consume(collection, address, "first")
    deadline = time.monotonic() + 120
    read = 0
    while time.monotonic() < deadline and proc.poll() is None:
        groups = client.xinfo_groups(address.stream) if client.exists(address.stream) else []
        read = groups[0]["entries-read"] or 0 if groups else 0
        if read >= 15:
            break
        time.sleep(0.01)
    assert proc.poll() is None and read < total, "the consumer ended before the kill"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    # another consumer takes over what the killed one left pending
    again = _consume(collection, address, "second", "--claim-idle-ms", "0",
                     "--exit-when-idle")
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err.decode()[-2000:]
    with Engine.open(collection, SETTINGS) as engine:
        ids = [item.id for item in engine.catalog.iter_items()]
        assert sorted(ids) == [f"k{i:03d}" for i in range(total)]
        assert len(engine.spaces["image"]) == total
        for i in (0, 17, total - 1):
            assert engine.search(Query(images=[jpeg_bytes(100 + i)], limit=1)).hits[
                0].id == f"k{i:03d}"
    assert client.xlen(address.dead_letters) == 0
    info = client.xinfo_groups(address.stream)[0]
    assert (info["pending"], info["lag"]) == (0, 0)


@pytest.mark.slow
def test_serve_consume_indexes_the_stream_and_shows_its_lag(tmp_path, stream):
    address, client = stream
    port = rediskit.free_port()
    env = dict(os.environ, IMGSEARCH_TEXT_ENCODER="fake", IMGSEARCH_LOG_SEARCHES="0",
               IMGSEARCH_INGEST_WORKERS="1")
    log = tmp_path / "serve.log"
    with open(log, "wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "imgsearch.cli", "serve", "-c", str(tmp_path / "c"),
             "--port", str(port), "--consume", str(address)],
            stdout=sink, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        for i in range(4):
            client.xadd(address.stream, _upsert(f"s{i}", 40 + i))
        client.xadd(address.stream, {"id": "broken"})
        deadline = time.monotonic() + 120
        metrics = ""
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-2000:]
            try:
                metrics = httpx.get(f"{base}/metrics", timeout=2).text
            except httpx.TransportError:
                time.sleep(0.2)
                continue
            if 'imgsearch_stream_messages_total{outcome="upserted"} 4.0' in metrics:
                break
            time.sleep(0.2)
        assert 'imgsearch_stream_messages_total{outcome="upserted"} 4.0' in metrics, metrics
        assert 'imgsearch_stream_messages_total{outcome="dead"} 1.0' in metrics
        lag = [line for line in metrics.splitlines()
               if line.startswith("imgsearch_stream_lag{")]
        assert lag and lag[0].endswith(" 0.0"), lag
        assert "imgsearch_stream_pending{" in metrics
        found = httpx.get(f"{base}/v1/items/s2", timeout=10)
        assert found.status_code == 200, found.text
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def test_redis_down_is_retried_with_backoff_and_said(tmp_path):
    import threading

    address = StreamAddress("127.0.0.1", rediskit.free_port(), "nowhere")
    with Engine.open(tmp_path / "c", SETTINGS) as engine:
        consumer = StreamConsumer(engine, address, block_ms=50)
        stop = threading.Event()
        timer = threading.Timer(1.5, stop.set)
        timer.start()
        stats = consumer.run(stop)
        timer.join()
        assert stats.errors >= 1
        assert stats.last_error is not None and "cannot be reached" in stats.last_error
        assert f"127.0.0.1:{address.port}" in stats.last_error


def test_pending_messages_trimmed_from_the_stream_do_not_block_the_rest(tmp_path, stream):
    address, client = stream
    first = [client.xadd(address.stream, _upsert(f"t{i}", i)) for i in range(3)]
    with Engine.open(tmp_path / "c", SETTINGS) as engine:
        consumer = StreamConsumer(engine, address, consumer="same", batch_size=2,
                                  block_ms=50)
        consumer.ensure_group()
        assert len(consumer._read(">")) == 2  # then "killed": both left pending
        client.xdel(address.stream, *first[:2])  # and trimmed away by the producer
        stats = consumer.run(stop_when_idle=True)
        assert stats.upserted == 1
        assert [i.id for i in engine.catalog.iter_items()] == ["t2"]
        assert consumer.lag()["pending"] == 0
