"""Safe decoding through decode_image / decode_file / open_image."""

from __future__ import annotations

import hashlib
import io
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import imagegen as gen
from imgsearch.config import Settings
from imgsearch.errors import (
    BlockedURLError,
    CorruptImageError,
    ImageError,
    ImageTooLargeError,
    ImageTooSmallError,
    InvalidInputError,
    UnsupportedFormatError,
)
from imgsearch.ingest.decode import (
    ALLOWED_FORMATS,
    DecodedImage,
    decode_file,
    decode_image,
    open_image,
)

LIMITS = {"max_pixels": 64_000_000, "min_side": 32, "max_bytes": 50 * 1024 * 1024}


def decode(data: bytes, **changes: object) -> DecodedImage:
    options: dict[str, object] = {**LIMITS, **changes}
    return decode_image(data, **options)  # type: ignore[arg-type]


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float32)


def mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(pixels(a) - pixels(b)).mean())


# ---- accepted images --------------------------------------------------------------


def test_jpeg_decodes_to_rgb_with_size_format_and_hash() -> None:
    data = gen.jpeg_bytes(1)
    decoded = decode(data)
    assert decoded.image.mode == "RGB"
    assert (decoded.width, decoded.height) == (160, 120) == decoded.image.size
    assert decoded.format == "JPEG"
    assert decoded.content_hash == hashlib.sha256(data).hexdigest()


def test_png_is_lossless_and_seeds_give_different_pictures() -> None:
    decoded = decode(gen.png_bytes(3)).image
    assert np.array_equal(pixels(decoded), pixels(gen.picture(3)))
    assert mean_abs_diff(decoded, gen.picture(4)) > 20


@pytest.mark.parametrize("suffix", [".webp", ".bmp", ".tif", ".gif", ".jpeg"])
def test_every_allowed_format_decodes(tmp_path: Path, suffix: str) -> None:
    path = gen.write_image(tmp_path / f"a{suffix}", 5, (96, 64))
    decoded = decode_file(path, **LIMITS)
    assert decoded.format in ALLOWED_FORMATS
    assert decoded.image.mode == "RGB" and decoded.image.size == (96, 64)
    assert mean_abs_diff(decoded.image, gen.picture(5, (96, 64))) < 25


def test_exif_orientation_is_applied() -> None:
    decoded = decode(gen.exif_rotated_jpeg(2))
    assert (decoded.width, decoded.height) == (120, 160) == decoded.image.size
    upright = gen.picture(2).transpose(Image.Transpose.ROTATE_270)
    assert mean_abs_diff(decoded.image, upright) < 8
    assert mean_abs_diff(decoded.image, gen.picture(2).transpose(Image.Transpose.ROTATE_90)) > 20


def test_exif_orientation_with_reduction_reports_original_size() -> None:
    decoded = decode(gen.exif_rotated_jpeg(2, (640, 480)), reduce_to=64)
    assert (decoded.width, decoded.height) == (480, 640)
    width, height = decoded.image.size
    assert height > width and min(width, height) >= 64 and max(width, height) <= 128


def test_reduce_to_shrinks_jpeg_but_keeps_the_original_size() -> None:
    decoded = decode(gen.jpeg_bytes(9, (1024, 768)), reduce_to=256)
    assert (decoded.width, decoded.height) == (1024, 768)
    assert min(decoded.image.size) >= 256 and max(decoded.image.size) <= 512
    full = decode(gen.jpeg_bytes(9, (1024, 768))).image.resize(decoded.image.size)
    assert mean_abs_diff(decoded.image, full) < 10


def test_a_query_decode_keeps_the_longer_side_its_features_need() -> None:
    """A query image is decoded at the smallest JPEG scale that keeps its shorter side
    for the encoder and its longer side for local features: a 1280 x 800 JPEG at half
    scale, where the ingest rule (shorter side 512) must decode it in full."""
    data = gen.jpeg_bytes(9, (1280, 800))
    query = decode(data, reduce_to=160, longer_at_least=512)
    assert (query.width, query.height) == (1280, 800)
    assert query.image.size == (640, 400)
    assert decode(data, reduce_to=512).image.size == (1024, 640)
    square = decode(gen.jpeg_bytes(9, (1600, 1600)), reduce_to=160, longer_at_least=512)
    assert square.image.size == (800, 800)  # 1/4 would leave 400 < 512
    wide = decode(gen.png_bytes(9, (3000, 600)), reduce_to=160, longer_at_least=512)
    assert max(wide.image.size) == 1024  # at most twice the longer side asked for


def test_reduce_to_shrinks_png_too() -> None:
    decoded = decode(gen.png_bytes(9, (900, 300)), reduce_to=100)
    assert (decoded.width, decoded.height) == (900, 300)
    assert max(decoded.image.size) <= 200


def test_cmyk_becomes_rgb_with_the_right_colours() -> None:
    decoded = decode(gen.cmyk_jpeg(4)).image
    assert decoded.mode == "RGB"
    assert mean_abs_diff(decoded, gen.picture(4)) < 12


def test_sixteen_bit_is_scaled_not_clipped() -> None:
    decoded = pixels(decode(gen.png16_bytes(6)).image)[..., 0]
    assert decoded.min() <= 2 and decoded.max() >= 253  # the full range survives
    grey = pixels(gen.picture(6).convert("L"))
    assert np.corrcoef(decoded.ravel(), grey.ravel())[0, 1] > 0.99


def test_animated_gif_gives_its_first_frame() -> None:
    decoded = decode(gen.animated_gif(10)).image
    assert mean_abs_diff(decoded, gen.picture(10)) < mean_abs_diff(decoded, gen.picture(11))


@pytest.mark.parametrize("make", [gen.rgba_png, gen.la_png])
def test_transparency_is_composited_over_white(make: object) -> None:
    decoded = pixels(decode(make(8)).image)  # type: ignore[operator]
    assert (decoded[:, :80] == 255).all()
    assert decoded[:, 80:].mean() < 250


@pytest.mark.parametrize("data", [gen.palette_png(1), gen.onebit_png(1)])
def test_palette_and_one_bit_become_rgb(data: bytes) -> None:
    decoded = decode(data).image
    assert decoded.mode == "RGB" and decoded.size == (160, 120)
    assert len(np.unique(pixels(decoded))) > 1


def test_odd_in_memory_modes_become_rgb() -> None:
    base = gen.picture(2, (64, 48))
    for image in (base.convert("I"), base.convert("F"), base.convert("YCbCr"),
                  base.convert("LA"), Image.fromarray(np.full((48, 64), 40000, np.int32))):
        decoded = open_image(image, Settings())
        assert decoded.image.mode == "RGB" and decoded.image.size == (64, 48)
        assert 0 < pixels(decoded.image).mean() < 255


# ---- refused images ---------------------------------------------------------------


def test_decompression_bomb_is_refused_before_decoding() -> None:
    with pytest.raises(ImageTooLargeError, match="<upload>"):
        decode(gen.decompression_bomb_png())


def test_pixel_cap_is_checked_from_the_header() -> None:
    with pytest.raises(ImageTooLargeError, match="max_pixels") as caught:
        decode(gen.decompression_bomb_png(2000), max_pixels=1_000_000, source="bomb.png")
    assert "bomb.png" in caught.value.message and "2000x2000" in caught.value.message


def test_pillow_bomb_warning_never_escapes_as_something_else() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.raises(ImageTooLargeError):
            decode(gen.decompression_bomb_png(10000), max_pixels=500_000_000)


def test_byte_cap() -> None:
    with pytest.raises(ImageTooLargeError, match="bytes"):
        decode(gen.jpeg_bytes(1), max_bytes=1000)


def test_too_small() -> None:
    with pytest.raises(ImageTooSmallError, match="10x10") as caught:
        decode(gen.tiny_png(), source="tiny.png")
    assert "tiny.png" in caught.value.message and "32" in caught.value.message


@pytest.mark.parametrize("data", [gen.truncated_jpeg(), gen.zero_bytes(),
                                  bytes(range(256)) * 8, gen.png_bytes(1)[:200]])
def test_damaged_data_is_corrupt(data: bytes) -> None:
    with pytest.raises(CorruptImageError, match=r"photo\.jpg"):
        decode(data, source="photo.jpg")


@pytest.mark.parametrize(("data", "name"), [
    (gen.text_file(), "text"), (gen.svg_bytes(), "SVG"), (b"%PDF-1.4\n%\xe2\xe3\n1 0 obj", "PDF"),
    (b"<!DOCTYPE html><html><body>hi</body></html>", "HTML"),
])
def test_other_formats_are_unsupported_and_named(data: bytes, name: str) -> None:
    with pytest.raises(UnsupportedFormatError, match=name):
        decode(data)


def test_format_allow_list_is_enforced_on_content() -> None:
    buffer = io.BytesIO()
    gen.picture(1).save(buffer, format="ICO")
    with pytest.raises(UnsupportedFormatError, match="ICO"):
        decode(buffer.getvalue())


FUZZ_BASES = [gen.jpeg_bytes(0, (64, 48)), gen.png_bytes(0, (64, 48)),
              gen.animated_gif(0, (64, 48)), b""]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600), st.integers(0, 3))
def test_arbitrary_bytes_only_ever_raise_image_errors(noise: bytes, which: int) -> None:
    # Damaged versions of real files reach deep into the decoders, not just the sniffing.
    base = FUZZ_BASES[which]
    cut = len(noise) % (len(base) + 1)
    data = base[:cut] + noise + base[cut + len(noise):]
    try:
        decoded = decode(data)
    except ImageError:
        return
    assert decoded.image.mode == "RGB"


# ---- files and the open_image front door -------------------------------------------


def test_decode_file_caps_the_read_and_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    path.write_bytes(gen.png_bytes(1, (400, 300)))
    with pytest.raises(ImageTooLargeError, match=r"big\.png"):
        decode_file(path, max_pixels=10**8, min_side=1, max_bytes=1000)


def test_decode_file_missing(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="no such file"):
        decode_file(tmp_path / "nope.jpg", **LIMITS)


def test_open_image_accepts_paths_bytes_urls_and_pil(tmp_path: Path) -> None:
    path = gen.write_image(tmp_path / "x.jpg", 3)
    settings_ = Settings()
    by_path = open_image(str(path), settings_)
    assert open_image(path, settings_).content_hash == by_path.content_hash
    assert open_image(path.read_bytes(), settings_).content_hash == by_path.content_hash
    asked: list[str] = []

    def fetch(url: str) -> bytes:
        asked.append(url)
        return path.read_bytes()

    by_url = open_image("https://cdn.example/x.jpg", settings_, fetch=fetch)
    assert asked == ["https://cdn.example/x.jpg"]
    assert by_url.content_hash == by_path.content_hash
    rgba = gen.picture(3).convert("RGBA")
    assert open_image(rgba, settings_, reduce_to=32).image.mode == "RGB"
    assert rgba.mode == "RGBA"  # the caller's image is left alone


def test_open_image_refuses_other_schemes_and_types() -> None:
    with pytest.raises(BlockedURLError):
        open_image("file:///etc/passwd", Settings())
    with pytest.raises(InvalidInputError):
        open_image(42, Settings())  # type: ignore[arg-type]
    with pytest.raises(ImageTooSmallError):
        open_image(Image.new("RGB", (8, 8)), Settings())


# ---- decode-cost bombs ---------------------------------------------------------------


def test_progressive_jpeg_with_thousands_of_scans_is_refused_before_decoding() -> None:
    with pytest.raises(ImageTooLargeError, match="5000 scans, over the limit of 100"):
        decode(gen.progressive_scan_bomb(5000))


def test_ordinary_progressive_jpegs_and_a_few_extra_scans_still_decode() -> None:
    ordinary = io.BytesIO()
    gen.picture(1, (320, 240)).save(ordinary, "JPEG", quality=90, progressive=True)
    assert decode(ordinary.getvalue()).image.size == (320, 240)
    assert decode(gen.progressive_scan_bomb(90)).image.size == (64, 64)


def test_jpeg_whose_data_does_not_cover_its_frame_is_truncated() -> None:
    with pytest.raises(CorruptImageError, match="truncated") as caught:
        decode(gen.jpeg_claiming_more_pixels((7000, 7000)))
    assert "7000x7000" in caught.value.message
    # the same trick at a size the data does cover is an ordinary picture
    assert decode(gen.jpeg_claiming_more_pixels((64, 64))).image.size == (64, 64)


def test_jpeg_marker_walk_counts_scans_and_data() -> None:
    from imgsearch.ingest.jpeg import jpeg_layout

    baseline = jpeg_layout(gen.jpeg_bytes(1, (320, 240)))
    assert (baseline.scans, baseline.width, baseline.height) == (1, 320, 240)
    assert baseline.covers_frame() and baseline.entropy_bytes > 1000
    assert jpeg_layout(gen.progressive_scan_bomb(300)).scans == 300
    assert jpeg_layout(b"\xff\xd8\xff").scans == 0  # cut short: nothing to count



@pytest.mark.parametrize("options", [{"optimize": True}, {"progressive": True, "optimize": True}])
def test_flat_jpegs_that_compress_best_are_not_taken_for_truncated(
        options: dict[str, object]) -> None:
    # one flat colour with optimised Huffman tables: about 2 bits per 8x8 block, the
    # least data a real frame of this size holds
    for mode, colour in (("L", 0), ("RGB", (255, 255, 255))):
        buffer = io.BytesIO()
        Image.new(mode, (1024, 1024), colour).save(buffer, "JPEG", **options)
        assert decode(buffer.getvalue()).width == 1024
