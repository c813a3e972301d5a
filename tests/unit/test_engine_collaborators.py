"""The Engine's collaborators are built from what they use, so they are tested here
without a collection on disk: what is derived from the collection, and query vectors."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from imgsearch.config import Settings
from imgsearch.encode.registry import describe_encoder
from imgsearch.engine.batching import LRUCache
from imgsearch.engine.derived import Derived
from imgsearch.engine.query_encoder import CachedQueryEncoder, QueryEncoder
from imgsearch.ingest.fetch import Fetcher
from imgsearch.store.manifest import Manifest
from imgsearch.types import VectorSpace


class _Catalog:
    """distinct_values as a catalog answers it, counting the reads."""

    def __init__(self) -> None:
        self.reads = 0
        self.values = {"brand": [("Acme", 3), ("Zeta", 1)], "category": [("Shoes", 2)],
                       "camera": []}

    def distinct_values(self, column: str, limit: int) -> list[tuple[str, int]]:
        self.reads += 1
        return self.values[column][:limit]


def _derived() -> tuple[Derived, _Catalog, LRUCache[Any]]:
    catalog = _Catalog()
    results: LRUCache[Any] = LRUCache(10)
    return Derived(catalog, results), catalog, results  # type: ignore[arg-type]


def test_known_values_are_read_once_until_a_write_forgets_them() -> None:
    derived, catalog, results = _derived()
    results.put("query", "answer")
    assert derived.known_values("brand") == (["Acme", "Zeta"], frozenset({"acme", "zeta"}))
    derived.known_values("brand")
    assert catalog.reads == 1
    catalog.values["brand"] = [("Nova", 5)]
    derived.forget()
    assert derived.known_values("brand")[0] == ["Nova"]
    assert catalog.reads == 2
    assert derived.write_version == 1 and results.get("query") is None


def test_something_made_while_a_write_landed_is_used_once_and_not_kept() -> None:
    derived, _, _ = _derived()
    builds = []

    def build_during_a_write() -> object:
        builds.append(object())
        if len(builds) == 1:
            derived.forget()  # a write lands while the index is being built
        return builds[-1]

    first = derived.hamming_index(build_during_a_write)
    second = derived.hamming_index(build_during_a_write)
    third = derived.hamming_index(build_during_a_write)
    assert first is builds[0] and second is builds[1] and third is second


def test_a_hamming_index_asked_for_on_two_threads_at_once_is_built_once() -> None:
    derived, _, _ = _derived()
    started, release = threading.Event(), threading.Event()
    builds = []

    def slow_build() -> object:
        builds.append(object())
        started.set()
        release.wait(5)
        return builds[-1]

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(derived.hamming_index, slow_build)
        assert started.wait(5)
        second = pool.submit(derived.hamming_index, slow_build)
        assert not derived.has_hamming_index()
        release.set()
        assert first.result(5) is second.result(5) is builds[0]
    assert len(builds) == 1 and derived.has_hamming_index()
    derived.forget()
    assert not derived.has_hamming_index()


def test_the_vocabulary_is_kept_until_the_next_write() -> None:
    derived, catalog, _ = _derived()
    vocabulary = derived.vocabulary()
    assert sorted(vocabulary.brands.values()) == ["Acme", "Zeta"]
    assert list(vocabulary.categories.values()) == ["Shoes"]
    assert derived.vocabulary() is vocabulary
    catalog.values["brand"] = [("Nova", 1)]
    derived.forget()
    assert list(derived.vocabulary().brands.values()) == ["Nova"]


def _query_encoder(settings: Settings) -> tuple[CachedQueryEncoder, LRUCache[Any]]:
    model_id, dim = describe_encoder("fake", settings)
    manifest = Manifest(spaces={"text": VectorSpace("text", "fake", model_id, dim, "text")})
    cache: LRUCache[Any] = LRUCache(100)
    return CachedQueryEncoder(settings, manifest, Fetcher(settings), cache, None), cache


def test_a_query_text_is_encoded_once_and_then_served_from_the_cache() -> None:
    settings = Settings(image_encoder="fake", text_encoder="fake", micro_batch=False)
    encoder, cache = _query_encoder(settings)
    as_protocol: QueryEncoder = encoder  # the facade holds it as the protocol
    try:
        first = as_protocol.embed_query_text("text", "red shoes")
        again = as_protocol.embed_query_text("text", "red shoes")
        other = as_protocol.embed_query_text("text", "blue hats")
        assert cache.hits == 1
        assert again is first
        assert first.shape == (encoder.encoder("text").dim,)
        assert abs(float(np.linalg.norm(first)) - 1.0) < 1e-5
        assert not np.allclose(first, other)
        assert as_protocol.text_encoder() is encoder.encoder("text")
    finally:
        as_protocol.close()


def test_micro_batched_query_vectors_equal_the_encoders_own() -> None:
    settings = Settings(image_encoder="fake", text_encoder="fake", micro_batch=True)
    encoder, _ = _query_encoder(settings)
    try:
        vector = encoder.embed_query_text("text", "a lamp")
        assert np.allclose(vector, encoder.encoder("text").embed_text("a lamp"), atol=1e-6)
    finally:
        encoder.close()
