"""Re-ranking a candidate list: business signals and diversity.

Both work on the first block of candidates (at most a few hundred), after retrieval and
before pagination, so they are cheap and every page of a query sees the same order.

- Business signals (popularity, rating, conversion, freshness) are off by default. With
  weights w_i summing to W (at most 1), the new score is
  ``(1 - W) * relevance + sum(w_i * signal_i)``, where relevance is the retrieval
  score divided by the best one and each signal is scaled to 0..1 within the list
  (popularity on a log scale; freshness = 0.5 ** (age / half-life)).
- Diversity: ``max_per_category`` drops hits beyond that many per category;
  maximal marginal relevance (``mmr_lambda``) picks each next hit by
  ``lambda * relevance - (1 - lambda) * max similarity to those already picked``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from numpy.typing import NDArray

from imgsearch.errors import InvalidQueryError
from imgsearch.types import Item


@dataclass(frozen=True)
class BusinessWeights:
    popularity: float = 0.0
    rating: float = 0.0
    conversion: float = 0.0
    freshness: float = 0.0
    half_life_days: float = 30.0

    @property
    def total(self) -> float:
        return self.popularity + self.rating + self.conversion + self.freshness

    def validate(self) -> None:
        values = (self.popularity, self.rating, self.conversion, self.freshness)
        if any(v < 0 or not math.isfinite(v) for v in values) or self.total > 1.0 + 1e-9:
            raise InvalidQueryError("business weights must be >= 0 and sum to at most 1, "
                                    f"got {values}")
        if self.half_life_days <= 0:
            raise InvalidQueryError("freshness half-life must be positive")


def _scaled(values: list[float | None], log: bool = False) -> NDArray[np.float32]:
    raw = np.asarray([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    if log:
        raw = np.log1p(np.clip(raw, 0, None))
    top = np.nanmax(raw) if np.isfinite(raw).any() else 0.0
    low = min(np.nanmin(raw), 0.0) if np.isfinite(raw).any() else 0.0
    span = top - low
    out = (raw - low) / span if span > 0 else np.zeros_like(raw)
    return np.nan_to_num(out, nan=0.0).astype(np.float32)


def _age_days(created_at: str | None, now: datetime) -> float | None:
    if not created_at:
        return None
    try:
        when = datetime.fromisoformat(created_at.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((now - when).total_seconds() / 86400.0, 0.0)


def business_scores(scores: NDArray[np.float32], items: list[Item | None],
                    weights: BusinessWeights, now: datetime | None = None
                    ) -> NDArray[np.float32]:
    now = now or datetime.now(UTC)
    top = float(scores.max(initial=0.0))
    relevance = scores / np.float32(top) if top > 0 else np.zeros_like(scores)
    total = np.float32(1.0 - weights.total) * relevance
    if weights.popularity:
        total += weights.popularity * _scaled([i.popularity if i else None for i in items],
                                              log=True)
    if weights.rating:
        total += weights.rating * _scaled([i.rating if i else None for i in items])
    if weights.conversion:
        total += weights.conversion * _scaled([i.conversion if i else None for i in items])
    if weights.freshness:
        ages = [_age_days(i.created_at if i else None, now) for i in items]
        fresh = np.asarray([0.0 if a is None else 0.5 ** (a / weights.half_life_days)
                            for a in ages], dtype=np.float32)
        total += weights.freshness * fresh
    return total.astype(np.float32)


def color_boosted(scores: NDArray[np.float32], items: list[Item | None],
                  colors: tuple[str, ...], boost: float) -> NDArray[np.float32]:
    """Relevance (scaled to the best one) plus ``boost`` for items of a wanted colour.

    An item's colours are its declared colour and the dominant colours found in its
    image at ingest (normalised names, see ``enrich.colors``).
    """
    wanted = {c.casefold() for c in colors}
    top = float(scores.max(initial=0.0))
    relevance = scores / np.float32(top) if top > 0 else np.zeros_like(scores)
    matches = np.asarray([bool(item and wanted & {c.casefold() for c in item.colors})
                          for item in items], dtype=np.float32)
    return (relevance + np.float32(boost) * matches).astype(np.float32)


def max_per_category(keys: NDArray[np.int64], categories: Mapping[int, str | None],
                     limit: int) -> NDArray[np.bool_]:
    if limit < 1:
        raise InvalidQueryError(f"max_per_category must be at least 1, got {limit}")
    seen: dict[str, int] = {}
    keep = np.zeros(len(keys), dtype=bool)
    for i, key in enumerate(keys):
        category = (categories.get(int(key)) or "").casefold()
        if seen.get(category, 0) < limit:
            seen[category] = seen.get(category, 0) + 1
            keep[i] = True
    return keep


def mmr_order(keys: NDArray[np.int64], scores: NDArray[np.float32],
              vectors_of: Callable[[NDArray[np.int64]], tuple[NDArray[np.int64],
                                                              NDArray[np.float32]]],
              lam: float) -> NDArray[np.int64]:
    """Positions of ``keys`` in maximal-marginal-relevance order."""
    if not 0.0 <= lam <= 1.0:
        raise InvalidQueryError(f"mmr_lambda must be between 0 and 1, got {lam}")
    n = len(keys)
    if n < 2:
        return np.arange(n)
    found, vectors = vectors_of(keys)
    row = {int(k): i for i, k in enumerate(found)}
    matrix = np.zeros((n, vectors.shape[1] if len(vectors) else 1), dtype=np.float32)
    for i, key in enumerate(keys):
        if int(key) in row:
            matrix[i] = vectors[row[int(key)]]
    similarity = matrix @ matrix.T
    top = float(scores.max())
    relevance = scores / top if top > 0 else scores
    chosen: list[int] = []
    closest = np.full(n, -np.inf, dtype=np.float32)
    left = np.ones(n, dtype=bool)
    for _ in range(n):
        penalty = np.where(np.isfinite(closest), closest, 0.0)
        value = lam * relevance - (1.0 - lam) * penalty
        value[~left] = -np.inf
        pick = int(np.argmax(value))
        chosen.append(pick)
        left[pick] = False
        closest = np.maximum(closest, similarity[pick])
    return np.asarray(chosen, dtype=np.int64)
