"""The weight-free ``descriptor`` image encoder: shape, determinism and robustness."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

from imagegen import picture
from imgsearch.config import Settings
from imgsearch.encode import descriptor
from imgsearch.encode.base import Encoder
from imgsearch.encode.registry import get_encoder


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    return get_encoder("descriptor", Settings())


def reencoded(image: Image.Image, quality: int, scale: float) -> Image.Image:
    size = (round(image.width * scale), round(image.height * scale))
    buffer = io.BytesIO()
    image.resize(size, Image.Resampling.BICUBIC).save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def test_identity_and_shape(encoder: Encoder) -> None:
    assert encoder.model_id == "descriptor-v2"
    assert encoder.modalities == frozenset({"image"})
    assert 256 <= encoder.dim <= 1024
    vectors = encoder.embed_images([picture(1), picture(2, size=(300, 90)), picture(3, (33, 33))])
    assert vectors.shape == (3, encoder.dim) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert np.isfinite(vectors).all()


def test_the_shipped_feature_maps_are_the_ones_their_seeds_make(tmp_path: Path) -> None:
    """A first image query reads the maps from the package instead of drawing them; they
    must be the same numbers, or every vector would change with the file."""
    shipped = descriptor.stored_maps(descriptor.MAPS_FILE)
    seeded = descriptor.seeded_maps()
    assert shipped is not None and shipped.keys() == seeded.keys()
    for name, (proj, phase) in seeded.items():
        np.testing.assert_array_equal(shipped[name][0], proj)
        np.testing.assert_array_equal(shipped[name][1], phase)
    root = Path(descriptor.__file__).parents[3]
    if (root / "pyproject.toml").is_file():  # a checkout: the wheel must carry the file
        assert "encode/maps/*" in (root / "pyproject.toml").read_text()
    short = tmp_path / "short.npy"
    np.save(short, np.load(descriptor.MAPS_FILE)[:-1])
    assert descriptor.stored_maps(short) is None
    assert descriptor.stored_maps(tmp_path / "missing.npy") is None
    (tmp_path / "garbage.npy").write_bytes(b"not an array")
    assert descriptor.stored_maps(tmp_path / "garbage.npy") is None


def test_deterministic_and_independent_of_batching(encoder: Encoder) -> None:
    images = [picture(seed) for seed in range(5)]
    together = encoder.embed_images(images)
    alone = np.stack([encoder.embed_image(im) for im in images])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    np.testing.assert_allclose(encoder.embed_images(images), together, atol=0)


def test_images_are_described_with_one_blas_thread_and_the_setting_is_put_back(
        encoder: Encoder, monkeypatch: pytest.MonkeyPatch) -> None:
    """A query's image and a batch of 64 alike run with one BLAS thread; the process's
    own setting is back afterwards, also when several callers overlap."""
    from imgsearch.encode import descriptor
    from imgsearch.encode.blas import blas_threads, one_blas_thread

    before = blas_threads()
    seen: list[list[int]] = []
    original = descriptor.describe_batch

    def spy(batch: np.ndarray) -> np.ndarray:
        seen.append(blas_threads())
        return original(batch)

    monkeypatch.setattr(descriptor, "describe_batch", spy)
    with one_blas_thread():
        encoder.embed_image(picture(1))  # nested: the outer caller keeps it at one
        assert blas_threads() == [1] * len(before)
    assert blas_threads() == before
    encoder.embed_images([picture(seed % 7) for seed in range(64)])
    assert seen == [[1] * len(before)] * 2
    assert blas_threads() == before


def test_one_blas_thread_holds_after_a_pool_thread_used_it() -> None:
    """A long-lived pool thread setting the count first must not keep others from it."""
    from concurrent.futures import ThreadPoolExecutor

    from imgsearch.encode.blas import blas_threads, one_blas_thread

    def inside() -> list[int]:
        with one_blas_thread():
            return blas_threads()

    before = blas_threads()
    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(inside).result() == [1] * len(before)
        assert blas_threads() == before  # the pool's thread is still alive here
        assert inside() == [1] * len(before)
    assert blas_threads() == before


def test_flat_and_extreme_images_give_unit_vectors(encoder: Encoder) -> None:
    flats = [Image.new("RGB", (64, 48), c) for c in [(0, 0, 0), (255, 255, 255), (200, 30, 30)]]
    vectors = encoder.embed_images(flats)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert vectors[0] @ vectors[1] < 0.9  # black and white are not the same picture


def test_reencoded_copy_is_closer_than_any_other_picture(encoder: Encoder) -> None:
    originals = [picture(seed) for seed in range(10)]
    copies = [reencoded(im, quality=60, scale=0.7) for im in originals]
    scores = encoder.embed_images(copies) @ encoder.embed_images(originals).T
    own = np.diag(scores)
    others = np.where(np.eye(10, dtype=bool), -np.inf, scores).max(axis=1)
    assert np.all(own > others)
    assert own.min() > 0.9


def test_near_duplicates_score_high_and_unrelated_low(encoder: Encoder) -> None:
    original = picture(42, size=(240, 180))
    width, height = original.size
    variants = [
        reencoded(original, quality=50, scale=1.0),
        original.resize((width // 2, height // 2), Image.Resampling.BILINEAR),
        original.crop((width // 20, height // 20, width - width // 20, height - height // 20)),
    ]
    unrelated = [picture(seed, size=(240, 180)) for seed in range(100, 110)]
    base = encoder.embed_image(original)
    near = encoder.embed_images(variants) @ base
    far = encoder.embed_images(unrelated) @ base
    assert near.min() > 0.85
    assert near.min() > far.max() + 0.1


def test_mirror_is_close_but_not_the_same_picture(encoder: Encoder) -> None:
    original = picture(7)
    pair = encoder.embed_images([original, ImageOps.mirror(original)])
    assert 0.9 < pair[0] @ pair[1] < 0.999


def crop60(image: Image.Image) -> Image.Image:
    w, h = image.size
    return image.crop((round(w * 0.2), round(h * 0.2), round(w * 0.8), round(h * 0.8)))


EDITS = {
    "mirror": ImageOps.mirror,
    "grayscale": lambda im: ImageOps.grayscale(im).convert("RGB"),
    "brighter": lambda im: ImageEnhance.Brightness(im).enhance(1.5),
    "darker": lambda im: ImageEnhance.Brightness(im).enhance(0.6),
    "crop60": crop60,
    "rotate7": lambda im: im.rotate(7, Image.Resampling.BICUBIC),
}


def textured(seed: int, size: tuple[int, int] = (240, 180)) -> Image.Image:
    """A generated picture with a seeded stripe texture over part of it."""
    base = np.asarray(picture(seed, size), dtype=np.float32)
    rng = np.random.default_rng(seed + 1000)
    ys, xs = np.mgrid[0 : size[1], 0 : size[0]].astype(np.float32)
    angle, period = rng.uniform(0, np.pi), rng.uniform(6, 20)
    stripes = np.sin((xs * np.cos(angle) + ys * np.sin(angle)) * 2 * np.pi / period)
    mask = (xs > rng.uniform(0, size[0] / 2)) & (ys < rng.uniform(size[1] / 2, size[1]))
    base += (stripes * mask * 35.0)[..., None]
    return Image.fromarray(base.clip(0, 255).astype(np.uint8), "RGB")


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_an_edited_copy_is_nearer_its_original_than_any_other_picture(
        encoder: Encoder, edit: str) -> None:
    originals = [textured(seed) for seed in range(12)]
    copies = [EDITS[edit](im) for im in originals]
    scores = encoder.embed_images(copies) @ encoder.embed_images(originals).T
    own = np.diag(scores)
    others = np.where(np.eye(len(originals), dtype=bool), -np.inf, scores).max(axis=1)
    assert np.all(own > others), (own, others)


def test_mirror_exposure_and_grayscale_keep_copies_well_above_unrelated(
        encoder: Encoder) -> None:
    originals = [textured(seed) for seed in range(16)]
    base = encoder.embed_images(originals)
    unrelated = (base @ base.T)[~np.eye(len(originals), dtype=bool)]
    floors = {"mirror": 0.9, "brighter": 0.6, "darker": 0.6, "grayscale": 0.6}
    for edit, floor in floors.items():
        edited = encoder.embed_images([EDITS[edit](im) for im in originals])
        own = np.sum(base * edited, axis=1)
        assert own.min() > max(floor, float(np.percentile(unrelated, 95))), (edit, own)


def test_unrelated_pictures_score_well_below_copies(encoder: Encoder) -> None:
    vectors = encoder.embed_images([textured(seed) for seed in range(20)])
    unrelated = (vectors @ vectors.T)[~np.eye(20, dtype=bool)]
    assert np.median(unrelated) < 0.6


def test_noise_is_not_near_every_picture(encoder: Encoder) -> None:
    # An image with no layout or structure must not sit at the centre of the space,
    # where its best match would beat what chance gives and "no match" could not be said.
    vectors = encoder.embed_images([picture(seed) for seed in range(32)])
    pairs = (vectors @ vectors.T)[np.triu_indices(32, 1)]
    pixels = np.random.default_rng(0).integers(0, 256, (180, 240, 3), dtype=np.uint8)
    noises = [Image.fromarray(pixels, "RGB"), Image.fromarray(pixels[..., 0], "L").convert("RGB")]
    best = (encoder.embed_images(noises) @ vectors.T).max(axis=1)
    assert best.max() < np.quantile(pairs, 0.95), (best, np.quantile(pairs, 0.95))
