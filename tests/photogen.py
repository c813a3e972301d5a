"""Photos with known EXIF facts (date, offset, camera, lens, GPS), written with Pillow."""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

from PIL import Image, TiffImagePlugin

from imagegen import picture
from vstorekit import undo_vector_files

IFD_EXIF, IFD_GPS = 0x8769, 0x8825


def _dms(value: float) -> tuple[TiffImagePlugin.IFDRational, ...]:
    value = abs(value)
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = round((value - degrees - minutes / 60) * 3600, 4)
    return (TiffImagePlugin.IFDRational(degrees, 1), TiffImagePlugin.IFDRational(minutes, 1),
            TiffImagePlugin.IFDRational(int(seconds * 10000), 10000))


def photo_exif(*, taken: str | None = None, offset: str | None = None,
               make: str | None = None, model: str | None = None, lens: str | None = None,
               focal: float | None = None, gps: tuple[float, float] | None = None
               ) -> Image.Exif:
    """An EXIF block; ``taken`` as EXIF writes it ("2019:07:04 12:30:00")."""
    exif = Image.Exif()
    if make:
        exif[0x010F] = make
    if model:
        exif[0x0110] = model
    sub = exif.get_ifd(IFD_EXIF)
    if taken:
        sub[0x9003] = taken
    if offset:
        sub[0x9011] = offset
    if lens:
        sub[0xA434] = lens
    if focal is not None:
        sub[0x920A] = TiffImagePlugin.IFDRational(int(focal * 100), 100)
    if gps is not None:
        lat, lon = gps
        exif.get_ifd(IFD_GPS).update({1: "N" if lat >= 0 else "S", 2: _dms(lat),
                                      3: "E" if lon >= 0 else "W", 4: _dms(lon)})
    return exif


def photo_jpeg(seed: int, exif: Image.Exif | bytes | None = None,
               size: tuple[int, int] = (160, 120)) -> bytes:
    buffer = io.BytesIO()
    image = picture(seed, size)
    if exif is None:
        image.save(buffer, format="JPEG", quality=90)
    else:
        image.save(buffer, format="JPEG", quality=90, exif=exif)
    return buffer.getvalue()


def write_photo(path: Path, seed: int, **facts: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(photo_jpeg(seed, photo_exif(**facts)))  # type: ignore[arg-type]
    return path


def undo_photo_schema(conn: sqlite3.Connection) -> None:
    """Undo migrations 5 (vector files) and 4 (photo columns, the keyword index's
    ocr/album/place fields)."""
    if conn.execute("PRAGMA user_version").fetchone()[0] == 5:
        undo_vector_files(conn)
    conn.executescript("""
        DROP INDEX items_taken; DROP INDEX items_camera; DROP INDEX items_latitude;
        DROP TABLE items_fts;
        CREATE VIRTUAL TABLE items_fts USING fts5(
            title, description, tags, category, brand, colors,
            tokenize = 'porter unicode61 remove_diacritics 2');
        INSERT INTO items_fts (rowid, title, description, tags, category, brand, colors)
            SELECT key, coalesce(title, ''), '', '', '', '', '' FROM items;
    """)
    for column in ("album", "ocr_text", "taken_at", "taken_from", "camera", "lens",
                   "focal_length", "latitude", "longitude", "city", "region", "country",
                   "taken_local", "camera_norm"):
        conn.execute(f"ALTER TABLE items DROP COLUMN {column}")
    conn.execute("PRAGMA user_version = 3")
