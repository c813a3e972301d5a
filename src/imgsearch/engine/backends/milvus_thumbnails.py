"""Thumbnails held in Milvus rows (milvus schema 3): the item's JPEG thumbnail, the bytes
the local engine writes to its ``thumbnails/`` folder, as base64 in a VARCHAR field.

Milvus has no bytes field, and a VARCHAR holds at most 65,535 bytes: base64 of at most
49,149 bytes of JPEG. A 512 px thumbnail at quality 85 (``enrich.thumbnails``) is
usually 15-45 KB; a busier one is saved again at a lower quality (then, if need be,
smaller) until it fits, so no item is refused for its thumbnail."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io

from PIL import Image

MAX_THUMBNAIL = 65_535  # characters of base64 (ASCII: bytes too), Milvus's VARCHAR limit
MAX_RAW = MAX_THUMBNAIL // 4 * 3  # 49,149 bytes of JPEG
# an item's ``thumbnail`` on a milvus collection: this and a digest of the bytes (the
# thumbnail route's ETag); a local collection's is a path under its thumbnails/ folder
MARK = "in-row:"
_QUALITIES = (75, 65, 50, 35)
_SHRINK = 0.8


def fit(data: bytes) -> bytes:
    """``data`` (JPEG) as it is when its base64 fits a VARCHAR, else saved again at a
    lower quality, then smaller, until it does."""
    if len(data) <= MAX_RAW:
        return data
    with Image.open(io.BytesIO(data)) as opened:
        image = opened.convert("RGB")
    while True:
        for quality in _QUALITIES:
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=quality)
            if buffer.tell() <= MAX_RAW:
                return buffer.getvalue()
        width, height = image.size
        image = image.resize((max(1, int(width * _SHRINK)), max(1, int(height * _SHRINK))),
                             Image.Resampling.BICUBIC)


def to_field(data: bytes | None) -> str:
    """The field's value: base64 of the fitted JPEG; "" for none."""
    return base64.b64encode(fit(data)).decode("ascii") if data else ""


def from_field(value: str | None) -> bytes | None:
    """The JPEG bytes a field holds; None for an empty or damaged one."""
    if not value:
        return None
    with contextlib.suppress(ValueError):
        return base64.b64decode(value, validate=True)
    return None


def mark(value: str) -> str:
    """What ``Item.thumbnail`` says of a thumbnail held in the row: a name that changes
    when the thumbnail does."""
    return MARK + hashlib.sha256(value.encode("ascii")).hexdigest()[:20]


__all__ = ["MARK", "MAX_RAW", "MAX_THUMBNAIL", "fit", "from_field", "mark", "to_field"]
