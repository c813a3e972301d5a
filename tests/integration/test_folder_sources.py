"""Several folders in one collection: ids and incremental re-indexing are scoped by source."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

from imagegen import make_photo_folder, write_image
from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.store.schema import SCHEMA_VERSION
from imgsearch.types import Query
from photogen import undo_photo_schema


def _ids(eng: Engine) -> set[str]:
    return {item.id for item in eng.catalog.iter_items()}


def test_two_folders_with_the_same_names_keep_both(tmp_path, engine):
    first, second = tmp_path / "one", tmp_path / "two"
    ids = make_photo_folder(first, 12, seed=1)
    assert make_photo_folder(second, 12, seed=2) == ids  # same relative names
    assert engine.ingest(first).added == 12
    report = engine.ingest(second)
    assert (report.added, report.updated, report.removed) == (12, 0, 0)
    assert _ids(engine) == set(ids) | {f"two//{i}" for i in ids}
    for item_id in ids:
        assert engine.get(item_id).image == str(first / item_id)
        assert engine.get(f"two//{item_id}").image == str(second / item_id)
        hits = engine.search(Query(images=[second / item_id], limit=1, min_confidence=0)).hits
        assert hits[0].id == f"two//{item_id}"
    # re-indexing either is incremental and touches only its own items
    (second / ids[0]).unlink()
    again = engine.ingest(first)
    assert (again.added, again.updated, again.unchanged, again.removed) == (0, 0, 12, 0)
    assert len(_ids(engine)) == 24
    again = engine.ingest(second)
    assert (again.added, again.updated, again.unchanged, again.removed) == (0, 0, 11, 1)
    assert _ids(engine) == set(ids) | {f"two//{i}" for i in ids[1:]}
    (first / ids[2]).unlink()
    assert engine.ingest(first).removed == 1
    assert f"two//{ids[2]}" in engine and ids[2] not in engine


def test_folders_with_the_same_name_get_a_disambiguator(tmp_path, engine):
    folders = [tmp_path / "a" / "photos", tmp_path / "b" / "photos", tmp_path / "c" / "photos"]
    for n, folder in enumerate(folders):
        make_photo_folder(folder, 3, seed=n)
    for folder in folders:
        assert engine.ingest(folder).added == 3
    ids = _ids(engine)
    assert "photo_0000.jpg" in ids
    assert "photos//photo_0000.jpg" in ids
    assert "photos~2//photo_0000.jpg" in ids
    assert len(ids) == 9
    # the same folder by another path (a symbolic link) is the same source
    link = tmp_path / "link"
    link.symlink_to(folders[1])
    report = engine.ingest(link)
    assert (report.added, report.unchanged, report.removed) == (0, 3, 0)


def test_an_item_of_another_source_is_never_overwritten(tmp_path, engine):
    from imagegen import jpeg_bytes
    from imgsearch.types import Item

    folder = tmp_path / "photos"
    ids = make_photo_folder(folder, 3, seed=3)
    engine.upsert(Item(id=ids[0], title="added by id"), jpeg_bytes(99))
    report = engine.ingest(folder)
    assert report.added == 2
    assert [f.code for f in report.failed] == ["id_taken"]
    assert engine.get(ids[0]).title == "added by id"


def _downgrade_to_schema_2(catalog: Path) -> None:
    """Make the catalog look as the previous version wrote it."""
    conn = sqlite3.connect(catalog)
    undo_photo_schema(conn)
    conn.executescript("""
        DROP INDEX items_source; DROP INDEX items_original; DROP INDEX items_thumbnail;
        ALTER TABLE items DROP COLUMN source; ALTER TABLE items DROP COLUMN original;
        DROP TABLE sources; PRAGMA user_version = 2;
    """)
    conn.close()


def test_a_collection_of_the_previous_schema_opens_and_keeps_its_ids(tmp_path):
    settings = Settings(text_encoder="fake", ingest_workers=1)
    collection, first, second = tmp_path / "c", tmp_path / "one", tmp_path / "two"
    ids = make_photo_folder(first, 6, seed=1)
    make_photo_folder(second, 6, seed=2)
    with Engine.open(collection, settings) as eng:
        eng.ingest(first)
    _downgrade_to_schema_2(collection / "catalog.sqlite3")
    with Engine.open(collection, settings) as eng:
        version = eng.catalog._reader.execute("PRAGMA user_version").fetchone()[0]
        assert version == SCHEMA_VERSION == 5
        report = eng.ingest(first)  # read again once, for their photo facts (schema 4)
        assert (report.updated, report.added, report.removed) == (6, 0, 0)
        assert eng.ingest(first).unchanged == 6
        report = eng.ingest(second)
        assert (report.added, report.updated) == (6, 0)
        assert _ids(eng) == set(ids) | {f"two//{i}" for i in ids}


def test_numbered_files_of_one_subject_share_their_title_words(tmp_path, engine):
    folder = tmp_path / "shoot"
    for n, name in enumerate(["beach_sunset_03.jpg", "beach-sunset-04.jpg", "IMG_0042.jpg",
                              "red rose 2.jpg"]):
        write_image(folder / name, seed=n)
    assert engine.ingest(folder).added == 4
    # what people see is the file's name as it is; a camera name is no title
    assert engine.get("beach_sunset_03.jpg").title == "beach_sunset_03"
    assert engine.get("beach-sunset-04.jpg").title == "beach-sunset-04"
    assert engine.get("IMG_0042.jpg").title is None
    assert engine.get("red rose 2.jpg").title == "red rose 2"  # prose keeps its number

    def text_vector(item_id: str):
        key = engine.catalog.key_of(item_id)
        assert key is not None
        return engine.spaces["text"].vector_of_key(key)

    # the encoder read "beach sunset" for both: one text, one vector
    np.testing.assert_array_equal(text_vector("beach_sunset_03.jpg"),
                                  text_vector("beach-sunset-04.jpg"))
    assert not np.array_equal(text_vector("beach_sunset_03.jpg"),
                              text_vector("red rose 2.jpg"))
    # the keyword index reads the same words
    keys, _ = engine.catalog.keyword_search("sunset", 10, [1] * 6)
    assert sorted(keys.tolist()) == sorted(engine.catalog.key_of(i) for i in
                                           ("beach_sunset_03.jpg", "beach-sunset-04.jpg"))
