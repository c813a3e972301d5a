"""The catalog's row cache: bounded, and never keeps a row read before a newer commit."""

from __future__ import annotations

from imgsearch.store.rowcache import RowCache


def test_rows_read_before_an_invalidation_are_not_kept():
    cache: RowCache[int, str] = RowCache(10)
    generation = cache.generation
    cache.invalidate([1])  # a write to key 1 commits while the reader is querying
    cache.put_many({1: "old title"}, generation)
    assert cache.get_many([1]) == ({}, [1])
    cache.put_many({1: "new title"}, cache.generation)
    assert cache.get_many([1, 2]) == ({1: "new title"}, [2])


def test_invalidate_forgets_the_keys_written():
    cache: RowCache[int, str] = RowCache(10)
    cache.put_many({1: "a", 2: "b", 3: "c"}, cache.generation)
    cache.invalidate([2])
    assert cache.get_many([1, 2, 3]) == ({1: "a", 3: "c"}, [2])
    cache.invalidate()
    assert cache.get_many([1, 3]) == ({}, [1, 3])


def test_capacity_evicts_the_oldest_rows():
    cache: RowCache[int, int] = RowCache(3)
    cache.put_many({1: 1, 2: 2}, cache.generation)
    cache.put_many({3: 3, 4: 4}, cache.generation)
    found, missing = cache.get_many([1, 2, 3, 4])
    assert found == {2: 2, 3: 3, 4: 4} and missing == [1]
    empty: RowCache[int, int] = RowCache(0)
    empty.put_many({1: 1}, empty.generation)
    assert empty.get_many([1]) == ({}, [1])
