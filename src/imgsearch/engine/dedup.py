"""Near-duplicates of a collection: groups for `imgsearch dedup`, one item's duplicates,
and folding duplicates out of a page of search results."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from imgsearch.errors import InvalidInputError, ItemNotFoundError
from imgsearch.search.duplicates import (
    TIERS,
    DuplicateTiers,
    collapse,
    duplicates_of,
    find_duplicate_pairs,
    group_duplicates,
    hash_index,
)

if TYPE_CHECKING:
    from imgsearch.engine.core import Engine


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


def duplicate_groups(engine: Engine, min_tier: str = "variant",
                     tiers: DuplicateTiers | None = None) -> list[dict[str, Any]]:
    """Every group of duplicates at ``min_tier`` or stronger, biggest first."""
    _check_tier(min_tier)
    tiers = tiers or DuplicateTiers()
    keys, hashes = engine.catalog.phashes()
    space = engine.spaces["image"]
    with engine.lock.read():
        pairs = find_duplicate_pairs(keys, hashes, space.vectors_of_keys, tiers)
    groups = group_duplicates(pairs, min_tier=min_tier)
    ids = engine.catalog.ids_of(sorted({k for g in groups for k in g.keys}))
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


def item_duplicates(engine: Engine, item_id: str,
                    tiers: DuplicateTiers | None = None) -> list[Duplicate]:
    """The near-duplicates of one item (itself excluded), strongest first."""
    key = engine.catalog.key_of(item_id)
    if key is None:
        raise ItemNotFoundError(item_id)
    item = engine.get(item_id)
    if item.phash is None:
        return []
    tiers = tiers or DuplicateTiers()
    index = engine.hamming_index()
    with engine.lock.read():
        found = duplicates_of(key, item.phash, index, engine.spaces["image"].vectors_of_keys,
                              tiers)
    ids = engine.catalog.ids_of([k for k, _, _, _ in found])
    return [Duplicate(ids[k], tier, int(h), float(c)) for k, h, c, tier in found if k in ids]


def build_hamming_index(engine: Engine) -> Any:
    keys, hashes = engine.catalog.phashes()
    return hash_index(keys, hashes)


def collapse_hits(engine: Engine, keys: NDArray[np.int64], min_tier: str = "near-exact"
                  ) -> tuple[NDArray[np.bool_], NDArray[np.int64]]:
    """Which ranked keys to keep, and how many hits each kept one stands for."""
    if len(keys) < 2:
        return np.ones(len(keys), bool), np.ones(len(keys), np.int64)
    hashes, present = engine.catalog.phashes_of(keys)
    if np.count_nonzero(present) < 2:  # nothing to fold: most lists of unhashed items
        return np.ones(len(keys), bool), np.ones(len(keys), np.int64)
    kept, _scores, counts = collapse(
        keys, np.zeros(len(keys), np.float32), lambda _keys: hashes,
        engine.spaces["image"].vectors_of_keys, DuplicateTiers(), min_tier,
        has_hash=present)
    if len(kept) == len(keys):
        return np.ones(len(keys), bool), np.ones(len(keys), np.int64)
    keep = np.isin(keys, kept)
    stands_for = np.ones(len(keys), np.int64)
    position = {int(k): i for i, k in enumerate(keys)}
    for key, count in zip(kept, counts, strict=True):
        stands_for[position[int(key)]] = count
    return keep, stands_for
