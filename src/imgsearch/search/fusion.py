"""Fuse ranked lists from several signals into one ranking.

Reciprocal-rank fusion (the default) needs no score calibration: an item's fused score
is ``sum(weight / (k + rank))`` over the lists that contain it (rank from 1). Weighted
fusion min-max normalises each list's scores to 0..1 and sums them by weight. Both keep,
for every fused item, the rank and score it had in each list, so a hit can say why it
matched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class RankedList:
    name: str
    keys: NDArray[np.int64]  # best first
    scores: NDArray[np.float32]
    weight: float = 1.0


@dataclass
class Fused:
    keys: NDArray[np.int64]
    scores: NDArray[np.float32]
    ranks: dict[str, NDArray[np.int64]]  # per list, aligned with keys; 0 = not in that list
    list_scores: dict[str, NDArray[np.float32]]  # per list; NaN = not in that list


def _positions(lists: list[RankedList]) -> tuple[NDArray[np.int64], list[NDArray[np.int64]]]:
    union = _distinct(np.concatenate([rl.keys for rl in lists])) if lists else \
        np.empty(0, np.int64)
    return union, [np.searchsorted(union, rl.keys) for rl in lists]


def _distinct(keys: NDArray[np.int64]) -> NDArray[np.int64]:
    """``np.unique(keys)`` without its first call's import of numpy.ma (~10 ms of a
    one-shot query)."""
    ordered = np.sort(keys)
    if len(ordered) < 2:
        return ordered
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]


def _finish(union: NDArray[np.int64], fused: NDArray[np.float32], lists: list[RankedList],
            where: list[NDArray[np.int64]]) -> Fused:
    order = np.lexsort((union, -fused))
    ranks: dict[str, NDArray[np.int64]] = {}
    scores: dict[str, NDArray[np.float32]] = {}
    for rl, pos in zip(lists, where, strict=True):
        rank = np.zeros(len(union), np.int64)
        rank[pos] = np.arange(1, len(pos) + 1)
        score = np.full(len(union), np.nan, np.float32)
        score[pos] = rl.scores
        ranks[rl.name], scores[rl.name] = rank[order], score[order]
    return Fused(union[order], fused[order], ranks, scores)


def reciprocal_rank_fusion(lists: list[RankedList], k: int = 60) -> Fused:
    union, where = _positions(lists)
    fused = np.zeros(len(union), np.float32)
    for rl, pos in zip(lists, where, strict=True):
        fused[pos] += np.float32(rl.weight) / (k + np.arange(1, len(pos) + 1, dtype=np.float32))
    return _finish(union, fused, lists, where)


def weighted_fusion(lists: list[RankedList]) -> Fused:
    union, where = _positions(lists)
    fused = np.zeros(len(union), np.float32)
    total = sum(rl.weight for rl in lists) or 1.0
    for rl, pos in zip(lists, where, strict=True):
        if not len(pos):
            continue
        low, high = float(rl.scores.min()), float(rl.scores.max())
        # present in the list scales to 0.1..1, so its last item still beats being absent
        normalised = 0.1 + 0.9 * (rl.scores - low) / (high - low) if high > low \
            else np.ones_like(rl.scores)
        fused[pos] += np.float32(rl.weight / total) * normalised.astype(np.float32)
    return _finish(union, fused, lists, where)


def fuse(lists: list[RankedList], method: str, k: int) -> Fused:
    """Fuse with ``method`` ("rrf" or "weighted"); a list of weight 0 takes no part."""
    lists = [rl for rl in lists if rl.weight != 0]
    if method == "rrf":
        return reciprocal_rank_fusion(lists, k)
    if method == "weighted":
        return weighted_fusion(lists)
    raise ValueError(f"unknown fusion method {method!r}; use rrf or weighted")
