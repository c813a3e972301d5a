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

import collections
import itertools
import threading
from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

import numpy as np
from numpy.typing import NDArray

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class RowCache(Generic[K, V]):
    """key -> value, at most ``capacity`` entries, oldest inserted evicted first."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(0, capacity)
        # ordered by insertion: evicting from the front is O(1) (a plain dict would scan
        # past every entry deleted before, on each eviction)
        self._rows: collections.OrderedDict[K, V] = collections.OrderedDict()
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

    def get(self, key: K) -> V | None:
        return self._rows.get(key)

    def put_many(self, values: dict[K, V], generation: int) -> None:
        """Remember ``values`` read while the cache was at ``generation``."""
        if not self.capacity or not values:
            return
        with self._lock:
            if generation != self.generation:
                return  # a write committed while they were read: they may be stale
            rows = self._rows
            overflow = len(rows) + len(values) - self.capacity
            for _ in range(min(overflow, len(rows))):
                rows.popitem(last=False)
            for key, value in itertools.islice(values.items(), self.capacity):
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



class KeyColumn:
    """One integer column of every row, in a dense array indexed by key.

    Meant for small values that searches read for many candidates at once (perceptual
    hashes: nine bytes a row, so a million rows take about 9 MB). Each key is unknown
    until read; invalidation makes it unknown again, under the same generation rule as
    :class:`RowCache`. Writes happen in place under a lock; a value is written before its
    state says it is known, and a grown array is published values first, state second,
    so a reader without the lock never sees a state without its value.
    """

    _UNKNOWN, _VALUE, _NULL = 0, 1, 2

    def __init__(self) -> None:
        self._values: NDArray[np.int64] = np.zeros(0, np.int64)
        self._state: NDArray[np.int8] = np.zeros(0, np.int8)
        self._lock = threading.Lock()
        self.generation = 0

    def get(self, keys: NDArray[np.int64]
            ) -> tuple[NDArray[np.int64], NDArray[np.bool_], NDArray[np.bool_]]:
        """(values, has a value, unknown) per key; 0 stands in where there is no value."""
        state = self._state
        values = self._values
        if len(keys) and len(state) and keys.min() >= 0 and keys.max() < len(state):
            known = state[keys]  # the usual case: every key inside, no masking needed
            has = known == self._VALUE
            return np.where(has, values[keys], 0), has, known == self._UNKNOWN
        inside = (keys >= 0) & (keys < len(state))
        at = np.where(inside, keys, 0)
        known = np.where(inside, state[at], self._UNKNOWN) if len(state) else \
            np.zeros(len(keys), np.int8)
        has = known == self._VALUE
        out = np.where(has, values[at], 0).astype(np.int64) if len(state) else \
            np.zeros(len(keys), np.int64)
        return out, has, known == self._UNKNOWN

    def put(self, keys: NDArray[np.int64], values: NDArray[np.int64],
            has: NDArray[np.bool_], generation: int) -> None:
        """Remember the values of ``keys`` read while the column was at ``generation``."""
        if not len(keys):
            return
        with self._lock:
            if generation != self.generation:
                return  # a write committed while they were read: they may be stale
            top = int(keys.max()) + 1
            if top > len(self._state):
                size = max(top, 2 * len(self._state), 1024)
                grown_values = np.zeros(size, np.int64)
                grown_values[:len(self._values)] = self._values
                grown_state = np.zeros(size, np.int8)
                grown_state[:len(self._state)] = self._state
                self._values = grown_values
                self._state = grown_state
            self._values[keys] = np.where(has, values, 0)
            self._state[keys] = np.where(has, self._VALUE, self._NULL)

    def fill(self, size: int, keys: NDArray[np.int64], values: NDArray[np.int64],
             generation: int) -> bool:
        """Know every key below ``size`` at once: ``keys`` have ``values``, the others
        none. Read while the column was at ``generation``; False if a write came since."""
        head_values = np.zeros(size, np.int64)
        head_state = np.full(size, self._NULL, np.int8)
        head_values[keys] = values
        head_state[keys] = self._VALUE
        with self._lock:
            if generation != self.generation:
                return False  # a write committed while they were read: they may be stale
            # keys from ``size`` up were read one by one since: keep them
            self._values = np.concatenate([head_values, self._values[size:]])
            self._state = np.concatenate([head_state, self._state[size:]])
            return True

    def invalidate(self, keys: Iterable[int] | None = None) -> None:
        """Forget ``keys`` (None: everything); readers that started before keep nothing."""
        with self._lock:
            self.generation += 1
            if keys is None:
                self._state[:] = self._UNKNOWN
                return
            at = np.fromiter((int(k) for k in keys), np.int64)
            self._state[at[(at >= 0) & (at < len(self._state))]] = self._UNKNOWN
