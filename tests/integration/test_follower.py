"""A read-only engine beside the collection's writer takes in each acknowledged write
before its next read: what lets several server processes answer over one collection."""

from __future__ import annotations

from pathlib import Path

from imagegen import picture
from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.types import Filters, Item, Query


def _ids(engine: Engine, query: Query) -> list[str]:
    return [h.id for h in engine.search(query).hits]


def test_reader_sees_each_acknowledged_write_at_its_next_search(tmp_path: Path,
                                                                settings: Settings):
    settings = settings.replace(index_type="hnsw")
    with Engine.open(tmp_path / "c", settings) as writer:
        for i in range(12):
            writer.upsert(Item(id=f"p{i}", title=f"item {i}", category="old"), picture(i))
        reader = Engine.open(tmp_path / "c", settings, readonly=True)
        try:
            query = Query(images=[picture(40)], limit=50, min_confidence=0)
            similar = Query(similar_to="p0", limit=50, min_confidence=0)
            by_category = Query(images=[picture(40)], limit=50, min_confidence=0,
                                filters=Filters(categories=("old",)))
            assert len(_ids(reader, query)) == 12  # also fills the reader's caches
            assert len(_ids(reader, by_category)) == 12
            assert reader.get("p3").title == "item 3"

            writer.upsert(Item(id="new", title="fresh", category="old"), picture(40))
            writer.upsert(Item(id="p3", title="renamed", category="moved"), picture(3))
            writer.delete("p5")

            assert _ids(reader, query)[0] == "new"
            assert "p5" not in _ids(reader, query) and "p5" not in _ids(reader, similar)
            assert "p3" not in _ids(reader, by_category)
            assert "new" in _ids(reader, by_category)
            assert reader.get("p3").title == "renamed"
            assert [h.title for h in reader.search(query).hits if h.id == "p3"] == ["renamed"]
        finally:
            reader.close()


def test_reader_reloads_when_the_entries_it_needs_were_pruned(tmp_path: Path,
                                                              settings: Settings):
    settings = settings.replace(index_type="hnsw")
    with Engine.open(tmp_path / "c", settings) as writer:
        for i in range(6):
            writer.upsert(Item(id=f"p{i}"), picture(i))
        reader = Engine.open(tmp_path / "c", settings, readonly=True)
        try:
            query = Query(images=[picture(30)], limit=50, min_confidence=0)
            assert len(_ids(reader, query)) == 6
            writer.upsert(Item(id="late"), picture(30))
            writer.delete("p1")
            writer.save()  # snapshot, then prune the journal the reader has not read
            assert writer.catalog.journal_floor() > reader.spaces["image"].applied_seq + 1
            found = _ids(reader, query)
            assert found[0] == "late" and "p1" not in found and len(found) == 6
        finally:
            reader.close()
