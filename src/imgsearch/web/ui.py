"""The web page: a search form, a results grid and item pages, rendered on the server.

Text searches are plain GET forms (``/?q=...&category=...``), so results can be
bookmarked and paged with links. An image search posts the form as multipart; its
results page carries the query image back in a hidden field, so that refining the
filters, adding text or turning pages keeps searching by the same image. The page works
without JavaScript; ``static/ui.js`` only adds drag-and-drop, paste and the weight slider.
"""

from __future__ import annotations

import base64
import binascii
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData, QueryParams, UploadFile

from imgsearch.engine import Duplicate, Engine
from imgsearch.engine.display import confidence_percent, expansions, match_label
from imgsearch.engine.requests import SearchRequest, build_query
from imgsearch.errors import (
    ImageTooLargeError,
    ImgSearchError,
    InvalidFilterError,
    InvalidInputError,
    ItemNotFoundError,
    UnsupportedOnBackendError,
)
from imgsearch.types import Filters, Query, SearchResult
from imgsearch.web.convert import thumbnail_url
from imgsearch.web.deps import AppState, State
from imgsearch.web.errors import BodyTooLargeError

HERE = Path(__file__).parent
PAGE_SIZE = 24
OVERVIEW_SAMPLE = 12  # items the home page shows before any search
FACETS_TTL_S = 30.0
# A query image is sent back inside the results page; past this size the page would
# get heavy, so a larger image is searched once and has to be given again to page on.
EMBED_MAX_BYTES = 8 * 1024 * 1024
_SIGNATURES = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG", "image/png"),
               (b"GIF8", "image/gif"), (b"BM", "image/bmp"))

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=HERE / "templates")


@dataclass
class SearchForm:
    """What the search form holds, parsed from a query string or a multipart body."""

    q: str = ""
    category: str = ""
    brand: str = ""
    price_min: float | None = None
    price_max: float | None = None
    colors: tuple[str, ...] = ()
    place: str = ""  # a city, region or country (the places facet's links)
    similar: str = ""
    image_weight: float = 0.5
    offset: int = 0
    limit: int = PAGE_SIZE
    min_confidence: float | None = None  # None: the collection's setting
    image: bytes | None = field(default=None, repr=False)

    @property
    def asks(self) -> bool:
        """Whether there is anything to show: a search, or filters to browse by."""
        return bool(self.q or self.image or self.similar or self.filtered)

    @property
    def filtered(self) -> bool:
        return bool(self.category or self.brand or self.colors or self.place
                    or self.price_min is not None or self.price_max is not None)

    def query(self) -> Query:
        filters = Filters(
            categories=(self.category,) if self.category else (),
            brands=(self.brand,) if self.brand else (),
            price_min=self.price_min, price_max=self.price_max, colors=self.colors,
            places=(self.place,) if self.place else ())
        page = SearchRequest(filters=filters, limit=self.limit, offset=self.offset,
                             min_confidence=self.min_confidence)
        if self.image is None and not self.q and self.similar:
            return build_query(replace(page, similar_to=self.similar), PAGE_SIZE)
        return build_query(replace(page, text=self.q or None, image_weight=self.image_weight,
                                   images=[self.image] if self.image else []), PAGE_SIZE)

    def url(self, **changes: Any) -> str:
        """The GET address of this search (without an image), with ``changes`` applied."""
        form = replace(self, **changes)
        params: list[tuple[str, Any]] = [
            (name, value) for name, value in (
                ("q", form.q), ("category", form.category), ("brand", form.brand),
                ("price_min", _number(form.price_min)), ("price_max", _number(form.price_max)),
                ("place", form.place), ("similar", form.similar)) if value]
        params += [("color", c) for c in form.colors]
        if form.limit != PAGE_SIZE:
            params.append(("limit", form.limit))
        if form.min_confidence is not None:
            params.append(("min_confidence", _number(form.min_confidence)))
        if form.offset:
            params.append(("offset", form.offset))
        return "/?" + urlencode(params) if params else "/"


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _text(values: QueryParams | FormData, name: str, max_chars: int = 2000) -> str:
    value = values.get(name)
    return value.strip()[:max_chars] if isinstance(value, str) else ""


def _float(values: QueryParams | FormData, name: str, label: str) -> float | None:
    text = _text(values, name, 40).replace(",", ".")
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        raise InvalidFilterError(f"{label} must be a number, got {text!r}") from None
    if number != number or number in (float("inf"), float("-inf")) or number < 0:
        raise InvalidFilterError(f"{label} must be a number of at least 0, got {text!r}")
    return number


def _int(values: QueryParams | FormData, name: str, default: int, low: int, high: int) -> int:
    text = _text(values, name, 12)
    try:
        return min(max(int(text), low), high) if text else default
    except ValueError:
        raise InvalidInputError(f"{name} must be a whole number, got {text!r}") from None


def parse_form(values: QueryParams | FormData, max_limit: int) -> SearchForm:
    """The search form's fields; unusable values raise with a message the page shows."""
    low, high = _float(values, "price_min", "Min price"), _float(values, "price_max",
                                                                  "Max price")
    if low is not None and high is not None and low > high:
        raise InvalidFilterError(f"the min price ({low:g}) is above the max price ({high:g}); "
                                 f"swap them or clear one")
    weight = _float(values, "image_weight", "The image weight")
    minimum = _float(values, "min_confidence", "The minimum confidence")
    if minimum is not None and minimum > 1:
        raise InvalidInputError(f"the minimum confidence is between 0 and 1, got {minimum:g}")
    colors = tuple(dict.fromkeys(
        c.strip() for c in values.getlist("color") if isinstance(c, str) and c.strip()))
    return SearchForm(
        q=_text(values, "q"), category=_text(values, "category"), brand=_text(values, "brand"),
        price_min=low, price_max=high, colors=colors[:20], place=_text(values, "place", 200),
        similar=_text(values, "similar"),
        image_weight=0.5 if weight is None else min(weight, 1.0),
        offset=_int(values, "offset", 0, 0, 1_000_000),
        limit=_int(values, "limit", PAGE_SIZE, 1, min(max_limit, 100)), min_confidence=minimum)


async def _read_image(values: FormData, max_bytes: int) -> bytes | None:
    upload = values.get("image")
    if isinstance(upload, UploadFile):
        data = await upload.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise BodyTooLargeError(max_bytes)
        if data:
            return data
    kept = _text(values, "image_b64", EMBED_MAX_BYTES * 2)
    if not kept:
        return None
    try:
        return base64.b64decode(kept, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInputError("the query image sent back by the page is damaged; "
                                "choose the image again") from None


def _media_type(data: bytes) -> str:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((kind for magic, kind in _SIGNATURES if data.startswith(magic)), "image/jpeg")


def understood(interpretation: dict[str, Any]) -> str | None:
    """What query understanding read from the text, and what the query was expanded
    with, in words; None when nothing."""
    expanded = expansions(interpretation.get("expanded") or {})
    if not interpretation.get("understood") or interpretation.get("applied") is False:
        return ", ".join(expanded) or None
    filters = interpretation.get("filters", {})
    parts = [f"“{interpretation['text']}”"] if interpretation.get("text") else []
    for name, label in (("categories", "category"), ("brands", "brand"),
                        ("colors", "colour")):
        if filters.get(name):
            parts.append(f"{label} {', '.join(map(str, filters[name]))}")
    if "colors" in interpretation.get("boosts", {}):
        parts.append(f"preferring {', '.join(interpretation['boosts']['colors'])}")
    if filters.get("price_min") is not None:
        parts.append(f"price ≥ {filters['price_min']:g}")
    if filters.get("price_max") is not None:
        parts.append(f"price ≤ {filters['price_max']:g}")
    return ", ".join(parts + expanded) or None


def understood_colors(interpretation: dict[str, Any]) -> set[str]:
    """Colour names query understanding read from the text (as filters or as boosts)."""
    if not interpretation.get("understood") or interpretation.get("applied") is False:
        return set()
    found = interpretation.get("filters", {}).get("colors") or []
    boosts = interpretation.get("boosts", {}).get("colors") or []
    return {str(name) for name in [*found, *boosts]}


_SYMBOLS = {"$", "€", "£", "¥", "₹", "₩", "₽", "₺", "₪", "฿", "₫", "₴", "₦"}


def money(value: float, currency: str = "") -> str:
    """A price with the collection's currency: a symbol before it, a code after it."""
    amount = f"{value:,.2f}"
    if not currency:
        return amount
    return f"{currency}{amount}" if currency in _SYMBOLS else f"{amount} {currency}"


async def _facets(request: Request, state: AppState) -> dict[str, Any]:
    """The form's choices; counted over the whole catalog, so cached for a little while."""
    cached = getattr(request.app.state, "ui_facets", None)
    if cached is not None and time.monotonic() - cached[0] < FACETS_TTL_S:
        return dict(cached[1])
    facets: dict[str, Any] = await state.call(state.engine.facets)
    request.app.state.ui_facets = (time.monotonic(), facets)
    return facets


facets_for = _facets  # the timeline page shows the same choices


async def _search_page(request: Request, state: AppState, form: SearchForm | None,
                       error: ImgSearchError | None = None) -> HTMLResponse:
    form = form or SearchForm()
    result: SearchResult | None = None
    if error is None and form.asks and not (form.q or form.image or form.similar):
        cannot = _refused(state, "browse")  # filters alone: a node that cannot says why
        error = None if cannot is None else UnsupportedOnBackendError(cannot)
    if error is None and form.asks:
        try:
            found: SearchResult = await state.call(state.engine.search, form.query())
            state.metrics.observe_search(found)
            result = found
        except ImgSearchError as exc:
            error = exc
    title = ""
    if form.similar and form.image is None and not form.q:
        try:
            title = (await state.call(state.engine.get, form.similar)).title or form.similar
        except ImgSearchError:
            title = form.similar
    overview: dict[str, Any] | None = None
    if not form.asks and error is None:  # the home page: what the collection holds
        cannot = _refused(state, "browse")  # a node that cannot browse says why
        if cannot is not None:
            overview = {"count": None, "sample": [], "note": cannot}
        else:
            sample = await state.call(state.engine.search,
                                      build_query(SearchRequest(), OVERVIEW_SAMPLE))
            overview = {"count": sample.total_candidates, "sample": sample.hits}
    image = form.image if error is None else None  # a refused image is not offered again
    embedded = image is not None and len(image) <= EMBED_MAX_BYTES
    context = {
        "form": form, "result": result, "facets": await _facets(request, state),
        "error": error.message if error else None,
        "similar_title": title,
        "image_b64": base64.b64encode(image).decode() if image and embedded else "",
        "image_type": _media_type(image) if image else "",
        "image_too_big_to_keep": image is not None and not embedded,
        "understood": understood(result.interpretation) if result else None,
        "understood_colors": understood_colors(result.interpretation) if result else set(),
        "overview": overview, "currency": state.settings.currency,
        "max_bytes": state.max_image_bytes,
        "page_title": form.q or ("Search by image" if image else ""),
    }
    return templates.TemplateResponse(request, "index.html", context,
                                      status_code=error.status if error else 200)


def _refused(state: AppState, feature: str) -> str | None:
    """Why the engine does not do ``feature`` (a node over a remote collection says,
    ``RemoteEngine.refuses``); None when it does."""
    refuses = getattr(state.engine, "refuses", None)
    return None if refuses is None else refuses(feature)


@router.get("/", response_class=HTMLResponse)
async def search_page(request: Request, state: State) -> HTMLResponse:
    try:
        form = parse_form(request.query_params, state.settings.max_limit)
    except ImgSearchError as exc:
        return await _search_page(request, state, _typed(request.query_params), exc)
    return await _search_page(request, state, form)


def _typed(values: QueryParams | FormData) -> SearchForm:
    """What the person typed, kept on the page when the rest of the form is refused."""
    return SearchForm(q=_text(values, "q"))


@router.post("/", response_class=HTMLResponse)
async def search_by_image(request: Request, state: State) -> HTMLResponse:
    typed: SearchForm | None = None
    try:
        async with request.form(max_files=2, max_fields=200,
                                max_part_size=EMBED_MAX_BYTES * 2) as values:
            typed = _typed(values)
            form = parse_form(values, state.settings.max_limit)
            form.image = await _read_image(values, state.max_image_bytes)
    except BodyTooLargeError as exc:
        return await _search_page(request, state, typed, ImageTooLargeError(str(exc.detail)))
    except ImgSearchError as exc:
        return await _search_page(request, state, typed, exc)
    return await _search_page(request, state, form)


def _with_titles(engine: Engine, item_id: str) -> list[tuple[Duplicate, str]]:
    """The item's near-duplicates, each with the title to show for it."""
    found = []
    for duplicate in engine.duplicates(item_id):
        try:
            title = engine.get(duplicate.id).title or duplicate.id
        except ItemNotFoundError:  # deleted since the duplicates were found
            continue
        found.append((duplicate, title))
    return found


@router.get("/items/{item_id:path}", response_class=HTMLResponse)
async def item_page(item_id: str, request: Request, state: State) -> HTMLResponse:
    try:
        item = await state.call(state.engine.get, item_id)
    except ImgSearchError as exc:
        return templates.TemplateResponse(
            request, "item.html", {"item": None, "error": exc.message, "page_title": item_id},
            status_code=exc.status)
    try:
        duplicates = await state.call(_with_titles, state.engine, item_id)
        similar = (await state.call(state.engine.search,
                                    build_query(SearchRequest(similar_to=item_id), 8))).hits
    except ImgSearchError:  # the item page still shows the item itself
        duplicates, similar = [], []
    context = {"item": item, "duplicates": duplicates, "similar": similar,
               "colors": (await _facets(request, state)).get("colors", {}),
               "page_title": item.title or item.id, "error": None,
               "currency": state.settings.currency}
    return templates.TemplateResponse(request, "item.html", context)


def item_url(item_id: str) -> str:
    return "/items/" + quote(item_id, safe="")


def search_url(**fields: Any) -> str:
    return SearchForm(**fields).url()


templates.env.globals.update(item_url=item_url, thumbnail_url=thumbnail_url,
                             search_url=search_url, page_size=PAGE_SIZE, money=money,
                             confidence_percent=confidence_percent, match_label=match_label)


def install(app: FastAPI) -> None:
    """Add the page's routes and its static files to ``app``."""
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")


__all__ = ["SearchForm", "install", "parse_form", "router", "understood"]
