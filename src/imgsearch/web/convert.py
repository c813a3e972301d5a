"""Between the wire format (``schemas``) and the engine's types.

Images arrive as strings: an ``http(s)://`` URL goes to the engine as it is (its
fetcher guards against SSRF); anything else must be base64 (optionally a ``data:``
URL) and goes to the engine as bytes. A plain string is never passed on, because
the engine would read it as a local path.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import replace
from typing import Any
from urllib.parse import quote

from imgsearch.engine import items
from imgsearch.engine.requests import SearchRequest, parse_boosts
from imgsearch.errors import (
    BlockedURLError,
    ImageTooLargeError,
    InvalidFilterError,
    InvalidInputError,
)
from imgsearch.types import PHOTO_FIELDS, Filters, Item, SearchResult
from imgsearch.web.schemas import (
    FilterParams,
    FiltersIn,
    HitOut,
    ItemFields,
    ItemOut,
    PageParams,
    SearchResponse,
)

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_DATA_URL = re.compile(r"^data:[\w.+/-]*(;[\w.+-]+=[\w.+-]+)*;base64,", re.IGNORECASE)
_WEB_SCHEMES = ("http", "https")


def image_input(value: str, field: str, max_bytes: int) -> str | bytes:
    """An http(s) URL (scheme lower-cased) or the bytes that ``value`` encodes."""
    text = value.strip()
    scheme = _SCHEME.match(text)
    if scheme and scheme.group(1).lower() in _WEB_SCHEMES and text[scheme.end():
                                                                   ].startswith("//"):
        return scheme.group(1).lower() + text[scheme.end() - 1:]
    data_url = _DATA_URL.match(text)
    if data_url:
        text = text[data_url.end():]
    elif scheme and text[scheme.end():].startswith("//"):
        raise BlockedURLError(f"{field}: only http(s) URLs can be fetched, got a "
                              f"{scheme.group(1)!r} URL", url=text[:200])
    return _base64_bytes(text, field, max_bytes)


def _base64_bytes(text: str, field: str, max_bytes: int) -> bytes:
    compact = "".join(text.split())
    if len(compact) * 3 // 4 > max_bytes + 3:
        raise ImageTooLargeError(f"{field}: the image is over the limit of {max_bytes} bytes; "
                                 f"send a smaller file")
    if "-" in compact or "_" in compact:
        compact = compact.replace("-", "+").replace("_", "/")
    compact += "=" * (-len(compact) % 4)
    try:
        data = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInputError(
            f"{field} is neither an http(s) URL nor valid base64; send the image file's "
            f"bytes base64-encoded (optionally as data:image/...;base64,...) or an "
            f"http(s) URL") from None
    if not data:
        raise InvalidInputError(f"{field} is empty; send the image file's bytes "
                                f"base64-encoded or an http(s) URL")
    return data


def url_input(value: str, field: str) -> str:
    """An http(s) URL given where only a URL may be."""
    text = value.strip()
    scheme = _SCHEME.match(text)
    # "scheme://..." is a URL (a non-web one is blocked); "javascript:", "mailto:",
    # "data:" and other values without "//" are no URL to fetch at all
    url = image_input(value, field, 0) if scheme and text[scheme.end():].startswith("//") \
        else None
    if not isinstance(url, str):
        raise InvalidInputError(f"{field} must be an http(s) URL, got {value[:80]!r}; "
                                f"send file bytes base64-encoded in image_base64 instead")
    return url


def base64_input(value: str, field: str, max_bytes: int) -> bytes:
    """Base64 bytes (optionally a data: URL) given where only bytes may be."""
    text = value.strip()
    match = _DATA_URL.match(text)
    return _base64_bytes(text[match.end():] if match else text, field, max_bytes)


def one_image(image_url: str | None, image_base64: str | None, max_bytes: int
              ) -> str | bytes | None:
    """The image of an item given as exactly one of a URL or base64 bytes."""
    if image_url is not None and image_base64 is not None:
        raise InvalidInputError("give either image_url or image_base64, not both")
    if image_url is not None:
        return url_input(image_url, "image_url")
    if image_base64 is not None:
        return base64_input(image_base64, "image_base64", max_bytes)
    return None


def filters_from_body(filters: FiltersIn) -> Filters:
    return Filters(
        categories=tuple(filters.categories), brands=tuple(filters.brands),
        price_min=filters.price_min, price_max=filters.price_max,
        colors=tuple(filters.colors), licenses=tuple(filters.licenses),
        tags=tuple(filters.tags), orientation=filters.orientation,
        min_width=filters.min_width, min_height=filters.min_height,
        attributes=dict(filters.attributes), taken_after=filters.taken_after,
        taken_before=filters.taken_before, cameras=tuple(filters.cameras),
        near=None if filters.near is None else (
            filters.near.latitude, filters.near.longitude, filters.near.radius_km),
        places=tuple(filters.places))


def filters_from_params(params: FilterParams) -> Filters:
    return Filters(
        categories=tuple(params.category), brands=tuple(params.brand),
        price_min=params.price_min, price_max=params.price_max,
        colors=tuple(params.color), licenses=tuple(params.license), tags=tuple(params.tag),
        orientation=params.orientation, min_width=params.min_width,
        min_height=params.min_height, taken_after=params.taken_after or None,
        taken_before=params.taken_before or None, cameras=tuple(params.camera),
        near=near_param(params.near), places=tuple(params.place))


def near_param(value: str | None) -> tuple[float, float, float] | None:
    """``near=LAT,LON,KM`` of a query string (checked further as every filter is)."""
    if not value:
        return None
    try:
        lat, lon, km = (float(part) for part in value.split(","))
    except ValueError:
        raise InvalidFilterError(f"near takes LAT,LON,KM (e.g. 38.72,-9.14,25), "
                                 f"got {value!r}") from None
    return lat, lon, km


def page_request(params: PageParams, **fields: Any) -> SearchRequest:
    """The search a query string or a form asks for: its filters, paging and ranking
    options, with ``fields`` (the route's own: text, images, an item id) set over them."""
    return replace(SearchRequest(
        filters=filters_from_params(params), limit=params.limit, offset=params.offset,
        min_confidence=params.min_confidence, collapse_duplicates=params.collapse_duplicates,
        boosts=parse_boosts(params.boost, "boost"), prefer_colors=tuple(params.prefer_color),
        max_per_category=params.max_per_category, mmr_lambda=params.mmr_lambda), **fields)


def thumbnail_url(item_id: str) -> str:
    return "/v1/thumbnails/" + quote(item_id, safe="")


def _web_url(ref: str | None) -> str | None:
    return ref if ref and ref.lower().startswith(("http://", "https://")) else None


def item_from_fields(item_id: str, fields: ItemFields, image_url: str | None) -> Item:
    """The item an API body describes, checked as a catalog row is (``engine.items``)."""
    data = fields.model_dump(exclude={"id", "image_url", "image_base64", "attributes"})
    return items.item_from_fields(item_id, data, fields.attributes, image_url)


def item_out(item: Item) -> ItemOut:
    return ItemOut(
        id=item.id, title=item.title, description=item.description, category=item.category,
        brand=item.brand, price=item.price, color=item.color, license=item.license,
        tags=list(item.tags), popularity=item.popularity, rating=item.rating,
        conversion=item.conversion, created_at=item.created_at,
        attributes=dict(item.attributes), width=item.width, height=item.height,
        orientation=item.orientation, colors=list(item.colors),
        phash=None if item.phash is None else f"{item.phash & (2**64 - 1):016x}",
        content_hash=item.content_hash,
        thumbnail=thumbnail_url(item.id) if item.thumbnail else None,
        image_url=_web_url(item.image),
        **{name: getattr(item, name) for name in PHOTO_FIELDS})


def search_response(result: SearchResult, limit: int, offset: int) -> SearchResponse:
    hits = [HitOut(id=h.id, score=h.score, confidence=h.confidence, title=h.title,
                   category=h.category, brand=h.brand, price=h.price,
                   thumbnail=thumbnail_url(h.id) if h.thumbnail else None,
                   image_url=_web_url(h.image), matched_by=h.matched_by,
                   duplicates=h.duplicates, match=h.match, evidence=h.evidence)
            for h in result.hits]
    return SearchResponse(
        results=hits, count=len(hits), limit=limit, offset=offset,
        next_offset=offset + limit if len(hits) == limit else None,
        total_candidates=result.total_candidates, query_kind=result.query_kind,
        query_time_ms=round(result.query_time_ms, 3), search_id=result.search_id,
        empty_reason=result.empty_reason, message=result.message,
        interpretation=_jsonable(result.interpretation), plan=result.plan,
        cached=result.cached, stage_ms=result.stage_ms)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


__all__ = [
    "base64_input",
    "filters_from_body",
    "filters_from_params",
    "image_input",
    "item_from_fields",
    "item_out",
    "one_image",
    "page_request",
    "search_response",
    "thumbnail_url",
    "url_input",
]
