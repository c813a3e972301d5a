"""Item endpoints: read, "more like this", near-duplicates, upsert and delete.

Ids may contain slashes (folder collections use relative paths as ids), so the id is
a ``path`` parameter and the routes with a suffix come before the bare one. An id that
itself ends in ``/similar`` or ``/duplicates`` is fetched with its last slash
percent-encoded (``GET /v1/items/a%2Fsimilar``).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from imgsearch.engine import Engine
from imgsearch.errors import InvalidInputError, ItemNotFoundError
from imgsearch.types import ImageInput
from imgsearch.web.convert import (
    item_from_fields,
    item_out,
    one_image,
    page_request,
    thumbnail_url,
)
from imgsearch.web.deps import AppState, State
from imgsearch.web.errors import from_pydantic, invalid_json, validation_error
from imgsearch.web.routes_search import search_for
from imgsearch.web.schemas import (
    DeleteOut,
    DuplicateOut,
    DuplicatesResponse,
    ItemIn,
    ItemOut,
    PageParams,
    SearchResponse,
    UpsertOut,
)

router = APIRouter(prefix="/v1/items", tags=["items"])
_Model = TypeVar("_Model", bound=BaseModel)
_TOO_DEEP = "nested too deeply; an item is a flat JSON object"

_PUT_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {"schema": ItemIn.model_json_schema()},
        "multipart/form-data": {"schema": {
            "type": "object",
            "properties": {
                "file": {"type": "string", "format": "binary"},
                "metadata": {"type": "string",
                             "description": "the item's fields as a JSON object"},
            },
        }},
    },
}


def _suffix_is_an_id(request: Request, suffix: str) -> bool:
    """True when ``/suffix`` was sent with its slash percent-encoded (``%2F``).

    ``GET /v1/items/a/similar`` asks for items like ``a``; an item whose id is
    ``a/similar`` is fetched as ``GET /v1/items/a%2Fsimilar`` (quote the id's slashes,
    as the thumbnail URLs do). Routing sees the decoded path, so the raw one decides.
    """
    raw = request.scope.get("raw_path")
    return isinstance(raw, bytes) and not raw.endswith(b"/" + suffix.encode())


async def _whole_id(state: AppState, item_id: str) -> Response:
    item = item_out(await state.call(state.engine.get, item_id))
    return Response(item.model_dump_json(), media_type="application/json")


@router.get("/{item_id:path}/similar", response_model=SearchResponse,
            summary="More like this item (the item itself excluded)")
async def similar(item_id: str, request: Request, state: State,
                  params: Annotated[PageParams, Query()]) -> Response:
    if _suffix_is_an_id(request, "similar"):
        return await _whole_id(state, item_id + "/similar")
    return await search_for(state, page_request(params, similar_to=item_id))


@router.get("/{item_id:path}/duplicates", response_model=DuplicatesResponse,
            summary="The item's near-duplicates, strongest first")
async def duplicates(item_id: str, request: Request, state: State
                     ) -> DuplicatesResponse | Response:
    if _suffix_is_an_id(request, "duplicates"):
        return await _whole_id(state, item_id + "/duplicates")
    found = await state.call(state.engine.duplicates, item_id)
    return DuplicatesResponse(id=item_id, duplicates=[
        DuplicateOut(id=d.id, tier=d.tier, hamming=d.hamming, cosine=round(d.cosine, 6),
                     thumbnail=thumbnail_url(d.id)) for d in found])


@router.get("/{item_id:path}", response_model=ItemOut, summary="One item")
async def get_item(item_id: str, state: State) -> ItemOut:
    return item_out(await state.call(state.engine.get, item_id))


def _validated(model: type[_Model], data: Any) -> _Model:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise from_pydantic(exc) from None


async def _read_put(request: Request, max_bytes: int) -> tuple[ItemIn, ImageInput | None]:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        try:
            data = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError) as exc:
            raise invalid_json(str(exc)) from None
        except RecursionError:
            raise invalid_json(_TOO_DEEP) from None
        fields = _validated(ItemIn, data)
        return fields, one_image(fields.image_url, fields.image_base64, max_bytes)
    if media != "multipart/form-data":
        raise HTTPException(415, "PUT /v1/items/{id} takes application/json (metadata with "
                                 "image_url or image_base64) or multipart/form-data (a file "
                                 "and a metadata JSON field)")
    async with request.form() as form:
        metadata, upload = form.get("metadata"), form.get("file")
        if metadata is not None and not isinstance(metadata, str):
            raise validation_error("metadata", "must be a text field holding a JSON object")
        try:
            data = json.loads(metadata) if metadata else {}
        except ValueError as exc:
            raise validation_error("metadata", f"is not valid JSON ({exc})") from None
        except RecursionError:
            raise validation_error("metadata", f"is not valid JSON ({_TOO_DEEP})") from None
        fields = _validated(ItemIn, data)
        if upload is None:
            return fields, one_image(fields.image_url, fields.image_base64, max_bytes)
        if not isinstance(upload, UploadFile):
            raise validation_error("file", "must be a file upload")
        if fields.image_url is not None or fields.image_base64 is not None:
            raise InvalidInputError("give the image once: a file, image_url or image_base64")
        return fields, await upload.read()


def upsert_item(engine: Engine, item_id: str, fields: ItemIn, image: ImageInput | None
                ) -> str:
    """Add or replace an item; without a new image an existing item keeps its own."""
    url = image if isinstance(image, str) else None
    if image is None:
        existing = engine.get(item_id) if item_id in engine else None
        if existing is None or not existing.image:
            raise InvalidInputError(
                f"item {item_id!r} needs an image: send image_url or image_base64 in the "
                f"JSON body, or a file in a multipart body")
        url = existing.image
    item = item_from_fields(item_id, fields, url)
    try:
        return engine.upsert(item, image)
    except OSError as exc:
        raise InvalidInputError(f"the stored image of item {item_id!r} cannot be read "
                                f"({exc}); send the image again") from None


@router.put("/{item_id:path}", response_model=UpsertOut, openapi_extra={"requestBody": _PUT_BODY},
            summary="Add or replace an item (durable and searchable when answered)",
            responses={201: {"model": UpsertOut, "description": "Added"}})
async def put_item(item_id: str, request: Request, response: Response, state: State
                   ) -> UpsertOut:
    if not item_id:
        raise InvalidInputError("an item id is needed: PUT /v1/items/{id}")
    fields, image = await _read_put(request, state.max_image_bytes)
    status = await state.call(upsert_item, state.engine, item_id, fields, image)
    response.status_code = 201 if status == "added" else 200
    return UpsertOut(id=item_id, status="added" if status == "added" else "updated")


@router.delete("/{item_id:path}", response_model=DeleteOut, summary="Remove an item")
async def delete_item(item_id: str, state: State) -> DeleteOut:
    if not await state.call(state.engine.delete, item_id):
        raise ItemNotFoundError(item_id)
    return DeleteOut(id=item_id, deleted=True)


__all__ = ["router", "upsert_item"]
