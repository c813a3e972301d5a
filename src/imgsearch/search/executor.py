"""Run encoded queries against vector spaces: candidates per signal, combined by weight.

A query arrives here as one or more *signals*: a vector in a space with a weight.
Each signal finds candidates in its space (restricted to the items the filters allow;
how, is the space backend's plan, see ``search.backend``);
candidates of every signal are then scored exactly on every signal from stored vectors
and combined by weight. Ties are broken by item key so that results, and therefore
pages, are deterministic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from imgsearch.search.backend import SpaceBackend

# Candidate lists are fetched in blocks so that consecutive pages of one query run the
# very same ANN search and therefore never overlap or leave gaps.
_PAGE_BLOCK = 64


@dataclass(frozen=True)
class Signal:
    name: str  # e.g. "image", "text", "clip_text"
    space: SpaceBackend
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


def _exact(space: SpaceBackend, query: NDArray[np.float32], keys: NDArray[np.int64]
           ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    found, vectors = space.vectors_of_keys(keys)
    return found, (vectors @ query).astype(np.float32) if len(found) else np.empty(0, np.float32)


def candidates(signal: Signal, k: int, allowed: NDArray[np.int64] | None,
               exclude: int | None, params: Mapping[str, Any] | None = None
               ) -> tuple[NDArray[np.int64], NDArray[np.float32], str]:
    """Top-k item keys (and scores) of one signal among ``allowed`` keys (None: all);
    ``params`` are the query's hints for the backend (``Query.search_params``)."""
    extra = 1 if exclude is not None else 0
    keys, scores, plan = signal.space.search(signal.vector, k + extra, allowed, params or {})
    if exclude is not None:
        if len(keys) and keys[0] == exclude:  # the item is its own nearest, as a rule
            keys, scores = keys[1:], scores[1:]
        else:
            keep = keys != exclude
            keys, scores = keys[keep], scores[keep]
    if len(scores) > 1 and (scores[1:] < scores[:-1]).all():
        return keys[:k], scores[:k], plan  # already in order, no ties to break by key
    order = np.lexsort((keys, -scores))[:k]
    return keys[order], scores[order], plan


def rank(signals: list[Signal], offset: int, limit: int, allowed: NDArray[np.int64] | None,
         exclude: int | None, params: Mapping[str, Any] | None = None) -> Ranked:
    k = fetch_size(offset, limit)
    pools: list[tuple[Signal, NDArray[np.int64], NDArray[np.float32]]] = []
    plans = []
    for signal in signals:
        keys, scores, plan = candidates(signal, k, allowed, exclude, params)
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
