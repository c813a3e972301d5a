"""Thumbnails, stats, click feedback, and the operations endpoints (health, readiness,
Prometheus metrics)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from imgsearch.engine import Engine
from imgsearch.errors import NotFoundError
from imgsearch.web.deps import AppState, State
from imgsearch.web.errors import error_response
from imgsearch.web.schemas import ClickIn, ClickOut, HealthOut

router = APIRouter()
THUMBNAIL_MAX_AGE_S = 3600


def _thumbnail(engine: Engine, item_id: str) -> tuple[bytes, str]:
    item = engine.get(item_id)
    missing = NotFoundError(f"item {item_id!r} has no thumbnail")
    if not item.thumbnail:
        raise missing
    root = engine.directory.resolve()
    path = (root / item.thumbnail).resolve()
    if not path.is_relative_to(root):
        raise missing
    try:
        data = path.read_bytes()
    except OSError:
        raise missing from None
    return data, '"' + hashlib.sha256(item.thumbnail.encode()).hexdigest()[:20] + '"'


@router.get("/v1/thumbnails/{item_id:path}", tags=["items"],
            responses={200: {"content": {"image/jpeg": {}}}, 304: {}},
            summary="The item's JPEG thumbnail")
async def thumbnail(item_id: str, request: Request, state: State) -> Response:
    data, etag = await state.call(_thumbnail, state.engine, item_id)
    headers = {"ETag": etag, "Cache-Control": f"public, max-age={THUMBNAIL_MAX_AGE_S}"}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(data, media_type="image/jpeg", headers=headers)


def _stats(engine: Engine) -> dict[str, Any]:
    info = engine.info()
    # the server's own directory layout is nobody's business over the network
    info["collection"] = Path(str(info.get("collection", engine.directory))).name
    return info


@router.get("/v1/stats", tags=["operations"], summary="What the collection holds")
async def stats(state: State) -> dict[str, Any]:
    return await state.call(_stats, state.engine)


@router.get("/v1/report", tags=["operations"],
            summary="Click-through, MRR of clicks, zero-result rate, latency percentiles")
async def report(state: State, since: Annotated[float | None, Query(
        description="Unix time; only searches after it")] = None) -> dict[str, Any]:
    return await state.call(state.engine.report, since)


@router.post("/v1/feedback/click", response_model=ClickOut, tags=["search"],
             summary="A result of a search was clicked")
async def click(body: ClickIn, state: State) -> ClickOut:
    await state.call(state.engine.record_click, body.search_id, body.item_id, body.position)
    return ClickOut(recorded=True)


@router.get("/health", response_model=HealthOut, tags=["operations"], summary="Alive")
async def health(state: State) -> HealthOut:
    return HealthOut(status="ok", role=_role(state), pid=os.getpid())


def _role(state: AppState) -> str:
    return "reader" if state.engine.readonly else "writer"


def _ready(engine: Engine) -> bool:
    _ = "" in engine  # the catalog answers
    return "image" in engine.spaces


@router.get("/ready", response_model=HealthOut, tags=["operations"],
            responses={503: {"description": "Not ready"}},
            summary="Collection open and indexes loaded")
async def ready(state: State) -> Any:
    try:
        ok = await state.call(_ready, state.engine)
    except Exception as exc:  # any failure of the probe means "not ready", not a crash
        return error_response(503, "not_ready", f"the collection cannot be read ({exc})")
    if not ok:
        return error_response(503, "not_ready", "the collection's indexes are not loaded")
    return HealthOut(status="ready", role=_role(state), pid=os.getpid())


@router.get("/metrics", tags=["operations"], summary="Prometheus metrics",
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
async def metrics(state: State) -> Response:
    body = await state.call(generate_latest, state.metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


__all__ = ["router"]
