"""What ranking needs of one vector space, whoever holds it.

The executor and the planner talk to a space only through ``SpaceBackend``: a search
with the filter pushed down (today the keys the catalog's filters allow), stored vectors
fetched by key, a count, and declared capabilities. ``SpaceIndex`` (SQLite + FAISS in
this process) is one implementation; a remote engine is another, with its own search
parameters read from the same hints (``Query.search_params``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do, declared rather than guessed from its type.

    ``exact_scores``: the scores its search returns are exact inner products (an IVF-PQ
    index returns approximate ones, re-scored from stored vectors by the backend).
    ``filters``: it restricts a search to allowed items itself (pushed down).
    """

    kind: str  # names the index in plans and statistics: flat, hnsw, ivfpq, ...
    exact_scores: bool = True
    filters: bool = True


class SpaceBackend(Protocol):
    """One vector space: item keys with L2-normalised vectors, searched by inner product."""

    @property
    def capabilities(self) -> Capabilities: ...

    def __len__(self) -> int:
        """How many items have a vector here."""
        ...

    def search(self, vector: NDArray[np.float32], k: int, allowed: NDArray[np.int64] | None,
               params: Mapping[str, Any]) -> tuple[NDArray[np.int64], NDArray[np.float32], str]:
        """Up to ``k`` item keys and their exact scores among ``allowed`` keys (None: all),
        in no particular order, and the plan it followed. ``params`` are the query's
        backend hints; a backend refuses names it does not know."""
        ...

    def vectors_of_keys(self, keys: NDArray[np.int64]
                        ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """Stored (exact) vectors of those keys that have one here, and their keys."""
        ...

    def vector_of_key(self, key: int) -> NDArray[np.float32] | None:
        """One item's stored vector; None when it has none here."""
        ...


__all__ = ["Capabilities", "SpaceBackend"]
