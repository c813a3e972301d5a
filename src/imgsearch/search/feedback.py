"""Pseudo-relevance feedback for text queries: through the text space and the image space.

A text query first ranks by its text lists (keyword and semantic). Its most confident
hits, the *seeds*, then expand the query in two ways:

- **text feedback** (Rocchio): the semantic query vector moves towards the seeds' text
  vectors, ``q' = q + beta * weighted mean(seeds)`` (weights: :func:`soft_seeds`), and
  the semantic list is re-scored with it. A category-level query ("mammals", "road
  signs") is far from the short titles of its members ("A cow."); the members it did
  find are near the ones it missed. :func:`neighbour_smoothing` then lifts the items
  whose neighbours in the list scored well.
- **visual feedback**: items that look like the seeds (each seed's nearest neighbours in
  the image space, by their best similarity to any seed) join the candidates as one more
  fused list, ``visual_feedback``, with its own weight. Categories with a consistent
  look (flags, road signs, digits, coins, icons) should gain most: their members rarely
  share a word, but they share a look. With the weight-free ``descriptor`` encoder the
  looks are too loose for that and the list is off by default (BENCHMARKS.md).

Guards against drift: only seeds whose text evidence is confident count (a query that
nothing matches well brings no feedback), at most a few of them, and the visual list
holds at most ``depth`` items, so feedback can lift and add a few items but never
replace the text ranking. An item the visual feedback alone brought is only as
confident as the seed it resembles, times its resemblance (``Feedback.evidence``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from imgsearch.search.backend import SpaceBackend
from imgsearch.search.executor import Signal, candidates
from imgsearch.search.fusion import RankedList

NAME = "visual_feedback"
TEXT = "text_feedback"  # the text list moved towards its surest hits (search.text_feedback)


@dataclass(frozen=True)
class FeedbackOptions:
    weight: float = 0.0  # 0: no feedback
    seeds: int = 5  # at most this many seeds, from the top of the text ranking
    min_confidence: float = 0.5  # a seed's text confidence must reach this
    depth: int = 20  # the feedback list holds at most this many items

    @property
    def enabled(self) -> bool:
        return self.weight > 0 and self.seeds > 0 and self.depth > 0


@dataclass
class Feedback:
    ranked: RankedList
    seeds: NDArray[np.int64]
    seed_confidence: NDArray[np.float32]  # aligned with seeds
    plan: str

    def evidence(self, space: SpaceBackend, keys: NDArray[np.int64],
                 judge: Callable[[NDArray[np.float32]], NDArray[np.float32]] | None
                 ) -> NDArray[np.float32]:
        """0..1 per key: for the keys in the feedback list, how confident the seed each
        resembles most is, times how much it resembles it (``judge``: the image space's
        calibrated confidence of a similarity; without one, the similarity itself)."""
        out = np.zeros(len(keys), np.float32)
        inside = np.isin(keys, self.ranked.keys)
        if not inside.any():
            return out
        _, seeds = space.vectors_of_keys(self.seeds)
        found, vectors = space.vectors_of_keys(keys[inside])
        if not len(found) or not len(seeds):
            return out
        sims = vectors @ seeds.T  # found x seeds
        nearest = sims.argmax(axis=1)
        best = sims[np.arange(len(found)), nearest].astype(np.float32)
        look = judge(best) if judge is not None else np.clip(best, 0.0, 1.0)
        value = (self.seed_confidence[nearest] * look).astype(np.float32)
        where = np.flatnonzero(inside)
        position = {int(k): i for i, k in enumerate(found)}
        for at, key in zip(where, keys[inside], strict=True):
            if int(key) in position:
                out[at] = value[position[int(key)]]
        return out

    def describe(self, ids: Mapping[int, str]) -> dict[str, Any]:
        """What the interpretation says of this expansion."""
        return {"seeds": [ids.get(int(k), str(int(k))) for k in self.seeds],
                "neighbours": len(self.ranked.keys), "weight": self.ranked.weight}


def seeds_of(keys: NDArray[np.int64], confidence: NDArray[np.float32],
             options: FeedbackOptions) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """The confident head of a first-pass ranking: of its first ``options.seeds`` keys,
    those whose text confidence reaches ``options.min_confidence``."""
    head = slice(0, options.seeds)
    keep = confidence[head] >= np.float32(options.min_confidence)
    return keys[head][keep], confidence[head][keep]


def visual_feedback(space: SpaceBackend, seeds: NDArray[np.int64],
                    seed_confidence: NDArray[np.float32], options: FeedbackOptions,
                    allowed: NDArray[np.int64] | None,
                    params: Mapping[str, Any] | None = None) -> Feedback | None:
    """The feedback list: each seed's ``depth`` nearest items in the image space, ranked
    by their best similarity to any seed, the first ``depth`` kept (None: no seed has an
    image vector). The best similarity, not the mean vector's: a category's members
    often come in a few looks, and the mean of two looks resembles neither."""
    if not len(seeds) or not options.enabled:
        return None
    found, vectors = space.vectors_of_keys(seeds)
    if not len(found):
        return None
    best: dict[int, float] = {}
    plan = ""
    for vector in vectors:
        keys, scores, plan = candidates(Signal(NAME, space, vector), options.depth,
                                        allowed, None, params)
        for key, score in zip(keys.tolist(), scores.tolist(), strict=True):
            if score > best.get(key, -2.0):
                best[key] = score
    ordered = sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))[:options.depth]
    keys = np.fromiter((k for k, _ in ordered), np.int64, len(ordered))
    scores = np.fromiter((v for _, v in ordered), np.float32, len(ordered))
    confidence = {int(k): float(c) for k, c in zip(seeds, seed_confidence, strict=True)}
    kept = np.asarray([confidence[int(k)] for k in found], np.float32)
    return Feedback(RankedList(NAME, keys, scores, options.weight), found.astype(np.int64),
                    kept, f"{NAME}:{plan} seeds:{len(found)}")


def by_score(keys: NDArray[np.int64], scores: NDArray[np.float32],
             vectors: NDArray[np.float32]
             ) -> tuple[NDArray[np.int64], NDArray[np.float32], NDArray[np.float32]]:
    """Keys, scores and vectors, best score first (the lower key first on a tie)."""
    order = np.lexsort((keys, -scores))
    return keys[order], scores[order], vectors[order]


def moved_towards(query: NDArray[np.float32], seeds: NDArray[np.float32], beta: float
                  ) -> NDArray[np.float32]:
    """Rocchio's update: the unit query vector moved towards the mean of the unit seed
    vectors by ``beta`` (0: the query as it was)."""
    if beta <= 0 or not len(seeds):
        return query
    moved = (query + np.float32(beta) * seeds.mean(axis=0)).astype(np.float32)
    norm = float(np.linalg.norm(moved))
    return moved / np.float32(norm) if norm > 0 else query


def soft_seeds(scores: NDArray[np.float32], temperature: float) -> NDArray[np.float32]:
    """Weights of a ranking's head as seeds: softmax(score / temperature), so the surest
    hits count most and a head of near-equals counts alike."""
    if not len(scores):
        return scores
    shifted = (scores - scores.max()) / np.float32(max(temperature, 1e-6))
    weights = np.exp(shifted.astype(np.float64))
    return (weights / weights.sum()).astype(np.float32)


def neighbour_smoothing(scores: NDArray[np.float32],
                        spaces: list[tuple[NDArray[np.int64], NDArray[np.float32], float]],
                        neighbours: int) -> NDArray[np.float32]:
    """A ranked list's scores, each lifted by how well its nearest neighbours in the list
    scored: ``z + sum over spaces of weight * mean(z of its neighbours)``, where ``z``
    is the scores standardised over the list. ``spaces`` holds, per space, the
    positions in the list that have a vector there, those vectors and the weight. Items
    of one kind cluster (the members of a category resemble each other more than they
    resemble the query), so a member the query alone ranks low rises with its
    well-ranked neighbours, and a lone stray sinks."""
    spread = float(scores.std()) if len(scores) else 0.0
    if len(scores) < 3 or spread <= 0:
        return scores.astype(np.float32)
    z = ((scores - scores.mean()) / np.float32(spread)).astype(np.float32)
    out = z.copy()
    for positions, vectors, weight in spaces:
        m = min(neighbours, len(positions) - 1)
        if weight == 0 or m < 1:
            continue
        sims = vectors @ vectors.T
        np.fill_diagonal(sims, -np.inf)
        nearest = np.argpartition(-sims, m - 1, axis=1)[:, :m]
        out[positions] += np.float32(weight) * z[positions][nearest].mean(axis=1)
    return out
