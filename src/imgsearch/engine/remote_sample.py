"""A uniform random sample of a remote collection's items, for its calibration.

Item ids are the caller's own strings, so no random primary key can be drawn, and
Milvus caps how deep an offset may reach (``maxQueryResultWindow``, 16,384 rows), so no
random position can be asked for either. What stays is a scan: the ids alone are listed
(a page of ids costs a small part of a page of vectors and items) and a reservoir keeps
a uniform sample of them (Vitter's algorithm R: after ``n`` ids each of them is in the
sample with probability ``size / n``). Only the chosen ids' vectors are then fetched.

The scan is bounded by ``budget_s`` seconds: a collection listed within it (millions of
ids) is sampled uniformly as a whole; past it, the sample is uniform over the ids listed
so far, and ``Sample.complete`` says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

SCAN_BUDGET_S = 30.0


@dataclass
class Sample:
    ids: list[str]
    listed: int  # ids the reservoir saw
    complete: bool  # the whole collection was listed within the budget


def reservoir(pages: Iterable[list[str]], size: int, seed: int = 0,
              budget_s: float = SCAN_BUDGET_S,
              clock: Callable[[], float] = time.monotonic) -> Sample:
    """At most ``size`` ids drawn uniformly from those ``pages`` list (see the module
    docstring), in the order they were listed."""
    rng = np.random.default_rng(seed)
    held: list[str] = []
    order: list[int] = []  # where each held id was listed, to return them in that order
    listed = 0
    deadline = clock() + budget_s
    complete = True
    listing = iter(pages)
    for page in listing:
        start = listed
        listed += len(page)
        fill = max(0, min(size - len(held), len(page)))
        held.extend(page[:fill])
        order.extend(range(start, start + fill))
        if fill < len(page):
            # id number n (from 1) replaces a random slot with probability size / n
            numbers = np.arange(start + fill + 1, listed + 1)
            slots = rng.integers(0, numbers)
            for offset in np.flatnonzero(slots < size).tolist():
                slot = int(slots[offset])
                held[slot] = page[fill + offset]
                order[slot] = start + fill + offset
        if clock() > deadline:
            complete = next(listing, None) is None
            break
    ranked = sorted(range(len(held)), key=order.__getitem__)
    return Sample([held[i] for i in ranked], listed, complete)


__all__ = ["SCAN_BUDGET_S", "Sample", "reservoir"]
