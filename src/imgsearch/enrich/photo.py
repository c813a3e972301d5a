"""An item's photo fields: EXIF facts, the place they name, the file time when EXIF has
no date (flagged ``taken_from = "file"``), and text read from the pixels."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from imgsearch.enrich.places import place_of
from imgsearch.ingest.exif import PhotoFacts
from imgsearch.types import Item


def photo_fields(item: Item, facts: PhotoFacts, ocr_text: str | None) -> dict[str, Any]:
    """The fields to set on ``item`` (for ``dataclasses.replace``)."""
    taken_at, taken_from = facts.taken_at, "exif" if facts.taken_at else None
    if taken_at is None and item.source_mtime is not None:
        taken_at, taken_from = file_time(item.source_mtime), "file"
    place = place_of(facts.latitude, facts.longitude)
    return {
        "taken_at": taken_at, "taken_from": taken_from, "camera": facts.camera,
        "lens": facts.lens, "focal_length": facts.focal_length,
        "latitude": facts.latitude, "longitude": facts.longitude,
        "city": place.city if place else None, "region": place.region if place else None,
        "country": place.country if place else None, "ocr_text": ocr_text,
    }


def file_time(mtime: float) -> str | None:
    """A file's modification time as local ISO 8601 with this machine's UTC offset."""
    try:
        return datetime.fromtimestamp(mtime).astimezone().isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):
        return None
