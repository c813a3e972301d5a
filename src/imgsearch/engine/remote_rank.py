"""The ranking stages after a remote backend's candidates, and near-duplicates, done by
the API node with the engine's own code (``search.planner``, ``search.duplicates``)
over what the backend returns: the candidates' items (their perceptual hashes, colours,
categories and business fields) and their stored image vectors.

The stages number candidates by their position in the block (the keys they take), so
that nothing here needs the local catalog's keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from imgsearch.config import Settings
from imgsearch.engine.backends.base import CollectionBackend, Hit
from imgsearch.enrich.phash import hashes_to_uint64
from imgsearch.errors import ItemNotFoundError
from imgsearch.search.dedup import Duplicate
from imgsearch.search.duplicates import (
    DuplicateTiers,
    collapse,
    duplicates_of,
    hash_index,
)
from imgsearch.search.executor import Ranked
from imgsearch.search.planner import RerankOptions, business_weights, rerank, subset
from imgsearch.types import Item, Query

_NEIGHBOURS = 64  # the first vector search for an item's duplicates; doubled while needed
_MAX_NEIGHBOURS = 16_384  # the most one Milvus search returns


@dataclass
class Block:
    """Candidates in rank order, with what the stages fetched of them."""

    hits: list[Hit]
    stands_for: list[int]
    items: dict[str, Item] = field(default_factory=dict)
    exact: set[str] = field(default_factory=set)  # ids of the query images' own copies
    confidence: dict[str, float] = field(default_factory=dict)  # of the hits, by id


class _Fetched:
    """The block's items and image vectors, each fetched from the backend once."""

    def __init__(self, backend: CollectionBackend, ids: Sequence[str], space: str) -> None:
        self.backend, self.ids, self.space = backend, list(ids), space
        self.items: dict[str, Item] | None = None
        self.vectors: dict[str, NDArray[np.float32]] | None = None

    def all_items(self) -> dict[str, Item]:
        if self.items is None:
            self.items = self.backend.get(self.ids) if self.ids else {}
        return self.items

    def items_by_key(self, keys: list[int]) -> dict[int, Item]:
        items = self.all_items()
        return {k: items[self.ids[k]] for k in keys if self.ids[k] in items}

    def vectors_of(self, keys: NDArray[np.int64]
                   ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        if self.vectors is None:
            spaces = self.backend.spaces()
            self.vectors = (self.backend.fetch_vectors(self.space, self.ids)
                            if self.space in spaces and self.ids else {})
        found = [int(k) for k in keys if self.ids[int(k)] in self.vectors]
        if not found:
            return np.empty(0, np.int64), np.empty((0, 1), np.float32)
        return (np.asarray(found, np.int64),
                np.stack([self.vectors[self.ids[k]] for k in found]).astype(np.float32))

    def hashes(self) -> tuple[NDArray[np.uint64], NDArray[np.bool_]]:
        items = self.all_items()
        phashes = [items[i].phash if i in items else None for i in self.ids]
        present = np.asarray([p is not None for p in phashes], bool)
        return hashes_to_uint64([p if p is not None else 0 for p in phashes]), present


def finish(hits: list[Hit], query: Query, settings: Settings, backend: CollectionBackend,
           exact: set[str] | None = None, confidence: dict[str, float] | None = None,
           items: dict[str, Item] | None = None) -> Block:
    """Candidates that are the query images' ``exact`` copies first, as the local
    engine's exact matches; then near-exact duplicates folded (as the local engine does
    by default), then the colour preference, business signals and diversity the query
    asks for, over the whole block of candidates, so that every page of a query sees the
    same order. ``confidence`` of each hit (1.0 where not given) and the hits' ``items``
    (fetched here where not given) travel with them."""
    options = RerankOptions(business_weights(query.boosts, settings), query.prefer_colors,
                            settings.color_boost, query.max_per_category, query.mmr_lambda)
    exact = exact or set()
    hits = [h for h in hits if h.id in exact] + [h for h in hits if h.id not in exact]
    fetched = _Fetched(backend, [h.id for h in hits], "image")
    fetched.items = items
    keys = np.arange(len(hits), dtype=np.int64)
    ranked = Ranked(keys, np.asarray([h.score for h in hits], np.float32))
    stands_for = np.ones(len(hits), np.int64)
    if query.collapse_duplicates and len(hits) > 1:
        hashes, present = fetched.hashes()
        if np.count_nonzero(present) > 1:
            signed = hashes.view(np.int64)
            kept, _scores, counts = collapse(keys, ranked.scores, lambda _keys: signed,
                                             fetched.vectors_of, DuplicateTiers(),
                                             "near-exact", has_hash=present)
            stands_for[kept] = counts
            keep = np.isin(keys, kept)
            ranked, stands_for = subset(ranked, keep), stands_for[keep]
    given = confidence or {}
    sure = np.asarray([given.get(fetched.ids[int(k)], 1.0) for k in ranked.keys], np.float32)
    ranked, sure, stands_for = rerank(ranked, sure, stands_for, options,
                                      fetched.items_by_key, fetched.vectors_of)
    ids = [fetched.ids[int(k)] for k in ranked.keys]
    return Block([Hit(i, float(s)) for i, s in zip(ids, ranked.scores, strict=True)],
                 [int(n) for n in stands_for], fetched.items or {}, exact,
                 dict(zip(ids, sure.tolist(), strict=True)))


def item_duplicates(backend: CollectionBackend, item_id: str,
                    tiers: DuplicateTiers | None = None) -> list[Duplicate]:
    """The near-duplicates of one item (itself excluded), strongest first.

    Every tier asks for an image cosine of at least ``variant_cosine``, so the item's
    neighbours in the image space down to that cosine are every possible duplicate: they
    are searched (exact on a FLAT index), with more neighbours while the last one still
    qualifies, and the perceptual hashes of those decide the tier, as locally."""
    tiers = tiers or DuplicateTiers()
    item = backend.get([item_id]).get(item_id)
    if item is None:
        raise ItemNotFoundError(item_id)
    own = backend.fetch_vectors("image", [item_id]) if "image" in backend.spaces() else {}
    if item.phash is None or item_id not in own:
        return []
    k = _NEIGHBOURS
    while True:
        near = backend.search("image", own[item_id], k + 1)
        if len(near) <= k or near[-1].score < tiers.variant_cosine or k >= _MAX_NEIGHBOURS:
            break
        k = min(k * 4, _MAX_NEIGHBOURS)
    others = [h.id for h in near if h.id != item_id and h.score >= tiers.variant_cosine]
    if not others:
        return []
    ids = [item_id, *others]
    fetched = _Fetched(backend, ids, "image")
    hashes, present = fetched.hashes()
    keys = np.flatnonzero(present).astype(np.int64)
    index = hash_index(keys, hashes[keys].view(np.int64))
    found = duplicates_of(0, int(hashes[0].view(np.int64)), index, fetched.vectors_of, tiers)
    return [Duplicate(ids[k], tier, int(h), float(c)) for k, h, c, tier in found]


__all__ = ["Block", "finish", "item_duplicates"]
