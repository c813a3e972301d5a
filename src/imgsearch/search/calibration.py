"""Calibrated scores, so that "nothing matches" can be an honest answer.

A raw cosine means different things in different spaces: 0.6 is unremarkable for the
colour-and-texture descriptor (whose unrelated pairs already score ~0.3) and strong for
minilm (whose unrelated texts score ~0.05). Each space is therefore calibrated against
its own collection, from the similarities of random pairs of stored vectors:

- ``median``: what two random items score;
- ``chance``: what the best of N random items scores, N the collection size — the
  (1 - 1/N) quantile of random pairs (at most the 0.9995 quantile). A query unrelated
  to everything still gets a top hit this good by chance alone.

A raw score maps piecewise linearly to a confidence: median -> 0, chance -> 0.5,
1.0 -> 1. The default minimum (``Settings.min_confidence`` = 0.5) therefore keeps only
hits better than the best that chance would give; when none is left the result is
explicitly empty, with the reason. The calibration is stored in the manifest and
refreshed when the collection has grown or shrunk substantially.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from imgsearch.search.space import SpaceIndex

MIN_VECTORS = 20  # below this there are too few pairs to say what chance looks like
_SAMPLE = 2_000
_PAIRS = 20_000
MAX_QUANTILE = 0.9995


@dataclass(frozen=True)
class Calibration:
    median: float
    chance: float
    mean: float
    std: float
    vectors: int  # collection size when measured

    def confidence(self, scores: NDArray[np.float32]) -> NDArray[np.float32]:
        scores = np.asarray(scores, dtype=np.float32)
        low = (scores - self.median) / max(self.chance - self.median, 1e-6) * 0.5
        high = 0.5 + (scores - self.chance) / max(1.0 - self.chance, 1e-6) * 0.5
        return np.clip(np.where(scores < self.chance, low, high), 0.0, 1.0).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {k: round(v, 6) if isinstance(v, float) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        return cls(float(data["median"]), float(data["chance"]), float(data["mean"]),
                   float(data["std"]), int(data["vectors"]))


def calibrate(space: SpaceIndex, seed: int = 0) -> Calibration | None:
    """Random-pair similarity statistics of a space's stored vectors (None if too few)."""
    labels = space.index.labels()
    n = len(labels)
    if n < MIN_VECTORS:
        return None
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(labels, size=min(n, _SAMPLE), replace=False))
    found, vectors = space.catalog.vectors_by_vid(list(sample), space.space.dim)
    m = len(found)
    if m < MIN_VECTORS:
        return None
    a = rng.integers(0, m, _PAIRS)
    b = rng.integers(0, m, _PAIRS)
    keep = a != b
    sims = np.einsum("ij,ij->i", vectors[a[keep]], vectors[b[keep]])
    # pairs of identical vectors (duplicates) are not what chance looks like
    sims = sims[sims < 0.9999]
    if len(sims) < MIN_VECTORS:
        return None
    median = float(np.median(sims))
    chance = float(np.quantile(sims, min(1.0 - 1.0 / n, MAX_QUANTILE)))
    chance = min(max(chance, median + 1e-3), 0.999)
    return Calibration(median, chance, float(sims.mean()), float(sims.std()), n)


def is_stale(calibration: Calibration | None, vectors: int, ratio: float = 0.2) -> bool:
    if calibration is None:
        return vectors >= MIN_VECTORS
    return abs(vectors - calibration.vectors) > ratio * max(calibration.vectors, 1)
