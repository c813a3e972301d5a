"""The weight-free ``descriptor`` image encoder: shape, determinism and robustness."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from imagegen import picture
from imgsearch.config import Settings
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
    assert encoder.model_id == "descriptor-v1"
    assert encoder.modalities == frozenset({"image"})
    assert 256 <= encoder.dim <= 640
    vectors = encoder.embed_images([picture(1), picture(2, size=(300, 90)), picture(3, (33, 33))])
    assert vectors.shape == (3, encoder.dim) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert np.isfinite(vectors).all()


def test_deterministic_and_independent_of_batching(encoder: Encoder) -> None:
    images = [picture(seed) for seed in range(5)]
    together = encoder.embed_images(images)
    alone = np.stack([encoder.embed_image(im) for im in images])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    np.testing.assert_allclose(encoder.embed_images(images), together, atol=0)


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


def test_mirror_is_a_variant_not_a_copy(encoder: Encoder) -> None:
    original = picture(7)
    pair = encoder.embed_images([original, ImageOps.mirror(original)])
    assert pair[0] @ pair[1] < 0.999
