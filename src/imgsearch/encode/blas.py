"""One BLAS thread for the small matrix products of a query.

numpy's OpenBLAS runs a product on every core it has threads for, and its threads spin
for a while after each product, waiting for the next. A query's products are small (one
image's descriptor, a few hundred candidates' scores): on a busy machine the spinning
threads take the cores the query needs. On the shared 2-core machine (load 11) one 640
x 400 image took 19-24 ms to describe (median of 40) with OpenBLAS's two threads and
1.9 ms with one; right after another product had woken the threads, 31 ms
(bench/copydetect.py; BENCHMARKS.md, copy detection). The descriptor's batches of 64
(ingest on threads, ``imgsearch encode``) take it too: beside busy decode threads the
second thread only waited on the first (``bench/ingest_ab.py``; BENCHMARKS.md, Ingest).

The thread count is the process's, not the calling thread's: the first caller in sets
one thread, the last one out puts back what was there, so that overlapping callers
(queries on several threads) cannot leave it at one for good. A search by one vector
over an exactly scoring index makes no product large enough for OpenBLAS to share out
and does not set it (``search.searcher._no_shared_products``); the steps such a search
may go on to, folding duplicates and fusing an item's lists, set it themselves.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

from threadpoolctl import ThreadpoolController

__all__ = ["blas_threads", "one_blas_thread"]

_LOCK = threading.Lock()
_state: dict[str, Any] = {"users": 0, "saved": []}


@functools.cache
def _controller() -> ThreadpoolController:
    import numpy  # noqa: F401  (its BLAS must be loaded for the controller to find it)

    return ThreadpoolController()


def blas_threads() -> list[int]:
    """The thread count of each BLAS library loaded in this process."""
    return [int(lib["num_threads"]) for lib in _controller().info()
            if lib["user_api"] == "blas"]


# OpenBLAS's own calls for its thread count: the names a build may carry (threadpoolctl
# looks for the same ones)
_OPENBLAS_CALLS = [(f"{prefix}openblas_get_num_threads{suffix}",
                    f"{prefix}openblas_set_num_threads{suffix}")
                   for prefix in ("", "scipy_") for suffix in ("", "64_", "_64")]


@functools.cache
def _blas_calls() -> tuple[tuple[Callable[[], int], Callable[[int], Any]], ...]:
    """Each BLAS library's get and set of its thread count.

    OpenBLAS's are called directly: through a threadpoolctl limiter, setting one thread
    and putting the count back took about 20 µs of a 0.58 ms query at 1M items, timed in
    place; this way it takes about 5 µs (bench/query_steps.py). And threadpoolctl's rule
    that only the thread that last set a count may set it again would leave a pool's
    long-lived thread holding it. Built on OpenMP,
    OpenBLAS takes its count from OpenMP's calls, per calling thread, as threadpoolctl
    does. Other BLAS libraries go through threadpoolctl."""
    calls = []
    for lib in _controller().lib_controllers:
        if lib.user_api != "blas":
            continue
        found = None
        dynlib = getattr(lib, "dynlib", None)
        if lib.internal_api == "openblas" and dynlib is not None:
            names = [("omp_get_max_threads", "omp_set_num_threads")] \
                if getattr(lib, "threading_layer", None) == "openmp" else _OPENBLAS_CALLS
            found = next(((getattr(dynlib, get), getattr(dynlib, put)) for get, put in names
                          if hasattr(dynlib, get) and hasattr(dynlib, put)), None)
        calls.append(found or (functools.partial(getattr, lib, "num_threads"),
                               lib.set_num_threads))
    return tuple(calls)


class _OneThread:
    __slots__ = ()

    def __enter__(self) -> None:
        with _LOCK:
            if _state["users"] == 0:
                calls = _blas_calls()
                saved = _state["saved"] = [get() for get, _put in calls]
                for (_get, put), threads in zip(calls, saved, strict=True):
                    if threads != 1:
                        put(1)
            _state["users"] += 1

    def __exit__(self, *exc: object) -> None:
        with _LOCK:
            _state["users"] -= 1
            if _state["users"] == 0:
                for (_get, put), threads in zip(_blas_calls(), _state["saved"], strict=True):
                    if threads != 1:
                        put(threads)


_ONE_THREAD = _OneThread()


def one_blas_thread() -> _OneThread:
    """One BLAS thread while any caller is inside (``with one_blas_thread(): ...``)."""
    return _ONE_THREAD
