"""More like this over a backend: the soft lists' filters, and what the hits say."""

from __future__ import annotations

from imgsearch.engine.backends.base import Hit
from imgsearch.engine.remote_fuse import matched_in
from imgsearch.engine.remote_similar import _sharing
from imgsearch.types import Filters


def test_a_soft_list_narrows_the_querys_own_filters_to_the_items_value() -> None:
    asked = Filters(brands=("acme",), price_max=50.0)
    assert _sharing(asked, "category", "Shoes") == Filters(
        categories=("Shoes",), brands=("acme",), price_max=50.0)
    assert _sharing(asked, "brand", "ACME ") == Filters(brands=("ACME ",), price_max=50.0)


def test_no_soft_list_without_a_value_or_where_the_query_rules_it_out() -> None:
    assert _sharing(Filters(), "category", None) is None
    assert _sharing(Filters(), "brand", "  ") is None
    assert _sharing(Filters(categories=("hats",)), "category", "shoes") is None


def test_fused_hits_say_each_lists_score_and_rank_and_their_exact_closeness() -> None:
    matched = matched_in([("image", [Hit("a", 0.9), Hit("b", 0.8)]),
                          ("category", [Hit("b", 0.8)])],
                         {"image": {"a": 0.9, "b": 0.8, "c": 0.5}})
    assert matched["b"] == {"image": {"score": 0.8, "rank": 2},
                            "category": {"score": 0.8, "rank": 1}}
    assert matched["c"] == {"image": {"score": 0.5}}  # brought by another list
