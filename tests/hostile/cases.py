"""The tables of hostile and odd image files, shared by the HTTP and CLI modules.

``REFUSED``: (name, make, HTTP status, error code) -- the same code is the failure code
in an ingest report. ``SAME_PICTURE``: encodings of a picture that must be found as
it. ``ACCEPTED``: odd but valid files that must be accepted.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable

import imagegen as gen
from hostile import files as F

REFUSED: list[tuple[str, Callable[[], bytes], int, str]] = [
    # B1-B3: empty, random, text, truncated
    ("empty", gen.zero_bytes, 422, "corrupt_image"),
    ("random-bytes", F.random_bytes, 422, "corrupt_image"),
    ("text-named-jpg", gen.text_file, 415, "unsupported_format"),
    ("html", lambda: b"<!DOCTYPE html><html><body>x</body></html>", 415,
     "unsupported_format"),
    ("truncated-jpeg", gen.truncated_jpeg, 422, "corrupt_image"),
    ("truncated-png", lambda: gen.png_bytes(1)[:300], 422, "corrupt_image"),
    ("png-signature-and-header-only", lambda: gen.png_bytes(1)[:33], 422, "corrupt_image"),
    ("jpeg-start-marker-only", lambda: b"\xff\xd8\xff", 422, "corrupt_image"),
    ("png-bad-header-crc", lambda: F.png_with_bad_crc(1), 422, "corrupt_image"),
    ("png-zero-size", lambda: F.png_claiming(0, 0), 422, "corrupt_image"),
    ("too-small", gen.tiny_png, 422, "image_too_small"),
    # B4-B6: pixel bombs and header claims
    ("bomb-png-30000", lambda: F.pixel_bomb_png(30000), 413, "image_too_large"),
    ("bomb-png-9000-between-caps", lambda: F.pixel_bomb_png(9000), 413, "image_too_large"),
    ("png-claims-65535", lambda: F.png_claiming(65535, 65535), 413, "image_too_large"),
    ("jpeg-claims-65500", lambda: F.jpeg_claiming(65500, 65500), 413, "image_too_large"),
    ("gif-claims-65535", lambda: F.gif_claiming(65535, 65535), 413, "image_too_large"),
    ("bmp-claims-65535", lambda: F.bmp_claiming(65535, 65535), 413, "image_too_large"),
    ("tiff-claims-100000", lambda: F.tiff_claiming(100_000, 100_000), 413, "image_too_large"),
    ("webp-claims-16383", lambda: F.webp_claiming(16383, 16383), 413, "image_too_large"),
    ("gif-frame-outside-canvas", F.growing_canvas_gif, 413, "image_too_large"),
    # B8: formats outside the allow-list
    ("psd", F.psd_header, 415, "unsupported_format"),
    ("eps", F.eps_file, 415, "unsupported_format"),
    ("eps-by-pillow", lambda: F.written_by_pillow("EPS"), 415, "unsupported_format"),
    ("pdf", F.pdf_file, 415, "unsupported_format"),
    ("ico", lambda: F.written_by_pillow("ICO"), 415, "unsupported_format"),
    ("jpeg2000", lambda: F.written_by_pillow("JPEG2000"), 415, "unsupported_format"),
    ("xbm", lambda: F.written_by_pillow("XBM", "1"), 415, "unsupported_format"),
    ("qoi", lambda: F.written_by_pillow("QOI"), 415, "unsupported_format"),
    ("fits", F.fits_file, 422, "corrupt_image"),
    ("mcidas", F.mcidas_file, 422, "corrupt_image"),
    ("tga", lambda: F.written_by_pillow("TGA"), 422, "corrupt_image"),
    ("dds", lambda: F.written_by_pillow("DDS", "RGBA"), 422, "corrupt_image"),
    ("pcx", lambda: F.written_by_pillow("PCX"), 422, "corrupt_image"),
    ("ppm", lambda: F.written_by_pillow("PPM"), 422, "corrupt_image"),
    ("sgi", lambda: F.written_by_pillow("SGI"), 422, "corrupt_image"),
    ("im", lambda: F.written_by_pillow("IM"), 422, "corrupt_image"),
    ("spider", lambda: F.written_by_pillow("SPIDER", "F"), 422, "corrupt_image"),
    ("blp", lambda: F.written_by_pillow("BLP", "P"), 422, "corrupt_image"),
    ("msp", lambda: F.written_by_pillow("MSP", "1"), 422, "corrupt_image"),
    ("palm", lambda: F.written_by_pillow("PALM", "1"), 422, "corrupt_image"),
    # B12: HEIC and AVIF with their decoders: same limits; and containers that are not images
    ("heic-empty-container", lambda: b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic"
     + bytes(64), 422, "corrupt_image"),
    ("heic-claims-60000", lambda: gen.claiming_size(gen.heif_bytes(7, F.SMALL), 60000, 60000),
     413, "image_too_large"),
    ("avif-claims-60000", lambda: gen.claiming_size(gen.heif_bytes(7, F.SMALL, "AVIF"), 60000,
                                                    60000), 413, "image_too_large"),
    ("heic-truncated", lambda: gen.heif_bytes(7, (320, 240))[:-200], 422, "corrupt_image"),
    ("avif-truncated", lambda: gen.heif_bytes(7, (320, 240), "AVIF")[:-200], 422,
     "corrupt_image"),
    ("mp4", lambda: b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + bytes(64), 415,
     "unsupported_format"),
    ("zip", lambda: F.jpeg_plus_zip(1)[len(gen.jpeg_bytes(1)):], 415, "unsupported_format"),
    ("gzip", lambda: gzip.compress(gen.jpeg_bytes(1)), 415, "unsupported_format"),
    # B13: SVG, including a network reference and a recursive <use>
    ("svg", gen.svg_bytes, 415, "unsupported_format"),
    ("svg-metadata-url-recursive-use", F.svg_with_network_reference, 415,
     "unsupported_format"),
]


# Colour-preserving encodings of a known item's picture: found as that item.
SAME_PICTURE: list[tuple[str, Callable[[int], bytes]]] = [
    ("cmyk-jpeg", gen.cmyk_jpeg),
    ("cmyk-tiff", F.cmyk_tiff),
    ("palette-with-trns", F.palette_with_transparency),
    ("rgb-16-bit-png", F.png_16bit_rgb),
    ("opaque-rgba-png", F.opaque_rgba_png),
    ("lab-tiff", F.lab_tiff),
    ("jpeg-garbage-exif", F.jpeg_with_garbage_exif),
    ("jpeg-exif-ifd-count-65535", F.jpeg_with_huge_ifd_count),
    ("jpeg-orientation-77", F.jpeg_with_orientation_out_of_range),
    ("jpeg-bad-icc", F.jpeg_with_bad_icc),
    ("png-bad-icc", F.png_with_bad_icc),
    ("jpeg-plus-zip", F.jpeg_plus_zip),
    ("jpeg-plus-html", F.jpeg_plus_html),
    ("webp", lambda seed: F.encoded(seed, "WEBP", quality=90)),
    ("bmp", lambda seed: F.encoded(seed, "BMP")),
    ("heic", gen.heif_bytes),
    ("avif", lambda seed: gen.heif_bytes(seed, fmt="AVIF")),
    *[(f"exif-orientation-{o}", lambda seed, o=o: F.jpeg_with_orientation(seed, o))
      for o in range(1, 9)],
]
# Modes that lose colour or alpha: accepted, stored, but not necessarily the same look.
ACCEPTED: list[tuple[str, Callable[[int], bytes]]] = [
    ("grey-alpha-png", gen.la_png),
    ("one-bit-png", gen.onebit_png),
    ("i16-png", gen.png16_bytes),
    ("i16-tiff", F.i16_tiff),
    ("float-tiff", F.float_tiff),
    ("gif-plus-html", F.gif_plus_html),
    ("gif-1000-frames", lambda seed: F.many_frame_gif(1000, (32, 32))),
    ("apng-300-frames", lambda seed: F.many_frame_apng(300)),
    ("webp-300-frames", lambda seed: F.many_frame_webp(300)),
    ("bmp-top-down", lambda seed: F.bmp_claiming(64, -48)),
]
