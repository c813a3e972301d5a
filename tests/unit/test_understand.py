"""Query understanding on phrases a shopper types."""

from __future__ import annotations

import pytest

from imgsearch.search.understand import Vocabulary, understand

VOCAB = Vocabulary(brands=["Nike", "New Balance", "Levi's"],
                   categories=["Shoes", "Dresses", "T-Shirt"])


def test_the_spec_example():
    got = understand("red nike shoes under $80", VOCAB)
    assert got.colors == ["red"]
    assert got.brands == ["Nike"]
    assert got.categories == ["Shoes"]
    assert got.price_max == 80 and got.price_min is None
    assert got.text == "shoes"
    assert {u["as"] for u in got.understood} == {"color red", "brand", "category",
                                                 "price max"}


@pytest.mark.parametrize(("text", "low", "high"), [
    ("bags under $80", None, 80), ("bags below 80", None, 80),
    ("bags cheaper than 30", None, 30), ("bags less than 19.99 dollars", None, 19.99),
    ("bags between 20 and 50", 20, 50), ("bags from $50 to $20", 20, 50),
    ("bags $20-$50", 20, 50), ("bags over 100", 100, None), ("bags above €100", 100, None),
    ("bags at least 10 and at most 40", 10, 40),
])
def test_price_phrases(text, low, high):
    got = understand(text, VOCAB)
    assert (got.price_min, got.price_max) == (low, high)
    assert got.text == "bags"


def test_colour_synonyms_and_plurals():
    got = understand("navy dresses", VOCAB)
    assert got.colors == ["blue"] and got.categories == ["Dresses"]
    assert understand("crimson scarf", VOCAB).colors == ["red"]
    assert understand("Greys", VOCAB).colors == ["gray"]


def test_multiword_brand_and_case():
    got = understand("NEW BALANCE trainers", VOCAB)
    assert got.brands == ["New Balance"] and got.text == "trainers"


def test_nothing_understood_leaves_text_alone():
    got = understand("vintage car with wooden wheels", VOCAB)
    assert got.understood == [] and got.text == "vintage car with wooden wheels"


def test_filter_only_query_keeps_text_to_rank_by():
    got = understand("nike under 50", VOCAB)
    assert got.brands == ["Nike"] and got.price_max == 50
    assert got.text.strip() == "nike"


def test_bare_number_range_is_not_a_price():
    got = understand("size 10-12 boots", VOCAB)
    assert got.price_min is None and got.price_max is None
