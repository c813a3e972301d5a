"""One exception tree for imgsearch.

Every error says what was wrong, with which input, and what to do. The CLI maps
these to exit codes and the web app to HTTP statuses, each in exactly one place,
using the ``code`` and ``status`` class attributes.

    ImgSearchError                      base; code="error"
    ├── InvalidInputError               bad arguments or query (400)
    │   ├── InvalidFilterError          a filter value that cannot be used
    │   ├── InvalidQueryError           a query that cannot be run
    │   ├── InvalidFieldError           an item field with a bad value (price, date, ...)
    │   └── NotAFileError               a path that is a FIFO, device or folder, not a file
    ├── ImageError                      an image that cannot be accepted (415/413/422)
    │   ├── UnsupportedFormatError      not an allowed format (SVG, PDF, text, ...)
    │   ├── ImageTooLargeError          over the byte or pixel cap (decompression bomb)
    │   ├── ImageTooSmallError          shorter side under the minimum
    │   ├── CorruptImageError           truncated, zero bytes, undecodable
    │   └── DecodeTimeoutError          decoding passed decode_timeout_s and was stopped
    ├── FetchError                      a URL that could not be downloaded (422)
    │   ├── BlockedURLError             scheme or address refused (SSRF protection)
    │   └── DownloadTooLargeError       body over the byte cap
    ├── CatalogFormatError              a catalog file that cannot be read at all
    ├── NotFoundError                   (404)
    │   ├── ItemNotFoundError
    │   └── CollectionNotFoundError
    ├── EncoderError                    a model that cannot be loaded or run
    │   ├── UnknownEncoderError         no encoder registered under that name
    │   └── ModelUnavailableError       weights missing (offline) -- says how to fix
    ├── CollectionError                 the collection itself is unusable
    │   ├── EncoderMismatchError        opened with other encoders than it was built with
    │   │   └── ReembedRefusedError     some items cannot be re-encoded (their .items)
    │   ├── SchemaVersionError          written by a newer imgsearch
    │   ├── CollectionLockedError       another process is writing to it
    │   ├── CorruptCollectionError      a damaged catalog (check, restore from a backup)
    │   ├── ReadOnlyCollectionError     a write asked of a collection on read-only storage
    │   ├── StorageAccessError          permission denied, an I/O error of the device (503)
    │   ├── BackendUnavailableError     a remote collection (Milvus) cannot be reached (503)
    │   ├── BackendMismatchError        a remote collection not ours, or of another shape (409)
    │   └── UnsupportedOnBackendError   a feature the collection's backend does not have (400)
    ├── StorageFullError                no space left for a write (507); nothing half-written
    ├── DecodersBusyError               every decode worker stayed busy past the wait (503)
    └── StreamError                     a stream to consume (Redis) cannot be reached (503)

``storage_fault`` turns the operating system's and SQLite's own errors for a full disk,
read-only storage and a damaged database into these, so that the CLI and the web app
answer them like any other.
"""

from __future__ import annotations

import errno
import sqlite3
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from imgsearch.types import IngestReport


class ImgSearchError(Exception):
    """Base of every error imgsearch raises on purpose."""

    code: str = "error"
    status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInputError(ImgSearchError):
    code = "invalid_input"
    status = 400


class InvalidFilterError(InvalidInputError):
    code = "invalid_filter"


class InvalidQueryError(InvalidInputError):
    code = "invalid_query"


class InvalidFieldError(InvalidInputError):
    """One field of an item (catalog row or API body) has a value that cannot be used.

    ``field`` names it; ``reason_code`` is the code a catalog row's failure reports.
    """

    code = "invalid_field"
    status = 422

    def __init__(self, field: str, message: str, reason_code: str = "bad_value") -> None:
        super().__init__(message)
        self.field = field
        self.reason_code = reason_code


class NotAFileError(InvalidInputError):
    code = "not_a_file"


class ImageError(ImgSearchError):
    code = "bad_image"
    status = 422


class UnsupportedFormatError(ImageError):
    code = "unsupported_format"
    status = 415


class ImageTooLargeError(ImageError):
    code = "image_too_large"
    status = 413


class ImageTooSmallError(ImageError):
    code = "image_too_small"


class CorruptImageError(ImageError):
    code = "corrupt_image"


class DecodeTimeoutError(ImageError):
    code = "decode_timeout"


class FetchError(ImgSearchError):
    code = "fetch_failed"
    status = 422

    def __init__(self, message: str, *, url: str = "") -> None:
        super().__init__(message)
        self.url = url


class BlockedURLError(FetchError):
    code = "blocked_url"


class PortNotAllowedError(BlockedURLError):
    code = "port_not_allowed"


class DownloadTooLargeError(FetchError):
    code = "download_too_large"
    status = 413


class CatalogFormatError(ImgSearchError):
    code = "bad_catalog"
    status = 400


class NotFoundError(ImgSearchError):
    code = "not_found"
    status = 404


class ItemNotFoundError(NotFoundError):
    code = "item_not_found"

    def __init__(self, item_id: str) -> None:
        super().__init__(f"no item with id {item_id!r} in this collection")
        self.item_id = item_id


class CollectionNotFoundError(NotFoundError):
    code = "collection_not_found"


class EncoderError(ImgSearchError):
    code = "encoder_error"
    status = 500


class UnknownEncoderError(EncoderError):
    code = "unknown_encoder"
    status = 400


class ModelUnavailableError(EncoderError):
    code = "model_unavailable"
    status = 503


class CollectionError(ImgSearchError):
    code = "collection_error"
    status = 500


class EncoderMismatchError(CollectionError):
    code = "encoder_mismatch"
    status = 409


class ReembedRefusedError(EncoderMismatchError):
    code = "reembed_refused"

    def __init__(self, message: str, *, items: list[str]) -> None:
        super().__init__(message)
        self.items = items


class SchemaVersionError(CollectionError):
    code = "schema_version"


class CollectionLockedError(CollectionError):
    code = "collection_locked"
    status = 409


class CorruptCollectionError(CollectionError):
    code = "collection_corrupt"


class ReadOnlyCollectionError(CollectionError):
    code = "collection_read_only"
    status = 503


class StorageAccessError(CollectionError):
    code = "storage_unavailable"
    status = 503


class BackendUnavailableError(CollectionError):
    """A remote collection's server cannot be reached; ``uri`` names it."""

    code = "backend_unavailable"
    status = 503

    def __init__(self, uri: str, message: str) -> None:
        super().__init__(message)
        self.uri = uri


class BackendMismatchError(CollectionError):
    """A remote collection made by another tool, with another dimension, or whose server
    dropped the index parameters asked for."""

    code = "backend_mismatch"
    status = 409


class UnsupportedOnBackendError(CollectionError):
    """A feature the collection's backend does not have (BM25 on an old server, ...)."""

    code = "not_supported_on_backend"
    status = 400


class PortInUseError(ImgSearchError):
    """The server cannot listen: another process holds the address and port."""

    code = "port_in_use"
    status = 500


class StorageFullError(ImgSearchError):
    """``report``: what an interrupted ingest had done (an ``IngestReport``), if any."""

    code = "insufficient_storage"
    status = 507

    def __init__(self, message: str, *, report: IngestReport | None = None) -> None:
        super().__init__(message)
        self.report = report


class DecodersBusyError(ImgSearchError):
    """Every decode worker stayed busy for as long as a caller may wait for one."""

    code = "decoders_busy"
    status = 503


_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_SQLITE_FULL, _SQLITE_CORRUPT, _SQLITE_NOTADB, _SQLITE_READONLY = 13, 11, 26, 8
_SQLITE_IOERR, _SQLITE_CANTOPEN, _SQLITE_PERM = 10, 14, 3
_ACCESS_ERRNOS = frozenset({errno.EACCES, errno.EPERM})


class StreamError(ImgSearchError):
    """A stream to consume cannot be reached or read (Redis down, a refused command)."""

    code = "stream_unavailable"
    status = 503


def storage_fault(exc: BaseException, where: str = "the collection") -> ImgSearchError | None:
    """The imgsearch error for an ``OSError`` or SQLite error that says the storage under
    ``where`` is full, read-only or damaged; None for any other exception."""
    if isinstance(exc, ImgSearchError):
        return exc
    if isinstance(exc, OSError):
        if exc.errno in _FULL_ERRNOS:
            return StorageFullError(
                f"no space left on the device holding {where} ({exc.strerror}); free some "
                f"space and run the command again: everything committed so far is kept")
        if exc.errno == errno.EROFS:
            return ReadOnlyCollectionError(
                f"{where} is on read-only storage ({exc}); searching it works, writing "
                f"needs writable storage")
        if exc.errno in _ACCESS_ERRNOS:
            return StorageAccessError(
                f"{where} cannot be accessed ({exc}); check the permissions of the "
                f"collection directory and its files for the user running imgsearch")
        if exc.errno == errno.EIO:
            return StorageAccessError(
                f"the device holding {where} reported an I/O error ({exc}); the write did "
                f"not complete: check the device, then `imgsearch check` the collection")
        return None
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        primary = code & 0xFF if isinstance(code, int) else None
        text = str(exc)
        if primary == _SQLITE_FULL or "database or disk is full" in text:
            return StorageFullError(
                f"no space left for the database of {where} ({text}); free some space "
                f"and run the command again: everything committed so far is kept")
        if primary in (_SQLITE_CORRUPT, _SQLITE_NOTADB) or "malformed" in text \
                or "not a database" in text:
            return CorruptCollectionError(
                f"the catalog of {where} is damaged ({text}); it is the collection's source "
                f"of truth and cannot be rebuilt: restore catalog.sqlite3 from a backup "
                f"(`imgsearch backup`, see the README); `imgsearch check -c COLLECTION` "
                f"says what else is wrong")
        if primary == _SQLITE_READONLY:
            return ReadOnlyCollectionError(
                f"{where} cannot be written ({text}); searching it works, writing needs "
                f"writable storage")
        if primary in (_SQLITE_CANTOPEN, _SQLITE_PERM):
            return StorageAccessError(
                f"a database of {where} cannot be opened ({text}); check that it exists "
                f"and the permissions of the collection directory and its files")
        if primary == _SQLITE_IOERR:
            return StorageAccessError(
                f"the device holding {where} reported an I/O error ({text}); the write did "
                f"not complete: check the device, then `imgsearch check` the collection")
    return None
