"""What a photo's EXIF block says of it: when, with what and where it was taken.

EXIF is written by every camera, phone and editor, and by anyone with a hex editor: a
value may be of the wrong type, out of range, huge or missing. Each fact is read on its
own and dropped when it is not plausible; nothing here raises, so a bad block never
costs an otherwise good image.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from PIL import Image

_IFD_EXIF = 0x8769
_IFD_GPS = 0x8825
_MAKE, _MODEL, _DATETIME = 0x010F, 0x0110, 0x0132
_DATETIME_ORIGINAL, _DATETIME_DIGITIZED = 0x9003, 0x9004
_OFFSET_ORIGINAL, _OFFSET_DIGITIZED, _OFFSET = 0x9011, 0x9012, 0x9010
_FOCAL_LENGTH, _LENS_MAKE, _LENS_MODEL = 0x920A, 0xA433, 0xA434
_GPS_LAT_REF, _GPS_LAT, _GPS_LON_REF, _GPS_LON = 1, 2, 3, 4
_MAX_TEXT = 64  # longer "camera names" are not names
_DATE = re.compile(r"^\s*(\d{4})[:\-](\d{2})[:\-](\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_OFFSET_TEXT = re.compile(r"^\s*([+-])(\d{2}):(\d{2})\s*$")


@dataclass(frozen=True)
class PhotoFacts:
    """Facts read from EXIF; None where the block had no plausible value."""

    taken_at: str | None = None  # ISO 8601 local time, "+HH:MM" appended when known
    camera: str | None = None  # make and model ("Google Pixel 4a")
    lens: str | None = None
    focal_length: float | None = None  # mm
    latitude: float | None = None
    longitude: float | None = None

    @property
    def empty(self) -> bool:
        return all(v is None for v in (self.taken_at, self.camera, self.lens,
                                       self.focal_length, self.latitude))


def read_facts(image: Image.Image) -> PhotoFacts:
    """The facts ``image``'s EXIF block gives (an empty PhotoFacts when it has none)."""
    try:
        exif = image.getexif()
    except Exception:  # Pillow raises many kinds on damaged blocks
        return PhotoFacts()
    if not exif:
        return PhotoFacts()
    main = _safe_ifd(exif, _IFD_EXIF)
    gps = _safe_ifd(exif, _IFD_GPS)
    latitude = _coordinate(gps.get(_GPS_LAT), gps.get(_GPS_LAT_REF), "NS", 90.0)
    longitude = _coordinate(gps.get(_GPS_LON), gps.get(_GPS_LON_REF), "EW", 180.0)
    if latitude is None or longitude is None or (latitude == 0 and longitude == 0):
        latitude = longitude = None  # 0, 0 is what a phone without a fix writes
    return PhotoFacts(
        taken_at=_taken_at(main, exif),
        camera=_camera(_text(exif.get(_MAKE)), _text(exif.get(_MODEL))),
        lens=_camera(_text(main.get(_LENS_MAKE)), _text(main.get(_LENS_MODEL))),
        focal_length=_focal_length(main.get(_FOCAL_LENGTH)),
        latitude=latitude, longitude=longitude,
    )


def _safe_ifd(exif: Image.Exif, tag: int) -> dict[int, Any]:
    try:
        ifd = exif.get_ifd(tag)
    except Exception:
        return {}
    return dict(ifd) if isinstance(ifd, dict) else {}


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    cleaned = "".join(c for c in value if c.isprintable()).strip(" \x00")
    if "\ufffd" in cleaned:  # not UTF-8: bytes of some other encoding, or noise
        return None
    return cleaned if cleaned and len(cleaned) <= _MAX_TEXT else None


def _camera(make: str | None, model: str | None) -> str | None:
    """"Canon" + "Canon EOS 5D" -> "Canon EOS 5D"; "Google" + "Pixel 4a" -> both."""
    if make and model:
        first = make.split()[0].casefold()
        return model if model.casefold().startswith(first) else f"{make} {model}"
    return model or make


def _taken_at(main: dict[int, Any], exif: Image.Exif) -> str | None:
    for date_tag, offset_tag in ((_DATETIME_ORIGINAL, _OFFSET_ORIGINAL),
                                 (_DATETIME_DIGITIZED, _OFFSET_DIGITIZED)):
        when = _date(main.get(date_tag))
        if when is not None:
            offset = _offset(main.get(offset_tag)) or _offset(main.get(_OFFSET))
            return when + (offset or "")
    try:
        fallback = exif.get(_DATETIME)
    except Exception:
        return None
    when = _date(fallback)
    return None if when is None else when + (_offset(main.get(_OFFSET)) or "")


def _date(value: Any) -> str | None:
    text = _text(value)
    match = _DATE.match(text) if text else None
    if match is None:
        return None
    try:
        year, month, day, hour, minute, second = (int(g) for g in match.groups())
        when = datetime(year, month, day, hour, minute, second)
    except ValueError:  # "0000:00:00 00:00:00", month 13, ...
        return None
    return when.isoformat() if 1826 <= when.year <= 2200 else None


def _offset(value: Any) -> str | None:
    text = _text(value)
    match = _OFFSET_TEXT.match(text) if text else None
    if match is None:
        return None
    sign, hours, minutes = match.groups()
    if int(hours) > 14 or int(minutes) >= 60:
        return None
    return f"{sign}{hours}:{minutes}"


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _focal_length(value: Any) -> float | None:
    number = _number(value)
    return round(number, 2) if number is not None and 0 < number <= 5000 else None


def _coordinate(value: Any, ref: Any, hemispheres: str, limit: float) -> float | None:
    if not isinstance(value, tuple | list) or not 1 <= len(value) <= 3:
        return None
    parts = [_number(v) for v in value]
    if any(p is None or p < 0 for p in parts):
        return None
    degrees = sum(p / 60 ** i for i, p in enumerate(parts) if p is not None)
    side = _text(ref)
    if side is not None and side[:1].upper() == hemispheres[1]:
        degrees = -degrees
    elif side is not None and side[:1].upper() != hemispheres[0]:
        return None
    return round(degrees, 6) if abs(degrees) <= limit else None
