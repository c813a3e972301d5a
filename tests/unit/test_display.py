"""One scale for people: confidence as a whole percentage, 100 % only for the same image."""

from __future__ import annotations

import math

import pytest

from imgsearch.engine.display import confidence_percent, match_label
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
