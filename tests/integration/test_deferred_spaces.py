"""A reader reads a space's index file when it first searches that space: an image query
never reads the text index; what it answers is what an eager open answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from imagegen import jpeg_bytes
from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.errors import ImageError
from imgsearch.index import early
from imgsearch.search.space import SpaceIndex
from imgsearch.types import Item, Query

SETTINGS = Settings(text_encoder="fake", ingest_workers=1, index_type="flat",
                    decode_processes=False)


def _fill(engine: Engine, first: int, n: int) -> None:
    engine.upsert_many([(Item(id=f"i{k}", title=f"red chair number {k}"),
                         jpeg_bytes(k, (64, 48))) for k in range(first, first + n)])


def _image_answer(engine: Engine, seed: int) -> list[tuple[str, float]]:
    return [(h.id, round(h.score, 6)) for h in engine.search(Query(
        images=[jpeg_bytes(seed, (64, 48))], limit=5, min_confidence=0,
        collapse_duplicates=False)).hits]


def _text_answer(engine: Engine) -> list[str]:
    return [h.id for h in engine.search(Query(text="red chair number 3", limit=5,
                                              min_confidence=0)).hits]


def _read(space: SpaceIndex) -> bool:
    return not type(space.index).__name__.startswith("_Deferred")


def test_an_image_query_leaves_the_text_index_unread(tmp_path: Path) -> None:
    collection = tmp_path / "c"
    with Engine.open(collection, SETTINGS) as writer:
        _fill(writer, 0, 8)
        writer.save()
        image_before, text_before = _image_answer(writer, 2), _text_answer(writer)
    with Engine.open(collection, SETTINGS, readonly=True) as reader:
        assert not any(_read(space) for space in reader.spaces.values())
        assert {name: len(space) for name, space in reader.spaces.items()} == {
            "image": 8, "text": 8}  # sizes known from the catalog, before any read
        assert reader.spaces["text"].capabilities.kind == "flat"
        assert _image_answer(reader, 2) == image_before
        assert _read(reader.spaces["image"]) and not _read(reader.spaces["text"])
        assert _text_answer(reader) == text_before
        assert _read(reader.spaces["text"])


def test_writes_made_before_the_first_read_are_in_the_deferred_index(
        tmp_path: Path) -> None:
    collection = tmp_path / "c"
    with Engine.open(collection, SETTINGS) as writer:
        _fill(writer, 0, 6)
        writer.save()
        with Engine.open(collection, SETTINGS, readonly=True) as reader:
            _fill(writer, 6, 3)  # committed, not saved: in the journal only
            writer.delete("i1")
            hits = _image_answer(reader, 7)
            assert hits[0][0] == "i7"
            assert "i1" not in {h for h, _ in _image_answer(reader, 1)}
            assert len(reader.spaces["image"]) == len(writer.spaces["image"]) == 8
            assert _text_answer(reader) == _text_answer(writer)


def test_a_stale_index_file_is_read_at_open(tmp_path: Path) -> None:
    collection = tmp_path / "c"
    with Engine.open(collection, SETTINGS) as writer:
        _fill(writer, 0, 4)
        writer.save()
        _fill(writer, 4, 2)  # after the save: the file is behind the journal
        with Engine.open(collection, SETTINGS, readonly=True) as reader:
            assert all(_read(space) for space in reader.spaces.values())
            assert _image_answer(reader, 5)[0][0] == "i5"


@pytest.mark.parametrize("ahead", [False, True], ids=["in-place", "read-ahead"])
def test_a_reader_whose_index_file_is_damaged_after_its_header_answers_from_the_catalog(
        ahead: bool, tmp_path: Path) -> None:
    """The header says the file is up to date, so its read is put off; the query's read
    (on a worker thread, or ahead of open as the command line does) finds the damage and
    the index is made again from the stored vectors."""
    collection = tmp_path / "c"
    with Engine.open(collection, SETTINGS) as writer:
        _fill(writer, 0, 8)
        writer.save()
        before = _image_answer(writer, 2)
    path = early.index_file(collection, "image")
    raw = bytearray(path.read_bytes())
    raw[len(raw) * 2 // 3] ^= 0x40
    path.write_bytes(raw)
    if ahead:
        early.read_ahead(path)
    with Engine.open(collection, SETTINGS, readonly=True) as reader:
        assert not _read(reader.spaces["image"])
        assert _image_answer(reader, 2) == before
        assert _image_answer(reader, 5)[0][0] == "i5"


def test_a_query_refused_after_its_reads_started_leaves_none_running(
        tmp_path: Path) -> None:
    """The reads a query starts ahead use the catalog: one still running when the
    caller closes the collection (the command line, after the query image is refused)
    would use a closed connection."""
    collection = tmp_path / "c"
    with Engine.open(collection, SETTINGS) as writer:
        _fill(writer, 0, 8)
        writer.save()
    with Engine.open(collection, SETTINGS, readonly=True) as reader:
        with pytest.raises(ImageError):
            reader.search(Query(images=[b"not an image at all"], limit=5))
        assert _read(reader.spaces["image"])  # its read was waited for, not left running
        assert not _read(reader.spaces["text"])
    with Engine.open(collection, SETTINGS, readonly=True) as reader:
        assert _image_answer(reader, 2)[0][0] == "i2"


def test_stored_vectors_of_an_unread_space_come_from_the_catalog(tmp_path: Path) -> None:
    # a text query smooths its list with the items' image vectors: those are read from
    # the catalog, the image index file stays unread, and the answer is the eager one
    collection = tmp_path / "c"
    with Engine.open(collection, SETTINGS) as writer:
        _fill(writer, 0, 6)
        writer.save()
        eager = writer.spaces["image"].vectors_of_keys(np.arange(-1, 12, dtype=np.int64))
        text_before = _text_answer(writer)
        with Engine.open(collection, SETTINGS, readonly=True) as reader:
            image = reader.spaces["image"]
            lazy = image.vectors_of_keys(np.arange(-1, 12, dtype=np.int64))
            assert not _read(image)
            np.testing.assert_array_equal(lazy[0], eager[0])
            np.testing.assert_array_equal(lazy[1], eager[1])
            assert _text_answer(reader) == text_before and not _read(image)
            _fill(writer, 6, 2)  # another process's write: the tables are read again
            writer.delete("i0")
            keys, _vectors = image.vectors_of_keys(np.arange(0, 12, dtype=np.int64))
            assert not _read(image)
            expected, _ = writer.spaces["image"].vectors_of_keys(
                np.arange(0, 12, dtype=np.int64))
            np.testing.assert_array_equal(keys, expected)
            assert len(keys) == 7
            assert _image_answer(reader, 7)[0][0] == "i7" and _read(image)


def test_warming_a_reader_reads_every_index_file_ahead_of_the_first_search(
        tmp_path: Path) -> None:
    collection = tmp_path / "c"
    with Engine.open(collection, SETTINGS) as writer:
        _fill(writer, 0, 8)
        writer.save()
        image_before = _image_answer(writer, 2)
    with Engine.open(collection, SETTINGS, readonly=True) as reader:
        assert not any(_read(space) for space in reader.spaces.values())
        reader.warm()
        assert all(_read(space) for space in reader.spaces.values())
        assert _image_answer(reader, 2) == image_before


def test_a_reader_answers_the_same_before_and_after_it_makes_its_tables(
        tmp_path: Path) -> None:
    # A reader's first few reads of vectors and hashes ask SQLite for the rows they need
    # (a one-shot command exits before more); a reader that keeps reading makes a table
    # of them all once. Every read gives the same answer either way, in the order asked,
    # with repeated keys repeated and unknown ones left out.
    collection = tmp_path / "c"
    with Engine.open(collection, SETTINGS) as writer:
        _fill(writer, 0, 8)
        writer.save()
        keys = np.array([writer.catalog.key_of(f"i{k}") for k in (5, 2, 2, 7, 1)] + [-3, 10**6],
                        np.int64)
        eager = {name: space.vectors_of_keys(keys) for name, space in writer.spaces.items()}
        eager_hashes = writer.catalog.phashes_of(keys)
        text_before = _text_answer(writer)
    assert len(eager["image"][0]) == 5 and eager["image"][0][1] == eager["image"][0][2]
    with Engine.open(collection, SETTINGS, readonly=True) as reader:
        reader.spaces["text"].load()  # one space read, one still deferred
        for _ in range(40):
            for name, space in reader.spaces.items():
                found, vectors = space.vectors_of_keys(keys)
                np.testing.assert_array_equal(found, eager[name][0])
                np.testing.assert_array_equal(vectors, eager[name][1])
            hashes, present = reader.catalog.phashes_of(keys)
            np.testing.assert_array_equal(hashes, eager_hashes[0])
            np.testing.assert_array_equal(present, eager_hashes[1])
            assert _text_answer(reader) == text_before


def test_a_reader_follows_writes_made_before_it_read_its_key_tables(tmp_path: Path) -> None:
    # An open reads the index file but leaves the key <-> vid tables to first use; when
    # they are read, another process's deletes are already gone from them, and still
    # leave the index.
    collection = tmp_path / "c"
    with Engine.open(collection, SETTINGS) as writer:
        _fill(writer, 0, 6)
        writer.save()
        _fill(writer, 6, 1)  # the file is behind the journal: the reader reads it at open
        with Engine.open(collection, SETTINGS, readonly=True) as reader:
            assert all(_read(space) for space in reader.spaces.values())
            writer.delete("i2")
            _fill(writer, 7, 2)
            assert "i2" not in {h for h, _ in _image_answer(reader, 2)}
            assert _image_answer(reader, 8)[0][0] == "i8"
            assert len(reader.spaces["image"]) == len(writer.spaces["image"]) == 8
            assert len(reader.spaces["text"]) == len(writer.spaces["text"]) == 8
            assert _text_answer(reader) == _text_answer(writer)
