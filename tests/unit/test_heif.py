"""HEIC/HEIF and AVIF: decoded with the same limits as every format, or skipped with a
reason where the decoder is missing."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import imagegen as gen
from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.errors import CorruptImageError, ImageTooLargeError, UnsupportedFormatError
from imgsearch.ingest import decode, formats
from imgsearch.ingest.decode import decode_image
from imgsearch.ingest.isobmff import declared_pixels
from imgsearch.ingest.sources import scan_folder, skipped_reason
from imgsearch.types import Query

LIMITS = {"max_pixels": 4_000_000, "min_side": 32, "max_bytes": 2_000_000}
FORMATS = ["HEIF", "AVIF"]


def _without_decoders(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on an installation without pillow-heif and a Pillow without libavif."""
    monkeypatch.setattr(formats, "optional_formats", lambda: frozenset())
    monkeypatch.setattr(decode, "optional_formats", lambda: frozenset())


@pytest.mark.parametrize("fmt", FORMATS)
def test_decodes_to_rgb_with_its_size_and_colours(fmt: str) -> None:
    data = gen.heif_bytes(3, (320, 240), fmt)
    decoded = decode_image(data, source="x", **LIMITS)
    assert (decoded.format, decoded.width, decoded.height) == (fmt, 320, 240)
    assert decoded.image.mode == "RGB"
    original = np.asarray(gen.picture(3, (320, 240)), dtype=np.float32)
    # lossy, but the same picture: mean absolute error of a few levels
    assert np.abs(np.asarray(decoded.image, dtype=np.float32) - original).mean() < 12


@pytest.mark.parametrize("fmt", FORMATS)
def test_declared_size_over_the_cap_is_refused_before_decoding(fmt: str) -> None:
    data = gen.claiming_size(gen.heif_bytes(3, (96, 72), fmt), 40000, 30000)
    assert declared_pixels(data) == 40000 * 30000
    with pytest.raises(ImageTooLargeError, match=r"declares 1200000000 pixels"):
        decode_image(data, source="bomb", **LIMITS)


@pytest.mark.parametrize("fmt", FORMATS)
def test_real_size_over_the_pixel_cap_is_refused(fmt: str) -> None:
    data = gen.heif_bytes(3, (320, 240), fmt)
    with pytest.raises(ImageTooLargeError):
        decode_image(data, source="big", **{**LIMITS, "max_pixels": 320 * 240 - 1})


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("keep", [0.5, 0.9, 0.995])
def test_truncated_files_are_corrupt_not_crashes(fmt: str, keep: float) -> None:
    data = gen.heif_bytes(4, (320, 240), fmt)
    with pytest.raises(CorruptImageError, match="cut"):
        decode_image(data[:int(len(data) * keep)], source="cut", **LIMITS)


@pytest.mark.parametrize("fmt", FORMATS)
def test_byte_cap_applies(fmt: str) -> None:
    data = gen.heif_bytes(4, (320, 240), fmt)
    with pytest.raises(ImageTooLargeError, match="bytes is over the limit"):
        decode_image(data, source="x", **{**LIMITS, "max_bytes": len(data) - 1})


@pytest.mark.parametrize("fmt", FORMATS)
def test_without_the_decoder_the_error_names_the_package(monkeypatch: pytest.MonkeyPatch,
                                                         fmt: str) -> None:
    data = gen.heif_bytes(5, (96, 72), fmt)
    _without_decoders(monkeypatch)
    with pytest.raises(UnsupportedFormatError, match=f"{fmt} images are not enabled"):
        decode_image(data, source="x", **LIMITS)


def test_folder_scan_picks_up_heic_heif_and_avif(tmp_path: Path) -> None:
    for name, seed in (("a.heic", 1), ("b.HEIF", 2), ("c.avif", 3), ("d.jpg", 4)):
        gen.write_image(tmp_path / name, seed)
    skipped: dict[str, int] = {}
    entries, failures = scan_folder(tmp_path, skipped)
    assert [e.id for e in entries] == ["a.heic", "b.HEIF", "c.avif", "d.jpg"]
    assert failures == [] and skipped == {}


def test_folder_scan_without_the_decoder_skips_them_saying_why(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _without_decoders(monkeypatch)
    (tmp_path / "a.heic").write_bytes(b"not read")
    (tmp_path / "b.avif").write_bytes(b"not read")
    gen.write_image(tmp_path / "c.jpg", 1)
    skipped: dict[str, int] = {}
    entries, _ = scan_folder(tmp_path, skipped)
    assert [e.id for e in entries] == ["c.jpg"]
    assert skipped == {".heic": 1, ".avif": 1}
    assert "pillow-heif" in skipped_reason(".heic")
    assert "libavif" in skipped_reason(".avif")


def test_a_folder_of_phone_photos_is_indexed_and_found(tmp_path: Path,
                                                       settings: Settings) -> None:
    photos = tmp_path / "photos"
    for name, seed in (("IMG_0001.heic", 11), ("IMG_0002.avif", 12), ("IMG_0003.jpg", 13)):
        gen.write_image(photos / name, seed, (320, 240))
    with Engine.open(tmp_path / "c", settings) as engine:
        report = engine.ingest(photos)
        assert (report.added, report.failed, report.skipped) == (3, [], [])
        for name, seed in (("IMG_0001.heic", 11), ("IMG_0002.avif", 12)):
            hits = engine.search(Query(images=[gen.jpeg_bytes(seed, (320, 240))],
                                       limit=1)).hits
            assert hits[0].id == name


@pytest.mark.parametrize("fmt", FORMATS)
def test_exif_orientation_is_applied_once(fmt: str) -> None:
    assert fmt in formats.optional_formats()  # registers pillow-heif's writer too
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to view
    buffer = io.BytesIO()
    gen.picture(1, (320, 240)).save(buffer, format=fmt, exif=exif.tobytes(), quality=90)
    decoded = decode_image(buffer.getvalue(), source="x", **LIMITS)
    assert (decoded.width, decoded.height) == (240, 320) == decoded.image.size
