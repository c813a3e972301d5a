"""How a hit is shown to people: one confidence scale (0-100 %) and a match label.

Raw scores differ by query kind (a cosine for an image, a fused rank score for text), so
people see the calibrated confidence instead; the raw scores stay in ``matched_by`` and
the JSON output. "100 %" is kept for the same content: any other hit shows at most 99 %.
"""

from __future__ import annotations

import math
from typing import Any

from imgsearch.types import SearchHit

MATCH_LABELS = {"exact": "Same image", "copy": "Edited copy", "similar": "Similar"}


def confidence_percent(hit: SearchHit) -> int:
    """The hit's confidence as a whole percentage, 0-100, 100 only for an exact match."""
    value = hit.confidence
    if not isinstance(value, int | float) or not math.isfinite(value):
        return 0
    percent = round(min(max(float(value), 0.0), 1.0) * 100)
    return percent if hit.match == "exact" else min(percent, 99)


def match_label(hit: SearchHit) -> str:
    """The words for the hit's match kind ("Same image", "Edited copy", "Similar")."""
    return MATCH_LABELS.get(hit.match, MATCH_LABELS["similar"])


__all__ = ["MATCH_LABELS", "confidence_percent", "match_label"]


def expansions(expanded: dict[str, Any]) -> list[str]:
    """The expansions of a text query (an interpretation's ``expanded``), in words, each
    naming its seeds or words: "widened towards a, b", "mammals as cow, whale",
    "with look-alikes of c"."""
    parts = []
    seeds = expanded.get("text_feedback", {}).get("seeds") or []
    if seeds:
        parts.append(f"widened towards {', '.join(map(str, seeds))}")
    for word, kinds in (expanded.get("concepts") or {}).items():
        if kinds:
            parts.append(f"{word} as {', '.join(map(str, kinds[:4]))}")
    seeds = expanded.get("visual_feedback", {}).get("seeds") or []
    if seeds:
        parts.append(f"with look-alikes of {', '.join(map(str, seeds))}")
    return parts
