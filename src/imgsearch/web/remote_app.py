"""The HTTP API of a stateless node over a remote collection (``milvus://...``).

    app = create_remote_app(RemoteEngine(backend, settings))

Several such nodes, on several machines, serve one collection behind a load balancer;
any of them takes writes (the backend orders them; Strong consistency makes a write
acknowledged by one node visible to a search through any other). A node keeps nothing
it cannot lose: caches, and the API keys file it is given.

The routes are the main app's: search (JSON, image upload, text), items (get, put,
delete, similar, duplicates, batch), click feedback and the report made from it (in a
log every node shares), health, readiness, metrics and stats, and the thumbnails (read
from the collection's rows) and the web page (``remote_pages``). The timeline needs the
local catalog and is not served here
(``RemoteEngine.refuses`` says why, feature by feature).
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from fastapi import FastAPI

from imgsearch.config import Settings
from imgsearch.engine.remote import RemoteEngine
from imgsearch.web import (
    remote_pages,
    routes_batch,
    routes_items,
    routes_ops,
    routes_search,
    security,
)
from imgsearch.web.app import install_guards
from imgsearch.web.deps import AppState, State
from imgsearch.web.errors import install_error_handlers
from imgsearch.web.limits import Gate, Limits
from imgsearch.web.metrics import Metrics
from imgsearch.web.schemas import ClickOut

if TYPE_CHECKING:
    from imgsearch.engine import Engine


async def _stats(state: State) -> dict[str, Any]:
    return cast(dict[str, Any], await state.call(state.engine.info))


def create_remote_app(engine: RemoteEngine, *, settings: Settings | None = None,
                      limits: Limits | None = None, listen_host: str | None = None,
                      owns_engine: bool = False) -> FastAPI:
    """The API over ``engine`` (see the module docstring); closes it on shutdown when
    ``owns_engine``."""
    settings = settings or engine.settings
    limits = limits or Limits()
    # keys come from settings.api_keys_file; without one, a throwaway folder holds none
    scratch = tempfile.TemporaryDirectory(prefix="imgsearch-node-")
    policy = security.AccessPolicy.build(settings, Path(scratch.name), listen_host)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        engine.preparer.start_workers()
        engine.warm(wait=False)  # the first image search finds the calibration measured
        try:
            yield
        finally:
            if owns_engine:
                engine.close()
            scratch.cleanup()

    app = FastAPI(title="imgsearch", version="1", lifespan=lifespan,
                  description=f"Stateless API node over {engine.uri}.",
                  docs_url=None, redoc_url=None)
    metrics = Metrics(engine.backend.count, lambda: {},
                      lambda: {"embeddings": engine.embedding_cache.stats()})
    gate = Gate(limits.max_in_flight)
    # The routes ask of an engine only what RemoteEngine answers (search, get, upsert,
    # delete, membership, spaces, readonly, info); typed as the local Engine they serve.
    state = AppState(engine=cast("Engine", engine), settings=settings, limits=limits,
                     gate=gate, metrics=metrics, owns_engine=owns_engine)
    app.state.imgsearch = state
    install_error_handlers(app)
    app.include_router(routes_search.router)
    app.include_router(routes_items.router)
    app.include_router(routes_batch.router)
    for path, endpoint in (("/health", routes_ops.health), ("/ready", routes_ops.ready),
                           ("/metrics", routes_ops.metrics), ("/v1/stats", _stats),
                           ("/v1/report", routes_ops.report)):
        app.add_api_route(path, endpoint, methods=["GET"], tags=["operations"])
    app.add_api_route("/v1/feedback/click", routes_ops.click, methods=["POST"],
                      response_model=ClickOut, tags=["search"],
                      summary="A result of a search was clicked")
    remote_pages.install(app)
    install_guards(app, state, policy)
    return app


def serve_remote(uri: str, host: str, port: int, settings: Settings,
                 limits: Limits | None = None) -> None:
    """Open the remote collection ``uri`` (made with the settings' encoders when missing)
    and serve it in this process until interrupted."""
    import uvicorn

    from imgsearch.engine.backends.registry import open_backend
    from imgsearch.engine.remote import encoders_for
    from imgsearch.web.access_log import configure_json_logging
    from imgsearch.web.serve import _listen, uvicorn_options

    listener = _listen(host, port)
    try:
        backend = open_backend(uri, settings, encoders=encoders_for(settings))
        app = create_remote_app(RemoteEngine(backend, settings), settings=settings,
                                limits=limits, listen_host=host, owns_engine=True)
        configure_json_logging()
        server = uvicorn.Server(uvicorn.Config(app, **uvicorn_options(limits)))
        server.run(sockets=[listener])
    finally:
        listener.close()


__all__ = ["create_remote_app", "serve_remote"]
