"""The collection's storage as the engine meets it: the writer's lock, and the
operating system's and SQLite's faults (full disk, read-only storage, damaged files)
turned into the imgsearch errors that say what happened and what to do."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from imgsearch.errors import (
    CollectionLockedError,
    CorruptCollectionError,
    ImgSearchError,
    storage_fault,
)


def lock_collection(directory: Path) -> int:
    """Hold the collection for this process: an exclusive ``flock`` on the directory
    itself. Nothing in the collection can be deleted to get around it (a lock file
    could), and the kernel lets go of it when the process ends, ``kill -9`` included."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise CollectionLockedError(
            f"collection {directory} is being written by another imgsearch process; "
            f"wait for it to finish (or open read-only to search)") from None
    return fd


@contextmanager
def storage_faults(where: Path) -> Iterator[None]:
    """A full disk, read-only storage or a damaged database under ``where`` raised as
    the imgsearch error that says so (other errors pass unchanged)."""
    try:
        yield
    except ImgSearchError:
        raise
    except Exception as exc:
        fault = storage_fault(exc, str(where))
        if fault is None:
            raise
        raise fault from exc


def refuse_emptied(directory: Path, catalog_path: Path) -> None:
    """A catalog truncated to nothing would open as a new, empty one: refuse it where
    the collection had been written (a manifest), rather than start empty."""
    if not catalog_path.exists() or catalog_path.stat().st_size:
        return
    wal = catalog_path.with_name(catalog_path.name + "-wal")
    if (directory / "manifest.json").exists() and not (wal.exists() and wal.stat().st_size):
        raise CorruptCollectionError(
            f"{catalog_path} is empty (0 bytes) although the collection was built: it was "
            f"truncated. Restore it from a backup (`imgsearch backup`, see the README) or "
            f"index the sources again into a new collection")


__all__ = ["lock_collection", "refuse_emptied", "storage_faults"]
