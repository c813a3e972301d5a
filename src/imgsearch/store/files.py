"""Files a collection keeps beside its catalog: original images and a note of files
being written.

Originals are the bytes of images added from uploads (no path or URL to read them from
again), so that a change of encoder can re-encode those items. They are named by the
sha256 of their content (``originals/ab/abcdef….jpg``): items with the same image share
one file. Each is written durably (fsync of the file and its folder) before the catalog
commit that refers to it.

Thumbnails and originals are written before that commit, so a crash in between would
leave files no item refers to. :class:`PendingFiles` notes their paths first; the next
writer to open the collection removes those that no committed item uses.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath

from imgsearch.errors import InvalidInputError

ORIGINALS_DIR = "originals"
PENDING_NAME = "pending-files"
_EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp",
               "TIFF": "tif"}


def original_relpath(content_hash: str, image_format: str) -> str:
    """Where the original with this sha256 (hex) lives, relative to the collection."""
    if len(content_hash) != 64 or any(c not in "0123456789abcdef" for c in content_hash):
        raise InvalidInputError(f"{content_hash!r} is not a hex sha256")
    extension = _EXTENSIONS.get(image_format.upper(), "bin")
    return f"{ORIGINALS_DIR}/{content_hash[:2]}/{content_hash}.{extension}"


def _inside(collection_dir: Path, relpath: str) -> Path:
    parts = PurePosixPath(relpath).parts
    if (not parts or PurePosixPath(relpath).is_absolute() or ".." in parts
            or parts[0] != ORIGINALS_DIR or "\\" in relpath):
        raise InvalidInputError(f"original path {relpath!r} is not inside {ORIGINALS_DIR}/ "
                                "of the collection")
    return Path(collection_dir) / relpath


def write_original(collection_dir: Path, relpath: str, data: bytes) -> None:
    """Write ``data`` durably at ``relpath`` (temp file, fsync, rename, fsync of the folder).

    The name is the content's hash, so a file already there of the same size is kept.
    """
    target = _inside(collection_dir, relpath)
    with contextlib.suppress(OSError):
        if target.stat().st_size == len(data):
            return
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    _fsync_dir(target.parent)


def read_original(collection_dir: Path, relpath: str) -> bytes:
    return _inside(collection_dir, relpath).read_bytes()


def original_exists(collection_dir: Path, relpath: str) -> bool:
    return _inside(collection_dir, relpath).is_file()


def remove_original(collection_dir: Path, relpath: str) -> None:
    """Delete an original; a missing file is fine."""
    with contextlib.suppress(FileNotFoundError):
        _inside(collection_dir, relpath).unlink()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class PendingFiles:
    """A note, in the collection, of files written ahead of the commit that uses them.

    Only the collection's writer touches it. ``note`` before writing files (and before
    the commit that stops using old ones), ``clear`` once the commit is over either way;
    ``sweep`` at open removes the noted files that no committed item uses.
    """

    def __init__(self, collection_dir: Path) -> None:
        self.path = Path(collection_dir) / PENDING_NAME
        self._noted = self.path.exists()

    def note(self, relpaths: Iterable[str], *, durable: bool = False) -> None:
        lines = "".join(f"{p}\n" for p in relpaths if p and "\n" not in p)
        if not lines:
            return
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(lines)
            fh.flush()
            if durable:  # the files it names will be fsynced: so is the note
                os.fsync(fh.fileno())
        self._noted = True

    def clear(self) -> None:
        if self._noted:
            with contextlib.suppress(FileNotFoundError):
                os.truncate(self.path, 0)
            self._noted = False

    def sweep(self, in_use: Callable[[str], bool], remove: Callable[[str], None]) -> int:
        """Remove each noted file no committed item uses; returns how many were removed."""
        try:
            noted = self.path.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return 0
        removed = 0
        for relpath in dict.fromkeys(p for p in noted if p):
            if not in_use(relpath):
                try:
                    remove(relpath)
                except InvalidInputError:
                    continue  # not a path this collection writes: leave it alone
                removed += 1
        self._noted = True
        self.clear()
        return removed


__all__ = [
    "ORIGINALS_DIR",
    "PendingFiles",
    "original_exists",
    "original_relpath",
    "read_original",
    "remove_original",
    "write_original",
]
