"""Copies of flat pictures (too few corners for local features) found through the
engine by dense alignment, and look-alikes of them not claimed."""

from __future__ import annotations

import pytest
from PIL import Image

from imagegen import planes, textured
from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.search.aligned import MIN_AGREEMENT
from imgsearch.types import Item, Query


@pytest.fixture(scope="module")
def flat_gallery(tmp_path_factory: pytest.TempPathFactory):
    """Four flat pictures among 20 busy ones, descriptor encoder (the default)."""
    directory = tmp_path_factory.mktemp("flat") / "c"
    with Engine.open(directory, Settings(ingest_workers=2), text_encoder="none") as engine:
        engine.ingest_items([(Item(id=f"flat{i}"), planes(i)) for i in range(4)]
                            + [(Item(id=f"t{i}"), textured(i)) for i in range(20)])
    engine = Engine.open(directory, Settings(result_cache_size=0), readonly=True)
    yield engine
    engine.close()


def test_a_rotated_flat_picture_is_a_copy_with_its_alignment_in_the_hit(flat_gallery):
    query = planes(0).rotate(7, resample=Image.Resampling.BICUBIC)
    hits = flat_gallery.search(Query(images=[query])).hits
    assert hits and hits[0].id == "flat0"
    assert hits[0].match == "copy"
    assert hits[0].evidence["aligned"] >= MIN_AGREEMENT
    assert "inliers" not in hits[0].evidence  # keypoints did not verify it
    assert 0.9 <= hits[0].confidence < 1.0


def test_a_flat_look_alike_that_is_not_indexed_is_not_claimed(flat_gallery):
    query = planes(11).rotate(7, resample=Image.Resampling.BICUBIC)
    hits = flat_gallery.search(Query(images=[query])).hits
    assert not any(hit.match in ("copy", "exact") for hit in hits)
