"""What the web page and the thumbnail route ask of a node over a remote collection:
an item's thumbnail, read from the backend's row (milvus schema 3), and the values the
search form offers."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from imgsearch.enrich.colors import BASIC_COLORS
from imgsearch.errors import NotFoundError, UnsupportedOnBackendError

if TYPE_CHECKING:
    from imgsearch.engine.remote import RemoteEngine


def thumbnail(engine: RemoteEngine, item_id: str) -> tuple[bytes, str]:
    """The item's JPEG thumbnail and an ETag that changes with it. ItemNotFoundError for
    an unknown item, NotFoundError for one without a thumbnail, and
    UnsupportedOnBackendError, saying why, on a collection that holds none."""
    reason = engine.refuses("thumbnails")
    if reason is not None:
        raise UnsupportedOnBackendError(reason)
    item = engine.get(item_id)
    data = engine.backend.thumbnails([item_id], {item_id: item.thumbnail}).get(item_id) \
        if item.thumbnail else None
    if not data:
        raise NotFoundError(f"item {item_id!r} has no thumbnail")
    return data, '"' + hashlib.sha256(data).hexdigest()[:20] + '"'


def facets(engine: RemoteEngine, limit: int = 200) -> dict[str, Any]:
    """The search form's choices: categories and brands as the collection holds them
    (case-folded, most common first, not counted: ``count`` is None; none over
    ``concept_vocabulary_max_items`` items), the colour names with their swatch hex; no
    places (a node does not count them)."""
    return {
        "categories": [{"value": v, "count": None}
                       for v in engine.known_values("category")[0][:limit]],
        "brands": [{"value": v, "count": None}
                   for v in engine.known_values("brand")[0][:limit]],
        "colors": {name: "#{:02x}{:02x}{:02x}".format(*rgb)
                   for name, rgb in BASIC_COLORS.items()},
        "places": [],
    }


__all__ = ["facets", "thumbnail"]
