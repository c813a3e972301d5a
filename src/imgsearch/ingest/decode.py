"""Safe image decoding: format allow-list, byte and pixel caps, orientation, RGB.

Every image that enters imgsearch goes through :func:`decode_image`. The format is
identified from the content (never the file name), the pixel count is checked from
the header before any pixel is decoded, and every failure becomes one of the
``ImageError`` subclasses with a message naming the input and the reason.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import re
import stat
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from imgsearch.config import Settings
from imgsearch.errors import (
    CorruptImageError,
    ImageTooLargeError,
    ImageTooSmallError,
    InvalidInputError,
    NotAFileError,
    UnsupportedFormatError,
)
from imgsearch.ingest.exif import PhotoFacts, read_facts
from imgsearch.ingest.fields import name_text
from imgsearch.ingest.formats import MISSING_REASON, optional_formats
from imgsearch.ingest.isobmff import declared_pixels
from imgsearch.ingest.jpeg import MAX_SCANS, jpeg_layout
from imgsearch.types import ImageInput

_BASE_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "MPO"})
# HEIF and AVIF are accepted when their decoders are installed (``ingest.formats``).
ALLOWED_FORMATS = _BASE_FORMATS | {"HEIF", "AVIF"}
_ISOBMFF_FORMATS = frozenset({"HEIF", "AVIF"})
_DRAFT_FORMATS = frozenset({"JPEG", "MPO"})
_UPLOAD = "<upload>"
_WHITE = (255, 255, 255)
_ORIENTATION_TAG = 0x0112
_TRANSPOSE_FOR_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# Errors Pillow's parsers raise on malformed data; anything else is a bug, not bad input.
_DECODER_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError,
                   TypeError, struct.error, zlib.error)
_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True)
class DecodedImage:
    """An accepted image: RGB pixels plus what was learnt about the original."""

    image: Image.Image  # mode RGB, EXIF orientation applied, alpha composited over white
    width: int  # original size after orientation, before any reduction
    height: int
    format: str
    content_hash: str  # hex sha256 of the input bytes
    facts: PhotoFacts = field(default_factory=PhotoFacts)  # its EXIF block (ingest.exif)


def decode_image(
    data: bytes,
    *,
    source: str = "",
    max_pixels: int,
    min_side: int,
    max_bytes: int,
    reduce_to: int | None = None,
    longer_at_least: int = 0,
) -> DecodedImage:
    """Decode untrusted bytes into an RGB image, or raise a specific ``ImageError``.

    With ``reduce_to``, pixels are decoded at a reduced scale when the format allows
    it (JPEG) and the result is shrunk so that its longer side is at most
    ``2 * reduce_to``; ``width``/``height`` still report the original size. With
    ``longer_at_least`` as well, the reduced scale keeps the shorter side at least
    ``reduce_to`` and the longer side at least ``longer_at_least`` (a query image: its
    vector needs the one, its local features the other), and the result's longer side
    is at most twice the larger of the two.
    """
    label = source or _UPLOAD
    if len(data) > max_bytes:
        raise ImageTooLargeError(
            f"{label}: {len(data)} bytes is over the limit of {max_bytes} bytes; "
            "use a smaller file or raise max_file_bytes")
    if not data:
        raise CorruptImageError(f"{label}: the file is empty (0 bytes)")
    content_hash = hashlib.sha256(data).hexdigest()
    container = _detect_type(data)
    if container in _ISOBMFF_FORMATS:
        _check_isobmff(label, container, data, max_pixels)
    try:
        opened = Image.open(io.BytesIO(data), formats=_open_formats())
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError(f"{label}: too many pixels ({exc})") from None
    except UnidentifiedImageError:
        raise _unidentified(label, data) from None
    except _DECODER_ERRORS as exc:
        raise CorruptImageError(f"{label}: cannot read the image header ({exc})") from None
    with opened:
        if opened.format in _DRAFT_FORMATS:
            _check_jpeg_stream(label, data)
        return _decode_opened(opened, label, content_hash, max_pixels=max_pixels,
                              min_side=min_side, reduce_to=reduce_to,
                              longer_at_least=longer_at_least)


def _open_formats() -> list[str]:
    """The formats Pillow may try: MPO has no opener of its own (the JPEG opener returns
    MPO images), and HEIF/AVIF only where their decoders are installed."""
    return sorted((_BASE_FORMATS - {"MPO"}) | optional_formats())


def _check_isobmff(label: str, container: str, data: bytes, max_pixels: int) -> None:
    """HEIF/AVIF: a decoder must be installed, and the sizes the header declares must be
    within the pixel cap before the decoder sees the bytes (libheif and libavif allocate
    from these)."""
    if container not in optional_formats():
        raise UnsupportedFormatError(f"{label}: {container} images are not enabled: "
                                     f"{MISSING_REASON[container]}")
    pixels = declared_pixels(data)
    if pixels is not None and pixels > max_pixels:
        raise ImageTooLargeError(
            f"{label}: the {container} header declares {pixels} pixels, over the limit of "
            f"{max_pixels} pixels; resize the image or raise max_pixels")


def _check_jpeg_stream(label: str, data: bytes) -> None:
    """Refuse JPEGs whose decoding would cost far more than their size (``ingest.jpeg``)."""
    layout = jpeg_layout(data)
    if layout.scans > MAX_SCANS:
        raise ImageTooLargeError(
            f"{label}: the JPEG has {layout.scans} scans, over the limit of {MAX_SCANS}; "
            "each scan costs a pass over the whole image (re-save it as a baseline or "
            "standard progressive JPEG)")
    if not layout.covers_frame():
        raise CorruptImageError(
            f"{label}: the image data is truncated: {layout.entropy_bytes} bytes of image "
            f"data cannot cover the {layout.width}x{layout.height} pixels the header "
            "claims")


def decode_file(
    path: Path,
    *,
    max_pixels: int,
    min_side: int,
    max_bytes: int,
    reduce_to: int | None = None,
    longer_at_least: int = 0,
) -> DecodedImage:
    """Read and decode an image file; never reads more than ``max_bytes + 1`` bytes."""
    data = read_regular_file(Path(path), max_bytes + 1)
    return decode_image(data, source=name_text(str(path)), max_pixels=max_pixels,
                        min_side=min_side, max_bytes=max_bytes, reduce_to=reduce_to,
                        longer_at_least=longer_at_least)


def read_regular_file(path: Path, limit: int) -> bytes:
    """At most ``limit`` bytes of the regular file at ``path``.

    A FIFO, socket or device is refused before it is opened (a FIFO would block the
    reader forever, and opening some devices has effects of its own). The file is then
    opened without blocking and checked again with ``fstat``, so a path swapped for a
    FIFO between the check and the open is refused too.
    """
    label = name_text(str(path))
    try:
        _require_regular(label, os.stat(path).st_mode)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise InvalidInputError(f"{label}: no such file") from None
    except OSError as exc:
        raise InvalidInputError(f"{label}: cannot read the file ({exc.strerror or exc})"
                                ) from None
    with os.fdopen(fd, "rb") as handle:
        _require_regular(label, os.fstat(fd).st_mode)
        try:
            return handle.read(limit)
        except OSError as exc:
            raise InvalidInputError(f"{label}: cannot read the file "
                                    f"({exc.strerror or exc})") from None


def _require_regular(label: str, mode: int) -> None:
    if stat.S_ISDIR(mode):
        raise InvalidInputError(f"{label}: is a folder, not an image file")
    if not stat.S_ISREG(mode):
        raise NotAFileError(f"{label}: not a regular file (a FIFO, socket or device); "
                            "only image files can be read")


def open_image(
    value: ImageInput,
    settings: Settings,
    *,
    reduce_to: int | None = None,
    fetch: Callable[[str], bytes] | None = None,
) -> DecodedImage:
    """Decode any accepted image input: a path, bytes, an http(s) URL or a PIL image.

    URLs are downloaded with ``fetch`` (by default a :class:`Fetcher` on ``settings``,
    which applies the download protections).
    """
    if isinstance(value, Image.Image):
        return _decode_pil(value, settings, reduce_to)
    if isinstance(value, bytes | bytearray | memoryview):
        return decode_image(bytes(value), source=_UPLOAD, max_pixels=settings.max_pixels,
                            min_side=settings.min_side, max_bytes=settings.max_file_bytes,
                            reduce_to=reduce_to)
    if isinstance(value, str) and _URL_SCHEME.match(value):
        if fetch is None:
            from imgsearch.ingest.fetch import Fetcher

            fetch = Fetcher(settings).fetch_one
        return decode_image(fetch(value), source=value, max_pixels=settings.max_pixels,
                            min_side=settings.min_side, max_bytes=settings.max_file_bytes,
                            reduce_to=reduce_to)
    if isinstance(value, str | Path):
        return decode_file(Path(value), max_pixels=settings.max_pixels,
                           min_side=settings.min_side, max_bytes=settings.max_file_bytes,
                           reduce_to=reduce_to)
    raise InvalidInputError(
        f"cannot use a {type(value).__name__} as an image; "
        "give a file path, an http(s) URL, bytes or a PIL image")


def _decode_opened(
    opened: Image.Image,
    label: str,
    content_hash: str,
    *,
    max_pixels: int,
    min_side: int,
    reduce_to: int | None,
    longer_at_least: int = 0,
) -> DecodedImage:
    fmt = opened.format or ""
    if fmt not in ALLOWED_FORMATS:
        raise UnsupportedFormatError(f"{label}: {fmt or 'unknown'} images are not accepted; "
                                     f"use one of {', '.join(_open_formats())}")
    stored_width, stored_height = opened.size
    _check_size(label, stored_width, stored_height, max_pixels=max_pixels, min_side=min_side)
    orientation = _orientation(opened)
    facts = read_facts(opened)
    if orientation in (5, 6, 7, 8):
        width, height = stored_height, stored_width
    else:
        width, height = stored_width, stored_height

    if reduce_to and fmt in _DRAFT_FORMATS and longer_at_least:
        scale = max(reduce_to / min(stored_width, stored_height),
                    longer_at_least / max(stored_width, stored_height))
        if scale < 1:
            opened.draft("RGB", (math.ceil(stored_width * scale),
                                 math.ceil(stored_height * scale)))
    elif reduce_to and fmt in _DRAFT_FORMATS and min(stored_width, stored_height) > reduce_to:
        # JPEG can decode at 1/2, 1/4 or 1/8 scale for a fraction of the cost; ask for
        # the smallest scale that keeps the shorter side at least ``reduce_to``.
        shorter = min(stored_width, stored_height)
        opened.draft("RGB", (-(-stored_width * reduce_to // shorter),
                             -(-stored_height * reduce_to // shorter)))
    try:
        opened.load()
        rgb = to_rgb(opened)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError(f"{label}: too many pixels ({exc})") from None
    except MemoryError:
        raise ImageTooLargeError(f"{label}: not enough memory to decode the image") from None
    except _DECODER_ERRORS as exc:
        raise CorruptImageError(f"{label}: the image data is damaged or truncated "
                                f"({str(exc).strip()})") from None
    cap = 2 * max(reduce_to or 0, longer_at_least) if reduce_to else 0
    if cap and max(rgb.size) > cap:
        rgb.thumbnail((cap, cap), Image.Resampling.BILINEAR, reducing_gap=2.0)
    transpose = _TRANSPOSE_FOR_ORIENTATION.get(orientation)
    if transpose is not None:
        rgb = rgb.transpose(transpose)
    return DecodedImage(image=rgb, width=width, height=height, format=fmt,
                        content_hash=content_hash, facts=facts)


def _decode_pil(value: Image.Image, settings: Settings, reduce_to: int | None) -> DecodedImage:
    label = f"<{value.format or 'in-memory'} image>"
    _check_size(label, *value.size, max_pixels=settings.max_pixels, min_side=settings.min_side)
    try:
        value.load()
        rgb = to_rgb(value)
    except _DECODER_ERRORS as exc:
        raise CorruptImageError(f"{label}: cannot read the image ({exc})") from None
    digest = hashlib.sha256(f"{rgb.size}".encode() + rgb.tobytes()).hexdigest()
    width, height = rgb.size
    if rgb is value:
        rgb = rgb.copy()  # the caller keeps its image; ours may be resized
    if reduce_to and max(rgb.size) > 2 * reduce_to:
        rgb.thumbnail((2 * reduce_to, 2 * reduce_to), Image.Resampling.BILINEAR,
                      reducing_gap=2.0)
    return DecodedImage(image=rgb, width=width, height=height, format=value.format or "RAW",
                        content_hash=digest)


def _check_size(label: str, width: int, height: int, *, max_pixels: int, min_side: int) -> None:
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"{label}: {width}x{height} = {width * height} pixels is over the limit of "
            f"{max_pixels} pixels; resize the image or raise max_pixels")
    if min(width, height) < min_side:
        raise ImageTooSmallError(
            f"{label}: too small ({width}x{height}, under {min_side} px on its shorter "
            f"side) to describe")


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # a damaged EXIF block must not cost us an otherwise good image
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode to RGB: alpha over white, high bit depths scaled, not clipped."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I", "F") or mode.startswith("I;16"):
        return _high_depth_to_l(image).convert("RGB")
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if has_alpha:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, _WHITE)
        canvas.paste(rgba.convert("RGB"), mask=rgba.getchannel("A"))
        return canvas
    return image.convert("RGB")


def _high_depth_to_l(image: Image.Image) -> Image.Image:
    values = np.asarray(image).astype(np.float32)
    values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    if image.mode.startswith("I;16"):
        values = values / 257.0
    elif image.mode == "F" and values.size and values.min() >= 0.0 and values.max() <= 1.0:
        values = values * 255.0
    elif values.size and values.max() > 255.0:
        # 32-bit integer images almost always carry 16-bit samples (e.g. PNG/TIFF).
        values = values / (257.0 if values.max() <= 65535.0 else values.max() / 255.0)
    return Image.fromarray(values.clip(0, 255).round().astype(np.uint8), "L")


_MAGIC_NAMES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF", "PDF"), (b"%!PS", "PostScript"), (b"\xc5\xd0\xd3\xc6", "EPS"),
    (b"8BPS", "Photoshop (PSD)"), (b"\x00\x00\x01\x00", "ICO"), (b"qoif", "QOI"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"), (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"PK\x03\x04", "ZIP archive"), (b"\x1f\x8b", "gzip archive"), (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"), (b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"), (b"GIF89a", "GIF"), (b"BM", "BMP"),
)


def _detect_type(data: bytes) -> str | None:
    """Name what the bytes look like, for messages; None when nothing is recognised."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in (b"avif", b"avis") or (brand in (b"mif1", b"msf1")
                                            and b"avif" in data[16:64]):
            return "AVIF"
        if brand in (b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1", b"hevc", b"hevx"):
            return "HEIF"
        return "ISO media (MP4/MOV)"
    for magic, name in _MAGIC_NAMES:
        if data.startswith(magic):
            return name
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"<"):
        if b"<svg" in head:
            return "SVG"
        if b"<html" in head or head.startswith(b"<!doctype html"):
            return "HTML"
        return "XML"
    if b"\x00" not in head:
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start < len(head) - 4:  # a character cut at the 4 KiB boundary is fine
                return None
        return "text"
    return None


def _unidentified(label: str, data: bytes) -> Exception:
    detected = _detect_type(data)
    if detected is None:
        return CorruptImageError(f"{label}: not a recognisable image (unknown binary data)")
    if detected in ALLOWED_FORMATS:
        return CorruptImageError(f"{label}: looks like {detected} but cannot be read; "
                                 "the file is damaged")
    return UnsupportedFormatError(f"{label}: {detected} files are not accepted; "
                                  f"use one of {', '.join(_open_formats())}")
