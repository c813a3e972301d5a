"""Work derived from a large read-only array, remembered by the array's identity.

A filtered search turns the keys that pass the filter into index ids and a FAISS
selector. For a filter passing half of a million items that costs tens of milliseconds,
more than the search. The catalog hands out the same read-only key array for the same
filter until a write, so what was derived from it can be reused: this memo keeps the
last few (array, version, result) triples and compares arrays with ``is``. It holds
each array strongly, so an identity is never recycled while it is remembered; arrays
that can still be written are never remembered.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

import numpy as np
from numpy.typing import NDArray

T = TypeVar("T")


class IdentityMemo(Generic[T]):
    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._entries: tuple[tuple[NDArray[np.int64], Hashable, T], ...] = ()

    def get(self, source: NDArray[np.int64], version: Hashable,
            compute: Callable[[], T]) -> T:
        """``compute()``, or what it returned before for this very array at ``version``."""
        for array, seen, value in self._entries:  # a snapshot: writers replace the tuple
            if array is source and seen == version:
                return value
        value = compute()
        if not source.flags.writeable:
            self._entries = ((source, version, value), *self._entries[:self.size - 1])
        return value
