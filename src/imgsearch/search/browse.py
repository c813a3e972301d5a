"""Browsing: a query with filters only (or nothing at all) lists the items that pass.

No text, image, vector or item to rank by, so there is no relevance: items come newest
first, in the order they were first added to the collection (an update keeps an item's
place). Hits carry ``score`` 0 and ``confidence`` 0, and ``matched_by`` says ``browse``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from imgsearch.search.known import check_known_values
from imgsearch.search.validation import EMPTY_MESSAGE, validate_page, validate_ranking
from imgsearch.store.filters import validate as validate_filters
from imgsearch.types import Query, SearchHit, SearchResult

if TYPE_CHECKING:
    from imgsearch.search.searcher import Searcher

ORDER = "newest first"


def browse(searcher: Searcher, query: Query) -> SearchResult:
    started = time.perf_counter()
    limit, offset = query.limit, query.offset
    validate_page(query, searcher.settings.max_limit)
    validate_filters(query.filters)
    validate_ranking(query)
    check_known_values(searcher.derived, query.filters)
    filtered = not query.filters.is_empty()
    if filtered:
        keys = searcher.catalog.filter_keys(query.filters)
        passing = len(keys)
        page = keys[::-1][offset:offset + limit].tolist()  # keys grow as items come
    else:
        passing = searcher.catalog.count()
        page = searcher.catalog.newest_keys(offset, limit)
    plan = f"browse: {passing} items pass, {ORDER}"
    if not passing:
        empty = not filtered or searcher.catalog.is_empty()
        return SearchResult(
            [], "browse", (time.perf_counter() - started) * 1000, plan=plan,
            empty_reason="empty" if empty else "filtered_out",
            message=EMPTY_MESSAGE if empty else "no item passes the filters")
    rows = searcher.catalog.hits_by_key(page)
    hits = []
    for key in page:
        found = rows.get(key)
        if found is None:  # deleted since the keys were read
            continue
        ident, title, category, brand, price, image, thumbnail = found
        hits.append(SearchHit(ident, 0.0, title, category, brand, price, image, thumbnail,
                              0.0, 0, {"browse": {"score": 0.0}}))
    return SearchResult(hits, "browse", (time.perf_counter() - started) * 1000,
                        total_candidates=passing, plan=plan)


__all__ = ["ORDER", "browse"]
