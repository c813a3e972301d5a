"""Filters answered from the in-memory columns agree with SQL, before and after writes."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from imgsearch.store.catalog import Catalog
from imgsearch.types import Filters, Item

CATEGORIES = ("Shoes", "shoes ", "Bags", "hats", None)
BRANDS = ("Acme", "Zeta", None)
LICENSES = ("CC-BY", "cc0", None)


def random_item(rng: np.random.Generator, ident: str) -> Item:
    sizes = (None, (640, 480), (480, 640), (500, 500), (1200, 300))
    size = sizes[int(rng.integers(len(sizes)))]
    return Item(id=ident, title=ident,
                category=CATEGORIES[int(rng.integers(len(CATEGORIES)))],
                brand=BRANDS[int(rng.integers(len(BRANDS)))],
                license=LICENSES[int(rng.integers(len(LICENSES)))],
                price=None if rng.random() < 0.1 else float(rng.integers(0, 100)),
                width=size[0] if size else None, height=size[1] if size else None)


def random_filters(rng: np.random.Generator) -> Filters:
    def some(values: tuple[str | None, ...]) -> tuple[str, ...]:
        named = [v for v in values if v]
        return tuple(rng.choice(named, int(rng.integers(0, 3)), replace=False).tolist())

    low = float(rng.integers(0, 60)) if rng.random() < 0.5 else None
    return Filters(categories=some((*CATEGORIES, "unknown")), brands=some(BRANDS),
                   licenses=some(LICENSES) if rng.random() < 0.3 else (),
                   price_min=low,
                   price_max=float(rng.integers(low or 0, 101)) if rng.random() < 0.5 else None,
                   orientation=rng.choice(["landscape", "portrait", "square"])
                   if rng.random() < 0.3 else None,
                   min_width=int(rng.integers(0, 1300)) if rng.random() < 0.3 else None,
                   min_height=int(rng.integers(0, 700)) if rng.random() < 0.2 else None)


def wait_until(condition: Callable[[], bool], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the filter columns were never read"
        time.sleep(0.01)


def test_columns_answer_filters_as_sql_does_through_writes(tmp_path):
    path = tmp_path / "catalog.sqlite3"
    columns = Catalog(path, row_cache_size=1000)  # answers from the in-memory columns
    sql = Catalog(path)  # no caches: SQL every time
    rng = np.random.default_rng(5)
    with columns.transaction() as conn:
        for i in range(300):
            columns.upsert(conn, random_item(rng, f"i{i}"), {})
    assert columns.columns is not None
    columns.filter_keys(Filters(price_max=50.0))  # SQL answers before the columns are read
    columns.warm()  # a server's reader: the columns are read now
    assert columns.columns.ready
    for _ in range(6):
        for _ in range(25):
            filters = random_filters(rng)
            assert columns.filter_keys(filters).tolist() == sql.filter_keys(filters).tolist()
        assert columns.columns.ready
        with columns.transaction() as conn:  # updates, deletes and new items
            for i in rng.choice(400, 40, replace=False).tolist():
                if rng.random() < 0.3:
                    columns.delete(conn, f"i{i}")
                else:
                    columns.upsert(conn, random_item(rng, f"i{i}"), {})
    columns.close()
    sql.close()


def test_a_write_by_another_process_is_seen_after_forget_cached(tmp_path):
    path = tmp_path / "catalog.sqlite3"
    reader = Catalog(path, row_cache_size=1000)
    writer = Catalog(path)
    with writer.transaction() as conn:
        writer.upsert(conn, Item(id="a", category="shoes", price=10.0), {})
    cheap = Filters(price_max=20.0)
    assert reader.filter_keys(cheap).size == 1
    reader.warm(wait=False)  # a server's reader: the columns are read on a thread
    wait_until(lambda: reader.columns is not None and reader.columns.ready)
    assert reader.filter_keys(cheap).size == 1  # now from the columns
    with writer.transaction() as conn:
        writer.upsert(conn, Item(id="b", category="shoes", price=15.0), {})
    reader.forget_cached()  # what a read-only engine does when the catalog changed
    assert reader.filter_keys(cheap).size == 2  # from SQL until the columns are read again
    reader.close()
    writer.close()
