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

import dataclasses
import functools
import threading
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps

from imgsearch.enrich.phash import hamming, perceptual_hash
from imgsearch.search.aligned import MIN_AGREEMENT, Alignment, AlignQuery, align
from imgsearch.search.calibration import noise_like
from imgsearch.search.copy_views import CROP_CANDIDATES, central_part, without_bottom
from imgsearch.search.verify import (
    LARGE_SIDE,
    MIN_INLIERS,
    SIDE,
    FeatureCache,
    Features,
    Verdict,
    features,
    grey,
    in_background,
    opencv_loaded,
    query_side,
    verify,
)

__all__ = ["CROP_CANDIDATES", "HASH_CANDIDATES", "MIN_VIEW_AGREEMENT", "PHASH_RADIUS",
           "VERIFY_TOP", "Candidate", "Match", "QueryImage", "central_part", "copy_confidence",
           "match_kinds"]

T = TypeVar("T")

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


# (mirrored, side, closer, local contrast): which of a query image's feature sets
_FeatureKey = tuple[bool, int, bool, bool]
_EARLY_SHADE = (LARGE_SIDE, False)
_EARLY_KEYS: set[_FeatureKey] = {(mirrored, LARGE_SIDE, False, False) for mirrored in (False, True)}


class _Started(Generic[T]):
    """``work`` started on a worker thread; its result, found on the asking thread when
    asked for before a worker took it, and found once however many threads ask."""

    def __init__(self, work: Callable[[], T]) -> None:
        self._work = work
        self._lock = threading.Lock()
        self._found: list[T] = []
        self._job = in_background(work)

    def result(self) -> T:
        with self._lock:
            if not self._found:
                self._found.append(self._work() if self._job.cancel() else self._job.result())
            return self._found[0]


class EarlyFeatures:
    """What verification first asks of a query image, found on the worker threads from
    the moment it is decoded, while its vector is computed and its candidates are found:
    its perceptual hashes (as is and mirrored) and its features for the plain look at
    ``LARGE_SIDE`` px (the size of most stored thumbnails), as is and mirrored."""

    def __init__(self, image: Image.Image) -> None:
        self.hashes = _Started(functools.partial(_hashes, image))
        self.features = _Started(functools.partial(_plain_features, image))


def _hashes(image: Image.Image) -> tuple[int, int]:
    return perceptual_hash(image), perceptual_hash(ImageOps.mirror(image))


def _plain_features(image: Image.Image) -> tuple[dict[_FeatureKey, Features],
                                                 NDArray[np.uint8]]:
    pixels = grey(image, LARGE_SIDE)
    return {key: features(pixels, mirror=key[0], side=LARGE_SIDE)
            for key in sorted(_EARLY_KEYS)}, pixels


@dataclass
class QueryImage:
    """A query image as decoded, with its vector."""

    vector: NDArray[np.float32]
    content_hash: str
    image: Image.Image
    _phash: int | None = field(default=None, repr=False)
    _features: dict[_FeatureKey, Features] = field(default_factory=dict,
                                                                     repr=False)
    _grey: dict[tuple[int, bool], NDArray[np.uint8]] = field(default_factory=dict, repr=False)
    # candidates are examined on several threads: each feature set is found once
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    _locks: dict[Hashable, threading.Lock] = field(default_factory=dict, repr=False,
                                                   compare=False)
    # its plain features, being found since it was decoded (``EarlyFeatures``)
    early: EarlyFeatures | None = field(default=None, repr=False, compare=False)

    @property
    def phash(self) -> int:
        if self._phash is None:
            self._phash = self.early.hashes.result()[0] if self.early is not None else \
                perceptual_hash(self.image)
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
        if self.early is not None:
            return self.early.hashes.result()[1]
        return perceptual_hash(ImageOps.mirror(self.image))

    def local_features(self, mirrored: bool = False, side: int = SIDE,
                       closer: bool = False, local_contrast: bool = False) -> Features:
        """Its ORB features at ``side`` px, as is or mirrored, for a plain, a closer or
        a local-contrast look (each computed once, when first needed)."""
        key = (mirrored, side, closer, local_contrast)
        shade = (side, local_contrast)
        if self.early is not None and key in _EARLY_KEYS:
            found, pixels = self.early.features.result()
            with self._lock:
                self._grey.setdefault(_EARLY_SHADE, pixels)
                for early_key, early_features in found.items():
                    self._features.setdefault(early_key, early_features)
        with self._key_lock(key):  # other feature sets are found meanwhile
            if key not in self._features:
                with self._key_lock(shade):  # one grey image a side, plain and mirrored
                    if shade not in self._grey:
                        self._grey[shade] = grey(self.image, side, local_contrast)
                self._features[key] = features(self._grey[shade], mirror=mirrored, side=side,
                                               closer=closer, local_contrast=local_contrast)
            return self._features[key]

    def _key_lock(self, key: Hashable) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(key, threading.Lock())


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
    candidate gets a closer look, then it and the first of ``more`` a dense alignment.

    The decisions are taken one by one in that order; the work behind them is started
    ahead on the worker threads (``_Ahead``). The first candidate's features are found
    while the query's own are; once it is not a copy (as for most queries with nothing to
    find), everything the later decisions may need is started at once, in the order
    they need it, and what a decision no longer needs is dropped."""
    found: dict[int, Match] = {}
    # a counter-example's own image is no match, however close to an example it is
    candidates = [_read_once(c) for c in candidates
                  if not any(_exact(n, c) for n in negatives)]
    for candidate in candidates:  # same content is cheap to see: look at them all
        exact = next((m for look in looks if (m := _exact(look, candidate)) is not None), None)
        if exact is not None:
            found[candidate.key] = exact
    unseen = [c for c in candidates if c.key not in found] if len(found) < len(looks) else []
    looked_at = {c.key for c in candidates}
    ahead = _Ahead()
    work = _Work(looks, cache, negatives, candidates, looked_at, more, ahead)
    try:
        if unseen and opencv_loaded():  # its stored features, while the query's are
            # found here (in a process that has verified before: otherwise the first
            # look may find no stored image, and then the query's are not needed)
            ahead.start(("features", unseen[0].key),
                        functools.partial(cache.get, unseen[0].cache_key, unseen[0].load))
            for look in looks:
                look.local_features(False, LARGE_SIDE)
            ahead.result(("features", unseen[0].key),
                         functools.partial(cache.get, unseen[0].cache_key, unseen[0].load))
        for at, candidate in enumerate(unseen):
            match = ahead.result(("examine", candidate.key), work.examine(candidate))
            if match is not None:
                found[candidate.key] = match
                if len(found) >= len(looks):
                    break
            elif at == 0:
                work.speculate(unseen[1:], bool(found))
        extra: Sequence[Candidate] = ()
        if len(found) < len(looks) and more is not None:
            extra = ahead.result("more", work.more)
            for candidate in [c for c in extra if c.key not in looked_at]:
                match = ahead.result(("check", candidate.key), work.check(candidate))
                if match is not None and candidate.key not in found:
                    found[candidate.key] = match
                    if len(found) >= len(looks):
                        break
        if not found:
            # The likeliest copy, a flat picture with few corners perhaps: look closer at
            # the first candidate, then at local contrast (a burnt-out brighter copy);
            # failing that, it and the first candidate found another way may have too
            # few corners for any look: align them densely.
            if candidates:
                first = candidates[0]
                match = ahead.result("closer", work.closer(first)) or \
                    ahead.result("contrast", work.contrast(first))
                if match is not None:
                    found[first.key] = match
            for candidate in {c.key: c for c in [*candidates[:1], *extra[:1]]}.values():
                if found:
                    break
                match = work.aligned(candidate)
                if match is not None:
                    found[candidate.key] = match
    finally:
        ahead.drop()
    return found


def _read_once(candidate: Candidate) -> Candidate:
    """``candidate`` whose stored image is read once for all its looks (plain, closer,
    local contrast, alignment), however many threads ask for it."""
    lock = threading.Lock()
    read: list[Image.Image | None] = []

    def load() -> Image.Image | None:
        with lock:
            if not read:
                read.append(candidate.load())
            return read[0]
    return dataclasses.replace(candidate, load=load)


class _Ahead:
    """Work started on the verification workers before a decision asks for it, by key.
    Asked for, it is waited for when it has started, and run on the asking thread when
    it has not (it may be queued behind other queries' work); what is never asked for
    is dropped unless it has started."""

    def __init__(self) -> None:
        self._jobs: dict[Hashable, Future[Any]] = {}
        self._lock = threading.Lock()

    def start(self, key: Hashable, work: Callable[[], Any]) -> None:
        with self._lock:
            if key not in self._jobs:
                self._jobs[key] = in_background(work)

    def result(self, key: Hashable, work: Callable[[], T]) -> T:
        with self._lock:
            job = self._jobs.pop(key, None)
        if job is None or job.cancel():
            return work()
        return job.result()

    def drop(self) -> None:
        with self._lock:
            for job in self._jobs.values():
                job.cancel()
            self._jobs.clear()


@dataclass
class _Work:
    """The decisions' work for one ``match_kinds`` call, each a function of no
    arguments (what ``_Ahead`` runs), and what starts it ahead."""

    looks: Sequence[QueryImage]
    cache: FeatureCache
    negatives: Sequence[QueryImage]
    candidates: Sequence[Candidate]
    looked_at: set[int]
    more_candidates: Callable[[], Sequence[Candidate]] | None
    ahead: _Ahead
    _views: dict[int, AlignQuery] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def examine(self, candidate: Candidate, **look: bool) -> Callable[[], Match | None]:
        return functools.partial(_examine, self.looks, candidate, self.cache, **look)

    def closer(self, candidate: Candidate) -> Callable[[], Match | None]:
        return self.examine(candidate, closer=True)

    def contrast(self, candidate: Candidate) -> Callable[[], Match | None]:
        return self.examine(candidate, local_contrast=True)

    def check(self, candidate: Candidate) -> Callable[[], Match | None]:
        """Same content or a verified copy: for a candidate found another way."""
        def checked() -> Match | None:
            return next((m for look in self.looks if (m := _exact(look, candidate))), None) \
                or _examine(self.looks, candidate, self.cache)
        return checked

    def more(self) -> Sequence[Candidate]:
        """The candidates ``more`` gives (a counter-example's own image left out); those
        not compared yet are started ahead, and the first one's alignment."""
        assert self.more_candidates is not None
        extra = [_read_once(c) for c in self.more_candidates()
                 if not any(_exact(n, c) for n in self.negatives)]
        for candidate in [c for c in extra if c.key not in self.looked_at]:
            self.ahead.start(("check", candidate.key), self.check(candidate))
        if extra and (not self.candidates or extra[0].key != self.candidates[0].key):
            self._align_ahead(extra[0])
        return extra

    def speculate(self, rest: Sequence[Candidate], some_found: bool) -> None:
        """The first candidate is no copy: start what the next decisions need, in the
        order they need it (the later candidates, those found another way, then, when
        nothing is found yet, the closer looks at the first candidate and its
        alignment)."""
        for candidate in rest:
            self.ahead.start(("examine", candidate.key), self.examine(candidate))
        if self.more_candidates is not None:
            self.ahead.start("more", self.more)
        if some_found or not self.candidates:
            return
        first = self.candidates[0]
        self.ahead.start("closer", self.closer(first))
        self.ahead.start("contrast", self.contrast(first))
        self._align_ahead(first)

    def _align_ahead(self, candidate: Candidate) -> None:
        for look in self.looks:  # made once, before two threads could each make them
            _ = look.aligned, look.aligned_without_bottom
        for part in (False, True):
            self.ahead.start(("align", candidate.key, part),
                             functools.partial(self._align, candidate, part))

    def _align(self, candidate: Candidate, without_bottom: bool) -> Alignment | None:
        """The best alignment of ``candidate``'s stored image with the query images as
        they are, or without their bottom fifth (which must agree more)."""
        views = self._stored_views(candidate)
        if views is None:
            return None
        if not without_bottom:
            return max((a for look in self.looks
                        if (a := align(look.aligned, views, True)) is not None),
                       key=lambda a: a.agreement, default=None)
        return max((a for look in self.looks
                    if (a := align(look.aligned_without_bottom, views, True,
                                   MIN_VIEW_AGREEMENT)) is not None),
                   key=lambda a: a.agreement, default=None)

    def _stored_views(self, candidate: Candidate) -> AlignQuery | None:
        """The stored image's views for alignment, made once for both of its looks."""
        with self._lock:
            if candidate.key in self._views:
                return self._views[candidate.key]
        stored = candidate.load()
        views = None if stored is None else AlignQuery(stored)
        with self._lock:
            return self._views.setdefault(candidate.key, views)  # type: ignore[arg-type]

    def aligned(self, candidate: Candidate) -> Match | None:
        """A copy shown by dense alignment (``search.aligned``) of its stored image: as
        it is, then without the query's bottom fifth (an overlay along that edge)."""
        best = self.ahead.result(("align", candidate.key, False),
                                 functools.partial(self._align, candidate, False))
        view = 0.0
        if best is None or not best.copy:
            best = self.ahead.result(("align", candidate.key, True),
                                     functools.partial(self._align, candidate, True))
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
