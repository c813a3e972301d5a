"""Near-duplicate detection: perceptual-hash candidates confirmed by image-space cosine.

Two signals, because each fails where the other holds. pHash distance is cheap to
search with a binary index but cannot tell a re-encode from a different picture that
happens to share its coarse layout; the descriptor cosine tells those apart but has no
index that finds every close pair. Candidates come from a Hamming radius search (never
all pairs); the stored image vectors then sort each candidate into a tier, strongest
first:

- ``exact``: the same pixels (a byte copy, a lossless re-save);
- ``near-exact``: the same picture after re-encoding or resizing;
- ``variant``: the same picture cropped, recoloured or lightly edited.

A pair belongs to the strongest tier whose Hamming bound *and* cosine bound it meets;
a pair that meets no tier is not a duplicate. Items without a stored vector are never
paired: one signal alone is not trusted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from imgsearch.encode.blas import one_blas_thread
from imgsearch.enrich.phash import hashes_to_uint64
from imgsearch.errors import InvalidInputError
from imgsearch.index.binary import HammingIndex

__all__ = [
    "TIERS",
    "DuplicateGroup",
    "DuplicateTiers",
    "VectorsOf",
    "collapse",
    "collapse_hits",
    "duplicates_of",
    "find_duplicate_pairs",
    "group_duplicates",
    "hash_index",
]

TIERS: tuple[str, ...] = ("exact", "near-exact", "variant")  # strongest first
_RANK = {tier: rank for rank, tier in enumerate(TIERS)}
_NONE = len(TIERS)  # rank of a pair that is no duplicate
_PAIR_CHUNK = 8192  # candidate pairs verified per vector fetch: bounds memory

# Stored vectors of those keys that have one: (found keys, their L2-normalised vectors).
VectorsOf = Callable[[NDArray[np.int64]], tuple[NDArray[np.int64], NDArray[np.float32]]]
# (key_a, key_b, hamming, cosine, tier) with key_a < key_b
DuplicatePair = tuple[int, int, int, float, str]


@dataclass(frozen=True)
class DuplicateTiers:
    """Hamming and cosine bounds of each tier, measured with ``bench/dedup.py``.

    On clip-art and generated pictures, byte copies give cosine 1 (to float rounding)
    while JPEG q=50 re-encodes and 0.5x resizes reach at most 0.9999 (p10 0.99, min
    0.93) and move the hash by at most 2 bits: hence ``exact_cosine`` and a near-exact
    radius of 4, twice that. 10% crops move the hash 4-28 bits (median 14) and keep
    cosine 0.84-0.97. Unrelated pictures are 14+ bits apart; look-alikes that get
    closer mostly fall under 0.90. A variant radius of 16 (against 12) raised pair
    recall from 0.73 to 0.86 at the same precision; on uniform hashes it leaves about
    two hundred thousand chance candidates among 100k items, checked in about a second.
    """

    exact_hamming: int = 0
    exact_cosine: float = 0.99999
    near_hamming: int = 4
    near_cosine: float = 0.95
    variant_hamming: int = 16
    variant_cosine: float = 0.90

    def __post_init__(self) -> None:
        hams = (self.exact_hamming, self.near_hamming, self.variant_hamming)
        coss = (self.exact_cosine, self.near_cosine, self.variant_cosine)
        if not all(0 <= h <= 64 for h in hams) or list(hams) != sorted(hams):
            raise InvalidInputError(
                f"duplicate tiers: Hamming bounds must lie in 0..64 and grow from exact to "
                f"variant, got exact={hams[0]}, near={hams[1]}, variant={hams[2]}")
        if not all(-1.0 <= c <= 1.0 for c in coss) or list(coss) != sorted(coss, reverse=True):
            raise InvalidInputError(
                f"duplicate tiers: cosine bounds must lie in -1..1 and shrink from exact to "
                f"variant, got exact={coss[0]}, near={coss[1]}, variant={coss[2]}")

    def ranks(self, hamming: NDArray[Any], cosine: NDArray[Any]) -> NDArray[np.int8]:
        """Tier rank (index in TIERS) of each pair; ``len(TIERS)`` where no tier fits."""
        rank = np.full(np.shape(hamming), _NONE, dtype=np.int8)
        bounds = zip(TIERS, (self.exact_hamming, self.near_hamming, self.variant_hamming),
                     (self.exact_cosine, self.near_cosine, self.variant_cosine), strict=True)
        for tier, max_hamming, min_cosine in reversed(list(bounds)):
            rank[(hamming <= max_hamming) & (cosine >= min_cosine)] = _RANK[tier]
        return rank

    def classify(self, hamming: int, cosine: float) -> str | None:
        """The tier of one pair, or None when it is no duplicate."""
        rank = int(self.ranks(np.asarray(hamming), np.asarray(cosine)))
        return TIERS[rank] if rank < _NONE else None


@dataclass
class DuplicateGroup:
    """Items linked by duplicate pairs (connected components).

    ``tier`` is the weakest tier the group needs to hold together: the weakest edge
    of its strongest spanning forest. At any stronger ``min_tier`` it falls apart.
    ``pairs`` holds every qualifying pair inside the group: (a, b, hamming, cosine).
    """

    keys: list[int]
    representative: int
    tier: str
    pairs: list[tuple[int, int, int, float]] = field(default_factory=list)


def hash_index(keys: NDArray[np.int64], hashes: NDArray[np.int64] | Sequence[int]
               ) -> HammingIndex:
    """A HammingIndex of ``hashes`` (signed or unsigned 64-bit forms) labelled by ``keys``."""
    keys = np.asarray(keys, dtype=np.int64).reshape(-1)
    codes = hashes if isinstance(hashes, np.ndarray) else hashes_to_uint64(hashes)
    if len(codes) != len(keys):
        raise InvalidInputError(
            f"hash_index got {len(keys)} keys for {len(codes)} hashes; pass one hash per key")
    index = HammingIndex()
    if len(keys):
        index.add(keys, codes)
    return index


def find_duplicate_pairs(keys: NDArray[np.int64], hashes: NDArray[np.int64],
                         vectors_of: VectorsOf,
                         tiers: DuplicateTiers = DuplicateTiers()) -> list[DuplicatePair]:
    """Every duplicate pair among ``keys``: (a, b, hamming, cosine, tier) with a < b,
    strongest tier first, then by cosine (highest first), then keys."""
    index = hash_index(keys, hashes)
    candidates = np.asarray(index.pairs_within(tiers.variant_hamming),
                            dtype=np.int64).reshape(-1, 3)
    found: list[tuple[NDArray[Any], NDArray[Any], NDArray[Any]]] = []
    for start in range(0, len(candidates), _PAIR_CHUNK):
        chunk = candidates[start:start + _PAIR_CHUNK]
        cosine, ok = _pair_cosines(chunk[:, 0], chunk[:, 1], vectors_of)
        rank = tiers.ranks(chunk[:, 2], cosine)
        keep = ok & (rank < _NONE)
        found.append((chunk[keep], cosine[keep], rank[keep]))
    if not found:
        return []
    pairs, cosines, ranks = (np.concatenate(part) for part in zip(*found, strict=True))
    order = np.lexsort((pairs[:, 1], pairs[:, 0], -cosines, ranks))
    return [(int(a), int(b), int(h), float(c), TIERS[r]) for (a, b, h), c, r in
            zip(pairs[order].tolist(), cosines[order].tolist(), ranks[order].tolist(),
                strict=True)]


def group_duplicates(pairs: Sequence[DuplicatePair], *, min_tier: str = "variant",
                     prefer: Callable[[int], float] | None = None) -> list[DuplicateGroup]:
    """Connected components of the pairs at ``min_tier`` or stronger.

    The representative is the key ``prefer`` scores highest (say, the largest image),
    the lowest key among equals; without ``prefer``, the lowest key. Groups come
    strongest tier first, then largest, then by representative.
    """
    limit = _tier_rank(min_tier)
    kept = sorted((p for p in pairs if _tier_rank(p[4]) <= limit),
                  key=lambda p: (_RANK[p[4]], -p[3], p[0], p[1]))
    parent: dict[int, int] = {}

    def root(key: int) -> int:
        parent.setdefault(key, key)
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    weakest: dict[int, int] = {}
    for a, b, _hamming, _cosine, tier in kept:  # strongest edges first, as Kruskal's
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[rb] = ra
            weakest[ra] = max(weakest.get(ra, 0), weakest.pop(rb, 0), _RANK[tier])
    members: dict[int, list[int]] = {}
    for key in parent:
        members.setdefault(root(key), []).append(key)
    edges: dict[int, list[tuple[int, int, int, float]]] = {}
    for a, b, hamming, cosine, _tier in kept:
        edges.setdefault(root(a), []).append((a, b, hamming, cosine))
    groups = []
    for group_root, keys in members.items():
        keys.sort()
        best = max(keys, key=lambda k: (prefer(k), -k)) if prefer else keys[0]
        groups.append(DuplicateGroup(keys, best, TIERS[weakest[group_root]],
                                     edges[group_root]))
    groups.sort(key=lambda g: (_RANK[g.tier], -len(g.keys), g.representative))
    return groups


def duplicates_of(key: int, hash_: int, index: HammingIndex, vectors_of: VectorsOf,
                  tiers: DuplicateTiers = DuplicateTiers()
                  ) -> list[tuple[int, int, float, str]]:
    """The duplicates of one item: (key, hamming, cosine, tier), the item itself excluded,
    strongest tier first, then by cosine (highest first), then key."""
    near = [(other, d) for other, d in index.radius_search(
        hashes_to_uint64([hash_]), tiers.variant_hamming)[0] if other != key]
    if not near:
        return []
    others = np.asarray([other for other, _ in near], dtype=np.int64)
    hamming = np.asarray([d for _, d in near], dtype=np.int64)
    cosine, ok = _pair_cosines(np.full(len(others), key, dtype=np.int64), others, vectors_of)
    rank = tiers.ranks(hamming, cosine)
    found = [(int(o), int(h), float(c), int(r)) for o, h, c, r, good in
             zip(others, hamming, cosine, rank, ok, strict=True) if good and r < _NONE]
    found.sort(key=lambda f: (f[3], -f[2], f[0]))
    return [(o, h, c, TIERS[r]) for o, h, c, r in found]


def collapse(keys: NDArray[np.int64], scores: NDArray[Any],
             hashes_of: Callable[[NDArray[np.int64]], NDArray[np.int64]],
             vectors_of: VectorsOf, tiers: DuplicateTiers = DuplicateTiers(),
             min_tier: str = "near-exact", has_hash: NDArray[np.bool_] | None = None
             ) -> tuple[NDArray[np.int64], NDArray[Any], NDArray[np.int64]]:
    """Fold each ranked hit into the highest-ranked kept hit it duplicates at ``min_tier``
    or stronger. Returns the kept keys and scores, in rank order, and how many hits each
    kept one stands for (1 = itself). ``hashes_of`` gives one hash per key, in order;
    ``has_hash`` marks the keys whose hash is real (the others are never folded).

    Duplicates are judged against kept hits only, so a chain of small differences never
    folds two hits that are not duplicates of each other. Vectors are fetched only when
    two hashes are close enough: most result lists hold no duplicate at all.
    """
    keys = np.asarray(keys, dtype=np.int64).reshape(-1)
    scores = np.asarray(scores)
    if len(scores) != len(keys):
        raise InvalidInputError(f"collapse got {len(keys)} keys for {len(scores)} scores")
    limit = _tier_rank(min_tier)
    if len(keys) < 2:
        return keys.copy(), scores.copy(), np.ones(len(keys), dtype=np.int64)
    hashes = _as_uint64(hashes_of(keys))
    if len(hashes) != len(keys):
        raise InvalidInputError(f"hashes_of returned {len(hashes)} hashes for {len(keys)} "
                                f"keys; it must return one hash per key, in order")
    hamming = np.bitwise_count(hashes[:, None] ^ hashes[None, :])
    hashed = np.ones(len(keys), bool) if has_hash is None else np.asarray(has_hash, bool)
    bound = (tiers.exact_hamming, tiers.near_hamming, tiers.variant_hamming)[limit]
    close = (hamming <= bound) & hashed[:, None] & hashed[None, :]
    np.fill_diagonal(close, False)
    if not close.any():
        return keys.copy(), scores.copy(), np.ones(len(keys), dtype=np.int64)
    with one_blas_thread():  # a query may not have set it (search.searcher)
        rows, vectors = _rows_of(keys, vectors_of)
        safe = np.maximum(rows, 0)
        cosine = vectors[safe] @ vectors[safe].T if len(vectors) else np.zeros_like(hamming)
    has = (rows >= 0) & hashed
    folds = (tiers.ranks(hamming, cosine) <= limit) & has[:, None] & has[None, :]
    kept: list[int] = []
    counts: list[int] = []
    for i in range(len(keys)):
        into = next((slot for slot, j in enumerate(kept) if folds[i, j]), None)
        if into is None:
            kept.append(i)
            counts.append(1)
        else:
            counts[into] += 1
    chosen = np.asarray(kept, dtype=np.int64)
    return keys[chosen], scores[chosen], np.asarray(counts, dtype=np.int64)


def collapse_hits(keys: NDArray[np.int64],
                  phashes_of: Callable[[NDArray[np.int64]],
                                       tuple[NDArray[np.int64], NDArray[np.bool_]]],
                  vectors_of: VectorsOf, min_tier: str = "near-exact"
                  ) -> tuple[NDArray[np.bool_], NDArray[np.int64]] | None:
    """Which ranked keys to keep, and how many hits each kept one stands for
    (``collapse`` over a result list; ``phashes_of``: one hash per key and which have one);
    None when nothing folds, as in most lists (each key kept, standing for itself)."""
    if len(keys) < 2:
        return None
    hashes, present = phashes_of(keys)
    if np.count_nonzero(present) < 2:  # nothing to fold: most lists of unhashed items
        return None
    kept, _scores, counts = collapse(
        keys, np.zeros(len(keys), np.float32), lambda _keys: hashes, vectors_of,
        DuplicateTiers(), min_tier, has_hash=present)
    if len(kept) == len(keys):
        return None
    keep = np.isin(keys, kept)
    stands_for = np.ones(len(keys), np.int64)
    position = {int(k): i for i, k in enumerate(keys)}
    for key, count in zip(kept, counts, strict=True):
        stands_for[position[int(key)]] = count
    return keep, stands_for


def _tier_rank(tier: str) -> int:
    if tier not in _RANK:
        raise InvalidInputError(f"unknown duplicate tier {tier!r}; tiers are "
                                f"{', '.join(TIERS)}")
    return _RANK[tier]


def _as_uint64(hashes: Any) -> NDArray[np.uint64]:
    """Hash values of either signed or unsigned dtype as uint64, same bits."""
    arr = np.asarray(hashes).reshape(-1)
    if arr.dtype.kind == "u":
        return arr.astype(np.uint64)
    if arr.dtype.kind == "i":
        return arr.astype(np.int64).view(np.uint64)
    return hashes_to_uint64([int(h) for h in arr])


def _rows_of(keys: NDArray[np.int64], vectors_of: VectorsOf
             ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Row of each key in the fetched vectors (-1 where it has none), and the vectors."""
    found, vectors = vectors_of(np.unique(keys))
    found = np.asarray(found, dtype=np.int64)
    order = np.argsort(found, kind="stable")
    at = np.searchsorted(found[order], keys)
    at = np.minimum(at, max(len(found) - 1, 0))
    hit = (found[order][at] == keys) if len(found) else np.zeros(len(keys), dtype=bool)
    rows = np.where(hit, order[at] if len(found) else 0, -1).astype(np.int64)
    return rows, np.asarray(vectors, dtype=np.float32).reshape(len(found), -1)


def _pair_cosines(a: NDArray[np.int64], b: NDArray[np.int64], vectors_of: VectorsOf
                  ) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
    """Cosine of each (a, b) from stored vectors, and whether both had one."""
    rows, vectors = _rows_of(np.concatenate([a, b]), vectors_of)
    ra, rb = rows[:len(a)], rows[len(a):]
    ok = (ra >= 0) & (rb >= 0)
    cosine = np.zeros(len(a), dtype=np.float32)
    if ok.any():
        cosine[ok] = np.einsum("ij,ij->i", vectors[ra[ok]], vectors[rb[ok]])
    return cosine, ok
