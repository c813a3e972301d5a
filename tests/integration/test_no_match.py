"""Honest "no match": unrelated queries get an explicit empty result, present ones do not."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from PIL import Image

from imagegen import picture
from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.search.calibration import Calibration
from imgsearch.types import Item, Query

ADJECTIVES = ["red", "blue", "leather", "cotton", "wooden", "silver", "striped", "vintage"]
NOUNS = ["shirt", "wallet", "chair", "lamp", "mug", "backpack", "sneakers", "watch"]


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory):
    settings = Settings(text_encoder="minilm", ingest_workers=2)
    directory = tmp_path_factory.mktemp("nomatch") / "c"
    with Engine.open(directory, settings) as engine:
        engine.ingest_items((Item(id=f"g{i}", title=f"{a} {n}"), picture(i))
                            for i, (a, n) in enumerate(itertools.product(ADJECTIVES, NOUNS)))
    engine = Engine.open(directory, settings, readonly=True)
    yield engine
    engine.close()


def test_calibration_is_stored_in_the_manifest(shop):
    stored = shop.manifest.extra["calibration"]
    assert set(stored) == {"image", "text"}
    image = Calibration.from_dict(stored["image"])
    assert image.median < image.chance < 1.0
    assert image.vectors == 64


def test_noise_image_gets_an_explicit_empty_result(shop):
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (240, 320, 3),
                                                              dtype=np.uint8))
    result = shop.search(Query(images=[noise]))
    assert result.hits == []
    assert result.empty_reason == "no_match"
    assert "minimum" in result.message
    # asked for weaker matches, it still answers
    assert len(shop.search(Query(images=[noise], min_confidence=0)).hits) == 10


def test_unrelated_text_gets_an_explicit_empty_result(shop):
    result = shop.search(Query(text="quantum chromodynamics lecture"))
    assert result.hits == [] and result.empty_reason == "no_match"


def test_present_things_are_found(shop):
    image_hits = shop.search(Query(images=[picture(5)])).hits
    assert image_hits[0].id == "g5" and image_hits[0].confidence == 1.0
    assert all(h.confidence >= 0.5 for h in image_hits)
    text_hits = shop.search(Query(text="leather wallet")).hits
    assert text_hits[0].id == "g17"  # "leather wallet" is item 2*8+1


def test_more_like_this_always_shows_neighbours(shop):
    assert len(shop.similar("g3", limit=10).hits) == 10


def test_confidence_mapping():
    cal = Calibration(median=0.2, chance=0.6, mean=0.2, std=0.1, vectors=100)
    got = cal.confidence(np.asarray([0.1, 0.2, 0.4, 0.6, 0.8, 1.0], np.float32))
    assert np.allclose(got, [0.0, 0.0, 0.25, 0.5, 0.75, 1.0])


def test_a_few_items_judge_text_queries_against_unrelated_probes(tmp_path):
    # eight items: too few for image pairs, enough for text: the probes need no minimum
    settings = Settings(text_encoder="minilm", ingest_workers=2)
    titles = ["cup of coffee", "tabby cat", "rocket launch pad", "moon surface",
              "red leather wallet", "wooden chair", "green grass", "silver watch"]
    with Engine.open(tmp_path / "c", settings) as engine:
        engine.ingest_items((Item(id=f"t{i}", title=t), picture(i))
                            for i, t in enumerate(titles))
        assert engine.calibrations.get("text") is not None
        unrelated = engine.search(Query(text="quantum chromodynamics lecture"))
        assert unrelated.hits == [] and unrelated.empty_reason == "no_match"
        found = engine.search(Query(text="a hot drink in a cup")).hits
        assert found[0].id == "t0" and 0.5 <= found[0].confidence < 1.0
        assert "t1" not in [hit.id for hit in found]  # the cat is not a drink
