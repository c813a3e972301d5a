"""The thumbnail route and the web page of a node over a remote collection.

Thumbnails are read from the collection's rows (milvus schema 3), so the thumbnail URL
of a hit works from any node. The web page is the local app's (``ui``): what a node does
not do is hidden (the timeline's link) or explained on the page where it is asked for
(browsing by filters alone, on the home page or with filters and no query, says why it
is refused), never a 500.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from fastapi import FastAPI, Request, Response

from imgsearch.web import ui
from imgsearch.web.deps import State
from imgsearch.web.routes_ops import THUMBNAIL_MAX_AGE_S

if TYPE_CHECKING:
    from imgsearch.engine.remote import RemoteEngine


async def thumbnail(item_id: str, request: Request, state: State) -> Response:
    engine = cast("RemoteEngine", state.engine)
    data, etag = await state.call(engine.thumbnail, item_id)
    headers = {"ETag": etag, "Cache-Control": f"public, max-age={THUMBNAIL_MAX_AGE_S}"}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(data, media_type="image/jpeg", headers=headers)


def install(app: FastAPI) -> None:
    """Add the thumbnail route and the web page to a node's ``app``."""
    app.add_api_route("/v1/thumbnails/{item_id:path}", thumbnail, methods=["GET"],
                      tags=["items"], summary="The item's JPEG thumbnail",
                      responses={200: {"content": {"image/jpeg": {}}}, 304: {}})
    ui.install(app)
    app.state.ui_hidden = {"timeline"}  # the page does not link to what a node lacks


__all__ = ["install", "thumbnail"]
