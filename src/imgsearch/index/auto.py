"""Which index kind a collection gets, and its parameters, from ``Settings``."""

from __future__ import annotations

import math

from imgsearch.config import Settings
from imgsearch.errors import InvalidInputError
from imgsearch.index.base import INDEX_KINDS, IndexParams

# Most IVF lists a space gets. Adding a vector compares it with every list's centroid (a
# matrix product of dim multiply-adds per list): 4·√n lists would make a 10M build
# (12,649 lists) hours long on 2 cores. So at most 4,096 lists, and at most
# IVF_ADD_WORK / n of them: adding n vectors then costs at most IVF_ADD_WORK·dim
# multiply-adds. A batch of 20,000 vectors took 8.7 s to assign to 4,096 centroids on
# the shared 2-core machine at load 16 (2.6 s at load 2); 10M vectors against 4,096
# lists would be 70 minutes of that, against 2,000 lists half as long. Fewer, longer
# lists cost queries more codes to scan at the same nprobe (and find more neighbours).
IVF_MAX_LISTS = 4096
IVF_ADD_WORK = 20_000_000_000  # n · nlist: 2,000 lists at 10M, 4,000 (4·√n) at 1M

# Share of the codes an IVF-PQ search scans that it hands on to exact re-scoring, at least.
# 4-bit fast-scan codes of 512-d vectors (64 bytes) rank a query's true neighbours
# loosely: at 10M in 2,000 lists (5,000 a list) nprobe 64 scans ~320,000 codes, and
# their best 1,280 (0.4 %) held recall@10 0.974 by vector and 0.960 by id after exact
# re-scoring; nprobe 32 with 1,600 (1 %) held 0.955 / 0.946 in the same time, since each
# re-scored row is a read from the vector file (bench/tenmillion.py). At 1M (4,000
# lists of 250) the 960 of k · pq_rescore_factor are more than 0.4 % of the 16,000 codes
# scanned, so the floor changes nothing there.
RESCORE_MIN_SHARE = 0.004

# From the most accurate to the smallest: what ``auto`` tries in turn under a budget.
_BY_ACCURACY = ("hnsw", "hnsw_sq8", "ivfpq")


def estimated_bytes(kind: str, n: int, dim: int, settings: Settings) -> int:
    """About how many bytes an index of ``kind`` over ``n`` vectors holds in memory.

    HNSW keeps ~2·M neighbour ids (4 bytes) per vector on the base layer plus the vector:
    4·dim bytes in float32, dim with 8-bit codes. IVF-PQ keeps a dim/8-byte code and an
    8-byte id per vector, and ~4·√n centroids. Each kind adds ~33 bytes of labels per
    vector. (Measured sizes: ``imgsearch info``; bench/tenmillion.py compares them.)
    """
    labels = 33 * n
    if kind == "flat":
        return n * (4 * dim + 8) + labels
    graph = n * (2 * settings.hnsw_m * 4 + 16)
    if kind == "hnsw":
        return graph + n * 4 * dim + labels
    if kind == "hnsw_sq8":
        return graph + n * dim + labels
    nlist = ivf_lists(n)
    return n * (max(1, dim // 8) + 8) + nlist * dim * 4 + labels


def ivf_lists(n: int) -> int:
    """How many IVF lists an index of ``n`` vectors gets: ~4·√n, each trained on 39
    vectors or more, at most ``IVF_MAX_LISTS`` and ``IVF_ADD_WORK`` / n (what adding
    them all costs)."""
    n = max(n, 1)
    return max(1, min(int(4 * math.sqrt(n)), n // 39, IVF_MAX_LISTS, IVF_ADD_WORK // n))


def rescore_depth(k: int, factor: int, n_vectors: int, nlist: int | None, nprobe: int) -> int:
    """How many candidates a search of an index with approximate scores asks for, to
    re-score exactly: ``k · factor``, and for IVF (``nlist`` lists over ``n_vectors``) at
    least ``RESCORE_MIN_SHARE`` of the codes in the ``nprobe`` lists it scans."""
    depth = max(k * factor, k)
    if nlist:
        scanned = n_vectors * min(nprobe, nlist) / nlist
        depth = max(depth, math.ceil(RESCORE_MIN_SHARE * scanned))
    return depth


def choose_index_kind(n_vectors: int, settings: Settings, dim: int = 512) -> str:
    """``settings.index_type`` unless it is ``auto``: exact search while it is cheap
    (``flat_max``), then HNSW while its full-precision graph fits (``hnsw_max``), then IVF-PQ.

    With a memory budget (``memory_budget_mb``, per vector space), the most accurate of
    HNSW, HNSW over 8-bit codes and IVF-PQ whose estimated size fits it; IVF-PQ (the
    smallest) when none does. Both compressed kinds are followed by exact re-scoring of
    their candidates from the vector files."""
    kind = settings.index_type.strip().lower()
    if kind != "auto":
        if kind not in INDEX_KINDS:
            raise InvalidInputError(
                f"index_type {settings.index_type!r} is not known; use auto, "
                + ", ".join(INDEX_KINDS))
        return kind
    if n_vectors <= settings.flat_max:
        return "flat"
    budget = settings.memory_budget_mb << 20
    if budget <= 0:
        return "hnsw" if n_vectors <= settings.hnsw_max else "ivfpq"
    for candidate in _BY_ACCURACY:
        if candidate != "ivfpq" and n_vectors > settings.hnsw_max:
            continue  # an HNSW graph this large takes too long to build
        if estimated_bytes(candidate, n_vectors, dim, settings) <= budget:
            return candidate
    return "ivfpq"


def params_from_settings(settings: Settings) -> IndexParams:
    """Index parameters from settings; ``nlist`` and ``pq_m`` are derived at build time."""
    return IndexParams(
        hnsw_m=settings.hnsw_m,
        ef_construction=settings.hnsw_ef_construction,
        ef_search=settings.hnsw_ef_search,
        nprobe=settings.ivf_nprobe,
    )
