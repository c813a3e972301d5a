"""Micro-batched query encoding, the embedding cache and the result cache."""

from __future__ import annotations

import threading
import time

import numpy as np

from imagegen import jpeg_bytes, picture
from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.engine.batching import LRUCache, MicroBatcher
from imgsearch.types import Item, Query


def test_concurrent_calls_share_batches():
    calls: list[int] = []

    def encode(values):
        calls.append(len(values))
        time.sleep(0.01)  # a model call takes a while; others pile up meanwhile
        return np.asarray([[float(v), 1.0] for v in values], dtype=np.float32)

    batcher = MicroBatcher(encode, max_batch=8, max_wait_s=0.005)
    results: dict[int, np.ndarray] = {}

    def worker(i: int) -> None:
        results[i] = batcher.encode(i)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    batcher.close()
    assert all(results[i][0] == i for i in range(16))  # each caller gets its own row
    assert sum(calls) == 16 and len(calls) < 16 and max(calls) <= 8


def test_a_lone_caller_is_encoded_without_waiting_for_company():
    batches: list[int] = []

    def encode(values):
        batches.append(len(values))
        return np.asarray([[float(v), 1.0] for v in values], dtype=np.float32)

    # an hour's window: a lone caller that waited for company would hang here
    batcher = MicroBatcher(encode, max_batch=8, max_wait_s=3600.0)
    answered: list[float] = []
    caller = threading.Thread(target=lambda: answered.extend(
        float(batcher.encode(v)[0]) for v in (1, 2, 3)), daemon=True)
    caller.start()
    caller.join(timeout=60)
    assert answered == [1.0, 2.0, 3.0] and batches == [1, 1, 1]
    batcher.close()


def test_batcher_passes_errors_to_every_waiter():
    def encode(values):
        raise ValueError("model broke")

    batcher = MicroBatcher(encode, max_batch=4, max_wait_s=0.001)
    try:
        batcher.encode("x")
    except ValueError as exc:
        assert "model broke" in str(exc)
    else:
        raise AssertionError("the error did not reach the caller")
    finally:
        batcher.close()


def test_lru_cache_evicts_and_expires():
    cache: LRUCache[int] = LRUCache(2, ttl_s=0.05)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1
    cache.put("c", 3)  # evicts b, the least recently used
    assert cache.get("b") is None and cache.get("c") == 3
    time.sleep(0.06)
    assert cache.get("a") is None


def test_engine_query_paths_batch_and_cache(tmp_path):
    with Engine.open(tmp_path / "c", Settings(text_encoder="fake")) as engine:
        engine.ingest_items((Item(id=f"i{i}", title=f"thing number {i}"), picture(i))
                            for i in range(20))
        texts = [f"thing number {i}" for i in range(16)]
        out: dict[str, np.ndarray] = {}

        def worker(text: str) -> None:
            out[text] = engine.embed_query_text("text", text)

        threads = [threading.Thread(target=worker, args=(t,)) for t in texts]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        direct = engine.encoder("text").embed_texts(texts)
        for row, text in enumerate(texts):
            assert np.allclose(out[text], direct[row], atol=1e-6)
        hits_before = engine.embedding_cache.hits
        engine.embed_query_text("text", texts[0])
        assert engine.embedding_cache.hits == hits_before + 1

        image = jpeg_bytes(3)
        first = engine.search(Query(images=[image], limit=3))
        again = engine.search(Query(images=[image], limit=3))
        assert not first.cached and again.cached
        assert [h.id for h in again.hits] == [h.id for h in first.hits]
        assert again.search_id != first.search_id
        engine.upsert(Item(id="new", title="fresh"), picture(99))
        after_write = engine.search(Query(images=[image], limit=3))
        assert not after_write.cached
