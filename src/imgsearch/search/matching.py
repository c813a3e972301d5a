"""What kind of match a hit is: ``exact`` (the same content), ``copy`` (the same picture
after edits, verified by local features) or ``similar`` (it looks alike).

Only the best few candidates of a query image are examined (``VERIFY_TOP``): a copy that
the global descriptor does not rank near the top is not looked for. When none of them
verifies, the one it ranks first gets a closer look (more keypoints, ``verify``) and a
look at local contrast (a burnt-out brighter copy), and when that fails too, it and the
first candidate found another way (``copy_views``) are aligned densely (``aligned``):
pictures with too few corners for any look. The alignment is tried with the query as it
is and then without its bottom fifth (a banner, a caption), which must then agree more
(``MIN_VIEW_AGREEMENT``).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Hashable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps

from imgsearch.enrich.phash import hamming, perceptual_hash
from imgsearch.search.aligned import MIN_AGREEMENT, AlignQuery, align
from imgsearch.search.calibration import noise_like
from imgsearch.search.copy_views import CROP_CANDIDATES, central_part, without_bottom
from imgsearch.search.verify import (
    MIN_INLIERS,
    SIDE,
    WORKERS,
    FeatureCache,
    Features,
    Verdict,
    features,
    grey,
    in_background,
    query_side,
    verify,
)

__all__ = ["CROP_CANDIDATES", "HASH_CANDIDATES", "MIN_VIEW_AGREEMENT", "PHASH_RADIUS",
           "VERIFY_TOP", "Candidate", "Match", "QueryImage", "central_part", "copy_confidence",
           "match_kinds"]

# 10 rather than 5: an other-size copy of a photo ranked 7th by the descriptor is found
# (bench/copydetect.py); a query with nothing to find verifies all of them.
VERIFY_TOP = 10
# Candidates found by perceptual hash as well: within this many bits of the query's (a
# grey or brighter copy moves 0-10 bits; unrelated pictures are ~32 apart), at most
# this many per query image, each verified before it counts.
PHASH_RADIUS = 12
HASH_CANDIDATES = 5
# Same content: identical bytes, or the same perceptual hash and a cosine this close to 1
# (the same pixels saved again, or reduced).
EXACT_COSINE = 0.995
SIMILAR_CEILING = 0.99  # only an exact copy is shown as 100 %
# The dense alignment of the query without its bottom fifth must agree this much (the
# whole query: ``aligned.MIN_AGREEMENT``, 0.8): a part is easier to fit by chance. In
# bench/copydetect.py, on the tuning half (the 3 best wrong candidates of each copy
# query, 882 pairs) wrong pairs reached 0.873 with this view, so 0.9; on the held-out
# half 0.814 at most (822 pairs), on the unrelated photos' 5 best candidates 0.601. The
# banner copies of `city.png` and `wood-d` and a 7° rotation of `rollpaper` reach
# 0.99 with it (0.50-0.80 as a whole). The view without the top fifth was dropped: a
# wrong pair of the held-out half passed at 0.851.
MIN_VIEW_AGREEMENT = 0.9


@dataclass
class QueryImage:
    """A query image as decoded, with its vector."""

    vector: NDArray[np.float32]
    content_hash: str
    image: Image.Image
    _phash: int | None = field(default=None, repr=False)
    _features: dict[tuple[bool, int, bool, bool], Features] = field(default_factory=dict,
                                                                     repr=False)
    _grey: dict[tuple[int, bool], NDArray[np.uint8]] = field(default_factory=dict, repr=False)
    # candidates are examined on several threads: each feature set is found once
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def phash(self) -> int:
        if self._phash is None:
            self._phash = perceptual_hash(self.image)
        return self._phash

    @functools.cached_property
    def noise_like(self) -> bool:
        """Whether it is noise rather than a picture (``calibration.noise_like``): it
        may still have exact or verified copies, but nothing merely looks like it."""
        return noise_like(self.image)

    @functools.cached_property
    def without_bottom(self) -> Image.Image:
        """The image without its bottom fifth (``copy_views.without_bottom``)."""
        return without_bottom(self.image)

    @functools.cached_property
    def aligned(self) -> AlignQuery:
        """Its views for a dense alignment (``search.aligned``), made once for all
        candidates."""
        return AlignQuery(self.image)

    @functools.cached_property
    def aligned_without_bottom(self) -> AlignQuery:
        """Its views without the bottom fifth for a dense alignment, made once for all
        candidates."""
        return AlignQuery(self.without_bottom)

    @property
    def mirrored_phash(self) -> int:
        """The perceptual hash of the mirrored image: what a flipped copy's hash is near."""
        return perceptual_hash(ImageOps.mirror(self.image))

    def local_features(self, mirrored: bool = False, side: int = SIDE,
                       closer: bool = False, local_contrast: bool = False) -> Features:
        """Its ORB features at ``side`` px, as is or mirrored, for a plain, a closer or
        a local-contrast look (each computed once, when first needed)."""
        key = (mirrored, side, closer, local_contrast)
        with self._lock:
            if key not in self._features:
                shade = (side, local_contrast)
                if shade not in self._grey:  # one grey image a side, plain and mirrored
                    self._grey[shade] = grey(self.image, side, local_contrast)
                self._features[key] = features(self._grey[shade], mirror=mirrored, side=side,
                                               closer=closer, local_contrast=local_contrast)
            return self._features[key]


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
                cache: FeatureCache, negatives: Sequence[QueryImage] = (),
                more: Callable[[], Sequence[Candidate]] | None = None
                ) -> dict[int, Match]:
    """Exact and verified-copy matches among ``candidates`` (keys not listed: similar).

    Every candidate is checked for the same content; local features are then compared in
    rank order until there are as many matches as query images (what ranks after them
    cannot come before them). Candidates from ``more`` (found another way, asked for
    only now; those among ``candidates`` were compared already) are compared next when
    that leaves a query image without a match. When none is found at all, the first
    candidate gets a closer look, then it and the first of ``more`` a dense alignment."""
    found: dict[int, Match] = {}
    # a counter-example's own image is no match, however close to an example it is
    candidates = [c for c in candidates if not any(_exact(n, c) for n in negatives)]
    for candidate in candidates:  # same content is cheap to see: look at them all
        exact = next((m for look in looks if (m := _exact(look, candidate)) is not None), None)
        if exact is not None:
            found[candidate.key] = exact
    unseen = [c for c in candidates if c.key not in found] if len(found) < len(looks) else []
    for candidate, match in _in_order(unseen, functools.partial(_examine, looks, cache=cache)):
        if match is not None:
            found[candidate.key] = match
            if len(found) >= len(looks):
                break
    extra: Sequence[Candidate] = ()
    if len(found) < len(looks) and more is not None:
        looked_at = {c.key for c in candidates}
        extra = [c for c in more() if not any(_exact(n, c) for n in negatives)]
        def check(candidate: Candidate) -> Match | None:
            return next((m for look in looks if (m := _exact(look, candidate))), None) \
                or _examine(looks, candidate, cache)

        for candidate, match in _in_order([c for c in extra if c.key not in looked_at],
                                          check):
            if match is not None and candidate.key not in found:
                found[candidate.key] = match
                if len(found) >= len(looks):
                    break
    if not found:
        # The likeliest copy, a flat picture with few corners perhaps: look closer at
        # the first candidate, then at local contrast (a burnt-out brighter copy);
        # failing that, it and the first candidate found another way may have too few
        # corners for any look: align them densely. The alignments start on worker
        # threads while the closer looks are taken.
        for look in looks:
            _ = look.aligned, look.aligned_without_bottom  # made here, not by two threads
        firsts = {c.key: c for c in [*candidates[:1], *extra[:1]]}  # often one item
        aligning = [(c, in_background(functools.partial(_aligned, looks, c)))
                    for c in firsts.values()]
        match = (_examine(looks, candidates[0], cache, closer=True) or
                 _examine(looks, candidates[0], cache, local_contrast=True)) \
            if candidates else None
        if match is not None:
            found[candidates[0].key] = match
        for candidate, job in aligning:
            if found:
                job.cancel()  # not needed (if not started)
                continue
            # still queued behind other queries' work: align it here
            match = _aligned(looks, candidate) if job.cancel() else job.result()
            if match is not None:
                found[candidate.key] = match
    return found


def _in_order(candidates: Sequence[Candidate], check: Callable[[Candidate], Match | None]
              ) -> Iterator[tuple[Candidate, Match | None]]:
    """Each of ``candidates`` with what ``check`` finds, in order. Once one is not a
    match, the next ones are checked ahead on worker threads (most queries for a copy
    stop at their first candidate, and examine nothing more); when the caller stops,
    those not started are dropped."""
    ahead: dict[int, Future[Match | None]] = {}
    try:
        for at, candidate in enumerate(candidates):
            job = ahead.pop(at, None)
            # started: wait for it; still queued behind busy workers: check it here
            match = job.result() if job is not None and not job.cancel() else \
                check(candidate)
            if match is None:
                for later in range(at + 1, min(at + 1 + WORKERS, len(candidates))):
                    if later not in ahead:
                        ahead[later] = in_background(functools.partial(check,
                                                                       candidates[later]))
            yield candidate, match
    finally:
        for job in ahead.values():
            job.cancel()


def _aligned(looks: Sequence[QueryImage], candidate: Candidate) -> Match | None:
    """A copy shown by dense alignment (``search.aligned``) of its stored image."""
    stored = candidate.load()
    if stored is None:
        return None
    best = max((a for look in looks if (a := align(look.aligned, stored, True)) is not None),
               key=lambda a: a.agreement, default=None)
    view = 0.0
    if best is None or not best.copy:  # an overlay along the bottom edge, perhaps
        best = max((a for look in looks if (a := align(look.aligned_without_bottom, stored, True))
                    is not None and a.agreement >= MIN_VIEW_AGREEMENT),
                   key=lambda a: a.agreement, default=None)
        view = 1.0
    if best is None or not best.copy:
        return None
    return Match("copy", {"aligned": best.agreement, "edge_blocks": float(best.blocks),
                          "mirrored": float(best.mirrored), "without_bottom": view})


def _examine(looks: Sequence[QueryImage], candidate: Candidate, cache: FeatureCache,
             closer: bool = False, local_contrast: bool = False) -> Match | None:
    """A verified copy, from the candidate's stored image (its thumbnail)."""
    verdict = _best(looks, cache.get(candidate.cache_key, candidate.load, closer=closer,
                                     local_contrast=local_contrast))
    if verdict is None or not verdict.copy:
        return None
    return Match("copy", {"inliers": float(verdict.inliers), "matches": float(verdict.matches),
                          "mirrored": float(verdict.mirrored)})


def _best(looks: Sequence[QueryImage], stored: Features | None) -> Verdict | None:
    """The best verdict of any query image (as is, then mirrored) against ``stored``,
    stopping at the first that verifies."""
    if stored is None or not len(stored):
        return None
    best = None
    for look in looks:
        for mirrored in (False, True):  # the mirrored query only when the plain one fails
            verdict = verify(look.local_features(mirrored, query_side(stored),
                                                 stored.closer, stored.local_contrast),
                             stored, mirrored)
            if best is None or verdict.inliers > best.inliers:
                best = verdict
            if best.copy:
                return best
    return best


def copy_confidence(evidence: dict[str, float]) -> float:
    """A verified copy's confidence: 0.9 at the minimum number of inliers (or of dense
    agreement), rising with more towards (never reaching) 1.0, which only an exact copy
    shows."""
    if "inliers" in evidence:
        extra = min(max(evidence["inliers"] - MIN_INLIERS, 0.0) / 100.0, 1.0)
    else:
        extra = max(evidence.get("aligned", 0.0) - MIN_AGREEMENT, 0.0) / (1.0 - MIN_AGREEMENT)
    return round(0.9 + 0.09 * min(extra, 1.0), 4)
