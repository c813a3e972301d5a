"""Is a candidate the same picture as the query, after edits? Local features say.

A global descriptor ranks look-alikes; it cannot tell an edited copy (cropped, rotated,
recoloured, mirrored, overlaid) from a different picture of the same kind. Local features
can: ORB keypoints of the query and of a candidate are matched (Lowe's ratio test), and a
similarity transform (rotation, scale, shift) is fitted to the matches with RANSAC. Many
matches that agree on one transform happen only when the two images show the same
picture. The mirrored query is tried too, so a flipped copy is found.

Features are computed at query time from the candidate's stored thumbnail (512 px by
default; the query's features are found at about the same size) and cached by
``FeatureCache``. On 256 px thumbnails a 60 % crop, a banner or a brightened copy kept
too few keypoints to verify. Storing features at ingest would cost ~10.6 kB per item
(1 GB a 100k items) for items most queries never verify (bench/copydetect.py;
BENCHMARKS.md, copy detection).
"""

from __future__ import annotations

import functools
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from imgsearch.encode.blas import one_blas_thread

__all__ = ["LARGE_SIDE", "MIN_INLIERS", "WORKERS", "FeatureCache", "Features", "Verdict",
           "features", "grey", "in_background", "opencv_loaded", "query_side", "verify"]

T = TypeVar("T")

SIDE = 320  # longer side the query is brought to against a small (256 px) thumbnail
# Longer side of a candidate's features (its stored thumbnail, 512 px by default) and of
# the query's against such a candidate. At 256 px a 60 % crop, a banner or a brightened
# copy keeps too few keypoints (bench/copydetect.py: unverified copies ranked first had
# 5-15 inliers; at 512 px 15-53, while wrong candidates stayed at 6 at most).
LARGE_SIDE = 512
_ORB_FEATURES = 500
# A closer look, for the candidate the global descriptor ranks first when no candidate
# verified: 1,000 keypoints found down to a FAST threshold of 5, not 500 down to 10, and
# only matches that are each other's nearest. Flat graphics (vector wallpapers, smooth
# gradients) have few corners: their copies under a banner or cropped kept 3-7 inliers
# with the plain look and 14-36 with this one (bench/copydetect.py), while wrong pairs
# stayed at 8 at most (the mutual check takes back the chance agreements the extra
# keypoints bring). It costs about twice a plain look, so it is not done for all.
_CLOSER_FEATURES = 1000
_CLOSER_FAST_THRESHOLD = 5
# A look at local contrast, for the same candidate when the closer look fails too: both
# images equalised tile by tile (CLAHE) rather than as a whole. A +50 % brighter copy
# burns out the light parts, and a global equalisation then maps what is left of the
# picture differently from the original's (bench/copydetect.py, PastelHills: 5 inliers,
# 10 for the closer look, 20 with this). Wrong pairs there (the 3 best wrong candidates
# of every copy query, the 5 best of the unrelated photos and of 15 noise images: 1,934
# pairs) reached 8 inliers at most with it, as with the plain look, so the minimum holds.
_CONTRAST_CLIP, _CONTRAST_TILES = 2.0, 4
_RATIO = 0.8  # Lowe's ratio test
_REPROJECTION_PX = 4.0
# Inliers of one similarity transform needed to call a candidate a copy. In
# bench/copydetect.py, unrelated photos and noise against their 5 best candidates among
# 10k real images, and copies against their wrong candidates, reach at most 8.
MIN_INLIERS = 12
_MIN_SIDE = 16
_MIN_SCALE, _MAX_SCALE = 0.1, 10.0  # candidate / query size of a plausible copy
_MIN_SPREAD_PX = 24.0  # inliers must span at least this much of the candidate



@functools.cache
def _cv2() -> Any:
    """OpenCV, loaded by the first verification rather than by every command's start."""
    import cv2

    cv2.setNumThreads(1)  # one query, one thread: queries run side by side
    return cv2


@functools.cache
def _faiss() -> Any:
    import faiss

    return faiss


_DESCRIPTOR_BYTES = 32  # an ORB descriptor


@dataclass(frozen=True)
class Features:
    points: NDArray[np.float32]  # (n, 2) keypoint positions
    descriptors: NDArray[np.uint8] | None  # (n, 32) ORB descriptors; None if no keypoint
    side: int = 0  # longer side of the image they were found on
    closer: bool = False  # found for a closer look (more keypoints)
    local_contrast: bool = False  # found on the image equalised tile by tile

    def __len__(self) -> int:
        return 0 if self.descriptors is None else len(self.descriptors)


@dataclass(frozen=True)
class Verdict:
    inliers: int
    matches: int
    mirrored: bool

    @property
    def copy(self) -> bool:
        return self.inliers >= MIN_INLIERS


def grey(image: Image.Image, side: int = SIDE, local_contrast: bool = False
         ) -> NDArray[np.uint8]:
    """``image`` in grey, its longer side brought to at most ``side``, equalised (so that
    brightness and contrast changes move few descriptor bits), or equalised tile by tile
    for a ``local_contrast`` look: what features are found on. Equalising commutes with
    mirroring, so one grey image serves both."""
    gray = image.convert("L")
    scale = side / max(gray.size)
    if scale < 1:
        gray = gray.resize((max(1, round(gray.width * scale)), max(1, round(gray.height * scale))),
                           Image.Resampling.BILINEAR)
    pixels = np.asarray(gray, dtype=np.uint8)
    if local_contrast:
        clahe = _cv2().createCLAHE(clipLimit=_CONTRAST_CLIP,
                                   tileGridSize=(_CONTRAST_TILES, _CONTRAST_TILES))
        return np.asarray(clahe.apply(pixels), dtype=np.uint8)
    return np.asarray(_cv2().equalizeHist(pixels), dtype=np.uint8)


def features(image: Image.Image | NDArray[np.uint8], mirror: bool = False, side: int = SIDE,
             closer: bool = False, local_contrast: bool = False) -> Features:
    """ORB keypoints of ``image`` (its longer side brought to at most ``side``, or its
    ``grey`` image already, made with the same ``local_contrast``), as is or mirrored;
    more of them, weaker ones included, for a ``closer`` look; on the image equalised
    tile by tile for a ``local_contrast`` one."""
    shape = image.shape[::-1] if isinstance(image, np.ndarray) else image.size
    if min(shape) < _MIN_SIDE:
        return Features(np.empty((0, 2), np.float32), None, closer=closer,
                        local_contrast=local_contrast)
    pixels = image if isinstance(image, np.ndarray) else grey(image, side, local_contrast)
    if mirror:
        pixels = np.ascontiguousarray(pixels[:, ::-1])
    found_on = max(pixels.shape)
    orb = _cv2().ORB.create(nfeatures=_CLOSER_FEATURES if closer else _ORB_FEATURES,
                            scaleFactor=1.2, nlevels=8, edgeThreshold=15, patchSize=15,
                            fastThreshold=_CLOSER_FAST_THRESHOLD if closer else 10)
    keypoints, descriptors = orb.detectAndCompute(pixels, None)
    if descriptors is None or not len(keypoints):
        return Features(np.empty((0, 2), np.float32), None, found_on, closer, local_contrast)
    points = np.asarray(_cv2().KeyPoint_convert(keypoints), dtype=np.float32).reshape(-1, 2)
    return Features(points, np.asarray(descriptors, dtype=np.uint8), found_on, closer,
                    local_contrast)


def query_side(candidate: Features) -> int:
    """The side to find a query's features at against ``candidate``: about the
    candidate's own, so that a crop of it still shows its keypoints at their scale."""
    return LARGE_SIDE if candidate.side > SIDE else SIDE


def _nearest(queries: NDArray[np.uint8], train: NDArray[np.uint8], k: int
             ) -> tuple[NDArray[np.int32], NDArray[np.int32]]:
    """Hamming distances and indices of each query descriptor's ``k`` nearest in
    ``train``, as arrays (what a brute-force matcher's knnMatch finds, without making an
    object per match). Two nearest (the ratio test) come from FAISS's binary flat
    search, about 3.5 times faster than OpenCV's on 500 x 500 ORB descriptors with the
    same distances; a match that passes the ratio test is strictly nearer than the
    second, so ties cannot change which point it names. One nearest (the mutual check,
    where a tie would) stays with OpenCV's, first index on a tie."""
    if k == 2 and queries.shape[1] == _DESCRIPTOR_BYTES:
        faiss = _faiss()
        index = faiss.IndexBinaryFlat(8 * _DESCRIPTOR_BYTES)
        index.add(np.ascontiguousarray(train))
        # One thread: OpenMP's thread count is per calling thread, and a worker thread
        # left at the default starts a team for each call: 20 times the CPU, spinning.
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            distances, indices = index.search(np.ascontiguousarray(queries), k)
        finally:
            faiss.omp_set_num_threads(threads)
        return np.asarray(distances, np.int32), np.asarray(indices, np.int32)
    cv2 = _cv2()
    distances, indices = cv2.batchDistance(queries, train, cv2.CV_32S,
                                           normType=cv2.NORM_HAMMING, K=k)
    return np.asarray(distances, np.int32), np.asarray(indices, np.int32)


def _ratio_matches(query: Features, candidate: Features
                   ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(query points, candidate points) of the matches that pass Lowe's ratio test (and,
    for a closer look, are each other's nearest), one query point per candidate point
    (the closest; the first on a tie), in the order their candidate points are first
    matched."""
    assert query.descriptors is not None and candidate.descriptors is not None
    distances, indices = _nearest(query.descriptors, candidate.descriptors, 2)
    passed = np.flatnonzero(distances[:, 0] < _RATIO * distances[:, 1])
    trained = indices[passed, 0].astype(np.int64)
    if candidate.closer and len(passed):  # only where each point is the other's nearest
        asked, where = np.unique(trained, return_inverse=True)
        _d, back = _nearest(candidate.descriptors[asked], query.descriptors, 1)
        mutual = back[where, 0] == passed
        passed, trained = passed[mutual], trained[mutual]
    order = np.lexsort((passed, distances[passed, 0], trained))  # by point, closest first
    first = np.ones(len(order), bool)
    first[1:] = trained[order][1:] != trained[order][:-1]
    kept = order[first]  # the closest query point of each candidate point
    seen = np.lexsort((passed, trained))  # by point, first matched first
    where_first = np.ones(len(seen), bool)
    where_first[1:] = trained[seen][1:] != trained[seen][:-1]
    kept = kept[np.argsort(passed[seen[where_first]], kind="stable")]
    return passed[kept].astype(np.int64), trained[kept]


def _inliers(query: Features, candidate: Features) -> tuple[int, int]:
    if query.descriptors is None or candidate.descriptors is None or \
            len(query) < 2 or len(candidate) < 2:
        return 0, 0
    asked, trained = _ratio_matches(query, candidate)
    best = len(trained)
    if best < 3:
        return 0, best
    src = query.points[asked]
    dst = candidate.points[trained]
    cv2 = _cv2()
    transform, mask = cv2.estimateAffinePartial2D(
        src, dst, method=cv2.RANSAC, ransacReprojThreshold=_REPROJECTION_PX, maxIters=500,
        confidence=0.99, refineIters=0)
    if transform is None or mask is None:
        return 0, best
    # A transform that shrinks the query to a speck maps many points within a few pixels
    # of each other: agreement by degeneracy, not by content.
    scale = float(np.hypot(transform[0, 0], transform[1, 0]))
    inside = dst[mask.ravel().astype(bool)]
    if not _MIN_SCALE <= scale <= _MAX_SCALE or not len(inside):
        return 0, best
    spread = inside.max(axis=0) - inside.min(axis=0)
    if float(spread.max()) < _MIN_SPREAD_PX:
        return 0, best
    return len(inside), best


def verify(query: Features, candidate: Features, mirrored: bool = False) -> Verdict:
    """How well ``candidate`` is explained as a copy of the query (whose features are
    those of the mirrored query image when ``mirrored``)."""
    inliers, matches = _inliers(query, candidate)
    return Verdict(inliers, matches, mirrored)


# Threads that find a query's features while it is encoded, and examine the next
# candidates, look closer and align while a decision waits (``matching.match_kinds``):
# the decoding, ORB, matching and alignment calls release the GIL, so a query's
# verification uses a second core where there is one.
WORKERS = 2


@functools.cache
def _workers(pid: int) -> ThreadPoolExecutor:
    """The worker threads of this process (a forked child makes its own)."""
    return ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="imgsearch-verify")


def opencv_loaded() -> bool:
    """Whether a verification has loaded OpenCV in this process already: until then,
    finding features ahead of need would load it (a tenth of a second of CPU) for a
    query that may have nothing to verify against (no stored images, or ones too small
    to have features)."""
    return _cv2.cache_info().currsize > 0


def in_background(work: Callable[[], T]) -> Future[T]:
    """``work`` started on a verification worker thread, with one BLAS thread
    (``encode.blas``): products made on several threads at once would otherwise keep
    OpenBLAS's own threads spinning, waiting for each other."""
    return _workers(os.getpid()).submit(_with_one_blas_thread, work)


def _with_one_blas_thread(work: Callable[[], T]) -> T:
    with one_blas_thread():
        return work()


class FeatureCache:
    """Features of recently verified candidates, by a key naming their stored image
    (a thumbnail path changes when the item's image does)."""

    def __init__(self, size: int = 2_000) -> None:
        self.size = size
        self._items: OrderedDict[Hashable, Features] = OrderedDict()
        self._lock = threading.Lock()
        self._making: dict[Hashable, threading.Lock] = {}  # features being found, by key

    def get(self, key: Hashable, load: Callable[[], Image.Image | None],
            side: int = LARGE_SIDE, closer: bool = False,
            local_contrast: bool = False) -> Features | None:
        """The features of the image ``load`` gives (at most ``side`` px; for a
        ``closer`` or a ``local_contrast`` look), cached by ``key``; None when it gives
        none. Asked for again while they are being found (on another thread), they are
        waited for, not found twice."""
        key = (key, closer, local_contrast)
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                return found
            making = self._making.setdefault(key, threading.Lock())
        with making:
            with self._lock:
                found = self._items.get(key)
                if found is not None:
                    self._items.move_to_end(key)
                    return found
            image = load()
            made = None if image is None else \
                features(image, side=side, closer=closer, local_contrast=local_contrast)
            with self._lock:
                if made is not None:
                    self._items[key] = made
                    while len(self._items) > self.size:
                        self._items.popitem(last=False)
                self._making.pop(key, None)
            return made

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
