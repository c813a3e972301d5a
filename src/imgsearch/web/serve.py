"""Run the HTTP API with uvicorn (the CLI's ``serve`` command calls :func:`serve`)."""

from __future__ import annotations

from pathlib import Path

import uvicorn

from imgsearch.config import Settings
from imgsearch.web.access_log import configure_json_logging
from imgsearch.web.app import create_app
from imgsearch.web.limits import Limits


def serve(collection: Path, host: str, port: int, settings: Settings,
          limits: Limits | None = None) -> None:
    """Open ``collection`` for writing and serve it until interrupted.

    One process (the collection's writer lock allows no second one); concurrency
    comes from the event loop and the worker threads that run engine work.
    """
    configure_json_logging()
    app = create_app(collection=collection, settings=settings, limits=limits)
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False,
                proxy_headers=False, server_header=False, log_config=None)


__all__ = ["serve"]
