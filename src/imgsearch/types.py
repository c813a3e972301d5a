"""Plain data types shared by every stage. No behaviour beyond validation."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from imgsearch.titles import clean_title

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray
    from PIL import Image

    Vector = NDArray[np.float32]
    # An image as a caller may hand it in: a path, raw bytes, an http(s) URL or a decoded
    # image.
    ImageInput = str | Path | bytes | Image.Image

Orientation = Literal["landscape", "portrait", "square"]


def __getattr__(name: str) -> Any:
    # Vector and ImageInput need numpy and Pillow: made when first imported, so that
    # the command line's help starts without loading either
    if name == "Vector":
        import numpy as np
        from numpy.typing import NDArray

        return NDArray[np.float32]
    if name == "ImageInput":
        from PIL import Image

        return str | Path | bytes | Image.Image
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

# Columns of a catalog row that have a meaning of their own; any other column is an attribute.
KNOWN_FIELDS: tuple[str, ...] = (
    "id",
    "image",
    "title",
    "description",
    "category",
    "brand",
    "price",
    "color",
    "license",
    "tags",
    "popularity",
    "rating",
    "conversion",
    "created_at",
)

# what a photo says of itself (Item fields derived at ingest; see Item)
PHOTO_FIELDS: tuple[str, ...] = (
    "album", "ocr_text", "taken_at", "taken_from", "camera", "lens", "focal_length",
    "latitude", "longitude", "city", "region", "country",
)


@dataclass
class Item:
    """One searchable thing: an image plus what is known about it.

    ``image`` is a reference: a path (absolute, or relative to the catalog file that
    named it) or an http(s) URL. Fields after ``attributes`` are derived at ingest.
    """

    id: str
    image: str | None = None
    title: str | None = None
    description: str | None = None
    category: str | None = None
    brand: str | None = None
    price: float | None = None
    color: str | None = None
    license: str | None = None
    tags: tuple[str, ...] = ()
    popularity: float | None = None
    rating: float | None = None
    conversion: float | None = None
    created_at: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    # derived at ingest
    width: int | None = None
    height: int | None = None
    phash: int | None = None
    colors: tuple[str, ...] = ()
    thumbnail: str | None = None
    content_hash: str | None = None
    source_size: int | None = None
    source_mtime: float | None = None
    # where ingest found it (a folder's or catalog file's resolved path); None when added
    # by id through the API or ``add``
    source: str | None = None
    # the image's bytes as uploaded, kept in the collection (a path relative to it) when
    # the item has no image reference to re-read them from
    original: str | None = None
    # what a photo says of itself (ingest.exif, enrich.places, enrich.ocr): the folders
    # it sits in, text read from its pixels, when, with what and where it was taken
    album: str | None = None
    ocr_text: str | None = None
    taken_at: str | None = None  # ISO 8601 local time, with its UTC offset when known
    taken_from: str | None = None  # "exif", or "file" (the file's time: no EXIF date)
    camera: str | None = None
    lens: str | None = None
    focal_length: float | None = None  # millimetres
    latitude: float | None = None
    longitude: float | None = None
    city: str | None = None
    region: str | None = None
    country: str | None = None

    @property
    def orientation(self) -> Orientation | None:
        if not self.width or not self.height:
            return None
        if self.width > self.height:
            return "landscape"
        if self.height > self.width:
            return "portrait"
        return "square"

    def metadata_text(self) -> str:
        """The text a text encoder sees for this item (a file-name title as words)."""
        parts = [clean_title(self.title), self.description, self.category, self.brand, self.color]
        parts.extend(self.tags)
        parts += [self.city, self.region, self.country, self.ocr_text]
        return " . ".join(p for p in parts if p)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["tags"] = list(self.tags)
        data["colors"] = list(self.colors)
        data["orientation"] = self.orientation
        return data


@dataclass(frozen=True)
class Filters:
    """Restrictions on which items may be returned. Empty fields restrict nothing."""

    categories: tuple[str, ...] = ()
    brands: tuple[str, ...] = ()
    price_min: float | None = None
    price_max: float | None = None
    colors: tuple[str, ...] = ()
    licenses: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    orientation: Orientation | None = None
    min_width: int | None = None
    min_height: int | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    # photos: local date-time bounds (ISO 8601 prefix, "2019" or "2019-06-01"; after is
    # inclusive, before exclusive), camera values, and (latitude, longitude, radius km)
    taken_after: str | None = None
    taken_before: str | None = None
    cameras: tuple[str, ...] = ()
    near: tuple[float, float, float] | None = None

    def is_empty(self) -> bool:
        return not (
            self.categories
            or self.brands
            or self.price_min is not None
            or self.price_max is not None
            or self.colors
            or self.licenses
            or self.tags
            or self.orientation
            or self.min_width
            or self.min_height
            or self.attributes
            or self.taken_after
            or self.taken_before
            or self.cameras
            or self.near
        )


@dataclass
class Query:
    """What a caller asks for. At least one of text, images, vector or similar_to.

    ``image_weight`` weighs the image part against the text part of a hybrid query
    (1.0 = images only). ``negative_images`` push results away from those images.
    """

    text: str | None = None
    images: list[ImageInput] = field(default_factory=list)
    negative_images: list[ImageInput] = field(default_factory=list)
    image_weight: float = 0.5
    vector: Vector | None = None
    vector_space: str = "image"
    similar_to: str | None = None
    filters: Filters = field(default_factory=Filters)
    limit: int = 10
    offset: int = 0
    parse: bool = True  # understand prices, colours, brands and categories in the text
    min_confidence: float | None = None  # None: the collection's default; 0: keep everything
    collapse_duplicates: bool = True  # fold near-exact duplicates into the best-ranked one
    # business signals: weights of popularity, rating, conversion, freshness (sum <= 1)
    boosts: Mapping[str, float] = field(default_factory=dict)
    prefer_colors: tuple[str, ...] = ()  # a boost (not a filter) for items of these colours
    max_per_category: int | None = None  # diversity: at most this many hits per category
    mmr_lambda: float | None = None  # diversity: maximal marginal relevance, 1 = none
    multi_image: str | None = None  # "average" vectors or "rrf" per-image rank fusion
    # hints for the collection's backend, checked by it: the local FAISS indexes take
    # ef_search (HNSW) and nprobe (IVF), e.g. {"ef_search": 256}
    search_params: Mapping[str, int] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        if self.similar_to is not None:
            return "item"
        if self.vector is not None:
            return "vector"
        if self.images and self.text:
            return "hybrid"
        if len(self.images) > 1 or self.negative_images:
            return "multi_image"
        if self.images:
            return "image"
        if self.text:
            return "text"
        return "browse"  # filters alone, or nothing: list what passes


@dataclass
class SearchHit:
    # The engine makes hits with positional arguments: keep this order.
    id: str
    score: float
    title: str | None = None
    category: str | None = None
    brand: str | None = None
    price: float | None = None
    image: str | None = None
    thumbnail: str | None = None
    confidence: float = 1.0  # calibrated 0..1: 0 = as similar as two random items
    duplicates: int = 0  # near-exact duplicates folded into this hit
    # signal name -> {"score": its score, "rank": its rank in that signal's own list}
    matched_by: dict[str, dict[str, float]] = field(default_factory=dict)
    match: str = "similar"  # "exact" (same content), "copy" (verified edited copy), "similar"
    evidence: dict[str, float] = field(default_factory=dict)  # why: inliers, hamming, ...

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class SearchResult:
    hits: list[SearchHit]
    query_kind: str
    query_time_ms: float
    total_candidates: int = 0
    plan: str = ""
    interpretation: dict[str, Any] = field(default_factory=dict)
    # why the result is empty when it is: "no_match" (nothing cleared the minimum
    # confidence) or "filtered_out" (no item passes the filters)
    empty_reason: str | None = None
    message: str | None = None
    search_id: str | None = None  # for click feedback; None when logging is off
    cached: bool = False  # answered from the result cache (no write since)
    stage_ms: dict[str, float] = field(default_factory=dict)  # decode, encode, ann, ...

    def to_dict(self) -> dict[str, Any]:
        return {
            "results": [h.to_dict() for h in self.hits],
            "search_id": self.search_id,
            "cached": self.cached,
            "stage_ms": self.stage_ms,
            "empty_reason": self.empty_reason,
            "message": self.message,
            "query_kind": self.query_kind,
            "query_time_ms": round(self.query_time_ms, 3),
            "total_candidates": self.total_candidates,
            "plan": self.plan,
            "interpretation": self.interpretation,
        }


@dataclass
class IngestFailure:
    source: str  # what the person gave: a file, a URL, a catalog row
    reason: str
    code: str = "error"
    item_id: str | None = None  # the item it was for, when known
    count: int = 1  # files it stands for (files skipped for their extension are grouped)


@dataclass
class IngestReport:
    """What an ingest run did. ``failed`` lists every item that was refused, with why;
    ``skipped`` what was left out on purpose (images too small to describe, files of
    other kinds, by extension), which is no failure."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    failed: list[IngestFailure] = field(default_factory=list)
    seconds: float = 0.0
    skipped: list[IngestFailure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def skipped_files(self) -> int:
        return sum(skip.count for skip in self.skipped)

    @property
    def processed(self) -> int:
        return self.added + self.updated + self.unchanged + len(self.failed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "removed": self.removed,
            "failed": [dataclasses.asdict(f) for f in self.failed],
            "skipped": [dataclasses.asdict(f) for f in self.skipped],
            "seconds": round(self.seconds, 3),
            "images_per_second": round(
                (self.added + self.updated) / self.seconds, 2) if self.seconds else None,
        }


@dataclass(frozen=True)
class VectorSpace:
    """A named space of vectors made by one encoder: what a collection records per space."""

    name: str
    encoder: str
    model_id: str
    dim: int
    modality: Literal["image", "text"]


@dataclass
class Progress:
    """A progress event sent by long work to a callback; the CLI draws it."""

    stage: str
    done: int
    total: int | None
    failed: int = 0
