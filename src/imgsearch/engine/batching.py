"""Micro-batching of query encodings, and small caches for embeddings and results.

A model encodes 16 texts in one call much faster than in 16 calls. When many searches
arrive at once (an HTTP server), each caller hands its input to a ``MicroBatcher`` and
waits; one worker thread takes whatever has arrived (up to ``max_batch``), encodes it in
one call, and hands each caller its row. While callers keep company (the last batch held
several, or left others waiting), it waits up to ``max_wait_s`` after the first for
more; a lone caller (one search at a time: the command line, a single
user) is encoded at once and does not pay that window.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

import numpy as np
from numpy.typing import NDArray

T = TypeVar("T")
V = TypeVar("V")


class MicroBatcher(Generic[T]):
    def __init__(self, encode: Callable[[Sequence[T]], NDArray[np.float32]], *,
                 max_batch: int = 32, max_wait_s: float = 0.003, name: str = "batcher") -> None:
        self._encode = encode
        self.max_batch = max(1, max_batch)
        self.max_wait_s = max(0.0, max_wait_s)
        self._pending: list[tuple[T, Future[NDArray[np.float32]]]] = []
        self._cond = threading.Condition()
        self._closed = False
        self._company = False  # the last batch had company: wait for more next time
        self.batches = 0  # how many encode calls were made (for tests and metrics)
        self.items = 0
        self._thread = threading.Thread(target=self._run, name=f"imgsearch-{name}",
                                        daemon=True)
        self._thread.start()

    def encode(self, value: T) -> NDArray[np.float32]:
        """The encoding of one input, computed in a batch with whatever else is waiting."""
        future: Future[NDArray[np.float32]] = Future()
        with self._cond:
            if self._closed:
                raise RuntimeError("the encoder batcher is closed")
            self._pending.append((value, future))
            self._cond.notify()
        return future.result()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=5)

    def _take(self) -> list[tuple[T, Future[NDArray[np.float32]]]]:
        with self._cond:
            while not self._pending and not self._closed:
                self._cond.wait()
            if not self._pending:
                return []
            deadline = time.monotonic() + (self.max_wait_s if self._company else 0.0)
            while len(self._pending) < self.max_batch and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            batch = self._pending[: self.max_batch]
            del self._pending[: self.max_batch]
            self._company = len(batch) > 1 or bool(self._pending)
            return batch

    def _run(self) -> None:
        while True:
            batch = self._take()
            if not batch:
                return
            try:
                vectors = self._encode([value for value, _ in batch])
            except BaseException as exc:  # every waiter learns what went wrong
                for _, future in batch:
                    future.set_exception(exc)
                continue
            self.batches += 1
            self.items += len(batch)
            for row, (_, future) in enumerate(batch):
                future.set_result(vectors[row])


class LRUCache(Generic[V]):
    """A thread-safe least-recently-used cache with an optional time to live."""

    def __init__(self, capacity: int, ttl_s: float | None = None) -> None:
        self.capacity = capacity
        self.ttl_s = ttl_s
        self._data: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            entry = self._data.get(key)
            if entry is None or (self.ttl_s is not None
                                 and time.monotonic() - entry[0] > self.ttl_s):
                if entry is not None:
                    del self._data[key]
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return entry[1]

    def put(self, key: Hashable, value: V) -> None:
        if self.capacity <= 0:
            return
        with self._lock:
            self._data[key] = (time.monotonic(), value)
            self._data.move_to_end(key)
            while len(self._data) > self.capacity:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def stats(self) -> dict[str, Any]:
        return {"size": len(self._data), "hits": self.hits, "misses": self.misses}
