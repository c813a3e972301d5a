"""Embedding shards on disk: written whole or not at all, read back as written."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from imgsearch.errors import CatalogFormatError
from imgsearch.store.shards import (
    Plan,
    ShardRows,
    finished_shards,
    item_from_json,
    item_json,
    read_plan,
    read_shard,
    remove_partial,
    write_plan,
    write_shard,
)
from imgsearch.types import IngestFailure, Item, VectorSpace

SPACE = VectorSpace("image", "fake", "fake-v1", 4, "image")


def test_a_shard_keeps_its_rows_and_failures(tmp_path):
    rows = ShardRows()
    item = Item(id="a", title="Shoe", tags=("x", "y"), colors=("red",), phash=2**63 + 5,
                attributes={"size": 42}, thumbnail="thumbnails/ab.jpg")
    vector = np.array([0.5, 0.5, 0.5, 0.5], dtype=np.float32)
    rows.add("a", "h", SPACE, vector, item_json(item), b"jpeg")
    failure = IngestFailure("b.jpg", "truncated", "corrupt_image", "b")
    path = write_shard(tmp_path, 7, rows.table(), [failure])
    assert path.name == "shard-00007.parquet"
    assert finished_shards(tmp_path) == {7: path}
    table, failures = read_shard(path)
    assert failures == [failure]
    assert table.column("vector").to_pylist() == [[0.5] * 4]
    back = item_from_json(table.column("item")[0].as_py(), "here")
    assert back.thumbnail is None  # the collection names its own thumbnails
    assert (back.tags, back.colors, back.phash, back.attributes) == (
        ("x", "y"), ("red",), 2**63 + 5, {"size": 42})


def test_a_failed_write_leaves_no_shard_and_partial_files_are_swept(tmp_path, monkeypatch):
    from imgsearch.store import shards

    def half_then_full(table, where, **_options):  # type: ignore[no-untyped-def]
        with open(where, "wb") as handle:
            handle.write(b"PAR1 half a shard")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(shards.pq, "write_table", half_then_full)
    with pytest.raises(OSError):
        write_shard(tmp_path, 0, ShardRows().table(), [])
    assert not finished_shards(tmp_path)
    assert not list(tmp_path.iterdir())
    (tmp_path / ".shard-00003.parquet.12.tmp").write_bytes(b"half")
    assert remove_partial(tmp_path) == 1
    assert not list(tmp_path.iterdir())


def test_shards_that_are_not_embeddings_are_refused(tmp_path):
    pq.write_table(pa.table({"id": ["a"], "vector": [[1.0]]}), tmp_path / "x.parquet")
    with pytest.raises(CatalogFormatError, match="missing column"):
        read_shard(tmp_path / "x.parquet")
    with pytest.raises(CatalogFormatError, match="item column"):
        item_from_json('{"id": "a", "price_usd": 3}', "shard-00000.parquet (id a)")


def test_a_plan_round_trips_and_a_foreign_one_is_refused(tmp_path):
    plan = Plan("/data/photos", 100, [100, 7], [SPACE], ["d1", "d2"])
    write_plan(tmp_path, plan)
    assert read_plan(tmp_path) == plan
    (tmp_path / "plan.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(CatalogFormatError, match="not an embeddings plan"):
        read_plan(tmp_path)
    assert read_plan(tmp_path / "missing") is None
