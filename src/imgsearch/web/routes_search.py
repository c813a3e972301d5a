"""Search endpoints: the general JSON query, image upload and text in a query string."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Response, UploadFile

from imgsearch.engine.requests import SearchRequest, build_query
from imgsearch.errors import InvalidQueryError
from imgsearch.types import ImageInput
from imgsearch.types import Query as SearchQuery
from imgsearch.web.convert import (
    base64_input,
    filters_from_body,
    image_input,
    page_request,
    search_response,
    url_input,
)
from imgsearch.web.deps import AppState, State
from imgsearch.web.schemas import ImageSearchForm, SearchResponse, TextSearchParams
from imgsearch.web.schemas import SearchRequest as SearchBody

router = APIRouter(prefix="/v1/search", tags=["search"])


async def run_search(state: AppState, query: SearchQuery) -> Response:
    result = await state.call(state.engine.search, query)
    state.metrics.observe_search(result)
    # Validated once here and serialised straight to JSON: handing the model back to
    # FastAPI would validate and encode it a second time.
    body = search_response(result, query.limit, query.offset).model_dump_json()
    return Response(body, media_type="application/json")


async def search_for(state: AppState, request: SearchRequest) -> Response:
    """Build the query ``request`` describes (one builder for every entry point) and run it."""
    return await run_search(state, build_query(request, state.settings.default_limit))


def _images(state: AppState, body: SearchBody) -> tuple[list[ImageInput], list[ImageInput]]:
    cap = state.limits.max_query_images
    count = len(body.images) + len(body.negative_images) + (body.image_url is not None) + \
        (body.image_base64 is not None)
    if count > cap:
        raise InvalidQueryError(f"a query may carry at most {cap} images, got {count}")
    size = state.max_image_bytes
    positives: list[ImageInput] = []
    if body.image_url is not None:
        positives.append(url_input(body.image_url, "image_url"))
    if body.image_base64 is not None:
        positives.append(base64_input(body.image_base64, "image_base64", size))
    positives += [image_input(v, f"images[{i}]", size) for i, v in enumerate(body.images)]
    negatives: list[ImageInput] = [image_input(v, f"negative_images[{i}]", size)
                                   for i, v in enumerate(body.negative_images)]
    return positives, negatives


@router.post("", response_model=SearchResponse, summary="Search by text, images, both, or item")
async def search(body: SearchBody, state: State) -> Response:
    positives, negatives = _images(state, body)
    return await search_for(state, SearchRequest(
        text=body.text, images=positives, negative_images=negatives,
        image_weight=body.image_weight, similar_to=body.similar_to,
        vector=body.vector, vector_space=body.vector_space,
        filters=filters_from_body(body.filters), limit=body.limit,
        offset=body.offset, parse=body.parse, min_confidence=body.min_confidence,
        collapse_duplicates=body.collapse_duplicates, boosts=dict(body.boosts),
        prefer_colors=tuple(body.prefer_colors), max_per_category=body.max_per_category,
        mmr_lambda=body.mmr_lambda, multi_image=body.multi_image,
        ef_search=body.ef_search, nprobe=body.nprobe))


@router.post("/image", response_model=SearchResponse, summary="Search by an uploaded image")
async def search_image(
        state: State, file: Annotated[list[UploadFile], File()],
        form: Annotated[ImageSearchForm, Form()],
        limit: Annotated[int | None, Query(description="as the form field limit")] = None,
        offset: Annotated[int | None, Query(description="as the form field offset")] = None,
) -> Response:
    """Page fields may come in the form or the query string (``?limit=3``); the form wins.

    Several ``file`` parts are several example images (``multi_image`` says how to join
    them, as in the JSON body).
    """
    cap = state.limits.max_query_images
    if len(file) > cap:
        raise InvalidQueryError(f"a query may carry at most {cap} images, got {len(file)}")
    images: list[ImageInput] = [await part.read() for part in file]
    return await search_for(state, page_request(
        form, text=form.text or None, images=images, image_weight=form.image_weight,
        multi_image=form.multi_image,
        limit=form.limit if form.limit is not None else limit,
        offset=form.offset or (offset or 0)))


@router.get("/text", response_model=SearchResponse, summary="Search by text")
async def search_text(state: State, params: Annotated[TextSearchParams, Query()]
                      ) -> Response:
    return await search_for(state, page_request(params, text=params.q, parse=params.parse))


__all__ = ["router", "run_search", "search_for"]
