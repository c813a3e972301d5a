"""Keyword search and fusion on a small catalog written here."""

from __future__ import annotations

import pytest

from imagegen import picture
from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.types import Filters, Item, Query

CATALOG = [
    Item(id="p1", title="Red running shoes", category="shoes", brand="Nike", price=79.0,
         tags=("sport",)),
    Item(id="p2", title="Blue denim jacket", category="jackets", brand="Levis", price=120.0),
    Item(id="p3", title="Leather boots", description="brown boots for hiking", category="shoes",
         brand="Timberland", price=150.0),
    Item(id="p4", title="Summer dress", description="light floral dress", category="dresses",
         price=45.0),
    Item(id="p5", title="Trail sneakers", description="shoes for running on trails",
         category="shoes", brand="Salomon", price=99.0),
]


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory):
    settings = Settings(text_encoder="minilm", ingest_workers=2)
    with Engine.open(tmp_path_factory.mktemp("rel") / "c", settings) as engine:
        engine.ingest_items((item, picture(i)) for i, item in enumerate(CATALOG))
        yield engine


def test_keyword_search_stems_and_ranks(shop):
    keys, scores = shop.catalog.keyword_search("running shoe", 10, [3, 1, 2, 2, 2, 1])
    ids = [shop.catalog.items_by_key([int(k)])[int(k)].id for k in keys]
    assert ids[0] == "p1"
    assert set(ids) >= {"p1", "p5", "p3"}  # "shoes" in category/description, stemmed
    assert list(scores) == sorted(scores, reverse=True)
    assert "p2" not in ids


def test_keyword_index_follows_updates_and_deletes(tmp_path):
    with Engine.open(tmp_path / "c", Settings(text_encoder="fake")) as engine:
        engine.upsert(Item(id="a", title="golden retriever"), picture(1))
        assert engine.search(Query(text="retriever")).hits[0].id == "a"
        engine.upsert(Item(id="a", title="tabby cat"), picture(1))
        keys, _ = engine.catalog.keyword_search("retriever", 10, [1] * 6)
        assert len(keys) == 0
        engine.delete("a")
        keys, _ = engine.catalog.keyword_search("tabby", 10, [1] * 6)
        assert len(keys) == 0


def test_fused_text_query_reports_signals(shop):
    result = shop.search(Query(text="sneakers for jogging", limit=3))
    assert result.hits[0].id in ("p5", "p1")
    top = result.hits[0].matched_by
    assert "text" in top and top["text"]["rank"] >= 1
    assert "fused:rrf" in result.plan
    # semantic signal finds what keywords cannot ("jogging" is in no title)
    semantic_only = shop.search(Query(text="jogging", limit=2))
    assert semantic_only.hits and "keyword" not in semantic_only.hits[0].matched_by


def test_keyword_respects_filters(shop):
    result = shop.search(Query(text="shoes", limit=5, filters=Filters(price_max=100)))
    assert {h.id for h in result.hits} <= {"p1", "p5", "p4", "p2"}
    assert all(h.price <= 100 for h in result.hits)


def test_weighted_fusion_alternative(tmp_path):
    settings = Settings(text_encoder="fake", fusion="weighted")
    with Engine.open(tmp_path / "c", settings) as engine:
        engine.ingest_items((item, picture(i)) for i, item in enumerate(CATALOG))
        result = engine.search(Query(text="leather boots", limit=2))
        assert result.hits[0].id == "p3"
        assert 0.0 <= result.hits[0].score <= 1.0
        assert "fused:weighted" in result.plan


def test_query_understanding_filters_and_reports(shop):
    result = shop.search(Query(text="nike shoes under $90", limit=5))
    assert [h.id for h in result.hits] == ["p1"]
    assert result.interpretation["filters"] == {"price_max": 90.0, "brands": ["Nike"],
                                                "categories": ["shoes"]}
    assert result.interpretation["text"] == "shoes"
    unparsed = shop.search(Query(text="nike shoes under $90", limit=5, parse=False))
    assert len(unparsed.hits) > 1 and "filters" not in unparsed.interpretation


def test_caller_filters_win_over_parsed_ones(shop):
    result = shop.search(Query(text="shoes over 140", limit=5,
                               filters=Filters(price_max=100)))
    assert all(h.price <= 100 for h in result.hits)


def test_hybrid_query_text_is_understood(shop):
    result = shop.search(Query(text="boots under 200", images=[picture(0)], limit=5))
    assert result.interpretation["filters"]["price_max"] == 200.0
    assert result.interpretation["text"] == "boots"
    assert result.hits and all(h.price <= 200 for h in result.hits)
    assert result.query_kind == "hybrid"


def test_file_name_titles_are_found_by_their_words(tmp_path):
    with Engine.open(tmp_path / "c", Settings(text_encoder="fake")) as engine:
        engine.upsert(Item(id="a", title="redRoseBouquet_0042.jpg"), picture(1))
        engine.upsert(Item(id="b", title="IMG_0042.png"), picture(2))
        keys, _ = engine.catalog.keyword_search("rose", 10, [1] * 9)
        assert [engine.catalog.items_by_key([int(k)])[int(k)].id for k in keys] == ["a"]
        keys, _ = engine.catalog.keyword_search("png", 10, [1] * 9)
        assert len(keys) == 0  # the extension is no word of the title
        hit = engine.search(Query(text="rose", min_confidence=0.0)).hits[0]
        assert hit.id == "a" and hit.title == "redRoseBouquet_0042.jpg"  # shown raw


def test_text_feedback_is_named_in_the_interpretation(shop):
    result = shop.search(Query(text="running shoes", limit=5, parse=False))
    expanded = result.interpretation["expanded"]["text_feedback"]
    assert expanded["seeds"] and set(expanded["seeds"]) <= {h.id for h in result.hits}
    assert "text_feedback" in result.plan
    before = shop.settings
    shop.settings = before.replace(text_feedback_beta=0.0, weight_concepts=0.0,
                                   result_cache_size=0)
    try:
        assert "expanded" not in shop.search(Query(text="running shoes", limit=5,
                                                   parse=False)).interpretation
    finally:
        shop.settings = before


def test_an_unmatched_query_brings_no_feedback(shop):
    result = shop.search(Query(text="quantum chromodynamics lecture", parse=False,
                               min_confidence=0.0))
    assert "expanded" not in result.interpretation  # no confident seed, no expansion


def test_visual_feedback_adds_lookalikes_of_confident_hits(tmp_path):
    # two items that look alike (the same picture), only one says "zebra"
    settings = Settings(text_encoder="fake", weight_visual_feedback=0.5,
                        feedback_min_confidence=0.5, result_cache_size=0)
    with Engine.open(tmp_path / "c", settings) as engine:
        engine.upsert(Item(id="z", title="zebra"), picture(7))
        engine.upsert(Item(id="twin", title="striped animal"), picture(7))
        for i in range(8):
            engine.upsert(Item(id=f"o{i}", title=f"other thing {i}"), picture(20 + i))
        result = engine.search(Query(text="zebra", parse=False, min_confidence=0.0,
                                     collapse_duplicates=False))  # the twin is a copy
        ids = [h.id for h in result.hits]
        assert ids[0] == "z"
        twin = next(h for h in result.hits if h.id == "twin")
        assert "visual_feedback" in twin.matched_by and "keyword" not in twin.matched_by
        assert result.interpretation["expanded"]["visual_feedback"]["seeds"] == ["z"]
        # as confident as the seed it resembles, times the resemblance: never above it
        assert 0.0 < twin.confidence <= result.hits[0].confidence
        engine.settings = settings.replace(weight_visual_feedback=0.0)
        plain = engine.search(Query(text="zebra", parse=False, min_confidence=0.0))
        assert all("visual_feedback" not in h.matched_by for h in plain.hits)
