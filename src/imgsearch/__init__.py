"""imgsearch: find images by image, text, both, several examples or item.

    from imgsearch import Engine, Query
    with Engine.open("./shop") as engine:
        engine.ingest("products.csv")
        for hit in engine.search(Query(text="red shoes", limit=5)).hits:
            print(hit.id, hit.score)
"""

from typing import TYPE_CHECKING, Any

from imgsearch.config import Settings
from imgsearch.errors import ImgSearchError
from imgsearch.types import (
    Filters,
    IngestFailure,
    IngestReport,
    Item,
    Query,
    SearchHit,
    SearchResult,
    VectorSpace,
)
from imgsearch.version import __version__ as __version__

if TYPE_CHECKING:
    from imgsearch.engine import Engine

__all__ = [
    "Engine",
    "Filters",
    "ImgSearchError",
    "IngestFailure",
    "IngestReport",
    "Item",
    "Query",
    "SearchHit",
    "SearchResult",
    "Settings",
    "VectorSpace",
]


def __getattr__(name: str) -> Any:
    # the engine (faiss, the stages, their libraries) loads when first asked for, so the
    # command line's help and light commands start without it
    if name == "Engine":
        from imgsearch.engine.core import Engine

        return Engine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
