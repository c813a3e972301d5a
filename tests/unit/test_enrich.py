"""Perceptual hash, thumbnails and dominant colours, through their public functions."""

from __future__ import annotations

import io
from pathlib import Path

import imagehash
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps
from skimage import data

from imgsearch.enrich.colors import (
    BASIC_COLORS,
    COLOR_SYNONYMS,
    DominantColor,
    dominant_colors,
    normalize_color_name,
)
from imgsearch.enrich.phash import (
    hamming,
    hash_to_signed,
    hash_to_unsigned,
    hashes_to_uint64,
    perceptual_hash,
)
from imgsearch.enrich.thumbnails import (
    make_thumbnail,
    remove_thumbnail,
    thumbnail_relpath,
    write_thumbnail,
)
from imgsearch.errors import InvalidInputError

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _scene(seed: int, size: tuple[int, int] = (384, 256)) -> Image.Image:
    """A photo-like image: smooth gradient plus a few random shapes."""
    rng = np.random.default_rng(seed)
    w, h = size
    x = np.linspace(0, 1, w)[None, :, None]
    y = np.linspace(0, 1, h)[:, None, None]
    base = (rng.random(3) * 255 * x + rng.random(3) * 255 * y) / 2
    image = Image.fromarray(np.broadcast_to(base, (h, w, 3)).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x0, y0 = int(rng.integers(0, w - 40)), int(rng.integers(0, h - 40))
        x1, y1 = x0 + int(rng.integers(30, w // 2)), y0 + int(rng.integers(30, h // 2))
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        draw.ellipse([x0, y0, x1, y1], fill=fill)
    return image


def _jpeg_roundtrip(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def _names(image: Image.Image, max_colors: int = 3, min_fraction: float = 0.08) -> list[str]:
    colors = dominant_colors(image, max_colors=max_colors, min_fraction=min_fraction)
    return [c.name for c in colors]


# --- perceptual hash ---------------------------------------------------------------


def test_phash_is_signed_int64_and_deterministic() -> None:
    image = _scene(1)
    h = perceptual_hash(image)
    assert isinstance(h, int)
    assert INT64_MIN <= h <= INT64_MAX
    assert perceptual_hash(image.copy()) == h


def test_phash_bit_order_matches_imagehash_hex() -> None:
    image = _scene(2)
    assert f"{hash_to_unsigned(perceptual_hash(image)):016x}" == str(imagehash.phash(image))


def _flat_and_graded() -> list[Image.Image]:
    """Pictures whose DCT has exact zeros tied at the median: flat, evenly graded in one
    direction, left-right symmetric."""
    ramp = np.broadcast_to(np.linspace(0, 255, 300)[None, :, None], (200, 300, 3))
    symmetric = np.concatenate([ramp[:, :150], ramp[:, :150][:, ::-1]], axis=1)
    return [Image.new("RGB", (300, 200), colour) for colour in
            ((0, 0, 0), (255, 255, 255), (128, 30, 200))] + [
        Image.fromarray(ramp.astype(np.uint8)),
        Image.fromarray(ramp.astype(np.uint8)).rotate(90, expand=True),
        Image.fromarray(symmetric.astype(np.uint8))]


def test_phash_bits_are_imagehash_bits_without_scipy() -> None:
    # the DCT is computed here in numpy; every bit must still be imagehash's (after the
    # same box pre-shrink), ties at the median included
    pictures = [_scene(seed) for seed in range(20)] + _flat_and_graded() + [
        _scene(seed, (1200, 900)) for seed in range(3)]
    pictures += [ImageOps.mirror(p) for p in pictures]
    pictures.append(Image.fromarray(data.astronaut()))
    for picture in pictures:
        factor = min(picture.size) // 256
        reference = picture.reduce(factor) if factor >= 2 else picture
        assert f"{hash_to_unsigned(perceptual_hash(picture)):016x}" == \
            str(imagehash.phash(reference)), picture.size


def test_phash_survives_jpeg_and_resize() -> None:
    for seed in range(5):
        image = _scene(seed)
        h = perceptual_hash(image)
        assert hamming(h, perceptual_hash(_jpeg_roundtrip(image, 40))) <= 6
        assert hamming(h, perceptual_hash(image.resize((192, 128)))) <= 6
        assert hamming(h, perceptual_hash(image.resize((1536, 1024)))) <= 6


def test_phash_far_apart_for_different_images() -> None:
    hashes = [perceptual_hash(_scene(seed)) for seed in range(10, 16)]
    distances = [hamming(a, b) for i, a in enumerate(hashes) for b in hashes[i + 1 :]]
    assert min(distances) >= 12
    assert np.mean(distances) >= 20


def test_signed_unsigned_round_trip() -> None:
    for unsigned in (0, 1, 2**63 - 1, 2**63, 2**64 - 1, 0xDEADBEEFCAFEBABE):
        signed = hash_to_signed(unsigned)
        assert INT64_MIN <= signed <= INT64_MAX
        assert hash_to_unsigned(signed) == unsigned
        assert hash_to_signed(signed) == signed
    assert hash_to_signed(2**64 - 1) == -1
    assert hash_to_unsigned(-1) == 2**64 - 1


def test_hamming_counts_bits_across_forms() -> None:
    assert hamming(0, 0) == 0
    assert hamming(0, -1) == 64
    assert hamming(0, 2**64 - 1) == 64
    assert hamming(-1, 2**64 - 1) == 0
    assert hamming(0b1011, 0b0001) == 2


def test_out_of_range_hash_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="outside 64 bits"):
        hash_to_unsigned(2**64)
    with pytest.raises(InvalidInputError):
        hamming(0, -(2**63) - 1)


def test_hashes_to_uint64_keeps_bits() -> None:
    hashes = [0, -1, INT64_MIN, INT64_MAX, 12345]
    array = hashes_to_uint64(hashes)
    assert array.dtype == np.uint64
    assert [int(v) for v in array] == [hash_to_unsigned(h) for h in hashes]
    mixed = hashes_to_uint64([2**64 - 1, -2, 7])
    assert [int(v) for v in mixed] == [2**64 - 1, 2**64 - 2, 7]
    assert hashes_to_uint64([]).shape == (0,)
    # Hamming on the byte view agrees with the integer form (what a binary index sees).
    a, b = perceptual_hash(_scene(3)), perceptual_hash(_scene(4))
    bytes_a, bytes_b = (hashes_to_uint64([h]).view(np.uint8) for h in (a, b))
    assert int(np.unpackbits(bytes_a ^ bytes_b).sum()) == hamming(a, b)


# --- thumbnails --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "expected"),
    [((1000, 500), (256, 128)), ((300, 900), (85, 256)), ((256, 256), (256, 256))],
)
def test_thumbnail_bounds_and_aspect(size: tuple[int, int], expected: tuple[int, int]) -> None:
    thumb = Image.open(io.BytesIO(make_thumbnail(_scene(5, size), 256)))
    assert thumb.format == "JPEG"
    assert thumb.mode == "RGB"
    assert thumb.size == expected


def test_thumbnail_never_upscales() -> None:
    thumb = Image.open(io.BytesIO(make_thumbnail(_scene(6, (120, 80)), 256)))
    assert thumb.size == (120, 80)


def test_thumbnail_of_transparent_image_is_flattened_on_white() -> None:
    rgba = Image.new("RGBA", (400, 400), (0, 0, 0, 0))
    thumb = Image.open(io.BytesIO(make_thumbnail(rgba, 100))).convert("RGB")
    assert thumb.size == (100, 100)
    assert min(thumb.getpixel((50, 50))) >= 250  # type: ignore[arg-type]


def test_thumbnail_rejects_bad_size() -> None:
    with pytest.raises(InvalidInputError, match="thumbnail size"):
        make_thumbnail(_scene(7), 0)


def test_thumbnail_relpath_is_stable_and_spread() -> None:
    assert thumbnail_relpath(12345) == thumbnail_relpath(12345)
    path = thumbnail_relpath(12345)
    folder, bucket, name = path.split("/")
    assert folder == "thumbnails"
    assert name == "12345.jpg"
    assert len(bucket) == 2
    buckets = {thumbnail_relpath(key).split("/")[1] for key in range(5000)}
    assert len(buckets) == 256


def test_write_and_remove_thumbnail(tmp_path: Path) -> None:
    data_bytes = make_thumbnail(_scene(8), 64)
    relpath = write_thumbnail(tmp_path, 42, data_bytes)
    assert relpath == thumbnail_relpath(42)
    assert (tmp_path / relpath).read_bytes() == data_bytes
    # Overwrite in place, leaving nothing but the final file behind.
    write_thumbnail(tmp_path, 42, b"second")
    assert (tmp_path / relpath).read_bytes() == b"second"
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert files == [tmp_path / relpath]

    remove_thumbnail(tmp_path, relpath)
    assert not (tmp_path / relpath).exists()
    remove_thumbnail(tmp_path, relpath)  # already gone: fine


def test_remove_thumbnail_refuses_paths_outside_thumbnails(tmp_path: Path) -> None:
    victim = tmp_path / "catalog.sqlite"
    victim.write_bytes(b"keep")
    for bad in ("catalog.sqlite", "thumbnails/../catalog.sqlite", str(victim)):
        with pytest.raises(InvalidInputError):
            remove_thumbnail(tmp_path, bad)
    assert victim.read_bytes() == b"keep"


# --- colour names ------------------------------------------------------------------


def test_vocabulary_is_consistent() -> None:
    assert 10 <= len(BASIC_COLORS) <= 14
    assert len(COLOR_SYNONYMS) >= 60
    assert set(COLOR_SYNONYMS.values()) <= set(BASIC_COLORS)
    assert not set(COLOR_SYNONYMS) & set(BASIC_COLORS)


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("red", "red"),
        ("Reds", "red"),
        ("navy", "blue"),
        ("Crimson", "red"),
        ("grey", "gray"),
        ("greys", "gray"),
        ("silver", "gray"),
        ("violet", "purple"),
        ("navy blue", "blue"),
        ("light-grey", "gray"),
        ("Off-White", "white"),
        ("reddish", "red"),
        ("bluish", "blue"),
        ("  Olive ", "green"),
        ("shoe", None),
        ("", None),
        ("dark", None),
    ],
)
def test_normalize_color_name(word: str, expected: str | None) -> None:
    assert normalize_color_name(word) == expected


# --- dominant colours --------------------------------------------------------------


def test_product_on_white_reports_the_product() -> None:
    image = Image.new("RGB", (300, 200), "white")
    ImageDraw.Draw(image).rectangle([100, 50, 200, 150], fill=(220, 20, 30))
    assert _names(image) == ["red"]
    (red,) = dominant_colors(_jpeg_roundtrip(image, 80))
    assert red.name == "red"
    assert red.fraction > 0.9


def test_white_inside_the_product_still_counts() -> None:
    image = Image.new("RGB", (300, 300), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle([40, 40, 260, 260], fill=(30, 60, 200))
    draw.rectangle([100, 100, 200, 200], fill="white")
    colors = dominant_colors(image)
    assert [c.name for c in colors] == ["blue", "white"]
    assert colors[1].fraction == pytest.approx(101 * 101 / 221**2, abs=0.05)


def _snake_in_a_product(gate_open: bool) -> Image.Image:
    """A red product on white (64x64, the size the colours are read at), with a white
    corridor winding through it in 11 rows joined at alternate ends; ``gate_open``
    joins its first row to the backdrop."""
    pixels = np.full((64, 64, 3), 255, np.uint8)
    pixels[4:60, 4:60] = (220, 20, 30)
    for k, row in enumerate(range(8, 52, 4)):
        pixels[row, 8:56] = 255
        column = 55 if k % 2 == 0 else 8
        pixels[row:row + 5, column] = 255  # down to the next row
    pixels[4:8, 8] = 255 if gate_open else (220, 20, 30)
    return Image.fromarray(pixels)


def test_a_winding_path_to_the_backdrop_is_backdrop() -> None:
    # white joined to the border however many turns its path takes is backdrop; the
    # same corridor closed off is white inside the product, and counts
    assert _names(_snake_in_a_product(gate_open=True)) == ["red"]
    colors = dominant_colors(_snake_in_a_product(gate_open=False))
    assert [c.name for c in colors] == ["red", "white"]
    assert colors[1].fraction == pytest.approx(0.17, abs=0.03)


def test_all_white_image_is_white() -> None:
    assert _names(Image.new("RGB", (200, 200), (250, 250, 250))) == ["white"]


def test_transparent_background_is_ignored() -> None:
    image = Image.new("RGBA", (200, 200), (0, 0, 0, 0))
    ImageDraw.Draw(image).ellipse([50, 50, 150, 150], fill=(0, 160, 0, 255))
    assert _names(image) == ["green"]


def test_half_blue_half_yellow() -> None:
    pixels = np.zeros((200, 300, 3), np.uint8)
    pixels[:, :150] = (30, 60, 200)
    pixels[:, 150:] = (250, 220, 20)
    colors = dominant_colors(Image.fromarray(pixels))
    assert {c.name for c in colors} == {"blue", "yellow"}
    assert all(c.fraction == pytest.approx(0.5, abs=0.03) for c in colors)
    assert all(isinstance(c, DominantColor) and len(c.hex) == 7 for c in colors)


def test_grey_gradient_is_achromatic() -> None:
    ramp = np.tile(np.linspace(0, 255, 300).astype(np.uint8), (200, 1))
    for image in (Image.fromarray(ramp), Image.fromarray(ramp).convert("RGB")):
        names = _names(image, max_colors=12, min_fraction=0.0)
        assert set(names) == {"black", "gray", "white"}


@pytest.mark.parametrize(
    ("rgb", "expected"),
    [
        ((120, 72, 40), "brown"),
        ((0, 0, 128), "blue"),  # navy
        ((220, 20, 60), "red"),  # crimson
        ((128, 0, 32), "red"),  # burgundy
        ((0, 128, 128), "blue"),  # teal
        ((128, 128, 0), "green"),  # olive
        ((255, 215, 0), "yellow"),  # gold
        ((255, 0, 255), "pink"),  # magenta
        ((128, 0, 128), "purple"),
        ((255, 140, 0), "orange"),
        ((210, 180, 140), "beige"),  # tan
        ((192, 192, 192), "gray"),  # silver
        ((20, 20, 20), "black"),
    ],
)
def test_flat_colours_get_their_names(rgb: tuple[int, int, int], expected: str) -> None:
    (color,) = dominant_colors(Image.new("RGB", (120, 80), rgb))
    assert color.name == expected
    assert color.fraction == 1.0
    assert color.hex == "#{:02x}{:02x}{:02x}".format(*rgb)


def test_limits_are_applied_and_result_sorted() -> None:
    pixels = np.zeros((100, 100, 3), np.uint8)
    pixels[:, :50] = (220, 20, 30)
    pixels[:, 50:80] = (30, 60, 200)
    pixels[:, 80:95] = (40, 160, 60)
    pixels[:, 95:] = (250, 220, 20)
    image = Image.fromarray(pixels)
    everything = dominant_colors(image, max_colors=12, min_fraction=0.0)
    assert [c.name for c in everything] == ["red", "blue", "green", "yellow"]
    fractions = [c.fraction for c in everything]
    assert fractions == sorted(fractions, reverse=True)
    assert sum(c.fraction for c in everything) == pytest.approx(1.0, abs=1e-3)
    assert _names(image, max_colors=2) == ["red", "blue"]
    assert _names(image, min_fraction=0.1) == ["red", "blue", "green"]
    with pytest.raises(InvalidInputError, match="max_colors"):
        dominant_colors(image, max_colors=0)
    with pytest.raises(InvalidInputError, match="min_fraction"):
        dominant_colors(image, min_fraction=1.5)


def test_real_photos_get_plausible_colours() -> None:
    coffee = dominant_colors(Image.fromarray(data.coffee()))  # red cup on a wooden table
    assert coffee[0].name == "brown"
    assert "red" in [c.name for c in coffee]
    cat = _names(Image.fromarray(data.chelsea()))  # a tabby cat
    assert cat[0] == "brown"
    assert not {"blue", "green", "purple", "pink"} & set(cat)
    astronaut = _names(Image.fromarray(data.astronaut()))  # orange suit, grey backdrop
    assert {"orange", "gray"} <= set(astronaut)


def test_dominant_colors_is_deterministic() -> None:
    image = _scene(9)
    assert dominant_colors(image) == dominant_colors(image.copy())
