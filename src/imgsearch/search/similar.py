"""More like this item: everything the item has, fused.

An item brings its image vector, its text vector (title, description, tags: when it has
them) and its category and brand. Each becomes a ranked list:

- ``image`` and ``text``: the nearest items in that space to the item's own vector;
- ``category`` and ``brand`` (soft signals): the items that share the item's category
  (brand), ordered by the item's first vector (image when it has one). They add
  candidates and lift those that share it; items of other categories stay.

The lists are fused with the collection's text fusion (reciprocal-rank by default), with
weights from ``Settings.similar_weight_*``. Every candidate is then scored exactly on
the image and text spaces, so each hit says in ``matched_by`` how close it is in both,
and its confidence is the weighted mean of the two calibrated confidences (see
``search.searcher``). An item with a single list (an image and nothing else) is ranked by
that list alone, as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from imgsearch.config import Settings
from imgsearch.encode.blas import one_blas_thread
from imgsearch.search.executor import Ranked, Signal, candidates, fetch_size
from imgsearch.search.fusion import RankedList, fuse
from imgsearch.search.protocols import CatalogReads
from imgsearch.search.similar_weights import SOFT_SIGNALS, weights
from imgsearch.types import Filters


def _sharing(catalog: CatalogReads, name: str, value: str,
             allowed: NDArray[np.int64] | None) -> NDArray[np.int64]:
    filters = Filters(categories=(value,)) if name == "category" else Filters(brands=(value,))
    members = catalog.filter_keys(filters)
    if allowed is not None:
        members = np.intersect1d(members, allowed, assume_unique=True)
    return members


def more_like_this(catalog: CatalogReads, signals: list[Signal], key: int,
                   allowed: NDArray[np.int64] | None, settings: Settings, *, offset: int,
                   limit: int, params: Mapping[str, Any] | None = None) -> Ranked:
    """Rank the items most like item ``key`` (excluded) from its vectors in ``signals``
    (image first) and its category and brand."""
    k = fetch_size(offset, limit)
    weight = weights(settings)
    used = [s for s in signals if weight.get(s.name, 1.0) > 0] or signals[:1]
    lists: list[RankedList] = []
    plans = []
    for signal in used:
        keys, scores, plan = candidates(signal, k, allowed, key, params)
        lists.append(RankedList(signal.name, keys, scores, weight.get(signal.name, 1.0)))
        plans.append(f"{signal.name}:{plan}")
    soft = [name for name in SOFT_SIGNALS if weight[name] > 0]
    category, brand = catalog.category_and_brand(key) if soft else (None, None)
    shared = [(name, value) for name, value in (("category", category), ("brand", brand))
              if name in soft and value]
    if not shared and len(lists) == 1:  # as a plain search by that vector ranks it
        return _single(lists[0], plans[0])
    # the soft lists score their members and the fused list every candidate: products
    # OpenBLAS would share out, which a search by one vector does not make (encode.blas)
    with one_blas_thread():
        for name, value in shared:
            members = _sharing(catalog, name, value, allowed)
            if len(members) < 2:  # the item alone
                continue
            primary = used[0]
            keys, scores, plan = candidates(Signal(name, primary.space, primary.vector), k,
                                            members, key, params)
            lists.append(RankedList(name, keys, scores, weight[name]))
            plans.append(f"{name}:{plan}")
        if len(lists) == 1:
            return _single(lists[0], plans[0])
        fused = fuse(lists, settings.fusion, settings.rrf_k)
        top = fused.keys[:k]
        per_signal = {name: column[:k] for name, column in fused.list_scores.items()}
        for signal in used:  # exact closeness on every space, also for the other lists' items
            found, vectors = signal.space.vectors_of_keys(top)
            column = np.full(len(top), np.nan, np.float32)
            if len(found):
                position = {item: i for i, item in enumerate(top.tolist())}
                column[[position[item] for item in found.tolist()]] = vectors @ signal.vector
            per_signal[signal.name] = column
    return Ranked(top, fused.scores[:k], per_signal,
                  {name: column[:k] for name, column in fused.ranks.items()},
                  ", ".join(plans) + f" fused:{settings.fusion}", len(fused.keys))


def _single(only: RankedList, plan: str) -> Ranked:
    """A single list ranked as a plain search by that vector ranks it."""
    return Ranked(only.keys, only.scores, {only.name: only.scores},
                  {only.name: np.arange(1, len(only.keys) + 1)}, plan, len(only.keys))


__all__ = ["SOFT_SIGNALS", "more_like_this", "weights"]
