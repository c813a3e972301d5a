"""The operating system's and SQLite's errors for storage, named as imgsearch errors."""

from __future__ import annotations

import errno
import sqlite3

import pytest

from imgsearch.errors import (
    CorruptCollectionError,
    ReadOnlyCollectionError,
    StorageAccessError,
    StorageFullError,
    storage_fault,
)


def _sqlite(message: str, code: int | None) -> sqlite3.Error:
    exc = sqlite3.OperationalError(message)
    if code is not None:
        exc.sqlite_errorcode = code  # type: ignore[attr-defined]
    return exc


@pytest.mark.parametrize(("exc", "kind", "status"), [
    (OSError(errno.ENOSPC, "No space left on device"), StorageFullError, 507),
    (OSError(errno.EDQUOT, "Disk quota exceeded"), StorageFullError, 507),
    (OSError(errno.EROFS, "Read-only file system"), ReadOnlyCollectionError, 503),
    (OSError(errno.EACCES, "Permission denied"), StorageAccessError, 503),
    (OSError(errno.EIO, "Input/output error"), StorageAccessError, 503),
    (_sqlite("database or disk is full", None), StorageFullError, 507),
    (_sqlite("whatever the text", 13), StorageFullError, 507),
    (_sqlite("database disk image is malformed", 11), CorruptCollectionError, 500),
    (sqlite3.DatabaseError("file is not a database"), CorruptCollectionError, 500),
    (_sqlite("attempt to write a readonly database", 8), ReadOnlyCollectionError, 503),
    (_sqlite("unable to open database file", 14), StorageAccessError, 503),
    (_sqlite("disk I/O error", 10 | (4 << 8)), StorageAccessError, 503),
])
def test_storage_errors_are_named(exc, kind, status):
    fault = storage_fault(exc, "/data/shop")
    assert isinstance(fault, kind) and fault.status == status
    assert "/data/shop" in fault.message


@pytest.mark.parametrize("exc", [
    OSError(errno.ENOENT, "No such file"), ValueError("x"), RuntimeError("y"),
    _sqlite("no such table: items", 1), _sqlite("database is locked", 5),
])
def test_other_errors_are_left_alone(exc):
    assert storage_fault(exc) is None
