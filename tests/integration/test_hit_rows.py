"""Result-page fields read from the packed in-memory store agree with SQL through writes."""

from __future__ import annotations

import numpy as np

from imgsearch.store.catalog import Catalog
from imgsearch.types import Item


def random_item(rng: np.random.Generator, ident: str) -> Item:
    def maybe(text: str) -> str | None:
        return None if rng.random() < 0.2 else text

    return Item(id=ident, title=maybe(f"{ident} in ünïcode {int(rng.integers(1000))}"),
                category=maybe(str(rng.choice(["shoes", "bags", ""]))),
                brand=maybe("Acme"), price=None if rng.random() < 0.2 else float(rng.random()),
                image=maybe(f"photos/{ident}.jpg"), thumbnail=maybe(f"thumbnails/{ident}.jpg"))


def test_hits_from_memory_agree_with_sql_through_writes(tmp_path):
    path = tmp_path / "catalog.sqlite3"
    packed = Catalog(path, hit_cache_bytes=1 << 20)
    sql = Catalog(path)  # no store: SQL every time
    rng = np.random.default_rng(3)
    with packed.transaction() as conn:
        for i in range(300):
            packed.upsert(conn, random_item(rng, f"i{i}"), {})
    packed.hits_by_key([1, 2])  # SQL answers, and the whole table is read meanwhile
    packed.warm()
    assert len(packed.hit_rows) == 300
    for _ in range(5):
        keys = rng.integers(0, 420, 60).tolist()
        assert packed.hits_by_key(keys) == sql.hits_by_key(keys)
        ids = [f"i{i}" for i in rng.integers(0, 420, 60).tolist()]
        assert [packed.key_of(i) for i in ids] == [sql.key_of(i) for i in ids]
        with packed.transaction() as conn:  # updates, deletes and new items
            for i in rng.choice(400, 40, replace=False).tolist():
                if rng.random() < 0.3:
                    packed.delete(conn, f"i{i}")
                else:
                    packed.upsert(conn, random_item(rng, f"i{i}"), {})
    everything = list(range(0, 420))
    assert packed.hits_by_key(everything) == sql.hits_by_key(everything)
    packed.close()
    sql.close()


def test_a_write_by_another_process_is_seen_after_forget_cached(tmp_path):
    path = tmp_path / "catalog.sqlite3"
    reader = Catalog(path, hit_cache_bytes=1 << 20)
    writer = Catalog(path)
    with writer.transaction() as conn:
        writer.upsert(conn, Item(id="a", title="before"), {})
    key = writer.key_of("a")
    reader.warm()
    assert reader.hits_by_key([key])[key][1] == "before"  # from memory
    with writer.transaction() as conn:
        writer.upsert(conn, Item(id="a", title="after"), {})
    assert reader.hits_by_key([key])[key][1] == "before"  # this process saw no write
    reader.forget_cached()  # what a read-only engine does when the catalog changed
    assert reader.hits_by_key([key])[key][1] == "after"
    reader.close()
    writer.close()
