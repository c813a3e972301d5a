"""A bounded in-memory cache of catalog rows, for the reads every search repeats.

A result page reads the same popular items again and again (their metadata for the page,
their perceptual hashes for duplicate folding). Keeping those rows in memory takes SQLite
and JSON decoding off the query path.

Correctness under concurrent writes rests on a generation counter: a reader notes the
generation before it queries SQLite and stores what it read only if no write committed
in between, so a row read before a commit can never be cached after that commit's
invalidation. Writers call :meth:`RowCache.invalidate` after their transaction commits.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class RowCache(Generic[K, V]):
    """key -> value, at most ``capacity`` entries, oldest inserted evicted first."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(0, capacity)
        self._rows: dict[K, V] = {}
        self._lock = threading.Lock()
        self.generation = 0

    def get_many(self, keys: Iterable[K]) -> tuple[dict[K, V], list[K]]:
        """The cached values among ``keys`` and the keys that are missing."""
        rows = self._rows
        found: dict[K, V] = {}
        missing: list[K] = []
        for key in keys:
            value = rows.get(key)
            if value is None:
                missing.append(key)
            else:
                found[key] = value
        return found, missing

    def put_many(self, values: dict[K, V], generation: int) -> None:
        """Remember ``values`` read while the cache was at ``generation``."""
        if not self.capacity or not values:
            return
        with self._lock:
            if generation != self.generation:
                return  # a write committed while they were read: they may be stale
            rows = self._rows
            overflow = len(rows) + len(values) - self.capacity
            if overflow > 0:
                for key in list(itertools.islice(rows, overflow)):
                    del rows[key]
            for key, value in list(values.items())[:self.capacity]:
                rows[key] = value

    def invalidate(self, keys: Iterable[K] | None = None) -> None:
        """Forget ``keys`` (None: everything); readers that started before keep nothing."""
        with self._lock:
            self.generation += 1
            if keys is None:
                self._rows.clear()
            else:
                for key in keys:
                    self._rows.pop(key, None)
