"""Near-duplicates of a collection: groups for `imgsearch dedup` and one item's
duplicates (a page of search results folds them with ``search.duplicates.collapse_hits``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from imgsearch.errors import InvalidInputError, ItemNotFoundError
from imgsearch.search.duplicates import (
    TIERS,
    DuplicateTiers,
    duplicates_of,
    find_duplicate_pairs,
    group_duplicates,
)

if TYPE_CHECKING:
    from imgsearch.search.searcher import Searcher


@dataclass(frozen=True)
class Duplicate:
    id: str
    tier: str
    hamming: int
    cosine: float

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "tier": self.tier, "hamming": self.hamming,
                "cosine": round(self.cosine, 6)}


def _check_tier(tier: str) -> None:
    if tier not in TIERS:
        raise InvalidInputError(f"unknown duplicate tier {tier!r}; use {', '.join(TIERS)}")


def duplicate_groups(searcher: Searcher, min_tier: str = "variant",
                     tiers: DuplicateTiers | None = None) -> list[dict[str, Any]]:
    """Every group of duplicates at ``min_tier`` or stronger, biggest first."""
    _check_tier(min_tier)
    tiers = tiers or DuplicateTiers()
    keys, hashes = searcher.catalog.phashes()
    space = searcher.spaces["image"]
    with searcher.lock.read():
        pairs = find_duplicate_pairs(keys, hashes, space.vectors_of_keys, tiers)
    groups = group_duplicates(pairs, min_tier=min_tier)
    ids = searcher.catalog.ids_of(sorted({k for g in groups for k in g.keys}))
    out = []
    for group in groups:
        out.append({
            "representative": ids[group.representative],
            "tier": group.tier,
            "ids": [ids[k] for k in group.keys],
            "pairs": [{"a": ids[a], "b": ids[b], "hamming": h, "cosine": round(c, 6)}
                      for a, b, h, c in group.pairs],
        })
    out.sort(key=lambda g: (-len(g["ids"]), TIERS.index(g["tier"]), g["representative"]))
    return out


def item_duplicates(searcher: Searcher, item_id: str,
                    tiers: DuplicateTiers | None = None) -> list[Duplicate]:
    """The near-duplicates of one item (itself excluded), strongest first."""
    key = searcher.catalog.key_of(item_id)
    if key is None:
        raise ItemNotFoundError(item_id)
    item = searcher.catalog.items_by_key([key]).get(key)
    if item is None:  # deleted since its key was read
        raise ItemNotFoundError(item_id)
    if item.phash is None:
        return []
    tiers = tiers or DuplicateTiers()
    index = searcher.hamming_index()
    with searcher.lock.read():
        found = duplicates_of(key, item.phash, index, searcher.spaces["image"].vectors_of_keys,
                              tiers)
    ids = searcher.catalog.ids_of([k for k, _, _, _ in found])
    return [Duplicate(ids[k], tier, int(h), float(c)) for k, h, c, tier in found if k in ids]
