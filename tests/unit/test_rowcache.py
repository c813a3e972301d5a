"""The catalog's row cache: bounded, and never keeps a row read before a newer commit."""

from __future__ import annotations

import numpy as np

from imgsearch.store.rowcache import KeyColumn, PackedRows, RowCache


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


def test_packed_rows_keep_values_exactly():
    rows = PackedRows(1 << 20)
    row = ("sku-é", None, "shoes", "", 12.5, "a/b.jpg", None)
    rows.put_many({7: row, 3: ("x", 0, -1.0)}, rows.generation)
    found, missing = rows.get_many([3, 7, 8, 1_000_000, -1])
    assert found == {7: row, 3: ("x", 0, -1.0)} and missing == [8, 1_000_000, -1]
    found, missing = rows.get_many(np.array([7, 9], np.int64))
    assert found == {7: row} and missing == [9]
    assert all(type(k) is int for k in (*found, *missing))


def test_packed_rows_read_before_an_invalidation_are_not_kept():
    rows = PackedRows(1 << 20)
    generation = rows.generation
    rows.invalidate([1])  # a write to key 1 commits while the reader is querying
    rows.put_many({1: ("old title",)}, generation)
    assert rows.get_many([1]) == ({}, [1])
    assert not rows.fill([(1, "old title"), (2, "b")], generation)  # a scan, likewise
    assert rows.get_many([1, 2]) == ({}, [1, 2])
    rows.put_many({1: ("new title",), 2: ("b",)}, rows.generation)
    rows.invalidate([2])
    assert rows.get_many([1, 2]) == ({1: ("new title",)}, [2])
    rows.invalidate()
    assert rows.get_many([1]) == ({}, [1])


def test_packed_rows_fill_replaces_what_is_stored_up_to_the_capacity():
    rows = PackedRows(1 << 20)
    rows.put_many({5000: ("read one by one",)}, rows.generation)
    assert rows.fill(((k, f"title {k}", float(k)) for k in range(1, 3000)), rows.generation)
    found, missing = rows.get_many([1, 2999, 3000, 5000])
    assert found == {1: ("title 1", 1.0), 2999: ("title 2999", 2999.0)}
    assert missing == [3000, 5000]
    assert len(rows) == 2999

    small = PackedRows(1000)  # room for some rows only: the first ones scanned are kept
    assert small.fill(((k, "x" * 30) for k in range(1, 200)), small.generation)
    kept = len(small)
    assert 0 < kept < 199 and small.nbytes <= 1000 + 8 * 1024
    found, missing = small.get_many(list(range(1, 200)))
    assert sorted(found) == list(range(1, kept + 1)) and len(missing) == 199 - kept


def test_packed_rows_full_of_live_rows_keep_them_and_start_over_when_mostly_stale():
    rows = PackedRows(2000)
    rows.put_many({k: ("y" * 60,) for k in range(40)}, rows.generation)
    stored = len(rows)
    assert 0 < stored < 40
    rows.put_many({100: ("z" * 60,)}, rows.generation)  # no room, all live: not kept
    assert rows.get_many([100])[1] == [100] and len(rows) == stored
    rows.invalidate(range(stored))  # every stored row changed: their copies are stale
    rows.put_many({100: ("z" * 60,)}, rows.generation)  # so the store starts over
    assert rows.get_many([100])[0] == {100: ("z" * 60,)} and len(rows) == 1
    off = PackedRows(0)
    off.put_many({1: ("a",)}, off.generation)
    assert off.get_many([1]) == ({}, [1]) and not off.fill([(1, "a")], off.generation)


def test_packed_rows_find_a_scanned_row_by_its_first_value_until_it_changes():
    rows = PackedRows(1 << 20)
    assert rows.fill([(k, f"id{k}", "title") for k in range(1, 500)], rows.generation)
    assert rows.key_of_first("id7") == 7 and rows.key_of_first("id499") == 499
    assert rows.key_of_first("id500") is None  # never scanned: the store cannot tell
    rows.invalidate([7])  # item 7 changed or went: ask the source
    assert rows.key_of_first("id7") is None
    rows.put_many({7: ("id7", "new title")}, rows.generation)
    assert rows.key_of_first("id7") == 7
    rows.invalidate()
    assert rows.key_of_first("id8") is None
    # values that share a hash (hash(-1) == hash(-2) in CPython) are told apart
    assert rows.fill([(3, -1, "a"), (4, -2, "b"), (5, 2**61 - 1, "c")], rows.generation)
    assert hash(-1) == hash(-2)
    assert (rows.key_of_first(-1), rows.key_of_first(-2), rows.key_of_first(2**61 - 1)) == \
        (3, 4, 5)
    assert rows.key_of_first(-3) is None and rows.key_of_first(0) is None
