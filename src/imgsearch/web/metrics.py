"""Prometheus metrics of one app, in a registry of its own (never the global default,
so that several apps in one process do not clash)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imgsearch.types import SearchResult

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0, 30.0)


class _CollectionCollector(Collector):
    """Items and vectors per space, and cache hits and misses, read when scraped."""

    def __init__(self, items: Callable[[], int], vectors: Callable[[], dict[str, int]],
                 caches: Callable[[], dict[str, dict[str, Any]]] | None = None) -> None:
        self._items = items
        self._vectors = vectors
        self._caches = caches

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        yield GaugeMetricFamily("imgsearch_items", "Items in the collection.",
                                value=self._items())
        family = GaugeMetricFamily("imgsearch_index_vectors", "Vectors in each index.",
                                   labels=["space"])
        for space, count in sorted(self._vectors().items()):
            family.add_metric([space], count)
        yield family
        if self._caches is not None:
            lookups = CounterMetricFamily("imgsearch_cache_lookups",
                                          "Cache lookups by cache and outcome.",
                                          labels=["cache", "outcome"])
            for cache, stats in sorted(self._caches().items()):
                lookups.add_metric([cache, "hit"], stats.get("hits", 0))
                lookups.add_metric([cache, "miss"], stats.get("misses", 0))
            yield lookups


class Metrics:
    def __init__(self, items: Callable[[], int], vectors: Callable[[], dict[str, int]],
                 caches: Callable[[], dict[str, dict[str, Any]]] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("imgsearch_http_requests", "HTTP requests by endpoint and status.",
                                ["endpoint", "method", "status"], registry=self.registry)
        self.latency = Histogram("imgsearch_http_request_duration_seconds",
                                 "HTTP request latency by endpoint.", ["endpoint", "method"],
                                 buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.zero_results = Counter("imgsearch_search_zero_results",
                                    "Searches that returned nothing, by query kind and reason.",
                                    ["kind", "reason"], registry=self.registry)
        self.searches = Counter("imgsearch_searches", "Searches by query kind.", ["kind"],
                                registry=self.registry)
        self.stages = Histogram("imgsearch_search_stage_seconds",
                                "Time per search stage (decode, encode, filter, ann, rerank, "
                                "fetch).", ["stage"], buckets=_LATENCY_BUCKETS,
                                registry=self.registry)
        self.registry.register(_CollectionCollector(items, vectors, caches))

    def observe_search(self, result: SearchResult) -> None:
        self.searches.labels(result.query_kind).inc()
        for name, ms in result.stage_ms.items():
            self.stages.labels(name).observe(ms / 1000.0)
        if not result.hits:
            self.zero_results.labels(result.query_kind, result.empty_reason or "none").inc()


def _endpoint(scope: Scope, routes: Sequence[BaseRoute]) -> str:
    """The route template (bounded label values), never the raw path."""
    route: Any = scope.get("route")
    if route is not None and isinstance(getattr(route, "path", None), str):
        return str(route.path)
    for candidate in routes:
        match, _ = candidate.matches(scope)
        if match == Match.FULL:
            return str(getattr(candidate, "path", "unmatched"))
    return "unmatched"


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def watched_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watched_send)
        finally:
            endpoint = _endpoint(scope, self.routes)
            method = str(scope.get("method", ""))
            self.metrics.latency.labels(endpoint, method).observe(time.perf_counter() - started)
            self.metrics.requests.labels(endpoint, method, str(status)).inc()


__all__ = ["Metrics", "MetricsMiddleware"]
