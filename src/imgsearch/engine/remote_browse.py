"""Browsing on a node over a remote collection: a query with filters only (or nothing at
all) lists the items that pass, newest first, as the local engine's ``search.browse``
lists them (the same hits, order, plan and empty answers); the backend pushes the
filters down and orders (``CollectionBackend.newest``)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from imgsearch.engine.remote_understand import check_known_values
from imgsearch.errors import UnsupportedOnBackendError
from imgsearch.search.validation import EMPTY_MESSAGE, validate_page, validate_ranking
from imgsearch.store.filters import validate as validate_filters
from imgsearch.types import Query, SearchHit, SearchResult

if TYPE_CHECKING:
    from imgsearch.engine.remote import RemoteEngine

ORDER = "newest first"  # the local listing's plan says the same (search.browse.ORDER)


def browse(engine: RemoteEngine, query: Query) -> SearchResult:
    started = time.perf_counter()
    validate_page(query, engine.settings.max_limit)
    validate_filters(query.filters)
    validate_ranking(query)
    reason = engine.refuses("browse")
    if reason is not None:
        raise UnsupportedOnBackendError(reason)
    check_known_values(engine, query.filters)
    filtered = not query.filters.is_empty()
    passing, page = engine.backend.newest(query.filters if filtered else None,
                                          query.offset, query.limit)
    plan = f"browse: {passing} items pass, {ORDER}"
    if not passing:
        empty = not filtered or engine.backend.count() == 0
        return SearchResult(
            [], "browse", (time.perf_counter() - started) * 1000, plan=plan,
            empty_reason="empty" if empty else "filtered_out",
            message=EMPTY_MESSAGE if empty else "no item passes the filters")
    items = engine.backend.get(page)
    hits = [SearchHit(item.id, 0.0, item.title, item.category, item.brand, item.price,
                      item.image, None, 0.0, 0, {"browse": {"score": 0.0}})
            for item_id in page if (item := items.get(item_id)) is not None]
    return SearchResult(hits, "browse", (time.perf_counter() - started) * 1000,
                        total_candidates=passing, plan=plan)


__all__ = ["browse"]
