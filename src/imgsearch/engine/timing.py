"""Per-query stage timings (decode, encode, filter, ann, rerank, fetch), in milliseconds.

``run_query`` opens a record for the query being answered; code anywhere below it adds
to the current record with ``stage(name)``. Outside a query the timings go nowhere.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_current: ContextVar[dict[str, float] | None] = ContextVar("imgsearch_stages", default=None)


@contextmanager
def recording() -> Iterator[dict[str, float]]:
    timings: dict[str, float] = {}
    token = _current.set(timings)
    try:
        yield timings
    finally:
        _current.reset(token)


@contextmanager
def stage(name: str) -> Iterator[None]:
    timings = _current.get()
    started = time.perf_counter()
    try:
        yield
    finally:
        if timings is not None:
            elapsed = (time.perf_counter() - started) * 1000
            timings[name] = timings.get(name, 0.0) + elapsed
