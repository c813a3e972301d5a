"""Ingest decodes each image once, as large as its largest consumer needs, and derives
everything from one resize chain; a text met twice in a batch is encoded once."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image

import imagegen as gen
from imgsearch import Settings
from imgsearch.encode.fake import FakeEncoder
from imgsearch.engine.pipeline import DecodeRequest, Preparer, decode_target, derive_job
from imgsearch.enrich.colors import dominant_colors
from imgsearch.enrich.phash import perceptual_hash
from imgsearch.enrich.thumbnails import make_thumbnail, shrink_for_thumbnail
from imgsearch.ingest.fetch import Fetcher
from imgsearch.types import Item


def test_decode_target_is_the_largest_need_of_each_side() -> None:
    assert decode_target(160, 512, ocr=False) == (160, 512)
    assert decode_target(224, 256, ocr=False) == (224, 256)
    shorter, longer = decode_target(160, 512, ocr=True)  # OCR reads a larger decode
    assert shorter >= 1200 and longer == 0


def _request(path: Path, shorter: int, longer: int, keep_pixels: bool = True
             ) -> DecodeRequest:
    return DecodeRequest(str(path), path.name, 10**8, 10**8, 32, shorter, longer,
                         keep_pixels=keep_pixels)


def test_a_jpeg_twice_the_thumbnail_is_decoded_at_half_scale(tmp_path: Path) -> None:
    path = tmp_path / "big.jpg"
    gen.write_image(path, 3, (1024, 768), "JPEG")
    derived = derive_job(_request(path, 160, 512), 512)
    assert derived.decoded.image.size == (512, 384)  # 1/2 DCT scale: no resize needed
    assert (derived.decoded.width, derived.decoded.height) == (1024, 768)
    with Image.open(io.BytesIO(derived.thumbnail)) as thumb:
        assert thumb.size == (512, 384)
    # a scale smaller than 1/2 would leave the thumbnail's longer side short of 512
    small = tmp_path / "web.jpg"
    gen.write_image(small, 4, (800, 600), "JPEG")
    assert derive_job(_request(small, 160, 512), 512).decoded.image.size == (800, 600)


def test_phash_and_colours_come_from_the_thumbnails_pixels(tmp_path: Path) -> None:
    path = tmp_path / "web.jpg"
    gen.write_image(path, 5, (900, 600), "JPEG")
    derived = derive_job(_request(path, 160, 512), 512)
    small = shrink_for_thumbnail(derived.decoded.image, 512)
    assert small.size == (512, 341)
    assert derived.phash == perceptual_hash(small)
    assert derived.colors == tuple(c.name for c in dominant_colors(small))
    assert derived.thumbnail == make_thumbnail(derived.decoded.image, 512)


def test_shrink_leaves_a_small_enough_image_alone() -> None:
    image = Image.new("RGB", (300, 200), (10, 20, 30))
    assert shrink_for_thumbnail(image, 512) is image


class _CountingText(FakeEncoder):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def _embed_text_batch(self, texts: Sequence[str]) -> NDArray[np.float32]:
        self.seen.extend(texts)
        return super()._embed_text_batch(texts)


def test_a_repeated_text_is_encoded_once() -> None:
    settings = Settings(text_encoder="fake", image_encoder="fake")
    text = _CountingText()
    preparer = Preparer(settings, FakeEncoder(), lambda: text, Fetcher(settings))
    try:
        titles = ["red shoe", "blue hat", "red shoe", "red shoe", ""]
        vector = np.ones(FakeEncoder().dim, np.float32) / np.sqrt(FakeEncoder().dim)
        ready = [(Item(id=str(i), title=t or None), Image.new("RGB", (1, 1)), vector, b"",
                  None) for i, t in enumerate(titles)]
        prepared = preparer._encode(ready)
    finally:
        preparer.close()
    assert sorted(text.seen) == ["blue hat", "red shoe"]
    assert [("text" in p.vectors) for p in prepared] == [True, True, True, True, False]
    np.testing.assert_array_equal(prepared[0].vectors["text"], prepared[3].vectors["text"])
    expected = FakeEncoder().embed_texts(["red shoe", "blue hat"])
    np.testing.assert_allclose(prepared[0].vectors["text"], expected[0], atol=1e-6)
    np.testing.assert_allclose(prepared[1].vectors["text"], expected[1], atol=1e-6)


def test_the_image_vector_reads_the_thumbnail_unless_too_small_or_ocr(tmp_path: Path) -> None:
    wide = tmp_path / "wide.jpg"
    gen.write_image(wide, 6, (1200, 300), "JPEG")  # thumbnail 512x128: under 160
    derived = derive_job(_request(wide, 160, 512, keep_pixels=False), 512)
    assert min(derived.decoded.image.size) >= 160  # the decode, not the thumbnail
    photo = tmp_path / "photo.jpg"
    gen.write_image(photo, 7, (900, 600), "JPEG")
    small = derive_job(_request(photo, 160, 512, keep_pixels=False), 512)
    assert small.decoded.image.size == (512, 341)
    kept = _request(photo, 160, 512)  # OCR reads the pixels: the decode stays
    assert derive_job(kept, 512).decoded.image.size == (900, 600)
