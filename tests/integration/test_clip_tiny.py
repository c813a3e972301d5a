"""The clip encoder end to end on a tiny CLIP saved to disk, loaded by the real loader."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imagegen import picture
from imgsearch.config import Settings
from imgsearch.encode.base import Encoder
from imgsearch.encode.registry import describe_encoder, get_encoder
from imgsearch.errors import ModelUnavailableError
from tiny_clip import IMAGE_SIZE, PROJECTION_DIM, make_tiny_clip


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_clip(tmp_path_factory.mktemp("models") / "tiny-clip")


@pytest.fixture(scope="module")
def clip(clip_dir: Path) -> Encoder:
    return get_encoder("clip", Settings(clip_model=str(clip_dir), encode_batch_size=3))


def test_describes_itself_from_the_directory(clip: Encoder, clip_dir: Path) -> None:
    assert describe_encoder("clip", Settings(clip_model=str(clip_dir))) == (
        "tiny-clip",
        PROJECTION_DIM,
    )
    assert clip.model_id == "tiny-clip"
    assert clip.dim == PROJECTION_DIM
    assert clip.image_side == IMAGE_SIZE
    assert clip.modalities == frozenset({"image", "text"})


def test_images_embed_to_unit_vectors(clip: Encoder) -> None:
    images = [picture(seed, size=(50 + 10 * seed, 40)) for seed in range(5)]
    vectors = clip.embed_images(images)
    assert vectors.shape == (5, PROJECTION_DIM) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(clip.embed_images(images), vectors, atol=1e-6)
    assert np.all((vectors @ vectors.T)[~np.eye(5, dtype=bool)] < 0.9999)


def test_texts_embed_to_unit_vectors_and_long_texts_are_truncated(clip: Encoder) -> None:
    texts = ["a red square", "the cat", "blue sky", "a very long description " * 40]
    vectors = clip.embed_texts(texts)
    assert vectors.shape == (4, PROJECTION_DIM)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(clip.embed_texts(texts), vectors, atol=1e-6)
    assert np.all((vectors @ vectors.T)[~np.eye(4, dtype=bool)] < 0.9999)


def test_one_at_a_time_matches_batches(clip: Encoder) -> None:
    images = [picture(seed) for seed in range(7)]
    texts = ["red", "a green tree", "the cat sat", "x", "two words", "blue", "three more words"]
    batch_images = clip.embed_images(images)
    batch_texts = clip.embed_texts(texts)
    for image, row in zip(images, batch_images, strict=True):
        np.testing.assert_allclose(clip.embed_image(image), row, atol=1e-5)
    for text, row in zip(texts, batch_texts, strict=True):
        np.testing.assert_allclose(clip.embed_text(text), row, atol=1e-5)


def test_non_rgb_images_are_accepted(clip: Encoder) -> None:
    grey = Image.new("L", (40, 40), 128)
    assert clip.embed_images([grey]).shape == (1, PROJECTION_DIM)


def test_missing_directory_says_how_to_fix(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-clip"
    encoder = get_encoder("clip", Settings(clip_model=str(missing)))
    with pytest.raises(ModelUnavailableError) as info:
        encoder.embed_text("a cat")
    message = str(info.value)
    assert str(missing) in message and "does not exist" in message
    assert "huggingface-cli download openai/clip-vit-base-patch32 --local-dir" in message
    assert "--clip-model" in message and "IMGSEARCH_CLIP_MODEL" in message


def test_directory_without_a_model_is_refused(tmp_path: Path) -> None:
    encoder = get_encoder("clip", Settings(clip_model=str(tmp_path)))
    with pytest.raises(ModelUnavailableError, match=r"has no config\.json"):
        encoder.embed_images([picture(1)])


def test_hub_id_offline_says_how_to_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub_id = "imgsearch-tests/clip-that-is-not-cached"
    encoder = get_encoder("clip", Settings(clip_model=hub_id))
    with pytest.raises(ModelUnavailableError) as info:
        encoder.embed_images([picture(1)])
    message = str(info.value)
    assert hub_id in message
    assert f"huggingface-cli download {hub_id} --local-dir" in message
    assert "IMGSEARCH_CLIP_MODEL" in message


def test_hub_id_with_the_hub_away_fails_without_retrying(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    # a port on this machine where nothing listens stands for an unreachable hub
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", f"http://127.0.0.1:{port}")
    hub_id = "imgsearch-tests/clip-that-is-not-cached"
    encoder = get_encoder("clip", Settings(clip_model=hub_id))
    with pytest.raises(ModelUnavailableError) as info:
        encoder.embed_texts(["a cat"])
    message = str(info.value)
    assert "cannot be reached" in message and "ConnectionRefusedError" in message
    assert f"huggingface-cli download {hub_id} --local-dir" in message
