"""How an item becomes a Milvus row and back: the scalar fields every filter reads
(normalised as the catalog normalises them), the item itself as JSON (so that API nodes
keep nothing of their own), the text BM25 reads, and one vector field per space."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from imgsearch.engine.backends import milvus_thumbnails
from imgsearch.errors import InvalidFieldError
from imgsearch.store.catalog import attribute_text, norm
from imgsearch.store.shards import item_from_json, item_json
from imgsearch.types import Item

SCHEMA_MARK = "imgsearch collection"  # the collection description starts with it
# 2: a places field (city, region, country) for the place filter; 3: a thumbnail field
# (``milvus_thumbnails``: what thumbnails, the web page and verified copies read) and
# POSITIONED (when an item was first added, for browsing newest first; latitude and
# longitude, for near). Each feature is told by its fields being there.
SCHEMA_VERSION = 3
MAX_ID = 1024
MAX_SHORT = 1024
MAX_TEXT = 65_535
MAX_LIST = 256
MAX_JSON = 65_536
SCALARS = ("id", "category_norm", "brand_norm", "license_norm", "camera_norm",
           "orientation", "taken_local", "price", "has_price", "width", "height", "colors",
           "tags", "attributes", "item", "text")
POSITIONED = ("added", "latitude", "longitude", "has_position")
_SPACE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,30}$")


def vector_field(space: str) -> str:
    if not _SPACE_NAME.match(space):
        raise InvalidFieldError("space", f"space name {space!r} cannot name a Milvus field "
                                         f"(letters, digits and _ only)")
    return f"v_{space}"


def presence_field(space: str) -> str:
    return f"has_{space}"


def _short(value: str | None, name: str, item_id: str) -> str:
    text = value or ""
    if len(text.encode()) > MAX_SHORT:
        raise InvalidFieldError(name, f"item {item_id!r}: its {name} is over {MAX_SHORT} "
                                      f"bytes, more than the milvus backend stores")
    return text


def _listed(values: set[str], name: str, item_id: str) -> list[str]:
    kept = sorted(v for v in values if v)
    if len(kept) > MAX_LIST or any(len(v.encode()) > MAX_SHORT for v in kept):
        raise InvalidFieldError(name, f"item {item_id!r}: over {MAX_LIST} {name} or one over "
                                      f"{MAX_SHORT} bytes, more than the milvus backend stores")
    return kept


def colors_of(item: Item) -> set[str]:
    """Colour names a colour filter matches, as the catalog's item_colors holds them."""
    found = {norm(c) or "" for c in item.colors if c}
    if item.color:
        found.update(norm(c) or "" for c in item.color.replace("/", ",").split(",")
                     if c.strip())
    return found


def places_of(item: Item) -> set[str]:
    """What a place filter matches: the item's city, region and country, case-folded as
    the catalog's fold() compares them."""
    return {p.strip().casefold() for p in (item.city, item.region, item.country)
            if p and p.strip()}


def to_row(item: Item, vectors: Mapping[str, NDArray[np.float32]],
           spaces: Mapping[str, int], places: bool = True,
           thumbnail: bytes | None = None, thumbnails: bool = False,
           added: int | None = None) -> dict[str, Any]:
    """The Milvus row of ``item``: a space it has no vector in gets zeros, marked absent;
    ``places``: the collection has the places field (made by schema 2 or later);
    ``thumbnails``: it has the thumbnail field (schema 3), which holds ``thumbnail``
    (JPEG bytes), named in the stored item; ``added``: when the item was first added
    (microseconds), for a collection with the POSITIONED fields (schema 3), None for an
    older one."""
    if len(item.id.encode()) > MAX_ID:
        raise InvalidFieldError("id", f"id {item.id[:80]!r}... is over {MAX_ID} bytes, more "
                                      f"than the milvus backend stores")
    stored = item_json(item)
    if len(stored.encode()) > MAX_JSON:
        raise InvalidFieldError("item", f"item {item.id!r} is over {MAX_JSON} bytes as JSON")
    row: dict[str, Any] = {
        "id": item.id,
        "category_norm": _short(norm(item.category), "category", item.id),
        "brand_norm": _short(norm(item.brand), "brand", item.id),
        "license_norm": _short(norm(item.license), "license", item.id),
        "camera_norm": _short(norm(item.camera), "camera", item.id),
        "orientation": item.orientation or "",
        "taken_local": item.taken_at[:19] if item.taken_at else "",
        "price": float(item.price) if item.price is not None else 0.0,
        "has_price": item.price is not None,
        "width": int(item.width) if item.width is not None else -1,
        "height": int(item.height) if item.height is not None else -1,
        "colors": _listed(colors_of(item), "colors", item.id),
        "tags": _listed({norm(t) or "" for t in item.tags if t and t.strip()}, "tags",
                        item.id),
        "attributes": {name: attribute_text(value) for name, value in item.attributes.items()
                       if value is not None},
        "item": json.loads(stored),  # with no thumbnail (``item_json``) unless held here
        "text": item.metadata_text()[:MAX_TEXT // 4],  # characters, each up to 4 bytes
    }
    if thumbnails:
        row["thumbnail"] = milvus_thumbnails.to_field(thumbnail)
        if row["thumbnail"]:
            row["item"]["thumbnail"] = milvus_thumbnails.mark(row["thumbnail"])
    if places:
        row["places"] = _listed(places_of(item), "places", item.id)
    if added is not None:
        row.update(positioned(item, added))
    for space, dim in spaces.items():
        vector = vectors.get(space)
        if vector is not None and len(vector) != dim:
            raise InvalidFieldError("vector", f"item {item.id!r}: its {space} vector has "
                                              f"{len(vector)} dimensions, the space {dim}")
        row[vector_field(space)] = (np.zeros(dim, np.float32) if vector is None
                                    else np.asarray(vector, np.float32)).tolist()
        row[presence_field(space)] = vector is not None
    return row


def positioned(item: Item, added: int) -> dict[str, Any]:
    """The POSITIONED fields of ``item``: a position is kept when both coordinates are."""
    lat, lon = item.latitude, item.longitude
    known = lat is not None and lon is not None
    return {"added": int(added), "has_position": known,
            "latitude": float(lat) if lat is not None and known else 0.0,
            "longitude": float(lon) if lon is not None and known else 0.0}


def from_row(row: Mapping[str, Any]) -> Item:
    stored = row["item"]
    text = stored if isinstance(stored, str) else json.dumps(stored)
    return item_from_json(text, f"milvus row {row.get('id')!r}")


__all__ = ["POSITIONED", "SCALARS", "SCHEMA_MARK", "SCHEMA_VERSION", "colors_of",
           "from_row", "places_of", "positioned", "presence_field", "to_row", "vector_field"]
