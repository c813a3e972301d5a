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
    │   └── CorruptImageError           truncated, zero bytes, undecodable
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
    └── CollectionError                 the collection itself is unusable
        ├── EncoderMismatchError        opened with other encoders than it was built with
        ├── SchemaVersionError          written by a newer imgsearch
        └── CollectionLockedError       another process is writing to it
"""

from __future__ import annotations


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


class FetchError(ImgSearchError):
    code = "fetch_failed"
    status = 422

    def __init__(self, message: str, *, url: str = "") -> None:
        super().__init__(message)
        self.url = url


class BlockedURLError(FetchError):
    code = "blocked_url"


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


class SchemaVersionError(CollectionError):
    code = "schema_version"


class CollectionLockedError(CollectionError):
    code = "collection_locked"
    status = 409
