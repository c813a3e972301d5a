"""SQLite files of a collection, checked and copied.

``database_problems`` runs SQLite's own checks (``PRAGMA integrity_check`` or the
faster ``quick_check``); ``backup_database`` copies a database with SQLite's backup API,
which gives a consistent snapshot even while another process writes to it (a file copy
can catch a write half done).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

from imgsearch.store.catalog import read_only_uri

_MAX_LINES = 10


def connect_for_reading(path: Path) -> sqlite3.Connection:
    """A read-only connection (nothing written, no migration), which sees what a live
    writer commits meanwhile, on read-only storage as well."""
    notes: list[str] = []
    uri = read_only_uri(path, notes, storage_writable=os.access(path.parent, os.W_OK))
    return sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30.0)


def database_problems(path: Path, *, quick: bool = False) -> list[str]:
    """What SQLite finds wrong with the database at ``path`` ([] when it is sound)."""
    if not path.exists():
        return [f"{path.name} is missing"]
    if path.stat().st_size == 0:
        return [f"{path.name} is empty (0 bytes): truncated"]
    pragma = "quick_check" if quick else "integrity_check"
    try:
        conn = connect_for_reading(path)
    except sqlite3.Error as exc:
        return [f"{path.name} cannot be opened: {exc}"]
    try:
        rows = conn.execute(f"PRAGMA {pragma}({_MAX_LINES})").fetchall()
    except sqlite3.Error as exc:
        return [f"{path.name}: {exc}"]
    finally:
        conn.close()
    lines = [str(r[0]) for r in rows]
    return [] if lines == ["ok"] else [f"{path.name}: {line}" for line in lines]


def backup_database(source: Path, target: Path) -> None:
    """Copy the database at ``source`` to ``target`` (which must not exist) with SQLite's
    backup API: one consistent snapshot, whatever other processes write meanwhile."""
    src = connect_for_reading(source)
    try:
        dst = sqlite3.connect(target, isolation_level=None)
        try:
            # all pages in one step: the copy is of one moment, never restarted midway
            src.backup(dst, pages=-1)
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        finally:
            dst.close()
    except BaseException:
        with contextlib.suppress(OSError):
            target.unlink()
        raise
    finally:
        src.close()


__all__ = ["backup_database", "connect_for_reading", "database_problems"]
