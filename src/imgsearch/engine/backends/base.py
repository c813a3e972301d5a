"""The collection backend protocol: what a store of items and vectors must do for the
engine, at the level a remote engine needs.

Rows go in as items with their vectors per space; searches take a ``Filters`` object
(pushed down: the backend evaluates it where the data is, never a list of allowed
labels); vectors, items and counts come back by id. What a backend can do beyond that is
declared in ``BackendCapabilities`` rather than guessed from its type.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from imgsearch.types import Filters, Item, VectorSpace


@dataclass(frozen=True)
class BackendCapabilities:
    """``filters``: every ``Filters`` field is evaluated by the backend itself.
    ``bm25``: ``keyword_search`` works. ``hybrid``: ``hybrid_search`` fuses vector and
    keyword results on the server. ``read_your_writes``: a search right after an
    acknowledged write sees it, from any client of the collection. ``thumbnails``: the
    collection holds items' thumbnails (``thumbnails`` reads them). ``browse``:
    ``newest`` works; ``near``: the near filter does."""

    filters: bool = True
    bm25: bool = False
    hybrid: bool = False
    read_your_writes: bool = True
    thumbnails: bool = False
    browse: bool = True
    near: bool = True


@dataclass
class Row:
    """One item and its vectors, one per space it has (L2-normalised float32), and its
    thumbnail (JPEG bytes) where the writer has one."""

    item: Item
    vectors: dict[str, NDArray[np.float32]] = field(default_factory=dict)
    thumbnail: bytes | None = None


@dataclass(frozen=True)
class Hit:
    id: str
    score: float


class CollectionBackend(Protocol):
    """Items with vectors per named space, searched by inner product."""

    @property
    def uri(self) -> str:
        """Where the collection lives (a directory, or milvus://host:port/name)."""
        ...

    @property
    def capabilities(self) -> BackendCapabilities: ...

    def spaces(self) -> dict[str, int]:
        """Each vector space with the dimension of its vectors."""
        ...

    def encoders(self) -> dict[str, VectorSpace]:
        """What made each space's vectors (encoder, model id, dimension), as the
        collection records it; a space with nothing recorded is left out."""
        ...

    def upsert(self, rows: Sequence[Row]) -> None:
        """Insert or replace items by id, with their vectors; durable when it returns."""
        ...

    def delete(self, ids: Sequence[str]) -> int:
        """Remove items by id; how many existed."""
        ...

    def search(self, space: str, vector: NDArray[np.float32], k: int,
               filters: Filters | None = None, params: Mapping[str, int] | None = None
               ) -> list[Hit]:
        """The ``k`` best items by inner product in ``space`` among those ``filters``
        allow, best first (ties by id). ``params``: a query's index hints
        (``Query.search_params``: ef_search, nprobe), which the backend maps onto its own
        index's parameters and checks (InvalidQueryError for a name it does not know)."""
        ...

    def keyword_search(self, text: str, k: int, filters: Filters | None = None) -> list[Hit]:
        """BM25 over the items' text, best first; UnsupportedOnBackendError without it."""
        ...

    def hybrid_search(self, vectors: Mapping[str, NDArray[np.float32]], text: str | None,
                      k: int, filters: Filters | None = None, rrf_k: int = 60) -> list[Hit]:
        """Reciprocal-rank fusion, done by the backend, of a search per space and BM25
        over ``text``; UnsupportedOnBackendError where ``capabilities.hybrid`` is False."""
        ...

    def fetch_vectors(self, space: str, ids: Sequence[str]
                      ) -> dict[str, NDArray[np.float32]]:
        """Stored vectors of those ``ids`` that have one in ``space``."""
        ...

    def get(self, ids: Sequence[str]) -> dict[str, Item]:
        """The items of those ``ids`` that exist."""
        ...

    def thumbnails(self, ids: Sequence[str], expected: Mapping[str, str] | None = None
                   ) -> dict[str, bytes]:
        """The JPEG thumbnails of those ``ids`` that have one (none where
        ``capabilities.thumbnails`` is False). ``expected``: each id's
        ``Item.thumbnail`` as read before, which lets a backend answer from a cheaper
        read where it holds that thumbnail."""
        ...

    def newest(self, filters: Filters | None, offset: int, limit: int
               ) -> tuple[int, list[str]]:
        """Browsing: how many items ``filters`` pass, and the ids of the page
        ``offset``..``offset+limit`` of them, newest first (in the order they were first
        added; an update keeps an item's place)."""
        ...

    def count(self) -> int:
        """How many items the collection holds (counted, never estimated)."""
        ...

    def distinct_values(self, field: str, limit: int) -> list[str] | None:
        """The distinct values of ``field`` (brand, category or camera) among the items,
        most common first, for query understanding; None when the collection holds
        more than ``limit`` items (not read then)."""
        ...

    def rows(self, batch: int = 1000, source: str | None = None) -> Iterator[list[Row]]:
        """Every item with its vectors, in batches (what ``migrate`` copies); with
        ``source``, only the items ingested from there (``Item.source``)."""
        ...

    def ids(self, batch: int = 10_000) -> Iterator[list[str]]:
        """Every item's id, in batches, nothing else read (what a random sample of the
        collection is drawn from: ``engine.remote_sample``)."""
        ...

    def items(self, batch: int = 1000) -> Iterator[list[Item]]:
        """Every item without its vectors, in batches (what a node reads the
        collection's words from: ``engine.remote_concepts``)."""
        ...

    def filter_ids(self, ids: Sequence[str], filters: Filters) -> set[str]:
        """Those of ``ids`` that exist and pass ``filters``, evaluated by the backend."""
        ...

    def close(self) -> None: ...


def ranked(pairs: Mapping[str, float] | Sequence[tuple[str, float]], k: int) -> list[Hit]:
    """Hits best first, ties broken by id, at most ``k``."""
    items = pairs.items() if isinstance(pairs, Mapping) else pairs
    return [Hit(i, float(s)) for i, s in sorted(items, key=lambda p: (-p[1], p[0]))[:k]]


__all__ = ["BackendCapabilities", "CollectionBackend", "Hit", "Row", "ranked"]
