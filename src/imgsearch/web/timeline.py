"""The timeline page (``/timeline``): photos newest first, grouped by the month taken.

Which date places a photo is ``engine.timeline.DATE_SQL``. The page also shows the
places facet (``Engine.facets()["places"]``, countries with their cities) when the
collection knows where its photos were taken.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse

from imgsearch.engine.timeline import timeline
from imgsearch.errors import ImgSearchError, InvalidInputError
from imgsearch.web.deps import State
from imgsearch.web.ui import facets_for, templates

PAGE_SIZE = 120

router = APIRouter(include_in_schema=False)


def _offset(text: str | None) -> int:
    if not text:
        return 0
    try:
        return max(int(text.strip()[:12]), 0)
    except ValueError:
        raise InvalidInputError(f"offset must be a whole number, got {text[:40]!r}") from None


@router.get("/timeline", response_class=HTMLResponse)
async def timeline_page(request: Request, state: State) -> HTMLResponse:
    try:
        offset = _offset(request.query_params.get("offset"))
        page = await state.call(timeline, state.engine, offset, PAGE_SIZE)
    except ImgSearchError as exc:
        return templates.TemplateResponse(
            request, "timeline.html", {"page": None, "error": exc.message,
                                       "facets": {}, "page_title": "Timeline"},
            status_code=exc.status)
    context = {"page": page, "error": None, "facets": await facets_for(request, state),
               "page_title": "Timeline", "page_size": PAGE_SIZE}
    return templates.TemplateResponse(request, "timeline.html", context)


def install(app: FastAPI) -> None:
    app.include_router(router)


__all__ = ["PAGE_SIZE", "install", "router"]
