"""The lists "more like this item" fuses and their weights (``search.similar``), shared
by every engine that answers it."""

from __future__ import annotations

from imgsearch.config import Settings

# Lists that say which items share a property of the query item, not how close they are:
# their scores are no evidence of a match (the confidence leaves them out).
SOFT_SIGNALS = ("category", "brand")


def weights(settings: Settings) -> dict[str, float]:
    return {"image": settings.similar_weight_image, "text": settings.similar_weight_text,
            "category": settings.similar_weight_category,
            "brand": settings.similar_weight_brand}


__all__ = ["SOFT_SIGNALS", "weights"]
