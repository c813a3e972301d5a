"""One scale for people: confidence as a whole percentage, 100 % only for the same image."""

from __future__ import annotations

import math

import pytest

from imgsearch.engine.display import confidence_percent, expansions, match_label
from imgsearch.types import SearchHit


@pytest.mark.parametrize(("confidence", "match", "shown"), [
    (1.0, "exact", 100),
    (0.996, "exact", 100),
    (1.0, "similar", 99),
    (0.999, "copy", 99),
    (0.873, "similar", 87),
    (0.0, "similar", 0),
    (1.7, "similar", 99),
    (-0.2, "copy", 0),
    (math.nan, "exact", 0),
])
def test_percent(confidence: float, match: str, shown: int) -> None:
    assert confidence_percent(SearchHit("a", 0.5, confidence=confidence, match=match)) == shown


def test_labels() -> None:
    labels = {m: match_label(SearchHit("a", 0.5, match=m)) for m in ("exact", "copy",
                                                                     "similar", "other")}
    assert labels == {"exact": "Same image", "copy": "Edited copy", "similar": "Similar",
                      "other": "Similar"}


def test_expansions_name_their_seeds_in_words() -> None:
    expanded = {"text_feedback": {"seeds": ["p1", "p2"], "beta": 0.5},
                "visual_feedback": {"seeds": ["p3"]}}
    assert expansions(expanded) == ["widened towards p1, p2", "with look-alikes of p3"]
    concepts = {"concepts": {"mammals": ["cow", "cat", "whale", "bat", "mouse"], "x": []}}
    assert expansions(concepts) == ["mammals as cow, cat, whale, bat"]
    assert expansions({"text_feedback": {"seeds": []}}) == []
    assert expansions({}) == []
