"""More like this item over a remote collection, as the local engine does it
(``search.similar``): the item's image vector, its text vector (title, description,
tags) and its category and brand each make a ranked list, fused with the collection's
text fusion and the weights ``Settings.similar_weight_*``.

- ``image`` and ``text``: the item's nearest neighbours in that space;
- ``category`` and ``brand`` (soft signals): the items that share the item's category
  (brand), ordered by the item's first vector (image when it has one), the value
  pushed down as one more filter. They add candidates and lift those that share it.

The fusion is ``search.fusion``'s own: the ids are numbered in sorted order for it, so
that where two items tie, the first by id wins (locally, the first written: the same
where ids are written in order). An item with a single list is searched by that
vector alone, as before.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from imgsearch.config import Settings
from imgsearch.engine.backends.base import CollectionBackend, Hit
from imgsearch.engine.remote_fuse import Matched, matched_in
from imgsearch.errors import InvalidQueryError, ItemNotFoundError
from imgsearch.search.fusion import RankedList, fuse
from imgsearch.search.similar_weights import SOFT_SIGNALS, weights
from imgsearch.store.catalog import norm
from imgsearch.types import Filters, Query

SPACES = ("image", "text")  # in the order the local engine takes the item's vectors


@dataclass
class Similar:
    vectors: dict[str, NDArray[np.float32]]  # the item's vectors that were searched
    fused: list[Hit] | None  # None: one list, searched by ``vectors`` alone
    lists: tuple[str, ...] = ()
    matched: Matched | None = None  # of the fused hits, for ``matched_by``


def more_like_this(backend: CollectionBackend, item_id: str, k: int, query: Query,
                   settings: Settings) -> Similar:
    """The ``k`` items most like ``item_id`` (itself left out) within the query's
    filters (see the module docstring)."""
    spaces = backend.spaces()
    vectors: dict[str, NDArray[np.float32]] = {}
    for space in SPACES:
        if space in spaces:
            stored = backend.fetch_vectors(space, [item_id]).get(item_id)
            if stored is not None:
                vectors[space] = stored
    if not vectors:
        if not backend.get([item_id]):
            raise ItemNotFoundError(item_id)
        raise InvalidQueryError(f"item {item_id!r} has no stored vector to search with")
    weight = weights(settings)
    used = [s for s in vectors if weight.get(s, 1.0) > 0] or list(vectors)[:1]
    primary = used[0]
    lists = [(s, _nearest(backend, s, vectors[s], k, query.filters, item_id,
                          query.search_params), weight.get(s, 1.0)) for s in used]
    soft = [name for name in SOFT_SIGNALS if weight[name] > 0]
    item = backend.get([item_id]).get(item_id) if soft else None
    if item is not None:
        for name in soft:
            value = item.category if name == "category" else item.brand
            sharing = _sharing(query.filters, name, value)
            if sharing is None:
                continue
            hits = _nearest(backend, primary, vectors[primary], k, sharing, item_id,
                            query.search_params)
            if hits:  # else the item is alone in it
                lists.append((name, hits, weight[name]))
    if len(lists) == 1:
        return Similar({primary: vectors[primary]}, None, (primary,))
    fused = _fused(lists, k, settings)
    closeness = {}  # exact closeness on every space, also for the other lists' items
    for space in used:
        held = backend.fetch_vectors(space, [h.id for h in fused]) if fused else {}
        closeness[space] = {i: float(v @ vectors[space]) for i, v in held.items()}
    return Similar({s: vectors[s] for s in used}, fused,
                   tuple(name for name, _hits, _w in lists),
                   matched_in([(name, hits) for name, hits, _w in lists], closeness))


def _nearest(backend: CollectionBackend, space: str, vector: NDArray[np.float32], k: int,
             filters: Filters, exclude: str, params: Mapping[str, Any]) -> list[Hit]:
    hits = backend.search(space, vector, k + 1, filters, params)
    return [h for h in hits if h.id != exclude][:k]


def _sharing(filters: Filters, name: str, value: str | None) -> Filters | None:
    """The query's filters narrowed to the items whose ``name`` is ``value``; None when
    the item has none, or the query's own filter on that field rules it out."""
    wanted = norm(value)
    if not value or not wanted:
        return None
    asked = filters.categories if name == "category" else filters.brands
    if asked and wanted not in {norm(a) for a in asked}:
        return None
    if name == "category":
        return dataclasses.replace(filters, categories=(value,))
    return dataclasses.replace(filters, brands=(value,))


def _fused(lists: list[tuple[str, list[Hit], float]], k: int, settings: Settings
           ) -> list[Hit]:
    ids = sorted({h.id for _name, hits, _w in lists for h in hits})
    number = {item_id: n for n, item_id in enumerate(ids)}
    fused = fuse([RankedList(name, np.asarray([number[h.id] for h in hits], np.int64),
                             np.asarray([h.score for h in hits], np.float32), w)
                  for name, hits, w in lists], settings.fusion, settings.rrf_k)
    return [Hit(ids[int(key)], float(score))
            for key, score in zip(fused.keys[:k], fused.scores[:k], strict=True)]


__all__ = ["SPACES", "Similar", "more_like_this"]
