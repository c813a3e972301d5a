"""Originals named by content, and the note of files written ahead of their commit."""

from __future__ import annotations

import hashlib

import pytest

from imgsearch.errors import InvalidInputError
from imgsearch.store.files import (
    PendingFiles,
    original_exists,
    original_relpath,
    read_original,
    remove_original,
    write_original,
)


def test_originals_are_named_by_content_and_stay_inside(tmp_path):
    data = b"\xff\xd8 some jpeg"
    digest = hashlib.sha256(data).hexdigest()
    relpath = original_relpath(digest, "JPEG")
    assert relpath == f"originals/{digest[:2]}/{digest}.jpg"
    assert original_relpath(digest, "WEBP").endswith(".webp")
    write_original(tmp_path, relpath, data)
    assert read_original(tmp_path, relpath) == data and original_exists(tmp_path, relpath)
    assert not list((tmp_path / "originals").rglob("*.tmp"))
    remove_original(tmp_path, relpath)
    remove_original(tmp_path, relpath)  # already gone: fine
    assert not original_exists(tmp_path, relpath)
    for bad in ("../catalog.sqlite3", "/etc/passwd", "thumbnails/ab/1.jpg",
                "originals/../catalog.sqlite3"):
        with pytest.raises(InvalidInputError):
            read_original(tmp_path, bad)
    with pytest.raises(InvalidInputError):
        original_relpath("../../x", "JPEG")


def test_sweep_removes_only_noted_files_not_in_use(tmp_path):
    pending = PendingFiles(tmp_path)
    pending.note(["thumbnails/aa/1.jpg", "originals/bb/2.png"])
    pending.note(["thumbnails/aa/1.jpg", "../outside"])
    removed: list[str] = []

    def remove(relpath: str) -> None:
        if relpath.startswith(".."):
            raise InvalidInputError(relpath)
        removed.append(relpath)

    count = PendingFiles(tmp_path).sweep(lambda p: p == "originals/bb/2.png", remove)
    assert removed == ["thumbnails/aa/1.jpg"] and count == 1
    assert pending.path.read_text() == ""  # cleared: the next sweep has nothing to do
    assert PendingFiles(tmp_path).sweep(lambda p: False, remove) == 0
    pending.note(["thumbnails/cc/3.jpg"])
    pending.clear()
    assert pending.path.read_text() == ""
