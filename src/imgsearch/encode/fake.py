"""``fake``: a deterministic, instant encoder for tests.

Images become a tiny thumbnail projected by a fixed seeded matrix, so the same pixels
give the same vector and different pictures give different ones. Texts become a hashed
bag of words in the same space, so texts that share words are similar.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from imgsearch.encode.base import Encoder

FAKE_DIM = 32
_THUMB = 8
_WORD = re.compile(r"\w+")


def _projection(dim: int) -> NDArray[np.float32]:
    # RandomState's stream is frozen across numpy versions, so vectors stay reproducible.
    rs = np.random.RandomState(1234)
    # One extra row for a constant input, so plain images of different shades still differ.
    return rs.standard_normal((_THUMB * _THUMB * 3 + 1, dim)).astype(np.float32)


def _word_slot(word: str, dim: int) -> tuple[int, float]:
    digest = hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest()
    value = int.from_bytes(digest, "little")
    return value % dim, 1.0 if (value >> 32) & 1 else -1.0


class FakeEncoder(Encoder):
    """Deterministic image and text vectors with no model at all."""

    name = "fake"
    model_id = "fake-v1"
    modalities = frozenset({"image", "text"})
    image_side = 32

    def __init__(self, dim: int = FAKE_DIM, batch_size: int = 32) -> None:
        self.dim = dim
        self.batch_size = batch_size
        self._proj = _projection(dim)

    def _embed_image_batch(self, images: Sequence[Image.Image]) -> NDArray[np.float32]:
        thumbs = np.stack(
            [
                np.asarray(
                    im.convert("RGB").resize((_THUMB, _THUMB), Image.Resampling.BILINEAR),
                    dtype=np.float32,
                ).reshape(-1)
                for im in images
            ]
        )
        thumbs = np.concatenate(
            [thumbs / 255.0 - 0.5, np.full((len(images), 1), 0.5, np.float32)], axis=1
        )
        return np.asarray(thumbs @ self._proj, dtype=np.float32)

    def _embed_text_batch(self, texts: Sequence[str]) -> NDArray[np.float32]:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = _WORD.findall(text.lower()) or [""]
            for word in words:
                slot, sign = _word_slot(word, self.dim)
                out[row, slot] += sign
        return out
