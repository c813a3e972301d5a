"""Run encoded queries against vector spaces: filter planning, ANN, exact re-scoring.

A query arrives here as one or more *signals*: a vector in a space with a weight.
Each signal finds candidates in its space (restricted to the items the filters allow);
candidates of every signal are then scored exactly on every signal from stored vectors
and combined by weight. Ties are broken by item key so that results, and therefore
pages, are deterministic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from imgsearch.config import Settings
from imgsearch.search.space import SpaceIndex

# Candidate lists are fetched in blocks so that consecutive pages of one query run the
# very same ANN search and therefore never overlap or leave gaps.
_PAGE_BLOCK = 64
_BRUTE_FORCE_MAX = 2_000


@dataclass(frozen=True)
class Signal:
    name: str  # e.g. "image", "text", "clip_text"
    space: SpaceIndex
    vector: NDArray[np.float32]
    weight: float = 1.0


@dataclass
class Ranked:
    keys: NDArray[np.int64]
    scores: NDArray[np.float32]
    per_signal: dict[str, NDArray[np.float32]] = field(default_factory=dict)
    ranks: dict[str, NDArray[np.int64]] = field(default_factory=dict)  # 0: not in that list
    plan: str = ""
    candidates: int = 0
    # per-signal evidence in 0..1 that is not a calibrated similarity (keyword coverage)
    evidence: dict[str, NDArray[np.float32]] = field(default_factory=dict)


def fetch_size(offset: int, limit: int) -> int:
    need = offset + limit
    return -(-need // _PAGE_BLOCK) * _PAGE_BLOCK


def exact_cutoff(k: int, total: int) -> int:
    """Up to how many allowed items scoring them all beats a filtered HNSW walk.

    The walk needs efSearch ≈ k·total / (2·allowed) to keep its recall, and each unit of
    efSearch costs about 15× what scoring one stored vector costs (bench/filters.py, 100k
    and 1M items), so exact scoring is cheaper while allowed² < 7.5·k·total: about 7,000
    items of 100,000 and 22,000 of 1,000,000 for a first page (k = 64)."""
    return int(math.sqrt(7.5 * k * total))


def _exact(space: SpaceIndex, query: NDArray[np.float32], keys: NDArray[np.int64]
           ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    found, vectors = space.vectors_of_keys(keys)
    return found, (vectors @ query).astype(np.float32) if len(found) else np.empty(0, np.float32)


def _members(keys: NDArray[np.int64], allowed: NDArray[np.int64]) -> NDArray[np.bool_]:
    """Which ``keys`` are in ``allowed`` (sorted, as the catalog gives it): a binary
    search per key instead of sorting both sides."""
    if not len(allowed):
        return np.zeros(len(keys), bool)
    at = np.searchsorted(allowed, keys).clip(max=len(allowed) - 1)
    return allowed[at] == keys


def candidates(signal: Signal, k: int, allowed: NDArray[np.int64] | None,
               exclude: int | None, settings: Settings, *, ef_search: int | None = None,
               nprobe: int | None = None) -> tuple[NDArray[np.int64], NDArray[np.float32], str]:
    """Top-k item keys (and scores) of one signal among ``allowed`` keys (None: all)."""
    space = signal.space
    total = len(space)
    if total == 0:
        return np.empty(0, np.int64), np.empty(0, np.float32), "empty"
    extra = 1 if exclude is not None else 0
    if allowed is not None and len(allowed) <= _BRUTE_FORCE_MAX and \
            not space.index.exact_scores:
        keys, scores = _exact(space, signal.vector, allowed)
        plan = "exact-subset"
    else:
        ef = ef_search or settings.hnsw_ef_search
        probe = nprobe or settings.ivf_nprobe
        if not space.index.exact_scores:
            fetch = max((k + extra) * settings.pq_rescore_factor, k + extra)
        else:
            fetch = k + extra
        if allowed is None:
            scores, vids = space.index.search(signal.vector[None, :], min(fetch, total),
                                              ef_search=max(ef, fetch), nprobe=probe)
            plan = space.index.kind
        elif len(allowed) / total <= settings.prefilter_max_fraction:
            # Few enough allowed items: an ef covering them all makes the index score
            # each from the vectors it holds, which is exact and cheaper than a walk.
            small = space.index.exact_scores and \
                len(allowed) <= min(settings.exact_filter_max, exact_cutoff(fetch, total))
            walk = max(ef, fetch, len(allowed)) if small else max(ef, fetch)
            scores, vids = space.search_among(signal.vector, min(fetch, total), allowed,
                                              ef_search=walk, nprobe=probe)
            plan = "exact-subset" if small else f"{space.index.kind}+prefilter"
        else:
            # Unselective filter: search unrestricted with over-fetch, drop what fails.
            over = int(np.ceil(fetch * total / max(len(allowed), 1) * 1.5))
            scores, vids = space.index.search(signal.vector[None, :], min(over, total),
                                              ef_search=max(ef, over), nprobe=probe)
            plan = f"{space.index.kind}+postfilter"
        keys = space.keys_of(vids[0])
        scores = scores[0]
        ok = keys >= 0
        if allowed is not None and plan.endswith("postfilter"):
            ok &= _members(keys, allowed)
        keys, scores = keys[ok], scores[ok]
        if not space.index.exact_scores and len(keys):
            keys, scores = _exact(space, signal.vector, keys)
            plan += "+rescore"
    if exclude is not None:
        keep = keys != exclude
        keys, scores = keys[keep], scores[keep]
    order = np.lexsort((keys, -scores))[:k]
    return keys[order], scores[order], plan


def rank(signals: list[Signal], offset: int, limit: int, allowed: NDArray[np.int64] | None,
         exclude: int | None, settings: Settings, *, ef_search: int | None = None,
         nprobe: int | None = None) -> Ranked:
    k = fetch_size(offset, limit)
    pools: list[tuple[Signal, NDArray[np.int64], NDArray[np.float32]]] = []
    plans = []
    for signal in signals:
        keys, scores, plan = candidates(signal, k, allowed, exclude, settings,
                                        ef_search=ef_search, nprobe=nprobe)
        pools.append((signal, keys, scores))
        plans.append(f"{signal.name}:{plan}")
    if len(pools) == 1:
        signal, keys, scores = pools[0]
        return Ranked(keys, scores, {signal.name: scores},
                      {signal.name: np.arange(1, len(keys) + 1)}, ", ".join(plans), len(keys))
    union = np.unique(np.concatenate([keys for _, keys, _ in pools]))
    total_weight = sum(s.weight for s in signals) or 1.0
    combined = np.zeros(len(union), dtype=np.float32)
    per_signal: dict[str, NDArray[np.float32]] = {}
    ranks: dict[str, NDArray[np.int64]] = {}
    for signal, own_keys, _ in pools:
        rank_column = np.zeros(len(union), dtype=np.int64)
        rank_column[np.searchsorted(union, own_keys)] = np.arange(1, len(own_keys) + 1)
        ranks[signal.name] = rank_column
        found, scores = _exact(signal.space, signal.vector, union)
        column = np.zeros(len(union), dtype=np.float32)
        column[np.searchsorted(union, found)] = scores
        per_signal[signal.name] = column
        combined += np.float32(signal.weight / total_weight) * column
    order = np.lexsort((union, -combined))[:k]
    return Ranked(union[order], combined[order],
                  {name: col[order] for name, col in per_signal.items()},
                  {name: col[order] for name, col in ranks.items()},
                  ", ".join(plans), len(union))
