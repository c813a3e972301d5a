"""The ranking stages after the candidates, over arrays and collaborators passed in.

Business signals, a colour preference and diversity (a cap per category, maximal
marginal relevance) reorder or thin one block of candidates. Nothing here opens a
collection: the items and vectors it needs come from callables, so each stage can be
tested with a dictionary standing in for the catalog.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from imgsearch.config import Settings
from imgsearch.errors import InvalidQueryError
from imgsearch.search.executor import Ranked
from imgsearch.search.rerank import (
    BusinessWeights,
    business_scores,
    color_boosted,
    max_per_category,
    mmr_order,
)
from imgsearch.types import Item

BOOST_SIGNALS = ("popularity", "rating", "conversion", "freshness")

ItemsByKey = Callable[[list[int]], Mapping[int, Item]]
VectorsOfKeys = Callable[[NDArray[np.int64]], tuple[NDArray[np.int64], NDArray[np.float32]]]


@dataclass(frozen=True)
class RerankOptions:
    """What a query asks of the stages after its candidates."""

    weights: BusinessWeights
    prefer_colors: Sequence[str] = ()
    color_boost: float = 0.0
    max_per_category: int | None = None
    mmr_lambda: float | None = None

    @property
    def asks_anything(self) -> bool:
        return bool(self.weights.total or self.max_per_category or self.prefer_colors
                    or self.mmr_lambda is not None)


def subset(ranked: Ranked, keep: NDArray[Any]) -> Ranked:
    """The candidates selected by a boolean mask or reordered by an index array."""
    return Ranked(ranked.keys[keep], ranked.scores[keep],
                  {n: c[keep] for n, c in ranked.per_signal.items()},
                  {n: c[keep] for n, c in ranked.ranks.items()}, ranked.plan, ranked.candidates,
                  {n: c[keep] for n, c in ranked.evidence.items()})


def business_weights(boosts: Mapping[str, float], settings: Settings) -> BusinessWeights:
    """A query's boosts over the collection's defaults; an unknown signal is refused."""
    if not boosts:
        return _default_weights(settings)
    unknown = set(boosts) - set(BOOST_SIGNALS)
    if unknown:
        raise InvalidQueryError(f"unknown boost {sorted(unknown)[0]!r}; use popularity, "
                                f"rating, conversion or freshness")
    s = settings
    weights = BusinessWeights(
        popularity=float(boosts.get("popularity", s.boost_popularity)),
        rating=float(boosts.get("rating", s.boost_rating)),
        conversion=float(boosts.get("conversion", s.boost_conversion)),
        freshness=float(boosts.get("freshness", s.boost_freshness)),
        half_life_days=s.freshness_half_life_days)
    weights.validate()
    return weights


_DEFAULT_WEIGHTS: dict[int, tuple[Settings, BusinessWeights]] = {}


def _default_weights(s: Settings) -> BusinessWeights:
    """The settings' business weights, checked once rather than on every search (kept
    by the settings' identity: hashing all their fields costs more than the check)."""
    known = _DEFAULT_WEIGHTS.get(id(s))
    if known is not None and known[0] is s:
        return known[1]
    weights = BusinessWeights(
        popularity=float(s.boost_popularity), rating=float(s.boost_rating),
        conversion=float(s.boost_conversion), freshness=float(s.boost_freshness),
        half_life_days=s.freshness_half_life_days)
    weights.validate()
    if len(_DEFAULT_WEIGHTS) >= 64:
        _DEFAULT_WEIGHTS.clear()
    _DEFAULT_WEIGHTS[id(s)] = (s, weights)  # holding ``s`` keeps its id from being reused
    return weights


def rerank(ranked: Ranked, confidence: NDArray[np.float32], stands_for: NDArray[np.int64],
           options: RerankOptions, items_by_key: ItemsByKey, vectors_of_keys: VectorsOfKeys
           ) -> tuple[Ranked, NDArray[np.float32], NDArray[np.int64]]:
    """Colour preference and business signals (re-scored), then diversity, over the
    whole candidate block; ``confidence`` and ``stands_for`` follow their candidates."""
    if not len(ranked.keys) or not options.asks_anything:
        return ranked, confidence, stands_for
    items = items_by_key([int(k) for k in ranked.keys])

    def take(index: NDArray[Any], scores: NDArray[np.float32] | None = None) -> None:
        nonlocal ranked, confidence, stands_for
        ranked, confidence, stands_for = subset(ranked, index), confidence[index], \
            stands_for[index]
        if scores is not None:
            ranked.scores = scores[index]

    def rescored(scores: NDArray[np.float32]) -> None:
        take(np.lexsort((ranked.keys, -scores)), scores)

    if options.prefer_colors:
        rescored(color_boosted(ranked.scores, [items.get(int(k)) for k in ranked.keys],
                               tuple(options.prefer_colors), options.color_boost))
    if options.weights.total:
        rescored(business_scores(ranked.scores, [items.get(int(k)) for k in ranked.keys],
                                 options.weights))
    if options.max_per_category is not None:
        take(max_per_category(ranked.keys, {k: i.category for k, i in items.items()},
                              options.max_per_category))
    if options.mmr_lambda is not None:
        take(mmr_order(ranked.keys, ranked.scores, vectors_of_keys, options.mmr_lambda))
    return ranked, confidence, stands_for


__all__ = ["BOOST_SIGNALS", "RerankOptions", "business_weights", "rerank", "subset"]
