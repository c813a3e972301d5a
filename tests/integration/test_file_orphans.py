"""Thumbnails and originals are written before the catalog commit that refers to them; a
crash in between must not leave them behind, and the clean-up at the next open must never
remove a file that a committed item uses."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.errors import StorageFullError

TESTS = Path(__file__).resolve().parents[1]

# Commits one item, then dies (as kill -9 would) inside the catalog transaction of a batch
# whose files were already written: one new image and one that shares the committed
# item's content (so its thumbnail and original are the committed item's files).
_CRASHING_WRITER = """
import os, sys
sys.path.insert(0, {tests!r})
from imagegen import jpeg_bytes
import pytest

from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.store.catalog import Catalog
from imgsearch.types import Item

engine = Engine.open({collection!r}, Settings(text_encoder="fake", ingest_workers=1))
engine.upsert(Item(id="kept", title="kept"), jpeg_bytes(1))
Catalog.upsert = lambda *args, **kwargs: os._exit(9)
engine.ingest_items([(Item(id="lost"), jpeg_bytes(2)), (Item(id="same"), jpeg_bytes(1))])
"""


def _files(collection: Path, folder: str) -> set[str]:
    root = collection / folder
    return {p.relative_to(collection).as_posix() for p in root.rglob("*") if p.is_file()} \
        if root.exists() else set()


def test_a_crash_before_commit_leaves_no_orphans_and_keeps_committed_files(tmp_path):
    collection = tmp_path / "c"
    script = textwrap.dedent(_CRASHING_WRITER).format(tests=str(TESTS),
                                                       collection=str(collection))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          timeout=120)
    assert proc.returncode == 9, proc.stderr.decode()
    # the crash happened after the batch's files were written
    assert len(_files(collection, "thumbnails")) == 2
    assert len(_files(collection, "originals")) == 2
    with Engine.open(collection, Settings(text_encoder="fake")) as eng:
        items = list(eng.catalog.iter_items())
        assert [i.id for i in items] == ["kept"]
        kept = items[0]
        assert _files(collection, "thumbnails") == {kept.thumbnail}
        assert _files(collection, "originals") == {kept.original}
        assert (collection / str(kept.thumbnail)).stat().st_size > 0


def test_a_failed_commit_removes_the_files_it_wrote(tmp_path, monkeypatch):
    from imagegen import jpeg_bytes
    from imgsearch.store.catalog import Catalog
    from imgsearch.types import Item

    with Engine.open(tmp_path / "c", Settings(text_encoder="fake")) as eng:
        eng.upsert(Item(id="kept"), jpeg_bytes(1))
        before = _files(eng.directory, "thumbnails") | _files(eng.directory, "originals")

        def refuse(*args: object, **kwargs: object) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(Catalog, "upsert", refuse)
        with pytest.raises(StorageFullError, match="no space left"):
            eng.upsert(Item(id="lost"), jpeg_bytes(2))
        after = _files(eng.directory, "thumbnails") | _files(eng.directory, "originals")
        assert after == before


def test_a_failure_while_writing_files_leaves_none_behind(tmp_path, monkeypatch):
    from imagegen import jpeg_bytes
    from imgsearch.engine import writer
    from imgsearch.types import Item

    with Engine.open(tmp_path / "c", Settings(text_encoder="fake")) as eng:
        eng.upsert(Item(id="kept"), jpeg_bytes(1))
        before = _files(eng.directory, "thumbnails") | _files(eng.directory, "originals")

        def disk_full(*args: object) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(writer, "write_original", disk_full)  # after the thumbnail
        with pytest.raises(StorageFullError, match="no space left"):
            eng.upsert(Item(id="lost"), jpeg_bytes(2))
        assert "lost" not in eng
        after = _files(eng.directory, "thumbnails") | _files(eng.directory, "originals")
        assert after == before
