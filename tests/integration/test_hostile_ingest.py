"""Ingest inputs that used to crash or hang a whole run: undecodable file names, FIFOs."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from imagegen import jpeg_bytes, write_image
from imgsearch.engine import Engine
from imgsearch.errors import InvalidInputError
from imgsearch.types import Query


def _bytes_name(folder: Path, name: bytes, data: bytes) -> None:
    with open(os.path.join(os.fsencode(folder), name), "wb") as handle:
        handle.write(data)


def test_folder_with_undecodable_file_names_indexes_every_file(tmp_path: Path,
                                                               engine: Engine) -> None:
    photos = tmp_path / "photos"
    write_image(photos / "plain.jpg", 1)
    # Latin-1 names: two that differ only in their undecodable byte must stay two items
    _bytes_name(photos, b"caf\xe9 terrace.jpg", jpeg_bytes(2))
    _bytes_name(photos, b"caf\xe8 terrace.jpg", jpeg_bytes(3))
    os.mkdir(os.path.join(os.fsencode(photos), b"\xff\xfeholiday"))
    _bytes_name(photos / os.fsdecode(b"\xff\xfeholiday"), b"beach.jpg", jpeg_bytes(4))

    report = engine.ingest(photos)
    assert (report.added, report.failed) == (4, [])
    ids = sorted(item.id for item in engine.catalog.iter_items())
    assert ids == ["\\xff\\xfeholiday/beach.jpg", "caf\\xe8 terrace.jpg",
                   "caf\\xe9 terrace.jpg", "plain.jpg"]
    for item in engine.catalog.iter_items():
        item.id.encode("utf-8")  # stored as valid text
        assert item.image is not None
        item.image.encode("utf-8")
    hits = engine.search(Query(images=[jpeg_bytes(3)], limit=1)).hits
    assert hits[0].id == "caf\\xe8 terrace.jpg"

    again = engine.ingest(photos)  # re-runs neither crash nor redo nor remove anything
    assert (again.added, again.updated, again.unchanged, again.removed) == (0, 0, 4, 0)


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe.jpg"
    os.mkfifo(path)
    return path


def _within(seconds: float, fn, *args):  # type: ignore[no-untyped-def]
    """Run fn in a thread; a hang fails the test instead of stalling the suite."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["value"] = fn(*args)
        except BaseException as exc:  # handed to the test
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{fn.__name__} hung on a FIFO"
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome.get("value")


def test_catalog_row_pointing_at_a_fifo_is_reported_not_waited_on(
        tmp_path: Path, engine: Engine, fifo: Path) -> None:
    write_image(tmp_path / "good.jpg", 1)
    catalog = tmp_path / "items.csv"
    catalog.write_text(f"id,image\ngood,good.jpg\npipe,{fifo.name}\n", encoding="utf-8")
    report = _within(60, engine.ingest, catalog)
    assert report.added == 1
    assert [(f.code, "regular file" in f.reason) for f in report.failed] == [
        ("not_a_file", True)]
    assert "pipe" not in engine and "good" in engine


def test_query_and_add_paths_refuse_a_fifo(engine: Engine, fifo: Path) -> None:
    engine.ingest_items([])
    with pytest.raises(InvalidInputError, match="not a regular file"):
        _within(60, engine.search, Query(images=[fifo], limit=1))
    from imgsearch.types import Item

    with pytest.raises(InvalidInputError, match="not a regular file"):
        _within(60, engine.upsert, Item(id="x", image=str(fifo)))
