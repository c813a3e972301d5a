"""Deterministic test images: distinct structured pictures, odd modes and bad files.

Plain functions (not fixtures) so that any test, fixture or benchmark can use them.
Every picture is a function of its seed: the same seed always gives the same bytes.
"""

from __future__ import annotations

import functools
import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

Size = tuple[int, int]


def picture(seed: int, size: Size = (160, 120)) -> Image.Image:
    """An RGB picture whose colours, layout and edges all depend on ``seed``.

    A two-colour gradient background in a random direction, a handful of filled
    shapes of random colours, a few lines and a little noise: different seeds differ
    in global colour, layout and edge statistics, which is what descriptors see.
    """
    rng = np.random.default_rng(seed)
    width, height = size
    start = rng.integers(0, 256, 3).astype(np.float32)
    end = rng.integers(0, 256, 3).astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    ramp = xs / max(width - 1, 1) * np.cos(angle) + ys / max(height - 1, 1) * np.sin(angle)
    ramp = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)
    background = start + ramp[..., None] * (end - start)
    image = Image.fromarray(background.clip(0, 255).astype(np.uint8), "RGB")

    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(3, 7))):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        x0, x1 = sorted(int(v) for v in rng.integers(0, width, 2))
        y0, y1 = sorted(int(v) for v in rng.integers(0, height, 2))
        x1, y1 = max(x1, x0 + width // 8), max(y1, y0 + height // 8)
        kind = int(rng.integers(0, 3))
        if kind == 0:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
        elif kind == 1:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        else:
            points = [(int(rng.integers(0, width)), int(rng.integers(0, height))) for _ in range(3)]
            draw.polygon(points, fill=colour)
    for _ in range(int(rng.integers(2, 6))):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        line = [int(rng.integers(0, width)), int(rng.integers(0, height)),
                int(rng.integers(0, width)), int(rng.integers(0, height))]
        draw.line(line, fill=colour, width=max(1, min(size) // 40))

    pixels = np.asarray(image).astype(np.int16)
    noise = rng.normal(0, 6, pixels.shape).astype(np.int16)
    return Image.fromarray((pixels + noise).clip(0, 255).astype(np.uint8), "RGB")


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def jpeg_of(image: Image.Image, quality: int = 90) -> bytes:
    """``image`` saved as a JPEG."""
    return _encode(image, "JPEG", quality=quality)


def jpeg_bytes(seed: int, size: Size = (160, 120), quality: int = 90) -> bytes:
    return _encode(picture(seed, size), "JPEG", quality=quality)


def png_bytes(seed: int, size: Size = (160, 120)) -> bytes:
    return _encode(picture(seed, size), "PNG")


_FORMAT_BY_SUFFIX = {
    ".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".gif": "GIF",
    ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF", ".heic": "HEIF", ".heif": "HEIF",
    ".avif": "AVIF",
}


def heif_bytes(seed: int, size: Size = (160, 120), fmt: str = "HEIF") -> bytes:
    """A HEIC (``fmt="HEIF"``) or AVIF file, written by pillow-heif or Pillow."""
    from imgsearch.ingest.formats import optional_formats

    if fmt not in optional_formats():  # registers pillow-heif's opener and writer
        raise RuntimeError(f"cannot write {fmt}: its codec is not installed")
    return _encode(picture(seed, size), fmt, quality=95)


def claiming_size(data: bytes, width: int, height: int) -> bytes:
    """A HEIF/AVIF file whose ``ispe`` properties claim ``width`` x ``height``."""
    out = bytearray(data)
    at = out.find(b"ispe")
    while at >= 0:
        out[at + 8:at + 16] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
        at = out.find(b"ispe", at + 4)
    return bytes(out)


def write_image(path: Path, seed: int, size: Size = (160, 120), fmt: str | None = None) -> Path:
    """Write ``picture(seed, size)`` to ``path``; the format defaults to the suffix's."""
    fmt = fmt or _FORMAT_BY_SUFFIX.get(path.suffix.lower(), "PNG")
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt in ("HEIF", "AVIF"):
        path.write_bytes(heif_bytes(seed, size, fmt))
        return path
    options: dict[str, object] = {"quality": 90} if fmt in ("JPEG", "WEBP") else {}
    path.write_bytes(_encode(picture(seed, size), fmt, **options))
    return path


# ---- bad and odd inputs -------------------------------------------------------------


def truncated_jpeg(seed: int = 0) -> bytes:
    """A JPEG cut off half-way through its scan data."""
    data = jpeg_bytes(seed, (320, 240))
    return data[: len(data) // 2]


def zero_bytes() -> bytes:
    return b""


def text_file() -> bytes:
    return b"This is a plain text file, not an image.\nSecond line.\n"


def svg_bytes() -> bytes:
    return (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<svg xmlns="http://www.w3.org/2000/svg" width="200" height="200">'
        b'<circle cx="100" cy="100" r="80" fill="red"/></svg>\n'
    )


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


@functools.lru_cache(maxsize=2)
def decompression_bomb_png(side: int = 30000) -> bytes:
    """A valid 1-bit PNG of ``side`` x ``side`` pixels that compresses to ~100 KB."""
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + packed bits, all black
    compressor = zlib.compressobj(9)
    rows_per_chunk = max(1, (1 << 20) // len(row))
    body = bytearray()
    for start in range(0, side, rows_per_chunk):
        body += compressor.compress(row * min(rows_per_chunk, side - start))
    body += compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", bytes(body))
        + _png_chunk(b"IEND", b"")
    )


def exif_rotated_jpeg(seed: int = 0, size: Size = (160, 120)) -> bytes:
    """Landscape pixels with EXIF orientation 6: shown (and decoded) as portrait."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return _encode(picture(seed, size), "JPEG", quality=90, exif=exif.tobytes())


def cmyk_jpeg(seed: int = 0, size: Size = (160, 120)) -> bytes:
    return _encode(picture(seed, size).convert("CMYK"), "JPEG", quality=90)


def png16_bytes(seed: int = 0, size: Size = (160, 120)) -> bytes:
    """A 16-bit greyscale PNG (mode I;16) spanning the full 0..65535 range."""
    grey = np.asarray(picture(seed, size).convert("L"), dtype=np.float32)
    values = (grey - grey.min()) / max(float(grey.max() - grey.min()), 1.0) * 65535
    return _encode(Image.fromarray(values.astype(np.uint16)), "PNG")


def animated_gif(seed: int = 0, size: Size = (160, 120), frames: int = 3) -> bytes:
    images = [picture(seed + i, size).convert("P", palette=Image.Palette.ADAPTIVE)
              for i in range(frames)]
    return _encode(images[0], "GIF", save_all=True, append_images=images[1:], duration=100,
                   loop=0)


def palette_png(seed: int = 0, size: Size = (160, 120)) -> bytes:
    return _encode(picture(seed, size).convert("P", palette=Image.Palette.ADAPTIVE), "PNG")


def _transparent_left_half(image: Image.Image) -> Image.Image:
    alpha = Image.new("L", image.size, 255)
    alpha.paste(0, (0, 0, image.size[0] // 2, image.size[1]))
    image.putalpha(alpha)
    return image


def la_png(seed: int = 0, size: Size = (160, 120)) -> bytes:
    """Greyscale + alpha; the left half is fully transparent."""
    return _encode(_transparent_left_half(picture(seed, size).convert("L")), "PNG")


def rgba_png(seed: int = 0, size: Size = (160, 120)) -> bytes:
    """RGBA; the left half is fully transparent."""
    return _encode(_transparent_left_half(picture(seed, size)), "PNG")


def onebit_png(seed: int = 0, size: Size = (160, 120)) -> bytes:
    return _encode(picture(seed, size).convert("1"), "PNG")


def tiny_png() -> bytes:
    """10 x 10 pixels: under any sensible minimum side."""
    return png_bytes(0, (10, 10))


def make_photo_folder(root: Path, n: int, seed: int = 0) -> list[str]:
    """Write ``n`` distinct JPEGs under ``root`` in nested folders; return their ids.

    Ids are paths relative to ``root`` in POSIX style, sorted.
    """
    folders = ["", "holidays", "holidays/2023", "family"]
    ids = []
    for i in range(n):
        folder = folders[i % len(folders)]
        relative = f"{folder}/photo_{i:04d}.jpg" if folder else f"photo_{i:04d}.jpg"
        write_image(root / relative, seed * 100_003 + i, (160, 120), "JPEG")
        ids.append(relative)
    return sorted(ids)


# ---- decode-cost bombs: built by hand from a small JPEG's markers ---------------------


def _jpeg_segments(data: bytes) -> tuple[bytes, list[bytes]]:
    """The bytes before the first scan, and each scan (SOS header + its entropy data)."""
    first = data.index(b"\xff\xda")
    scans, start = [], first
    i = first
    while True:
        length = int.from_bytes(data[i + 2:i + 4], "big")
        i += 2 + length
        while not (data[i] == 0xFF and data[i + 1] not in (0x00, *range(0xD0, 0xD8))):
            i += 1
        scans.append(data[start:i])
        if data[i + 1] != 0xDA:
            return data[:first], scans
        start = i


def progressive_scan_bomb(scans: int = 5000, size: Size = (64, 64)) -> bytes:
    """A progressive JPEG whose last scan is repeated until it has ``scans`` scans.

    The repeats are refinement scans that add nothing, as in the scan bombs that cost
    a decoder a pass over the whole frame each; the frame is kept small here.
    """
    data = _encode(picture(0, size), "JPEG", quality=90, progressive=True)
    head, own = _jpeg_segments(data)
    extra = max(0, scans - len(own))
    return head + b"".join(own) + own[-1] * extra + b"\xff\xd9"


def jpeg_claiming_more_pixels(claimed: Size = (7000, 7000), size: Size = (64, 64)) -> bytes:
    """A baseline JPEG whose frame header claims ``claimed`` pixels but holds ``size``."""
    data = bytearray(_encode(picture(0, size), "JPEG", quality=90))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 7] = claimed[1].to_bytes(2, "big")
    data[sof + 7:sof + 9] = claimed[0].to_bytes(2, "big")
    return bytes(data)


def textured(seed: int, size: Size = (480, 360)) -> Image.Image:
    """A busy picture (``picture`` under many small shapes of many colours): plenty of
    corners for local features to match."""
    rng = np.random.default_rng(seed)
    image = picture(seed, size)
    draw = ImageDraw.Draw(image)
    width, height = size
    for _ in range(90):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        w, h = int(rng.integers(6, width // 8)), int(rng.integers(6, height // 8))
        if rng.random() < 0.5:
            draw.rectangle((x, y, x + w, y + h), fill=colour)
        else:
            draw.polygon([(x, y), (x + w, y + h // 3), (x + w // 2, y + h)], fill=colour)
    return image


def planes(seed: int, size: Size = (1280, 800)) -> Image.Image:
    """A flat vector-style picture: three even fills split by straight edges that meet
    at one point (like a building's corner against the sky), so there are almost no
    corners for keypoints to find."""
    rng = np.random.default_rng(seed)
    w, h = size

    def fill() -> tuple[int, ...]:
        return tuple(int(v) for v in rng.integers(0, 256, 3))

    image = Image.new("RGB", size, fill())
    draw = ImageDraw.Draw(image)
    x, y = rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h
    draw.polygon([(0, h), (0, y + rng.uniform(-0.2, 0.2) * h), (x, y), (x, h)], fill=fill())
    draw.polygon([(x, y), (w, y + rng.uniform(-0.2, 0.2) * h), (w, h), (x, h)], fill=fill())
    return image
