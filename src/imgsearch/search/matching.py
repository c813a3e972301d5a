"""What kind of match a hit is: ``exact`` (the same content), ``copy`` (the same picture
after edits, verified by local features) or ``similar`` (it looks alike).

Only the best few candidates of a query image are examined (``VERIFY_TOP``): a copy that
the global descriptor does not rank near the top is not looked for.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from imgsearch.enrich.phash import hamming, perceptual_hash
from imgsearch.search.verify import MIN_INLIERS, FeatureCache, Features, features, verify

__all__ = ["VERIFY_TOP", "Candidate", "Match", "QueryImage", "copy_confidence", "match_kinds"]

VERIFY_TOP = 8
# Same content: identical bytes, or the same perceptual hash and a cosine this close to 1
# (the same pixels saved again, or reduced).
EXACT_COSINE = 0.995
SIMILAR_CEILING = 0.99  # only an exact copy is shown as 100 %


@dataclass
class QueryImage:
    """A query image as decoded, with its vector."""

    vector: NDArray[np.float32]
    content_hash: str
    image: Image.Image
    _phash: int | None = field(default=None, repr=False)
    _features: tuple[Features, Features] | None = field(default=None, repr=False)

    @property
    def phash(self) -> int:
        if self._phash is None:
            self._phash = perceptual_hash(self.image)
        return self._phash

    @property
    def local_features(self) -> tuple[Features, Features]:
        """Its ORB features, as is and mirrored (computed once)."""
        if self._features is None:
            self._features = (features(self.image), features(self.image, mirror=True))
        return self._features


@dataclass(frozen=True)
class Candidate:
    key: int
    vector: NDArray[np.float32] | None
    content_hash: str | None
    phash: int | None
    cache_key: Hashable  # names the stored image its features come from
    load: Callable[[], Image.Image | None]  # its stored image (thumbnail), None if gone


@dataclass(frozen=True)
class Match:
    kind: str  # "exact" | "copy"
    evidence: dict[str, float]


def _exact(look: QueryImage, candidate: Candidate) -> Match | None:
    if candidate.content_hash is not None and candidate.content_hash == look.content_hash:
        return Match("exact", {"same_bytes": 1.0})
    if candidate.phash is None or candidate.vector is None:
        return None
    cosine = float(candidate.vector @ look.vector)
    if cosine < EXACT_COSINE:
        return None
    distance = hamming(look.phash, candidate.phash)
    if distance == 0:
        return Match("exact", {"hamming": 0.0, "cosine": round(cosine, 4)})
    return None


def match_kinds(looks: Sequence[QueryImage], candidates: Sequence[Candidate],
                cache: FeatureCache) -> dict[int, Match]:
    """Exact and verified-copy matches among ``candidates`` (keys not listed: similar)."""
    found: dict[int, Match] = {}
    for candidate in candidates:
        exact = next((m for look in looks if (m := _exact(look, candidate)) is not None), None)
        if exact is not None:
            found[candidate.key] = exact
            continue
        stored = cache.get(candidate.cache_key, candidate.load)
        if stored is None or not len(stored):
            continue
        best = None
        for look in looks:
            plain, mirrored = look.local_features
            verdict = verify(plain, mirrored, stored)
            if best is None or verdict.inliers > best.inliers:
                best = verdict
        if best is not None and best.copy:
            found[candidate.key] = Match("copy", {"inliers": float(best.inliers),
                                                  "matches": float(best.matches),
                                                  "mirrored": float(best.mirrored)})
    return found


def copy_confidence(inliers: float) -> float:
    """A verified copy's confidence: 0.9 at the minimum number of inliers, rising with
    more towards (never reaching) 1.0, which only an exact copy shows."""
    extra = min(max(inliers - MIN_INLIERS, 0.0) / 100.0, 1.0)
    return round(0.9 + 0.09 * extra, 4)
