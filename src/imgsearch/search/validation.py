"""A query's options in their ranges: refused with what was wrong before any search.

One validation for every engine (the local searcher and the remote one), as the HTTP
API's schema has the same ranges.
"""

from __future__ import annotations

from imgsearch.errors import InvalidQueryError
from imgsearch.store.filters import validate as validate_filters
from imgsearch.types import Query

EMPTY_MESSAGE = "this collection is empty: add images with imgsearch index"
MAX_OFFSET = 10_000


def validate(query: Query, max_limit: int) -> None:
    """InvalidQueryError (or InvalidFilterError) for the first option out of range."""
    validate_page(query, max_limit)
    weight = query.image_weight
    if not isinstance(weight, int | float) or not 0.0 <= weight <= 1.0:
        raise InvalidQueryError(f"image_weight must be between 0 and 1, got {weight!r}")
    validate_ranking(query)
    if query.text is not None and not query.text.strip():
        raise InvalidQueryError("text query is empty")
    if query.negative_images and not (query.images or query.text):
        raise InvalidQueryError("negative images need at least one positive image or a text")
    if not (query.text or query.images or query.vector is not None or query.similar_to):
        raise InvalidQueryError("a query needs text, an image, a vector or an item id")
    validate_filters(query.filters)


def validate_page(query: Query, max_limit: int) -> None:
    """``limit`` and ``offset`` in their ranges."""
    if not isinstance(query.limit, int) or not 1 <= query.limit <= max_limit:
        raise InvalidQueryError(f"limit must be between 1 and {max_limit}, got {query.limit!r}")
    if not isinstance(query.offset, int) or not 0 <= query.offset <= MAX_OFFSET:
        raise InvalidQueryError(f"offset must be between 0 and {MAX_OFFSET}, "
                                f"got {query.offset!r}")


def validate_ranking(query: Query) -> None:
    """The ranking options in their ranges (as the HTTP API's schema has them)."""
    for name in ("min_confidence", "mmr_lambda"):
        value = getattr(query, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                  or not 0.0 <= value <= 1.0):
            raise InvalidQueryError(f"{name} must be between 0 and 1, got {value!r}")
    per = query.max_per_category
    if per is not None and (isinstance(per, bool) or not isinstance(per, int) or per < 1):
        raise InvalidQueryError(f"max_per_category must be 1 or more, got {per!r}")


__all__ = ["EMPTY_MESSAGE", "MAX_OFFSET", "validate", "validate_page", "validate_ranking"]
