"""The app factory: the web edge of imgsearch.

    app = create_app(collection=Path("./shop"))          # opens it for writing
    app = create_app(engine)                              # tests: an engine of their own
    app = create_app(collection=path, listen_host="0.0.0.0")  # keys needed for writes

Routes get the engine by dependency injection (``web.deps``). Without arguments the
factory reads ``IMGSEARCH_*`` variables and ``IMGSEARCH_COLLECTION`` -- the one place
in the web package that reads the environment -- so that
``uvicorn --factory imgsearch.web.app:create_app`` works. That path cannot know where
uvicorn listens, so it is treated as listening beyond loopback (``web.security``).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from starlette.types import ASGIApp

from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.errors import CollectionNotFoundError, ReadOnlyCollectionError
from imgsearch.web import (
    docs,
    routes_batch,
    routes_items,
    routes_ops,
    routes_search,
    security,
    timeline,
    ui,
)
from imgsearch.web.access_log import AccessLogMiddleware
from imgsearch.web.deps import AppState
from imgsearch.web.errors import install_error_handlers
from imgsearch.web.forward import WriteForwardMiddleware
from imgsearch.web.limits import (
    BodyLimitMiddleware,
    ConcurrencyMiddleware,
    DeadlineMiddleware,
    Gate,
    Limits,
)
from imgsearch.web.metrics import Metrics, MetricsMiddleware
from imgsearch.web.watching import folder_watchers

COLLECTION_ENV = "IMGSEARCH_COLLECTION"


def _open_engine(collection: Path | None, settings: Settings, readonly: bool) -> Engine:
    if collection is None:
        named = os.environ.get(COLLECTION_ENV)
        if not named:
            raise CollectionNotFoundError(
                f"no collection to serve: pass one to create_app or set {COLLECTION_ENV}")
        collection = Path(named)
    # The app writes (PUT, DELETE, batch), so it holds the collection's writer lock --
    # unless it is one of several processes and hands its writes to the one that does.
    try:
        return Engine.open(collection, settings, readonly=readonly)
    except ReadOnlyCollectionError as exc:
        if readonly:
            raise
        # read-only storage: serve searches; writes answer 503 collection_read_only
        logging.getLogger("imgsearch.web").warning("%s; serving it read-only", exc.message)
        return Engine.open(collection, settings, readonly=True)


def _vectors(engine: Engine) -> dict[str, int]:
    return {name: len(space) for name, space in engine.spaces.items()}


def create_app(engine: Engine | None = None, *, collection: Path | None = None,
               settings: Settings | None = None, limits: Limits | None = None,
               forward_writes: bool = False, listen_host: str | None = None,
               policy: security.AccessPolicy | None = None,
               watch: Sequence[Path] = ()) -> FastAPI:
    """The HTTP API v1 over one collection.

    An engine handed in stays the caller's to close; one opened here (from
    ``collection``) is closed when the app shuts down. With ``forward_writes`` the
    collection is opened read-only and writes go to the process that holds it
    (``web.forward``).

    ``listen_host`` is the address the server binds: beyond loopback, writes and admin
    endpoints need an API key (``web.security``). None means an app used in-process
    (tests, embedding), treated as loopback; ``policy`` replaces the one built from the
    settings and ``listen_host``.

    ``watch`` names folders kept in sync with the collection while the app runs
    (``engine.watch``), by the process that writes.
    """
    owns_engine = engine is None
    if engine is None:
        if collection is None and listen_host is None:
            listen_host = "0.0.0.0"  # uvicorn --factory: where it listens is unknown
        settings = settings or Settings.from_env(os.environ)
        engine = _open_engine(collection, settings, readonly=forward_writes)
    settings = settings or engine.settings
    try:
        policy = policy or security.AccessPolicy.build(settings, engine.directory,
                                                       listen_host)
    except BaseException:
        if owns_engine:
            engine.close()
        raise
    limits = limits or Limits()
    opened = engine
    try:
        watchers = folder_watchers(opened, watch)
    except BaseException:
        if owns_engine:
            engine.close()
        raise

    forwarder: list[WriteForwardMiddleware] = []

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        opened.warm(wait=False)  # first searches find the result-page fields in memory
        opened.preparer.start_workers()  # the first upload does not wait for them
        for watcher in watchers:
            watcher.start(wait=False)
        try:
            yield
        finally:
            for watcher in watchers:
                await asyncio.to_thread(watcher.stop, 60.0)
            for middleware in forwarder:
                await middleware.aclose()
            if owns_engine:
                opened.close()

    app = FastAPI(title="imgsearch", version="1", lifespan=lifespan,
                  description="Find images by image, text, both, several examples or item.",
                  docs_url=None, redoc_url=None)  # served offline by web.docs
    metrics = Metrics(opened.catalog.count, lambda: _vectors(opened),
                      lambda: {"embeddings": opened.embedding_cache.stats(),
                               "results": opened.result_cache.stats()})
    gate = Gate(limits.max_in_flight)
    state = AppState(engine=opened, settings=settings, limits=limits, gate=gate,
                     metrics=metrics, owns_engine=owns_engine)
    app.state.imgsearch = state
    install_error_handlers(app)
    for module in (routes_search, routes_batch, routes_items, routes_ops):
        app.include_router(module.router)
    ui.install(app)  # the web page at / and its static files
    timeline.install(app)  # /timeline: photos by month taken
    docs.install(app)  # /docs and /redoc without a CDN
    # add_middleware wraps what is there: the last added is the outermost.
    if forward_writes:
        app.add_middleware(_Forwarding, directory=opened.directory, made=forwarder)
    install_guards(app, state, policy)
    return app


def install_guards(app: FastAPI, state: AppState, policy: security.AccessPolicy) -> None:
    """The middleware every node runs, outermost last: access log, metrics, security,
    the concurrency gate, the deadline and the body limit."""
    limits = state.limits
    app.add_middleware(BodyLimitMiddleware, max_bytes=state.max_body_bytes)
    app.add_middleware(DeadlineMiddleware, deadline_s=limits.deadline_s)
    app.add_middleware(ConcurrencyMiddleware, gate=state.gate,
                       retry_after_s=limits.retry_after_s, body_timeout_s=limits.body_timeout_s)
    # keys, CORS, Host, headers: before the gate and any body; a forwarded write is
    # checked here, on the process that received it, and again by the writer
    security.install(app, policy)
    app.add_middleware(MetricsMiddleware, metrics=state.metrics, routes=app.router.routes)
    app.add_middleware(AccessLogMiddleware)


class _Forwarding(WriteForwardMiddleware):
    """The forwarder, remembered so that the app can close its client on shutdown."""

    def __init__(self, app: ASGIApp, directory: Path, made: list[WriteForwardMiddleware]
                 ) -> None:
        super().__init__(app, directory)
        made.append(self)


__all__ = ["COLLECTION_ENV", "create_app"]
