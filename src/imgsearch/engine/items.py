"""Items as the edges describe them (CLI options, API bodies), checked as catalog rows are.

One validation for every way an item comes in: the CLI and the web app build items
here rather than reaching into the ingest stage's field checks themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from imgsearch.ingest import fields as _fields
from imgsearch.types import Item

checked_id = _fields.item_id  # an id: non-empty, valid Unicode, never rewritten
name_text = _fields.name_text  # a file name as text (undecodable bytes as \xNN)
safe_text = _fields.safe_text  # text that can be written back (lone surrogates replaced)


def item_from_fields(item_id: str, values: Mapping[str, Any], attributes: Mapping[str, Any],
                     image: str | None) -> Item:
    """The item that ``values`` (title, price, tags, ...) and ``attributes`` describe."""
    checked = checked_id(item_id)
    fields = _fields.item_fields(values, f"item {checked!r}")
    kept = {key: _fields.attribute(value) for key, value in attributes.items()}
    return Item(id=checked, image=image, attributes=kept, **fields)


__all__ = ["checked_id", "item_from_fields", "name_text", "safe_text"]
