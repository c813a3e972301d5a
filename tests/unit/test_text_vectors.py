"""Text vectors of the write path: each distinct text encoded once, in its own order."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from imgsearch.encode.fake import FakeEncoder
from imgsearch.engine.text_vectors import TextVectors


class CountingEncoder(FakeEncoder):
    """The fake encoder, recording each batch it is asked to embed."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[str]] = []

    def _embed_text_batch(self, texts: Sequence[str]) -> NDArray[np.float32]:
        self.batches.append(list(texts))
        return super()._embed_text_batch(texts)


def test_vectors_are_the_encoders_in_the_callers_order() -> None:
    encoder = CountingEncoder()
    texts = ["a much longer text about owls", "owl", "red rose bouquet", "owl"]
    got = TextVectors().embed(encoder, texts)
    expected = FakeEncoder().embed_texts(texts)
    assert len(got) == len(texts)
    for vector, want in zip(got, expected, strict=True):
        np.testing.assert_allclose(vector, want, atol=1e-6)


def test_each_distinct_text_is_encoded_once_shortest_first_and_kept_for_later() -> None:
    encoder = CountingEncoder()
    vectors = TextVectors()
    vectors.embed(encoder, ["holiday 2019 . beach", "cat", "holiday 2019 . beach"])
    assert [t for batch in encoder.batches for t in batch] == ["cat", "holiday 2019 . beach"]
    vectors.embed(encoder, ["cat", "dog"])  # a later batch: only the new text is encoded
    assert encoder.batches[-1] == ["dog"]
    assert (vectors.encoded, vectors.reused) == (3, 2)


def test_the_cache_is_bounded_and_separate_per_model() -> None:
    encoder = CountingEncoder()
    vectors = TextVectors(limit=2)
    vectors.embed(encoder, ["a", "b", "c"])  # "a" falls out first
    vectors.embed(encoder, ["a"])
    assert encoder.batches[-1] == ["a"]
    other = CountingEncoder()
    other.model_id = "another-model"
    vectors.embed(other, ["a"])
    assert other.batches == [["a"]]


def test_a_returned_vector_changed_by_the_caller_leaves_the_cache_intact() -> None:
    encoder = CountingEncoder()
    vectors = TextVectors()
    first = vectors.embed(encoder, ["owl"])[0]
    kept = first.copy()
    first[:] = 0
    np.testing.assert_array_equal(vectors.embed(encoder, ["owl"])[0], kept)
