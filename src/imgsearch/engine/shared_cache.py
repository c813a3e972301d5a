"""An optional shared cache in Redis, for several API processes over one collection.

Set ``IMGSEARCH_REDIS_URL`` (e.g. ``redis://localhost:6379/0``). Query embeddings are
stored as raw float32 bytes; search results as JSON (never pickle: a shared cache is
not trusted with code). Keys live under a per-collection namespace and include a
version number that every write increments, so one process's write empties the result
cache of all of them. Redis being down never fails a search: the cache steps aside.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Hashable
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray

from imgsearch.errors import InvalidInputError
from imgsearch.types import SearchHit, SearchResult

log = logging.getLogger(__name__)


class RedisCache:
    def __init__(self, url: str, namespace: str, ttl_s: float) -> None:
        try:
            import redis
        except ImportError:
            raise InvalidInputError("IMGSEARCH_REDIS_URL is set but the redis package is not "
                                    "installed: pip install redis") from None
        self._redis = redis.Redis.from_url(url, socket_timeout=0.5,
                                           socket_connect_timeout=0.5)
        self._errors = (redis.RedisError, OSError)
        self.namespace = "imgsearch:" + hashlib.sha256(namespace.encode()).hexdigest()[:16]
        self.ttl_s = max(1, int(ttl_s))
        self.hits = 0
        self.misses = 0

    def _key(self, kind: str, key: Hashable) -> str:
        digest = hashlib.sha256(repr(key).encode()).hexdigest()
        return f"{self.namespace}:{kind}:{digest}"

    def version(self) -> int:
        try:
            return int(self._redis.get(f"{self.namespace}:version") or 0)
        except self._errors as exc:
            log.warning("redis cache unavailable: %s", exc)
            return -1

    def bump(self) -> None:
        """A write happened: every process's cached results are stale."""
        try:
            self._redis.incr(f"{self.namespace}:version")
        except self._errors as exc:
            log.warning("redis cache unavailable: %s", exc)

    def _fetch(self, kind: str, key: Hashable) -> bytes | None:
        """The stored bytes, counted as a hit or a miss; None also when Redis is down
        (not counted: Redis gave no answer)."""
        try:
            raw = self._redis.get(self._key(kind, key))
        except self._errors:
            return None
        if raw is None:
            self.misses += 1
            return None
        self.hits += 1
        return cast(bytes, raw)

    def get_vector(self, key: Hashable) -> NDArray[np.float32] | None:
        raw = self._fetch("vec", key)
        return None if raw is None else np.frombuffer(raw, dtype="<f4").copy()

    def put_vector(self, key: Hashable, vector: NDArray[np.float32]) -> None:
        with contextlib.suppress(*self._errors):
            self._redis.set(self._key("vec", key),
                            np.ascontiguousarray(vector, dtype="<f4").tobytes())

    def get_result(self, key: Hashable) -> SearchResult | None:
        version = self.version()
        if version < 0:
            return None
        raw = self._fetch("res", (version, key))
        if raw is None:
            return None
        data = json.loads(raw)
        hits = [SearchHit(**hit) for hit in data.pop("hits")]
        return SearchResult(hits=hits, **data)

    def put_result(self, key: Hashable, result: SearchResult) -> None:
        version = self.version()
        if version < 0:
            return
        data: dict[str, Any] = {
            "hits": [h.to_dict() for h in result.hits], "query_kind": result.query_kind,
            "query_time_ms": result.query_time_ms, "total_candidates": result.total_candidates,
            "plan": result.plan, "interpretation": result.interpretation,
            "empty_reason": result.empty_reason, "message": result.message}
        with contextlib.suppress(*self._errors):
            self._redis.set(self._key("res", (version, key)), json.dumps(data, default=str),
                            ex=self.ttl_s)
