"""The wire format of the HTTP API v1: pydantic models, kept apart from internal types.

Bodies refuse unknown fields (a typo in a filter name must not silently filter
nothing); query strings and forms accept them, as browsers and proxies add their own.
Floats must be finite: Python's JSON parser accepts ``NaN`` and ``Infinity``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, field_validator

Orientation = Literal["landscape", "portrait", "square"]
AttributeValue = str | Annotated[int, Field(ge=-(2**63), le=2**63 - 1)] | float | bool
_MAX_VALUES = 100
_SURROGATE = re.compile("[\ud800-\udfff]")
_MAX_TEXT = 2000
# Integers end up in SQLite (64-bit) and in list slices: anything beyond this is a typo
# or an attack, and must be refused as such rather than overflow later as a 500.
_MAX_INT = 2**31 - 1
BoundedInt = Annotated[int, Field(le=_MAX_INT)]  # the engine says why a negative is wrong
_MAX_VECTOR = 8192  # numbers in a raw query vector; wider than any encoder's output


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _storable_text(cls, value: Any) -> Any:
        # JSON may escape a lone UTF-16 surrogate ("\\ud800"); such text cannot be
        # stored, encoded or even written back in an answer.
        if _holds_surrogate(value):
            raise ValueError("holds an invalid character (a lone UTF-16 surrogate)")
        return value


def _holds_surrogate(value: Any, depth: int = 0) -> bool:
    if isinstance(value, str):
        return _SURROGATE.search(value) is not None
    if depth > 4:
        return False
    if isinstance(value, list | tuple):
        return any(_holds_surrogate(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return any(_holds_surrogate(k, depth + 1) or _holds_surrogate(v, depth + 1)
                   for k, v in value.items())
    return False


class NearIn(_Body):
    """Photos taken within ``radius_km`` of a position."""

    latitude: FiniteFloat = Field(ge=-90.0, le=90.0)
    longitude: FiniteFloat = Field(ge=-180.0, le=180.0)
    radius_km: FiniteFloat = Field(gt=0.0, le=20_000.0)


class FiltersIn(_Body):
    categories: list[str] = Field(default_factory=list, max_length=_MAX_VALUES)
    brands: list[str] = Field(default_factory=list, max_length=_MAX_VALUES)
    price_min: FiniteFloat | None = None
    price_max: FiniteFloat | None = None
    colors: list[str] = Field(default_factory=list, max_length=_MAX_VALUES)
    licenses: list[str] = Field(default_factory=list, max_length=_MAX_VALUES)
    tags: list[str] = Field(default_factory=list, max_length=_MAX_VALUES)
    orientation: Orientation | None = None
    min_width: int | None = Field(default=None, ge=0, le=_MAX_INT)
    min_height: int | None = Field(default=None, ge=0, le=_MAX_INT)
    attributes: dict[str, AttributeValue] = Field(default_factory=dict, max_length=_MAX_VALUES)
    # photos: local dates taken ("2019", "2019-06-01"; after inclusive, before exclusive),
    # camera values, and a position with a radius
    taken_after: str | None = Field(default=None, max_length=32)
    taken_before: str | None = Field(default=None, max_length=32)
    cameras: list[str] = Field(default_factory=list, max_length=_MAX_VALUES)
    near: NearIn | None = None
    # place names: a photo's whole city, region or country ("Lisbon", "Portugal")
    places: list[str] = Field(default_factory=list, max_length=_MAX_VALUES)


class SearchRequest(_Body):
    """A general query: text, images (http(s) URLs or base64), or both; or an item id.

    Each image is an ``http(s)://`` URL, a ``data:image/...;base64,`` URL or plain
    base64 of the file's bytes.
    """

    text: str | None = Field(default=None, max_length=_MAX_TEXT)
    image_url: str | None = None
    image_base64: str | None = None
    images: list[str] = Field(default_factory=list)
    negative_images: list[str] = Field(default_factory=list)
    image_weight: FiniteFloat = 0.5
    similar_to: str | None = None
    filters: FiltersIn = Field(default_factory=FiltersIn)
    limit: int | None = Field(default=None, description="1..max_limit; default from settings")
    offset: BoundedInt = 0
    parse: bool = True
    collapse_duplicates: bool = True
    min_confidence: FiniteFloat | None = Field(default=None, ge=0.0, le=1.0)
    max_per_category: int | None = Field(default=None, ge=1, le=_MAX_INT)
    mmr_lambda: FiniteFloat | None = Field(default=None, ge=0.0, le=1.0)
    boosts: dict[str, FiniteFloat] = Field(default_factory=dict, max_length=8)
    prefer_colors: list[str] = Field(default_factory=list, max_length=_MAX_VALUES)
    multi_image: Literal["average", "rrf"] | None = None
    vector: list[FiniteFloat] | None = Field(
        default=None, min_length=1, max_length=_MAX_VECTOR,
        description="a raw query vector in vector_space (normalised by the engine)")
    vector_space: str = Field(default="image", max_length=200)
    ef_search: int | None = Field(default=None, ge=1, le=_MAX_INT,
                                  description="HNSW indexes: candidates kept while searching")
    nprobe: int | None = Field(default=None, ge=1, le=_MAX_INT,
                               description="IVF-PQ indexes: inverted lists visited")


class FilterParams(BaseModel):
    """Filters as query-string or form fields; list fields may be repeated."""

    category: list[str] = Field(default_factory=list, max_length=_MAX_VALUES)
    brand: list[str] = Field(default_factory=list, max_length=_MAX_VALUES)
    price_min: FiniteFloat | None = None
    price_max: FiniteFloat | None = None
    color: list[str] = Field(default_factory=list, max_length=_MAX_VALUES)
    license: list[str] = Field(default_factory=list, max_length=_MAX_VALUES)
    tag: list[str] = Field(default_factory=list, max_length=_MAX_VALUES)
    orientation: Orientation | None = None
    min_width: int | None = Field(default=None, ge=0, le=_MAX_INT)
    min_height: int | None = Field(default=None, ge=0, le=_MAX_INT)
    taken_after: str | None = Field(default=None, max_length=32)
    taken_before: str | None = Field(default=None, max_length=32)
    camera: list[str] = Field(default_factory=list, max_length=_MAX_VALUES)
    near: str | None = Field(default=None, max_length=80, description="LAT,LON,KM")
    place: list[str] = Field(default_factory=list, max_length=_MAX_VALUES,
                             description="a city, region or country, as stored")


class PageParams(FilterParams):
    """Paging and ranking options as query-string or form fields (as in the JSON body)."""

    limit: int | None = None
    offset: BoundedInt = 0
    min_confidence: FiniteFloat | None = Field(default=None, ge=0.0, le=1.0)
    collapse_duplicates: bool = True
    boost: list[str] = Field(default_factory=list, max_length=8,
                             description="SIGNAL=WEIGHT, repeatable (the body's boosts)")
    prefer_color: list[str] = Field(default_factory=list, max_length=_MAX_VALUES)
    max_per_category: int | None = Field(default=None, ge=1, le=_MAX_INT)
    mmr_lambda: FiniteFloat | None = Field(default=None, ge=0.0, le=1.0)


class TextSearchParams(PageParams):
    q: str = Field(min_length=1, max_length=_MAX_TEXT)
    parse: bool = True


class ImageSearchForm(PageParams):
    text: str | None = Field(default=None, max_length=_MAX_TEXT)
    image_weight: FiniteFloat = 0.5
    multi_image: Literal["average", "rrf"] | None = Field(
        default=None, description="several files: average their vectors or fuse rankings")


class HitOut(BaseModel):
    id: str
    score: float
    confidence: float
    title: str | None = None
    category: str | None = None
    brand: str | None = None
    price: float | None = None
    thumbnail: str | None = Field(description="URL of the item's thumbnail")
    image_url: str | None = Field(default=None, description="the source image when it is a URL")
    matched_by: dict[str, dict[str, float]] = Field(default_factory=dict)
    duplicates: int = 0
    match: str = Field(default="similar", description="exact (same content), copy (verified "
                       "edited copy) or similar")
    evidence: dict[str, float] = Field(default_factory=dict,
                                       description="why: inliers, hamming distance, ...")


class SearchResponse(BaseModel):
    results: list[HitOut]
    count: int
    limit: int
    offset: int
    next_offset: int | None
    total_candidates: int
    query_kind: str
    query_time_ms: float
    search_id: str | None
    empty_reason: str | None
    message: str | None
    interpretation: dict[str, Any]
    plan: str
    cached: bool = False
    stage_ms: dict[str, float] = {}


class ItemFields(_Body):
    title: str | None = Field(default=None, max_length=_MAX_TEXT)
    description: str | None = Field(default=None, max_length=20_000)
    category: str | None = Field(default=None, max_length=_MAX_TEXT)
    brand: str | None = Field(default=None, max_length=_MAX_TEXT)
    price: FiniteFloat | None = None
    color: str | None = Field(default=None, max_length=_MAX_TEXT)
    license: str | None = Field(default=None, max_length=_MAX_TEXT)
    tags: list[str] = Field(default_factory=list, max_length=_MAX_VALUES)
    popularity: FiniteFloat | None = None
    rating: FiniteFloat | None = None
    conversion: FiniteFloat | None = None
    created_at: str | None = Field(default=None, max_length=64)
    attributes: dict[str, AttributeValue] = Field(default_factory=dict, max_length=_MAX_VALUES)


class ItemIn(ItemFields):
    """An item's metadata and its image: an http(s) URL or base64 bytes.

    Without an image, an existing item keeps its stored image reference.
    """

    image_url: str | None = None
    image_base64: str | None = None


class BatchItem(ItemFields):
    id: str = Field(min_length=1, max_length=1000)


class UpsertOp(_Body):
    op: Literal["upsert"]
    item: BatchItem
    image_url: str | None = None
    image_base64: str | None = None


class DeleteOp(_Body):
    op: Literal["delete"]
    id: str = Field(min_length=1, max_length=1000)


class BatchRequest(BaseModel):
    # not a _Body: each operation is checked on its own, and a bad one fails alone
    model_config = ConfigDict(extra="forbid")

    operations: list[Any] = Field(
        min_length=1,
        description='Each is {"op": "upsert", "item": {"id": ..., ...}, "image_url" or '
                    '"image_base64"} or {"op": "delete", "id": ...}. Operations are checked '
                    'one by one: a bad one fails alone.')


class UpsertOut(BaseModel):
    id: str
    status: Literal["added", "updated"]


class DeleteOut(BaseModel):
    id: str
    deleted: bool


class OpError(BaseModel):
    code: str
    message: str


class OpResult(BaseModel):
    index: int
    op: str | None
    id: str | None
    status: Literal["added", "updated", "deleted", "failed"]
    error: OpError | None = None


class BatchResponse(BaseModel):
    results: list[OpResult]
    succeeded: int
    failed: int


class ItemOut(BaseModel):
    id: str
    title: str | None = None
    description: str | None = None
    category: str | None = None
    brand: str | None = None
    price: float | None = None
    color: str | None = None
    license: str | None = None
    tags: list[str] = Field(default_factory=list)
    popularity: float | None = None
    rating: float | None = None
    conversion: float | None = None
    created_at: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    width: int | None = None
    height: int | None = None
    orientation: Orientation | None = None
    colors: list[str] = Field(default_factory=list)
    phash: str | None = Field(default=None, description="64-bit perceptual hash, hex")
    content_hash: str | None = None
    thumbnail: str | None = None
    image_url: str | None = None
    # photos: folders, text read from the image, EXIF facts and the place they name
    album: str | None = None
    ocr_text: str | None = None
    taken_at: str | None = Field(default=None, description="ISO 8601 local time "
                                 "(+HH:MM when the camera recorded its offset)")
    taken_from: Literal["exif", "file"] | None = None
    camera: str | None = None
    lens: str | None = None
    focal_length: float | None = None
    latitude: float | None = None
    longitude: float | None = None
    city: str | None = None
    region: str | None = None
    country: str | None = None


class DuplicateOut(BaseModel):
    id: str
    tier: str
    hamming: int
    cosine: float
    thumbnail: str


class DuplicatesResponse(BaseModel):
    id: str
    duplicates: list[DuplicateOut]


class ClickIn(_Body):
    search_id: str = Field(min_length=1, max_length=200)
    item_id: str = Field(min_length=1, max_length=1000)
    position: int | None = Field(default=None, ge=1, le=_MAX_INT,
                                 description="1-based rank of the clicked result")


class ClickOut(BaseModel):
    recorded: bool


class HealthOut(BaseModel):
    status: str
    role: str | None = Field(None, description="writer: this process holds the "
                             "collection; reader: one of several processes, writes "
                             "handed to the writer")
    pid: int | None = None


__all__ = [
    "BatchItem",
    "BatchRequest",
    "BatchResponse",
    "ClickIn",
    "ClickOut",
    "DeleteOp",
    "DeleteOut",
    "DuplicateOut",
    "DuplicatesResponse",
    "FilterParams",
    "FiltersIn",
    "HealthOut",
    "HitOut",
    "ImageSearchForm",
    "ItemFields",
    "ItemIn",
    "ItemOut",
    "OpError",
    "OpResult",
    "PageParams",
    "SearchRequest",
    "SearchResponse",
    "TextSearchParams",
    "UpsertOp",
    "UpsertOut",
]
