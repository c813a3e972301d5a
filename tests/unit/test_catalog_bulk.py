"""``Catalog.upsert_many`` writes what ``upsert`` one by one writes, a statement per
table for the new items of a large batch."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import numpy as np

from imgsearch.store.catalog import Catalog
from imgsearch.types import Item

_TABLES = {
    "items": "SELECT * FROM items ORDER BY key",
    "item_tags": "SELECT * FROM item_tags ORDER BY key, tag",
    "item_colors": "SELECT * FROM item_colors ORDER BY key, color",
    "item_attributes": "SELECT * FROM item_attributes ORDER BY key, name",
    "items_fts": "SELECT rowid, * FROM items_fts ORDER BY rowid",
    "vectors": "SELECT key, space FROM vectors ORDER BY key, space",
    "journal": "SELECT space, op, count(*) FROM journal GROUP BY space, op ORDER BY 1, 2",
}


def _entries(seed: int, n: int) -> list[tuple[Item, dict[str, Any]]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        item = Item(id=f"x{i % 17 if i >= n - 3 else i}", title=f"a red car number {i}",
                    tags=("car", f"t{i % 3}"), colors=("red",), color="red/blue",
                    attributes={"size": i % 4, "none": None}, category="Cars", price=i)
        vectors = {"image": rng.standard_normal(8).astype(np.float32)}
        if i % 2:
            vectors["text"] = rng.standard_normal(4).astype(np.float32)
        out.append((item, vectors))
    return out


def _dump(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    conn = sqlite3.connect(path)
    try:
        dumped = {name: conn.execute(sql).fetchall() for name, sql in _TABLES.items()}
        columns = [row[1] for row in conn.execute("PRAGMA table_info(items)")]
    finally:
        conn.close()
    clock = columns.index("updated_at")
    dumped["items"] = [row[:clock] + row[clock + 1:] for row in dumped["items"]]
    return dumped


def test_a_batch_writes_the_rows_single_upserts_write(tmp_path: Path) -> None:
    first = _entries(1, 40)
    # new items, an id written before the batch and ids repeated within it (later wins)
    batch = _entries(2, 60)
    for name in ("one", "many"):
        (tmp_path / name).mkdir()
    one = Catalog(tmp_path / "one" / "catalog.sqlite3")
    many = Catalog(tmp_path / "many" / "catalog.sqlite3")
    try:
        with one.transaction() as conn:
            single = [one.upsert(conn, item, vectors) for item, vectors in first + batch]
        with many.transaction() as conn:
            many.upsert_many(conn, first[:1])  # a small batch: one by one
            bulk = many.upsert_many(conn, first[1:] + batch)
        assert [r.status for r in single[1:]] == [r.status for r in bulk]
        every = [item.id for item, _v in first + batch]
        assert sum(r.status == "updated" for r in bulk) == len(every) - len(set(every)) > 20
        assert _dump(one.path) == _dump(many.path)
        # the same vectors, in rows of their files written in another order
        for key, space in _dump(one.path)["vectors"]:
            mine, theirs = one.vector_of(space, key), many.vector_of(space, key)
            assert mine is not None and theirs is not None
            assert np.array_equal(mine, theirs)
    finally:
        one.close()
        many.close()


def test_a_batch_of_new_items_gets_consecutive_keys_after_deleted_ones(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "catalog.sqlite3")
    try:
        with catalog.transaction() as conn:
            catalog.upsert_many(conn, [(Item(id=f"a{i}"), v) for i, (_it, v)
                                       in enumerate(_entries(3, 20))])
        with catalog.transaction() as conn:
            catalog.delete(conn, "a19")  # AUTOINCREMENT never gives key 20 again
        with catalog.transaction() as conn:
            written = catalog.upsert_many(conn, [(Item(id=f"n{i}"), v) for i, (_it, v)
                                                 in enumerate(_entries(4, 10))])
        assert [r.key for r in written] == list(range(21, 31))
        assert catalog.count() == 29
        assert catalog.journal_head() > 0
    finally:
        catalog.close()
