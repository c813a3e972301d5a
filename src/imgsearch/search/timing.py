"""Per-query stage timings (decode, encode, filter, ann, rerank, fetch), in milliseconds.

``run_query`` opens a record for the query being answered; code anywhere below it adds
to the current record with ``stage(name)``. Outside a query the timings go nowhere.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from imgsearch.encode.base import Encoder

_current: ContextVar[dict[str, float] | None] = ContextVar("imgsearch_stages", default=None)


class recording:
    """``with recording() as timings: ...``: the stages entered inside add to
    ``timings`` (a class, as ``stage`` is: every search opens one)."""

    __slots__ = ("_timings", "_token")

    def __init__(self) -> None:
        self._timings: dict[str, float] = {}

    def __enter__(self) -> dict[str, float]:
        self._token = _current.set(self._timings)
        return self._timings

    def __exit__(self, *exc: object) -> None:
        _current.reset(self._token)


def current() -> dict[str, float]:
    """The record of the query being answered (an empty one outside a query)."""
    return _current.get() or {}


class stage:
    """``with stage("ann"): ...`` adds the block's time to the current record. A class, not
    a generator: a search enters several stages and each must cost next to nothing."""

    __slots__ = ("_name", "_started", "_timings")

    def __init__(self, name: str) -> None:
        self._name = name

    def __enter__(self) -> None:
        self._timings = _current.get()
        self._started = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        if self._timings is not None:
            elapsed = (time.perf_counter() - self._started) * 1000
            self._timings[self._name] = self._timings.get(self._name, 0.0) + elapsed


def load_model(encoder: Encoder) -> None:
    """Load ``encoder``'s model if it is not loaded yet, recording the time as the current
    query's ``model_load``: a query that had to load a model reports that apart."""
    started = time.perf_counter()
    if encoder.load():
        timings = _current.get()
        if timings is not None:
            elapsed = (time.perf_counter() - started) * 1000
            timings["model_load"] = timings.get("model_load", 0.0) + elapsed
