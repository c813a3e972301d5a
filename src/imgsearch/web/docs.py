"""API docs that work offline: Swagger UI and ReDoc served from installed packages.

FastAPI's default ``/docs`` and ``/redoc`` pages load their JavaScript and CSS from a
CDN, so on a machine without internet they are blank. The same assets ship inside the
``fastapi-offline`` package; they are served from there under ``/docs-assets``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_URL = "/docs-assets"
_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js")


def assets_dir() -> Path:
    """The folder holding the Swagger UI and ReDoc files (raises if one is missing)."""
    folder = Path(str(resources.files("fastapi_offline") / "static"))
    missing = [name for name in _FILES if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"API docs assets missing from {folder}: {', '.join(missing)}")
    return folder


def install(app: FastAPI) -> None:
    """Serve ``/docs`` and ``/redoc`` with local assets (create the app with docs off)."""
    app.mount(ASSETS_URL, StaticFiles(directory=assets_dir()), name="docs-assets")
    title = app.title

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json", title=f"{title} — API docs",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url="/static/favicon.svg")

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url="/openapi.json", title=f"{title} — API reference",
            redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url="/static/favicon.svg", with_google_fonts=False)


__all__ = ["ASSETS_URL", "assets_dir", "install"]
