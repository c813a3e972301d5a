"""Which index kind a collection gets, and its parameters, from ``Settings``."""

from __future__ import annotations

from imgsearch.config import Settings
from imgsearch.errors import InvalidInputError
from imgsearch.index.base import INDEX_KINDS, IndexParams


def choose_index_kind(n_vectors: int, settings: Settings) -> str:
    """``settings.index_type`` unless it is ``auto``: exact search while it is cheap
    (``flat_max``), then HNSW while its full-precision graph fits (``hnsw_max``), then IVF-PQ."""
    kind = settings.index_type.strip().lower()
    if kind != "auto":
        if kind not in INDEX_KINDS:
            raise InvalidInputError(
                f"index_type {settings.index_type!r} is not known; use auto, "
                + ", ".join(INDEX_KINDS))
        return kind
    if n_vectors <= settings.flat_max:
        return "flat"
    if n_vectors <= settings.hnsw_max:
        return "hnsw"
    return "ivfpq"


def params_from_settings(settings: Settings) -> IndexParams:
    """Index parameters from settings; ``nlist`` and ``pq_m`` are derived at build time."""
    return IndexParams(
        hnsw_m=settings.hnsw_m,
        ef_construction=settings.hnsw_ef_construction,
        ef_search=settings.hnsw_ef_search,
        nprobe=settings.ivf_nprobe,
    )
