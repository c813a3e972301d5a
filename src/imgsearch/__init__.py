"""imgsearch: find images by image, text, both, several examples or item.

    from imgsearch import Engine, Query
    with Engine.open("./shop") as engine:
        engine.ingest("products.csv")
        for hit in engine.search(Query(text="red shoes", limit=5)).hits:
            print(hit.id, hit.score)
"""

from imgsearch.config import Settings
from imgsearch.engine import Engine
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
