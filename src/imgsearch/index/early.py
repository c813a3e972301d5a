"""Index files read and checked ahead of need, on a thread of their own.

``imgsearch search`` knows which index file it will read before it has imported numpy
and FAISS, about a third of a second of one core. Reading a file and checking its
SHA-256 needs neither, and both let go of the GIL: started first, they run on the other
core meanwhile. ``read_index_file`` then parses the bytes that were checked, when the
file is still the one that was read (same device, inode, size and modification time),
and reads the file itself otherwise. Nothing here imports numpy.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import threading
from concurrent.futures import Future
from pathlib import Path

__all__ = ["DIGEST_SIZE", "INDEX_DIR", "READ_AHEAD_MAX", "index_file", "read_ahead", "stamp_of",
           "take"]

INDEX_DIR = "indexes"  # inside a collection's directory
DIGEST_SIZE = 32  # the SHA-256 over everything before it, at the end of an index file
# Larger files are read where they are needed, in chunks: the map of a file adds its
# size to the process's resident memory (pages of the file, which the kernel can drop)
# beside the index made from it, until the index is made. 1 GiB holds a 100k-item float32
# HNSW index of 992-d vectors (425 MB) and the compressed indexes of a million items.
READ_AHEAD_MAX = 1 << 30

_Stamp = tuple[int, int, int, int]
_pending: dict[str, Future[tuple[_Stamp, mmap.mmap] | None]] = {}
_lock = threading.Lock()


def index_file(collection: Path, space: str) -> Path:
    """Where a collection keeps the index file of one vector space."""
    return Path(collection) / INDEX_DIR / f"{space}.faiss"


def read_ahead(path: Path) -> None:
    """Start reading ``path`` whole and checking its digest on a daemon thread (a file
    that is missing, too large, or already being read is left alone)."""
    key = os.path.realpath(path)
    with _lock:
        if key in _pending:
            return
        future: Future[tuple[_Stamp, mmap.mmap] | None] = Future()
        _pending[key] = future
    threading.Thread(target=_read, args=(key, future), name="imgsearch-read-ahead",
                     daemon=True).start()


def take(path: Path, stamp: _Stamp) -> mmap.mmap | None:
    """``path`` mapped into memory, its digest checked, when its file had ``stamp``
    (``stamp_of``); else None (nothing read ahead, another file, a digest that did not
    match: the caller reads the file and says what is wrong with it). The caller closes
    the map. Index files are replaced whole (written beside, then renamed), never
    changed in place, so what was checked is what is read."""
    with _lock:
        future = _pending.pop(os.path.realpath(path), None)
    if future is None:
        return None
    found = future.result()
    if found is None:
        return None
    if found[0] != stamp:
        found[1].close()
        return None
    return found[1]


def stamp_of(stat: os.stat_result) -> _Stamp:
    """What tells one file from another at the same path: device, inode, size, mtime."""
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


def _read(path: str, future: Future[tuple[_Stamp, mmap.mmap] | None]) -> None:
    found: tuple[_Stamp, mmap.mmap] | None = None
    try:
        with open(path, "rb") as fh:
            stat = os.fstat(fh.fileno())
            if DIGEST_SIZE < stat.st_size <= READ_AHEAD_MAX:
                mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
                with memoryview(mapped) as view:
                    body, digest = view[:-DIGEST_SIZE], view[-DIGEST_SIZE:]
                    good = hashlib.sha256(body).digest() == digest
                    body.release()
                    digest.release()
                if good:
                    found = (stamp_of(stat), mapped)
                else:
                    mapped.close()
    except Exception:  # only a head start: the reader reads the file and says what is wrong
        found = None
    finally:
        future.set_result(found)
