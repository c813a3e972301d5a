"""One BLAS thread for the small matrix products of a query.

numpy's OpenBLAS runs a product on every core it has threads for, and its threads spin
for a while after each product, waiting for the next. A query's products are small (one
image's descriptor, a few hundred candidates' scores): on a busy machine the spinning
threads take the cores the query needs. On the shared 2-core machine (load 11) one 640
x 400 image took 19-24 ms to describe (median of 40) with OpenBLAS's two threads and
1.9 ms with one; right after another product had woken the threads, 31 ms
(bench/copydetect.py; BENCHMARKS.md, copy detection).

The thread count is the process's, not the calling thread's: the first caller in sets
one thread, the last one out puts back what was there, so that overlapping callers
(queries on several threads) cannot leave it at one for good.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator
from typing import Any

from threadpoolctl import ThreadpoolController

__all__ = ["blas_threads", "one_blas_thread"]

_LOCK = threading.Lock()
_state: dict[str, Any] = {"users": 0, "limiter": None}


@functools.cache
def _controller() -> ThreadpoolController:
    import numpy  # noqa: F401  (its BLAS must be loaded for the controller to find it)

    return ThreadpoolController()


def blas_threads() -> list[int]:
    """The thread count of each BLAS library loaded in this process."""
    return [int(lib["num_threads"]) for lib in _controller().info()
            if lib["user_api"] == "blas"]


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """One BLAS thread while any caller is inside."""
    with _LOCK:
        if _state["users"] == 0:
            _state["limiter"] = _controller().limit(limits=1, user_api="blas")
        _state["users"] += 1
    try:
        yield
    finally:
        with _LOCK:
            _state["users"] -= 1
            if _state["users"] == 0:
                _state["limiter"].restore_original_limits()
