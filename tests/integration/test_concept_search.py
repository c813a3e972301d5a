"""Concept expansion through the engine: a category word finds the kinds of it."""

from __future__ import annotations

import pytest

from imagegen import picture
from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.types import Filters, Item, Query
from wordnetgen import write_wordnet

CATALOG = [
    Item(id="cow", title="A brown cow.", category="farm"),
    Item(id="cat", title="A sleeping cat.", category="pets"),
    Item(id="pigeon", title="A grey pigeon.", category="city"),
    Item(id="drum", title="A big drum.", category="music"),
    Item(id="car", title="A red car.", category="city"),
]


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("concepts")
    settings = Settings(text_encoder="fake", wordnet_dir=str(write_wordnet(root / "wn")),
                        result_cache_size=0)
    with Engine.open(root / "c", settings) as engine:
        engine.ingest_items((item, picture(i)) for i, item in enumerate(CATALOG))
        yield engine


def ids(result):
    return [hit.id for hit in result.hits]


def test_a_category_word_finds_the_kinds_of_it(farm):
    result = farm.search(Query(text="mammals", parse=False, min_confidence=0.0))
    assert set(ids(result)[:2]) == {"cow", "cat"}
    assert "concepts" in result.hits[0].matched_by
    assert set(result.interpretation["expanded"]["concepts"]["mammals"]) == {"cow", "cat"}
    assert "concepts:wordnet" in result.plan


def test_a_concept_match_is_confident_only_when_it_covers_the_query(farm):
    whole = farm.search(Query(text="mammals", parse=False))  # default minimum confidence
    assert {"cow", "cat"} <= set(ids(whole))
    half = farm.search(Query(text="mammals quantum", parse=False, min_confidence=0.0))
    by_id = {hit.id: hit for hit in half.hits}
    assert by_id["cow"].confidence < whole.hits[0].confidence


def test_filters_hold_for_the_concept_list(farm):
    result = farm.search(Query(text="mammals", parse=False, min_confidence=0.0,
                               filters=Filters(categories=("pets",))))
    assert ids(result) == ["cat"]


def test_compounds_lead_to_kinds(farm):
    result = farm.search(Query(text="percussion", parse=False, min_confidence=0.0))
    assert ids(result)[0] == "drum"


def test_a_write_refreshes_the_vocabulary(farm):
    assert "mouse" not in farm.search(Query(text="mammals", parse=False,
                                            min_confidence=0.0)).interpretation[
        "expanded"]["concepts"]["mammals"]
    farm.upsert(Item(id="mouse", title="Two mice."), picture(9))
    result = farm.search(Query(text="mammals", parse=False, min_confidence=0.0))
    assert "mouse" in result.interpretation["expanded"]["concepts"]["mammals"]
    assert "mouse" in ids(result)[:3]


def test_off_without_weight_or_without_wordnet(tmp_path):
    for settings in (Settings(text_encoder="fake", weight_concepts=0.0,
                              wordnet_dir=str(write_wordnet(tmp_path / "wn"))),
                     Settings(text_encoder="fake", wordnet_dir=str(tmp_path / "none"))):
        with Engine.open(tmp_path / f"c{settings.weight_concepts}", settings) as engine:
            engine.ingest_items([(CATALOG[0], picture(0)), (CATALOG[2], picture(2))])
            result = engine.search(Query(text="mammals", parse=False, min_confidence=0.0))
            assert "concepts" not in (result.interpretation.get("expanded") or {})
            assert all("concepts" not in hit.matched_by for hit in result.hits)
