"""The catalog's single-valued filter fields as in-memory arrays, indexed by item key.

A filter nobody asked for before would otherwise cost SQLite the list of every passing
key: 18 ms for 50,000 keys of a 100,000-item catalog, against 0.2 ms for the search it
restricts. Price, width, height, orientation, category, brand and licence fit in about
30 bytes an item (category, brand and licence as codes into a table of their distinct
values), so a filter over them is a few vectorised comparisons.

Consistency. The arrays come from one scan of the table. Writers report the keys they
wrote after each commit (:meth:`FilterColumns.invalidate`); those keys are read again, under
the lock, before the next filter is answered, so a filter asked after a write returned
sees that write. A scan runs without the lock and is kept only if nothing made every key
unknown while it ran; keys written meanwhile stay marked and are read again.
Multi-valued fields (tags, colours, attributes) are left to SQL.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from imgsearch.types import Filters

COLUMNS = ("price", "width", "height", "orientation", "category_norm", "brand_norm",
           "license_norm")
_ORIENTATION_CODES = {"landscape": 1, "portrait": 2, "square": 3}
_CODED = ("category_norm", "brand_norm", "license_norm")
_NONE = -1  # no value (SQL NULL) in the integer columns; prices use NaN


def answers(filters: Filters) -> bool:
    """Whether the columns can answer ``filters`` (they hold no tags, colours, attributes)."""
    return not (filters.tags or filters.colors or filters.attributes or filters.taken_after
                or filters.taken_before or filters.cameras or filters.near or filters.places)


class FilterColumns:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ready = False
        self._epoch = 0  # bumped when every key becomes unknown
        self._stale: set[int] = set()
        self._scanning = False
        self._codes: dict[str, dict[str, int]] = {name: {} for name in _CODED}
        self._live = np.zeros(0, bool)
        self._price = np.zeros(0, np.float64)
        self._ints: dict[str, NDArray[np.int32]] = {}
        self._size = 0
        self._resize(0)

    @property
    def ready(self) -> bool:
        return self._ready

    # -- writes --------------------------------------------------------------------
    def invalidate(self, keys: Iterable[int] | None = None) -> None:
        """Keys written by a commit (None: every key, another process wrote)."""
        with self._lock:
            if keys is None:
                self._epoch += 1
                self._ready = False
                self._stale.clear()
            elif self._ready or self._scanning:
                self._stale.update(int(k) for k in keys)

    def begin_scan(self) -> int:
        """Before reading the whole table: keys written from now on are remembered."""
        with self._lock:
            self._scanning = True
            return self._epoch

    def install(self, size: int, scan: Callable[[], Iterable[Sequence[Sequence[Any]]]],
                epoch: int) -> bool:
        """Fill from a full scan: ``scan()`` gives chunks of rows (key first, then
        COLUMNS), ``size`` is above most keys, ``epoch`` is what :meth:`begin_scan`
        returned. False, and nothing kept, if every key became unknown since."""
        fresh = FilterColumns()
        with self._lock:
            fresh._codes = {name: dict(codes) for name, codes in self._codes.items()}
        read = False
        try:
            fresh._resize(size)
            for rows in scan():
                fresh._set(rows)
            read = True
        finally:
            with self._lock:
                self._scanning = False
                installed = read and epoch == self._epoch
                if installed:
                    self._codes = fresh._codes
                    self._live, self._price = fresh._live, fresh._price
                    self._ints, self._size = fresh._ints, fresh._size
                    self._ready = True  # keys written during the scan are still stale
                else:
                    self._stale.clear()
        return installed

    def refresh(self, read: Any) -> None:
        """Read again the keys written since the last filter (``read(keys)`` gives their
        rows; a key without a row was deleted). Holds the lock: a filter asked after a
        write returned never sees the row before it."""
        with self._lock:
            if not self._stale:
                return
            keys = sorted(self._stale)
            rows = read(keys)
            self._resize(max(self._size, keys[-1] + 1))
            self._live[keys] = False
            self._set(rows)
            self._stale.clear()

    # -- reads ---------------------------------------------------------------------
    def hold_no_value(self, names: Sequence[str]) -> bool:
        """True only where every item has been read and none has a value in the coded
        columns ``names`` (a code, once given, stays: a value deleted since counts);
        False where that is not known (not scanned yet, or writes not read again)."""
        return self._ready and not self._stale and not any(self._codes[name] for name in names)

    def keys(self, filters: Filters) -> NDArray[np.int64]:
        """Sorted keys of the items passing ``filters`` (validated, :func:`answers` true)."""
        with self._lock:
            mask = self._live.copy()
            for name, values in (("category_norm", filters.categories),
                                 ("brand_norm", filters.brands),
                                 ("license_norm", filters.licenses)):
                if values:
                    codes = self._codes[name]
                    wanted = [codes[v] for v in {_norm(v) for v in values} if v in codes]
                    mask &= np.isin(self._ints[name], wanted)
            if filters.price_min is not None:
                mask &= self._price >= float(filters.price_min)
            if filters.price_max is not None:
                mask &= self._price <= float(filters.price_max)
            if filters.orientation is not None:
                mask &= self._ints["orientation"] == _ORIENTATION_CODES[filters.orientation]
            if filters.min_width is not None:
                mask &= self._ints["width"] >= filters.min_width
            if filters.min_height is not None:
                mask &= self._ints["height"] >= filters.min_height
        return true_positions(mask)

    # -- inside ------------------------------------------------------------------------
    def _resize(self, size: int) -> None:
        if size <= self._size and self._ints:
            return
        size = max(size, 2 * self._size) if self._ints else size

        def grown(old: NDArray[Any], fill: Any) -> NDArray[Any]:
            new = np.full(size, fill, old.dtype)
            new[:len(old)] = old
            return new

        self._live = grown(self._live, False)
        self._price = grown(self._price, np.nan)
        self._ints = {name: grown(self._ints.get(name, np.zeros(0, np.int32)), _NONE)
                      for name in ("width", "height", "orientation", *_CODED)}
        self._size = size

    def _set(self, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        keys = np.fromiter((int(r[0]) for r in rows), np.int64, count=len(rows))
        self._resize(int(keys.max()) + 1)
        self._live[keys] = True
        self._price[keys] = [np.nan if r[1] is None else float(r[1]) for r in rows]
        for i, name in ((2, "width"), (3, "height")):
            self._ints[name][keys] = [_NONE if r[i] is None else int(r[i]) for r in rows]
        self._ints["orientation"][keys] = [_ORIENTATION_CODES.get(r[4], _NONE) for r in rows]
        for i, name in ((5, "category_norm"), (6, "brand_norm"), (7, "license_norm")):
            codes = self._codes[name]
            self._ints[name][keys] = [_NONE if r[i] is None else
                                      codes.setdefault(r[i], len(codes)) for r in rows]


def _norm(value: str) -> str:
    return value.strip().casefold()


def true_positions(mask: NDArray[np.bool_]) -> NDArray[np.int64]:
    """``np.flatnonzero(mask)``, twice as fast where 4-10 % of a large mask is true.

    At 10 % or less numpy looks for each true value with a call of its own, which takes
    1.3 ms for a 1,000,000-item catalog with 100,000 scattered hits (0.3 ms at 11 %).
    Marking every eighth position as well lifts the share over that line; the positions
    of the mask's own true values are then picked out of that shorter list.
    """
    total, count = len(mask), int(np.count_nonzero(mask))
    if count * 25 < total or count * 10 > total:
        return np.flatnonzero(mask).astype(np.int64, copy=False)
    augmented = mask.copy()
    augmented[::8] = True
    marked = np.flatnonzero(augmented)
    return marked[np.flatnonzero(mask[marked])].astype(np.int64, copy=False)
