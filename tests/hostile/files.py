"""Hostile and odd image files, generated: bombs, header lies, foreign formats, odd modes.

Plain functions returning bytes, built from ``imagegen`` pictures or by hand where Pillow
cannot write the format (PSD, FITS, huge header claims). Every file is small: a bomb is
a few hundred bytes that *claims* to be enormous.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

import imagegen as gen

SMALL = (96, 72)


def _save(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def encoded(seed: int, fmt: str, **options: object) -> bytes:
    return _save(gen.picture(seed), fmt, **options)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def _png(width: int, height: int, depth: int, colour_type: int, raw: bytes,
         extra: bytes = b"") -> bytes:
    header = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + extra
            + _png_chunk(b"IDAT", zlib.compress(raw, 9)) + _png_chunk(b"IEND", b""))


# ---- header claims: tiny files that say they are enormous -----------------------------


def png_claiming(width: int, height: int) -> bytes:
    """A PNG header of ``width`` x ``height`` with a few bytes of data behind it."""
    return _png(width, height, 8, 0, b"\x00" * 64)


def jpeg_claiming(width: int, height: int) -> bytes:
    """A real JPEG whose SOF0 marker is rewritten to claim another size."""
    data = bytearray(gen.jpeg_bytes(1, (64, 48)))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def gif_claiming(width: int, height: int) -> bytes:
    data = bytearray(_save(gen.picture(1, (64, 48)).convert("P"), "GIF"))
    data[6:10] = struct.pack("<HH", width, height)
    return bytes(data)


def bmp_claiming(width: int, height: int) -> bytes:
    data = bytearray(_save(gen.picture(1, (64, 48)), "BMP"))
    data[18:26] = struct.pack("<ii", width, height)
    return bytes(data)


def tiff_claiming(width: int, height: int) -> bytes:
    """A TIFF whose image width/length tags claim another size."""
    image = gen.picture(1, (64, 48))
    data = bytearray(_save(image, "TIFF"))
    (ifd,) = struct.unpack("<I", data[4:8])
    (count,) = struct.unpack("<H", data[ifd:ifd + 2])
    for n in range(count):
        entry = ifd + 2 + 12 * n
        tag, _kind = struct.unpack("<HH", data[entry:entry + 4])
        if tag in (256, 257):
            value = width if tag == 256 else height
            data[entry + 2:entry + 12] = struct.pack("<HII", 4, 1, value)  # LONG
    return bytes(data)


def webp_claiming(width: int, height: int) -> bytes:
    """A VP8X WebP header whose canvas is ``width`` x ``height``."""
    data = _save(gen.picture(1, (64, 48)), "WEBP", quality=50)
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00" \
        + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    body = b"WEBP" + vp8x + data[12:]
    return b"RIFF" + struct.pack("<I", len(body)) + body


def pixel_bomb_png(side: int) -> bytes:
    """A real, fully decodable 1-bit PNG of ``side`` x ``side`` pixels."""
    return gen.decompression_bomb_png(side)


# ---- animations ----------------------------------------------------------------------


def many_frame_gif(frames: int = 2000, size: tuple[int, int] = (40, 40)) -> bytes:
    base = gen.picture(3, size).convert("P", palette=Image.Palette.ADAPTIVE)
    others = [base.point(lambda v, i=i: (v + i) % 256) for i in range(1, frames)]
    return _save(base, "GIF", save_all=True, append_images=others, duration=10, loop=0)


def growing_canvas_gif() -> bytes:
    """A GIF whose second frame lies outside the logical screen (it grows the canvas)."""
    first = _save(gen.picture(4, (64, 48)).convert("P"), "GIF")
    data = bytearray(first)
    # descriptor of the only frame: move it far outside a 64x48 screen
    at = data.index(b"\x2c")
    data[at + 1:at + 5] = struct.pack("<HH", 60000, 60000)
    return bytes(data)


def many_frame_apng(frames: int = 300) -> bytes:
    base = gen.picture(5, (48, 40))
    others = [base.rotate(i) for i in range(1, frames)]
    return _save(base, "PNG", save_all=True, append_images=others, duration=10)


def many_frame_webp(frames: int = 300) -> bytes:
    base = gen.picture(6, (48, 40))
    others = [base.rotate(i) for i in range(1, frames)]
    return _save(base, "WEBP", save_all=True, append_images=others, duration=10, quality=30)


# ---- formats outside the allow-list ----------------------------------------------------


def written_by_pillow(fmt: str, mode: str = "RGB", **options: object) -> bytes:
    image = gen.picture(7, SMALL).convert(mode)
    return _save(image, fmt, **options)


def psd_header() -> bytes:
    """A Photoshop file: signature, version 1, 3 channels, 48x64, 8-bit RGB, raw data."""
    head = b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, 48, 64, 8, 3)
    sections = struct.pack(">III", 0, 0, 0)  # colour mode, resources, layers: empty
    return head + sections + struct.pack(">H", 0) + b"\x80" * (3 * 48 * 64)


def fits_file() -> bytes:
    cards = ["SIMPLE  =                    T", "BITPIX  =                    8",
             "NAXIS   =                    2", "NAXIS1  =                   64",
             "NAXIS2  =                   48", "END"]
    header = b"".join(card.ljust(80).encode() for card in cards).ljust(2880, b" ")
    return header + bytes(64 * 48).ljust(2880, b"\x00")


def eps_file() -> bytes:
    return (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 48\n"
            b"newpath 0 0 moveto 64 48 lineto stroke\nshowpage\n%%EOF\n")


def pdf_file() -> bytes:
    return written_by_pillow("PDF")


def mcidas_file() -> bytes:
    """McIdas area file: the 64-word directory Pillow's plugin recognises, no data."""
    words = [0, 4] + [0] * 62
    words[8], words[9], words[10], words[11] = 48, 64, 1, 1  # lines, elements, bands, bpp
    return struct.pack(">64i", *words) + bytes(64 * 48)


def svg_with_network_reference() -> bytes:
    return (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" '
            b'xmlns:xlink="http://www.w3.org/1999/xlink" width="64" height="64">'
            b'<image xlink:href="http://169.254.169.254/latest/meta-data" width="64" '
            b'height="64"/><use xlink:href="#a"/><g id="a"><use xlink:href="#a"/></g></svg>')


# ---- odd colour modes that must decode -----------------------------------------------


def png_16bit_rgb(seed: int, size: tuple[int, int] = (160, 120)) -> bytes:
    """16 bits per channel RGB (Pillow cannot write it): samples scaled from 8-bit."""
    rgb = np.asarray(gen.picture(seed, size), dtype=np.uint16) * 257
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in rgb)
    return _png(size[0], size[1], 16, 2, rows)


def palette_with_transparency(seed: int, size: tuple[int, int] = (160, 120)) -> bytes:
    image = gen.picture(seed, size).convert("P", palette=Image.Palette.ADAPTIVE)
    return _save(image, "PNG", transparency=255)


def float_tiff(seed: int, size: tuple[int, int] = (160, 120)) -> bytes:
    grey = np.asarray(gen.picture(seed, size).convert("L"), dtype=np.float32) / 255.0
    return _save(Image.fromarray(grey, "F"), "TIFF")


def i16_tiff(seed: int, size: tuple[int, int] = (160, 120)) -> bytes:
    return _save(Image.open(io.BytesIO(gen.png16_bytes(seed, size))), "TIFF")


def cmyk_tiff(seed: int, size: tuple[int, int] = (160, 120)) -> bytes:
    return _save(gen.picture(seed, size).convert("CMYK"), "TIFF")


def opaque_rgba_png(seed: int, size: tuple[int, int] = (160, 120)) -> bytes:
    return _save(gen.picture(seed, size).convert("RGBA"), "PNG")


def lab_tiff(seed: int, size: tuple[int, int] = (160, 120)) -> bytes:
    from PIL import ImageCms

    rgb = gen.picture(seed, size)
    lab = ImageCms.applyTransform(rgb, ImageCms.buildTransform(
        ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB"), "RGB", "LAB"))
    assert lab is not None
    return _save(lab, "TIFF")


# ---- EXIF, metadata and polyglots ----------------------------------------------------

# Pixels stored so that applying the orientation shows ``picture(seed)`` upright.
_STORE_FOR_ORIENTATION = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def jpeg_with_orientation(seed: int, orientation: int,
                          size: tuple[int, int] = (160, 120)) -> bytes:
    """``picture(seed)`` stored transposed, with the EXIF orientation that undoes it."""
    image = gen.picture(seed, size)
    transpose = _STORE_FOR_ORIENTATION[orientation]
    if transpose is not None:
        image = image.transpose(transpose)
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _save(image, "JPEG", quality=92, exif=exif.tobytes())


def _insert_after_soi(jpeg: bytes, segment: bytes) -> bytes:
    return jpeg[:2] + segment + jpeg[2:]


def _app(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def jpeg_with_garbage_exif(seed: int) -> bytes:
    return _insert_after_soi(gen.jpeg_bytes(seed), _app(0xE1, b"Exif\x00\x00" + b"\xa5" * 200))


def jpeg_with_huge_ifd_count(seed: int) -> bytes:
    tiff = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 0xFFFF) + b"\x00" * 64
    return _insert_after_soi(gen.jpeg_bytes(seed), _app(0xE1, b"Exif\x00\x00" + tiff))


def jpeg_with_orientation_out_of_range(seed: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 77
    return _save(gen.picture(seed), "JPEG", quality=90, exif=exif.tobytes())


def jpeg_with_bad_icc(seed: int) -> bytes:
    return _save(gen.picture(seed), "JPEG", quality=90, icc_profile=b"not a profile" * 20)


def png_with_bad_icc(seed: int) -> bytes:
    data = gen.png_bytes(seed)
    iccp = _png_chunk(b"iCCP", b"junk\x00\x00" + zlib.compress(b"not an icc profile" * 10))
    return data[:33] + iccp + data[33:]


def png_with_bad_crc(seed: int) -> bytes:
    data = bytearray(gen.png_bytes(seed))
    data[29:33] = b"\x00\x00\x00\x00"  # IHDR's CRC
    return bytes(data)


def jpeg_plus_zip(seed: int) -> bytes:
    archive = io.BytesIO()
    import zipfile

    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("evil.html", "<script>alert(1)</script>")
    return gen.jpeg_bytes(seed) + archive.getvalue()


HTML_PAYLOAD = b"<html><script>alert('polyglot')</script></html>"


def jpeg_plus_html(seed: int) -> bytes:
    return gen.jpeg_bytes(seed) + HTML_PAYLOAD


def gif_plus_html(seed: int) -> bytes:
    return _save(gen.picture(seed).convert("P"), "GIF") + HTML_PAYLOAD


def random_bytes(seed: int = 0, size: int = 4096) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()
