"""The shared Redis cache, against a real redis-server on loopback (skipped without one)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

import rediskit
from imagegen import jpeg_bytes, picture
from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.types import Item, Query

pytest.importorskip("redis", reason="the redis package is not installed")
if shutil.which("redis-server") is None:
    pytest.skip("redis-server is not installed (Debian package redis-server)",
                allow_module_level=True)


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    for port in rediskit.redis_server(tmp_path_factory.mktemp("redis")):
        yield f"redis://127.0.0.1:{port}/0"


def test_two_engines_share_embeddings_and_results(tmp_path, redis_url):
    settings = Settings(text_encoder="fake", redis_url=redis_url)
    with Engine.open(tmp_path / "c", settings) as writer:
        writer.ingest_items((Item(id=f"i{i}", title=f"thing {i}"), picture(i))
                            for i in range(12))
    image = jpeg_bytes(4)
    with Engine.open(tmp_path / "c", settings, readonly=True) as first:
        result = first.search(Query(images=[image], limit=3))
        assert not result.cached
    # a second process (here: a second engine, its own in-process caches empty)
    with Engine.open(tmp_path / "c", settings, readonly=True) as second:
        again = second.search(Query(images=[image], limit=3))
        assert again.cached
        assert [h.id for h in again.hits] == [h.id for h in result.hits]
        assert second.shared_cache is not None and second.shared_cache.hits >= 1
    # a write anywhere makes every cached result stale
    with Engine.open(tmp_path / "c", settings) as writer:
        writer.upsert(Item(id="new"), picture(77))
        assert not writer.search(Query(images=[image], limit=3)).cached


def test_search_survives_redis_being_down(tmp_path):
    settings = Settings(text_encoder="fake", redis_url="redis://127.0.0.1:9/0")
    with Engine.open(tmp_path / "c", settings) as engine:
        engine.upsert(Item(id="a"), picture(1))
        assert engine.search(Query(images=[picture(1)], limit=1)).hits[0].id == "a"
