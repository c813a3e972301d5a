"""Browsing newest first and the near filter's exact distance on a milvus collection
(one made by schema 3 or later: ``milvus_schema.POSITIONED``).

Milvus has no ORDER BY: every row carries ``added``, the microsecond its item was first
written (an update keeps it, as an update keeps an item's place in the local catalog),
and a page of the newest items is the top of a scan of (id, added) over the rows the
filters pass, pushed down; only ``offset + limit`` of them are held while scanning.
Where more than ``SCAN_ALL`` rows pass, the scan is narrowed first to a window
``added >= T`` that still holds ``offset + limit`` of them (``window``): counts over
windows growing back from now, then halving, so that the rows read stay near the page
rather than the collection.

A near filter is pushed down as a latitude/longitude box (``milvus_filters.near_box``);
the rows in the box are read (id and position) and kept where the great-circle distance,
computed as the local catalog computes it, is within the radius; the search then runs
over those ids. At most ``NEAR_MAX_ITEMS`` items may be in the box.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from imgsearch.engine.backends.milvus_filters import literal
from imgsearch.enrich.places import km_between
from imgsearch.errors import UnsupportedOnBackendError

NEAR_MAX_ITEMS = 10_000
SCAN_ALL = 20_000  # rows that pass: scanned whole below this, narrowed above
_FIRST_WINDOW_US = 60_000_000  # one minute back from now, then 16 times wider each time
_NARROW_STEPS = 4  # guesses by density once a window holds the page
BROWSE_OLD = ("browsing by filters alone (newest first) needs a milvus collection made by "
              "this version (it records when each item was added): migrate the items into "
              "a new one")


class Stamps:
    """Microseconds since the epoch, increasing within this process, so that items
    written in one batch keep their order. Nodes on several machines stamp with their
    own clocks: items written within their clocks' skew may browse in either order."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def take(self, n: int) -> list[int]:
        with self._lock:
            start = max(time.time_ns() // 1000, self._last + 1)
            self._last = start + n - 1
        return list(range(start, start + n))


def stamped(existing: Mapping[str, int], ids: Sequence[str], stamps: Stamps
            ) -> dict[str, int]:
    """``added`` for each of ``ids``: kept where the item exists, new stamps (in the
    order given) for the others."""
    fresh = [i for i in dict.fromkeys(ids) if i not in existing]
    return {**existing, **dict(zip(fresh, stamps.take(len(fresh)), strict=True))}


def within(rows: Iterable[Mapping[str, Any]], near: tuple[float, float, float]
           ) -> list[str]:
    """The ids of the rows within the radius of ``near`` (refused past NEAR_MAX_ITEMS)."""
    lat, lon, km = (float(v) for v in near)
    kept: list[str] = []
    for seen, row in enumerate(rows, 1):
        if seen > NEAR_MAX_ITEMS:
            raise UnsupportedOnBackendError(
                f"the near filter ({lat:g}, {lon:g}, {km:g} km) takes in over "
                f"{NEAR_MAX_ITEMS} items on the milvus backend: give a smaller radius or "
                f"another filter with it")
        far = km_between(row["latitude"], row["longitude"], lat, lon)
        if far is not None and far <= km:
            kept.append(str(row["id"]))
    return kept


def ids_expression(ids: Sequence[str]) -> str:
    return "id in [" + ", ".join(literal(i) for i in ids) + "]"


def above(where: str, threshold: int) -> str:
    return f"({where}) and added >= {threshold}" if where else f"added >= {threshold}"


def window(where: str, need: int, count: Callable[[str], int], now_us: int) -> int:
    """A threshold T such that at least ``need`` of the rows ``where`` passes have
    ``added >= T`` (so the newest ``need`` are all among them), with few more where the
    stamps allow: windows growing back from now until one holds ``need``, then up to
    ``_NARROW_STEPS`` guesses of the threshold by the rows' density in the window
    (items added over time narrow well; a bulk import of one moment does not, and is
    then scanned whole). Counts that miss the latest writes only widen the window; the
    caller checks the window held ``need`` rows and scans whole otherwise (a count
    that still sees deleted rows)."""
    span = _FIRST_WINDOW_US
    while True:
        low = max(now_us - span, 0)
        found = count(above(where, low))
        if found >= need or low == 0:
            break
        span *= 16
    cap = max(4 * need, SCAN_ALL // 4)
    for _ in range(_NARROW_STEPS):
        if found <= cap:
            break
        guess = now_us - int((now_us - low) * (2 * need / found))
        inside = count(above(where, guess)) if guess > low else 0
        if inside < need:
            break
        low, found = guess, inside
    return low


def browse_page(where: str, offset: int, limit: int,
                count: Callable[[str, str | None], int],
                scan: Callable[[str], Iterable[Mapping[str, Any]]]) -> tuple[int, list[str]]:
    """How many rows ``where`` passes and the page of them, newest first: ``count(expr,
    consistency)`` counts (consistency None: the collection's own), ``scan(expr)`` reads
    (id, added) of the rows ``expr`` passes."""
    need, passing = offset + limit, count(where, None)
    if passing > SCAN_ALL and need < passing // 2:
        low = window(where, need, lambda e: count(e, "Bounded"), time.time_ns() // 1000)
        held, page = newest(scan(above(where, low)), offset, limit)
        if held >= need:  # else a count still saw deleted rows: scan them all
            return passing, page
    return newest(scan(where), offset, limit)


def newest(rows: Iterable[Mapping[str, Any]], offset: int, limit: int
           ) -> tuple[int, list[str]]:
    """How many rows there are, and the ids of the page ``offset``..``offset+limit`` of
    them, newest first (ties: the greater id first)."""
    counted = 0

    def counting() -> Iterable[tuple[int, str]]:
        nonlocal counted
        for row in rows:
            counted += 1
            yield int(row["added"]), str(row["id"])

    top = heapq.nlargest(offset + limit, counting())
    return counted, [item_id for _added, item_id in top[offset:]]


__all__ = ["BROWSE_OLD", "NEAR_MAX_ITEMS", "SCAN_ALL", "Stamps", "above", "browse_page",
           "ids_expression", "newest", "stamped", "window", "within"]
