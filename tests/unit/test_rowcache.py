"""The catalog's row cache: bounded, and never keeps a row read before a newer commit."""

from __future__ import annotations

import numpy as np

from imgsearch.store.rowcache import KeyColumn, RowCache


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


def test_key_column_values_read_before_an_invalidation_are_not_kept():
    column = KeyColumn()
    keys = np.array([3, 5], np.int64)
    generation = column.generation
    column.invalidate([5])  # a write to key 5 commits while the reader is querying
    column.put(keys, np.array([30, 50], np.int64), np.array([True, True]), generation)
    values, has, unknown = column.get(keys)
    assert unknown.tolist() == [True, True] and not has.any()
    column.put(keys, np.array([30, 0], np.int64), np.array([True, False]), column.generation)
    values, has, unknown = column.get(np.array([3, 5, 7], np.int64))
    assert values.tolist() == [30, 0, 0]
    assert has.tolist() == [True, False, False]  # 5 is known to have no value
    assert unknown.tolist() == [False, False, True]


def test_key_column_grows_and_forgets():
    column = KeyColumn()
    far = np.array([2, 100_000], np.int64)
    column.put(far, np.array([-7, 9], np.int64), np.array([True, True]), column.generation)
    assert column.get(far)[0].tolist() == [-7, 9]
    column.invalidate([100_000])
    assert column.get(far)[2].tolist() == [False, True]
    column.invalidate()
    assert column.get(far)[2].tolist() == [True, True]
    assert column.get(np.array([-1], np.int64))[2].tolist() == [True]


def test_key_column_fill_knows_every_key_below_its_size():
    column = KeyColumn()
    column.put(np.array([40], np.int64), np.array([4], np.int64), np.array([True]),
               column.generation)  # read one by one, above what the scan covers
    assert column.fill(10, np.array([1, 7], np.int64), np.array([11, 77], np.int64),
                       column.generation)
    values, has, unknown = column.get(np.array([1, 3, 7, 40, 41], np.int64))
    assert values.tolist() == [11, 0, 77, 4, 0]
    assert has.tolist() == [True, False, True, True, False]  # 3: known to have none
    assert unknown.tolist() == [False, False, False, False, True]


def test_key_column_fill_read_before_a_write_is_refused():
    column = KeyColumn()
    generation = column.generation
    column.invalidate([1])  # a write commits while the scan reads
    assert not column.fill(4, np.array([1], np.int64), np.array([5], np.int64), generation)
    assert column.get(np.array([1, 2], np.int64))[2].tolist() == [True, True]
