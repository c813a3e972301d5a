"""Recall of a vector space's approximate index against exact search.

Queries are stored vectors sampled from the space itself, so each query's own item is
part of both answers, as it is for "more like this". The exact answer is a brute-force
inner product over every stored vector, streamed from the catalog in batches so that
memory stays at (queries × batch) whatever the collection's size. An approximate hit
counts as found when its exact score reaches the k-th exact score: among tied vectors
(duplicate images) any choice is right.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from imgsearch.errors import InvalidInputError
from imgsearch.types import VectorSpace

# Scores are float32 inner products; a hit within this of the k-th exact score is a tie.
_TIE_TOLERANCE = 1e-5


class _Index(Protocol):
    kind: str

    def __len__(self) -> int: ...

    def search(self, queries: NDArray[np.float32], k: int, *,
               allowed: NDArray[np.int64] | None = None, ef_search: int | None = None,
               nprobe: int | None = None) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        ...


class _VectorSource(Protocol):
    def count_vectors(self, space: str) -> int: ...

    def iter_vectors(self, space: str, dim: int, batch: int = ...
                     ) -> Iterator[tuple[NDArray[np.int64], NDArray[np.int64],
                                         NDArray[np.float32]]]: ...


class SpaceIndexLike(Protocol):
    """What :func:`ann_recall` needs of a space: its description, index and catalog."""

    @property
    def space(self) -> VectorSpace: ...

    @property
    def index(self) -> _Index: ...

    @property
    def catalog(self) -> _VectorSource: ...


@dataclass(frozen=True)
class AnnRecall:
    space: str
    index_kind: str
    vectors: int
    queries: int
    k: int
    recall: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def ann_recall(space_index: SpaceIndexLike, n_queries: int = 200, k: int = 10,
               seed: int = 0, *, ef_search: int | None = None,
               nprobe: int | None = None) -> AnnRecall:
    """recall@k of ``space_index.index`` against exact search over the stored vectors.

    ``n_queries`` stored vectors are drawn at random (``seed`` makes the draw
    repeatable); k shrinks to the number of stored vectors when there are fewer.
    ``ef_search``/``nprobe`` override the index's own search parameters (HNSW, IVF).
    """
    if n_queries < 1 or k < 1:
        raise InvalidInputError(f"n_queries and k must be at least 1, got {n_queries}, {k}")
    space, index, catalog = space_index.space, space_index.index, space_index.catalog
    total = catalog.count_vectors(space.name)
    if total == 0:
        return AnnRecall(space.name, index.kind, len(index), 0, k, float("nan"))
    k = min(k, total)
    rng = np.random.default_rng(seed)
    positions = np.sort(rng.choice(total, size=min(n_queries, total), replace=False))
    queries = _gather(catalog, space, positions)

    _, found = index.search(queries, k, ef_search=ef_search, nprobe=nprobe)
    exact_top, found_exact = _exact(catalog, space, queries, k, found)
    kth = exact_top[:, -1:] - _TIE_TOLERANCE
    hits = ((found_exact >= kth) & (found >= 0)).sum(axis=1)
    recall = float(hits.sum() / (len(queries) * k))
    return AnnRecall(space.name, index.kind, len(index), len(queries), k, recall)


def _gather(catalog: _VectorSource, space: VectorSpace, positions: NDArray[np.int64]
            ) -> NDArray[np.float32]:
    """The stored vectors at the given (sorted) positions of the vid order."""
    parts: list[NDArray[np.float32]] = []
    start = 0
    for _vids, _keys, vectors in catalog.iter_vectors(space.name, space.dim):
        end = start + len(vectors)
        inside = positions[(positions >= start) & (positions < end)]
        parts.append(vectors[inside - start])
        start = end
        if start > positions[-1]:
            break
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)


def _exact(catalog: _VectorSource, space: VectorSpace, queries: NDArray[np.float32],
           k: int, found: NDArray[np.int64]
           ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Exact top-k scores per query (descending) and the exact score of each ANN hit."""
    top = np.full((len(queries), k), -np.inf, dtype=np.float32)
    found_exact = np.full(found.shape, -np.inf, dtype=np.float32)
    for vids, _keys, vectors in catalog.iter_vectors(space.name, space.dim):
        scores = queries @ vectors.T
        merged = np.concatenate([top, scores], axis=1)
        keep = np.argpartition(-merged, k - 1, axis=1)[:, :k]
        top = np.take_along_axis(merged, keep, axis=1)
        # exact scores of the ANN's labels that fall in this batch (vids are sorted)
        pos = np.clip(np.searchsorted(vids, found), 0, len(vids) - 1)
        here = vids[pos] == found
        rows, cols = np.nonzero(here)
        found_exact[rows, cols] = scores[rows, pos[rows, cols]]
    return -np.sort(-top, axis=1), found_exact
