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

import bisect
import collections
import itertools
import marshal
import threading
from collections.abc import Hashable, Iterable, Sequence
from typing import Any, Generic, TypeVar

import numpy as np
from numpy.typing import NDArray

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
_NO_FIRSTS = (np.zeros(0, np.int64).data, np.zeros(0, np.int64).data)


def all_within(indices: NDArray[Any], size: int) -> bool:
    """Whether every one of (non-empty) ``indices`` lies in ``0 .. size - 1``. int64 in one
    pass: negative indices, seen unsigned, are larger than any size."""
    if indices.dtype == np.int64:
        return bool(indices.view(np.uint64).max() < size)
    return bool(indices.min() >= 0 and indices.max() < size)


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
        if len(keys) and len(state) and all_within(keys, len(state)):
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


class PackedRows:
    """key -> a short tuple of plain values (str, int, float, None), packed into one
    growing buffer and found through an array indexed by key.

    Meant for the fields every result page shows. As Python tuples and strings a row costs
    a few hundred bytes; packed (``marshal``) it costs its text plus a few bytes, and a
    lookup is one array read and one ``loads`` a row, several times cheaper than an SQLite
    read of scattered rows. A whole catalog of a million short rows fits in ~80 MB, so one
    scan (:meth:`fill`) can take every later page's reads off SQLite.

    At most ``capacity`` bytes are packed. A row that changes leaves its old copy behind;
    a put that would pass the capacity starts over on an empty buffer if half of it is
    such copies, and otherwise is not kept (a catalog bigger than the store keeps the rows
    it has). Keys are small non-negative integers (SQLite rowids); each is unknown until
    stored. Staleness follows :class:`RowCache`'s generation rule. A reader takes the
    offsets and the buffer together, and one int64 per key holds both the offset and the
    length, so a reader never pairs a new offset with an old length.

    A scan also indexes each row's first value (an item's id) by its hash, so that
    :meth:`key_of_first` finds a row's key from that value: every candidate is checked
    against the stored row, so an entry left over from a row since changed or deleted
    is never believed.
    """

    _LENGTH_BITS = 24
    _MAX_ROW = (1 << _LENGTH_BITS) - 1  # longer rows are not kept: ~16 MB

    def __init__(self, capacity: int) -> None:
        self.capacity = max(0, capacity)
        self._state: tuple[NDArray[np.int64], bytearray] = (np.zeros(0, np.int64), bytearray())
        # hash of each scanned row's first value, ascending, and the keys in that order,
        # as memoryviews: bisect reads them as Python ints, without numpy's scalar calls
        self._by_first: tuple[memoryview, memoryview] = _NO_FIRSTS
        self._lock = threading.Lock()
        self._stale = 0  # bytes of the buffer that no offset points at any more
        self.generation = 0

    def __len__(self) -> int:
        return int(np.count_nonzero(self._state[0]))

    @property
    def nbytes(self) -> int:
        """Memory held: the packed rows and the offsets."""
        offsets, data = self._state
        return len(data) + offsets.nbytes

    def get_many(self, keys: Sequence[int] | NDArray[np.int64]
                 ) -> tuple[dict[int, tuple[Any, ...]], list[int]]:
        """The stored rows among ``keys`` and the keys that are missing (as ints)."""
        offsets, data = self._state
        if not len(keys):
            return {}, []
        at = np.asarray(keys, dtype=np.int64)
        if isinstance(keys, np.ndarray):
            keys = at.tolist()
        if all_within(at, len(offsets)):
            found_at = offsets[at].tolist()
        else:
            inside = (at >= 0) & (at < len(offsets))
            found_at = np.where(inside, offsets[np.where(inside, at, 0)], 0).tolist() \
                if len(offsets) else [0] * len(at)
        found: dict[int, tuple[Any, ...]] = {}
        missing: list[int] = []
        bits, mask, loads = self._LENGTH_BITS, self._MAX_ROW, marshal.loads
        for key, where in zip(keys, found_at, strict=True):
            if where:
                start = where >> bits
                found[key] = loads(data[start:start + (where & mask)])
            else:
                missing.append(key)
        return found, missing

    def get(self, key: int) -> tuple[Any, ...] | None:
        offsets, data = self._state
        where = int(offsets[key]) if 0 <= key < len(offsets) else 0
        if not where:
            return None
        start = where >> self._LENGTH_BITS
        row: tuple[Any, ...] = marshal.loads(data[start:start + (where & self._MAX_ROW)])
        return row

    def key_of_first(self, value: Any) -> int | None:
        """The key of the stored row whose first value is ``value``; None where the
        store cannot tell (not scanned, or changed since: ask the source)."""
        hashes, keys = self._by_first
        wanted = hash(value)
        at = bisect.bisect_left(hashes, wanted)
        while at < len(hashes) and hashes[at] == wanted:
            key = keys[at]
            row = self.get(key)
            if row is not None and row[0] == value:
                return key
            at += 1
        return None

    def put_many(self, values: dict[int, tuple[Any, ...]], generation: int) -> None:
        """Remember ``values`` read while the store was at ``generation``."""
        if not self.capacity or not values:
            return
        packed = {key: marshal.dumps(row) for key, row in values.items()}
        size = sum(len(blob) for blob in packed.values())
        with self._lock:
            if generation != self.generation:
                return  # a write committed while they were read: they may be stale
            offsets, data = self._state
            if len(data) + size > self.capacity and 2 * self._stale >= self.capacity:
                # mostly old copies of changed rows: start over (full of live rows, as in a
                # catalog bigger than the store, it keeps them and stores what fits)
                offsets, data, self._stale = np.zeros(len(offsets), np.int64), bytearray(), 0
            top = max(packed) + 1
            if top > len(offsets):
                grown = np.zeros(max(top, 2 * len(offsets), 1024), np.int64)
                grown[:len(offsets)] = offsets
                offsets = grown
            self._state = (offsets, data)
            for key, blob in packed.items():
                if len(data) + len(blob) > self.capacity or len(blob) > self._MAX_ROW:
                    continue
                start = len(data)
                data += blob  # the bytes first, then the offset that points at them
                self._stale += int(offsets[key]) & self._MAX_ROW  # a copy stored meanwhile
                offsets[key] = (start << self._LENGTH_BITS) | len(blob)

    def fill(self, rows: Iterable[tuple[Any, ...]], generation: int) -> bool:
        """Store every row of ``rows`` (tuples: the key, then the values) that fits, in
        place of what is stored. Read while the store was at ``generation``; False, and
        nothing changed, if a write came since."""
        if not self.capacity:
            return False
        offsets = np.zeros(1024, np.int64)
        data = bytearray()
        firsts: list[NDArray[np.int64]] = []
        firsts_keys: list[NDArray[np.int64]] = []
        dumps, rows = marshal.dumps, iter(rows)
        while chunk := list(itertools.islice(rows, 4096)):
            blobs = [dumps(row[1:]) for row in chunk]
            keys = np.fromiter((row[0] for row in chunk), np.int64, len(chunk))
            firsts.append(np.fromiter((hash(row[1]) if len(row) > 1 else 0 for row in chunk),
                                      np.int64, len(chunk)))
            firsts_keys.append(keys)
            sizes = np.fromiter(map(len, blobs), np.int64, len(blobs))
            ends = len(data) + np.cumsum(sizes)
            full = bool(ends[-1] > self.capacity)
            if full:  # what was packed so far still serves
                take = int(np.searchsorted(ends, self.capacity, side="right"))
                blobs, keys, sizes, ends = blobs[:take], keys[:take], sizes[:take], ends[:take]
            if len(keys):
                if keys.max() >= len(offsets):
                    grown = np.zeros(max(int(keys.max()) + 1, 2 * len(offsets)), np.int64)
                    grown[:len(offsets)] = offsets
                    offsets = grown
                located = ((ends - sizes) << self._LENGTH_BITS) | sizes
                offsets[keys] = np.where(sizes <= self._MAX_ROW, located, 0)
                data += b"".join(blobs)
            if full:
                break
        hashes = np.concatenate(firsts) if firsts else np.zeros(0, np.int64)
        order = np.argsort(hashes, kind="stable")
        by_first = (hashes[order].data, (np.concatenate(firsts_keys)[order] if firsts_keys
                                         else np.zeros(0, np.int64)).data)
        with self._lock:
            if generation != self.generation:
                return False
            self._state, self._stale = (offsets, data), 0
            self._by_first = by_first
            return True

    def invalidate(self, keys: Iterable[int] | None = None) -> None:
        """Forget ``keys`` (None: everything); readers that started before keep nothing."""
        with self._lock:
            self.generation += 1
            offsets = self._state[0]
            if keys is None:
                self._state, self._stale = (np.zeros(0, np.int64), bytearray()), 0
                self._by_first = _NO_FIRSTS
                return
            at = np.fromiter((int(k) for k in keys), np.int64)
            at = np.unique(at[(at >= 0) & (at < len(offsets))])
            self._stale += int((offsets[at] & self._MAX_ROW).sum())
            offsets[at] = 0
