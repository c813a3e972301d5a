"""Items upserted from bytes keep their original, so a change of encoder can redo them;
items that cannot be redone make re-embedding refuse, naming them."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagegen import jpeg_bytes, make_photo_folder, png_bytes
from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.errors import ReembedRefusedError
from imgsearch.types import Item, Query


def _originals(collection: Path) -> list[Path]:
    return sorted(p for p in (collection / "originals").rglob("*") if p.is_file()) \
        if (collection / "originals").exists() else []


def test_bytes_upsert_is_reembedded_from_its_original(tmp_path, settings):
    collection = tmp_path / "c"
    data = jpeg_bytes(7)
    with Engine.open(collection, settings) as eng:
        assert eng.upsert(Item(id="up", title="blue mug"), data) == "added"
        assert eng.get("up").image is None
        kept = _originals(collection)
        assert len(kept) == 1 and kept[0].read_bytes() == data
    with Engine.open(collection, settings, image_encoder="fake", reembed=True) as eng:
        assert eng.manifest.spaces["image"].encoder == "fake"
        key = eng.catalog.key_of("up")
        assert key is not None
        vector = eng.catalog.vector_of("image", key)
        assert vector is not None and vector.shape == (32,)
        assert eng.reembed_report is not None and not eng.reembed_report.failed
        assert eng.reembed_report.updated == 1
        hits = eng.search(Query(images=[data], limit=1, min_confidence=0)).hits
        assert [h.id for h in hits] == ["up"]


def test_pil_image_upsert_keeps_an_original_too(tmp_path, settings):
    from imagegen import picture

    collection = tmp_path / "c"
    with Engine.open(collection, settings) as eng:
        eng.upsert(Item(id="pil"), picture(3))
    with Engine.open(collection, settings, image_encoder="fake", reembed=True) as eng:
        vector = eng.catalog.vector_of("image", eng.catalog.key_of("pil") or -1)
        assert vector is not None and vector.shape == (32,)


def test_over_cap_bytes_make_reembedding_refuse_and_name_the_items(tmp_path, settings):
    collection = tmp_path / "c"
    small = settings.replace(original_max_bytes=1000)
    folder = tmp_path / "photos"
    make_photo_folder(folder, 3, seed=5)
    with Engine.open(collection, small) as eng:
        eng.ingest(folder)
        eng.upsert(Item(id="big-one"), jpeg_bytes(1, (300, 200)))
        eng.upsert(Item(id="big-two"), png_bytes(2))
        assert _originals(collection) == []
    with pytest.raises(ReembedRefusedError) as refused:
        Engine.open(collection, small, image_encoder="fake", reembed=True)
    assert refused.value.items == ["big-one", "big-two"]
    assert "big-one" in refused.value.message and "big-two" in refused.value.message
    assert "IMGSEARCH_ORIGINAL_MAX_BYTES" in refused.value.message
    # nothing was dropped: the collection opens with its own encoder, every item searchable
    with Engine.open(collection, small) as eng:
        assert eng.manifest.spaces["image"].encoder == "descriptor"
        assert eng.catalog.count_vectors("image") == 5
        hits = eng.search(Query(images=[png_bytes(2)], limit=1, min_confidence=0)).hits
        assert hits[0].id == "big-two"


def test_missing_source_file_makes_reembedding_refuse(tmp_path, settings):
    collection = tmp_path / "c"
    folder = tmp_path / "photos"
    ids = make_photo_folder(folder, 4, seed=9)
    with Engine.open(collection, settings) as eng:
        eng.ingest(folder)
    (folder / ids[0]).unlink()
    with pytest.raises(ReembedRefusedError) as refused:
        Engine.open(collection, settings, image_encoder="fake", reembed=True)
    assert refused.value.items == [ids[0]]


def test_reembed_failures_are_reported_not_dropped(tmp_path, settings):
    collection = tmp_path / "c"
    folder = tmp_path / "photos"
    ids = make_photo_folder(folder, 4, seed=4)
    with Engine.open(collection, settings) as eng:
        eng.ingest(folder)
    (folder / ids[1]).write_bytes(b"not an image any more")
    with Engine.open(collection, settings, image_encoder="fake", reembed=True) as eng:
        report = eng.reembed_report
        assert report is not None and report.updated == 3
        assert [f.source for f in report.failed] == [str(folder / ids[1])]
        assert any(ids[1] in note or "1 failed" in note for note in eng.open_notes)
        assert eng.info()["without_vector"] == {"image": 1}
    # reopening says so again: an item left without its vector is never silent
    with Engine.open(collection, settings) as eng:
        assert eng.info()["without_vector"] == {"image": 1}


def test_delete_removes_an_original_only_when_no_other_item_shares_it(tmp_path, settings):
    collection = tmp_path / "c"
    data = jpeg_bytes(11)
    with Engine.open(collection, settings) as eng:
        eng.upsert(Item(id="a"), data)
        eng.upsert(Item(id="b"), data)
        assert len(_originals(collection)) == 1
        assert eng.delete("a")
        assert len(_originals(collection)) == 1
        assert eng.delete("b")
        assert _originals(collection) == []
        # replacing an item's bytes drops the old original
        eng.upsert(Item(id="c"), jpeg_bytes(12))
        eng.upsert(Item(id="c"), jpeg_bytes(13))
        kept = _originals(collection)
        assert len(kept) == 1 and kept[0].read_bytes() == jpeg_bytes(13)


def test_original_cap_comes_from_the_environment():
    settings = Settings.from_env({"IMGSEARCH_ORIGINAL_MAX_BYTES": "1234"})
    assert settings.original_max_bytes == 1234


def test_reembedding_cut_short_is_finished_at_the_next_open(tmp_path, settings, monkeypatch):
    from imgsearch.engine.pipeline import Preparer

    collection = tmp_path / "c"
    folder = tmp_path / "photos"
    make_photo_folder(folder, 6, seed=6)
    small_batches = settings.replace(ingest_batch_size=2)
    with Engine.open(collection, small_batches) as eng:
        eng.ingest(folder)
        eng.upsert(Item(id="up"), jpeg_bytes(21))
    prepare_ahead = Preparer.prepare_ahead
    calls = []

    def dies_on_the_second_batch(self, batches):  # type: ignore[no-untyped-def]
        for prepared in prepare_ahead(self, batches):
            calls.append(len(prepared[0]))
            if len(calls) == 2:  # before the second batch is written
                raise KeyboardInterrupt
            yield prepared

    monkeypatch.setattr(Preparer, "prepare_ahead", dies_on_the_second_batch)
    with pytest.raises(KeyboardInterrupt):
        Engine.open(collection, small_batches, image_encoder="fake", reembed=True)
    assert calls == [2, 2]
    monkeypatch.setattr(Preparer, "prepare_ahead", prepare_ahead)
    with Engine.open(collection, small_batches) as eng:  # no encoder named: the new one
        assert eng.manifest.spaces["image"].encoder == "fake"
        assert eng.reembed_report is not None and eng.reembed_report.updated == 5
        assert eng.catalog.count_vectors("image") == 7
        assert eng.info()["without_vector"] == {}
    with Engine.open(collection, small_batches) as eng:
        assert eng.reembed_report is None  # done: nothing left to finish
