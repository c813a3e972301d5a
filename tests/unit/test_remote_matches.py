"""Verified copies over a backend's thumbnails (``engine.remote_matches``), with a fake
backend: the local engine's rules, and thumbnails read only as verification looks."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps

from imagegen import jpeg_of as jpeg
from imagegen import textured
from imgsearch.config import Settings
from imgsearch.encode.registry import get_encoder
from imgsearch.engine.backends.base import Hit
from imgsearch.engine.remote_matches import RemoteCandidates, copies, decode_thumbnail
from imgsearch.enrich.phash import perceptual_hash
from imgsearch.search.matching import QueryImage
from imgsearch.search.verify import FeatureCache
from imgsearch.types import Item

ENCODER = get_encoder("descriptor", Settings())
SIZE = (320, 240)


class FakeBackend:
    """Items, image vectors and thumbnails by id; records the thumbnails read."""

    uri = "fake://copies"

    def __init__(self, n: int) -> None:
        self.items: dict[str, Item] = {}
        self.vectors: dict[str, NDArray[np.float32]] = {}
        self.stored: dict[str, bytes] = {}
        self.read: list[list[str]] = []
        for i in range(n):
            image = textured(i, SIZE)
            data = jpeg(image, 85)
            self.items[f"pic{i}"] = Item(id=f"pic{i}", content_hash=f"hash{i}",
                                         phash=perceptual_hash(image), thumbnail=f"in-row:{i}")
            self.vectors[f"pic{i}"] = ENCODER.embed_image(image)
            self.stored[f"pic{i}"] = data

    def spaces(self) -> dict[str, int]:
        return {"image": ENCODER.dim}

    def get(self, ids: Sequence[str]) -> dict[str, Item]:
        return {i: self.items[i] for i in ids if i in self.items}

    def fetch_vectors(self, space: str, ids: Sequence[str]) -> dict[str, NDArray[np.float32]]:
        return {i: self.vectors[i] for i in ids if i in self.vectors}

    def thumbnails(self, ids: Sequence[str], expected: Mapping[str, str] | None = None
                   ) -> dict[str, bytes]:
        self.read.append(list(ids))
        return {i: self.stored[i] for i in ids if i in self.stored}


def look(image: Image.Image) -> QueryImage:
    data = jpeg(image, 80)
    with Image.open(io.BytesIO(data)) as opened:
        decoded = opened.convert("RGB")
    return QueryImage(ENCODER.embed_image(decoded), "", decoded)


def ranked(backend: FakeBackend, query: QueryImage) -> list[Hit]:
    scores = {i: float(v @ query.vector) for i, v in backend.vectors.items()}
    return [Hit(i, s) for i, s in sorted(scores.items(), key=lambda p: -p[1])]


def test_a_mirrored_copy_is_verified_from_the_one_thumbnail_looked_at() -> None:
    backend = FakeBackend(8)
    query = look(ImageOps.mirror(textured(3, SIZE)))
    hits = ranked(backend, query)
    assert hits[0].id == "pic3"
    reader = RemoteCandidates(backend, backend.get([h.id for h in hits]), {query.phash})
    found = copies([query], [], hits, 10, reader, FeatureCache())  # type: ignore[arg-type]
    assert list(found) == ["pic3"] and found["pic3"].kind == "copy"
    assert found["pic3"].evidence["mirrored"] == 1.0 and found["pic3"].evidence["inliers"] > 0
    assert backend.read == [["pic3"]]  # the other candidates' thumbnails were not read


def test_the_same_bytes_are_exact_without_reading_a_thumbnail() -> None:
    backend = FakeBackend(5)
    query = look(textured(2, SIZE))
    query.content_hash = "hash2"
    hits = ranked(backend, query)
    reader = RemoteCandidates(backend, backend.get([h.id for h in hits]), {query.phash})
    found = copies([query], [], hits, 10, reader, FeatureCache())  # type: ignore[arg-type]
    assert {i: m.kind for i, m in found.items()} == {"pic2": "exact"}
    assert backend.read == []


def test_an_unrelated_picture_is_no_copy_and_an_item_without_thumbnail_is_not_read() -> None:
    backend = FakeBackend(5)
    backend.items["pic0"].thumbnail = None  # written without one
    query = look(textured(42, SIZE))
    hits = ranked(backend, query)
    reader = RemoteCandidates(backend, backend.get([h.id for h in hits]), {query.phash})
    assert copies([query], [], hits, 10, reader, FeatureCache()) == {}  # type: ignore[arg-type]
    assert ["pic0"] not in backend.read and len(backend.read) == 4


def test_a_thumbnail_that_cannot_be_read_is_none() -> None:
    assert decode_thumbnail(b"not a jpeg") is None
    assert decode_thumbnail(jpeg(Image.new("RGB", (5000, 8)), 85)) is None  # no thumbnail's size
    assert decode_thumbnail(jpeg(textured(1, SIZE), 85)) is not None
