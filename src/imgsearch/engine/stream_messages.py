"""What a stream message means: an upsert of one item, or a delete.

A message is a Redis stream entry, a flat map of text fields::

    op            upsert (the default) or delete
    id            the item's id (required)
    image         an http(s) URL, or a path under one of the consumer's image roots
    image_base64  the image's bytes, base64 (instead of ``image``)
    title, description, category, brand, price, color, license, tags, popularity,
    rating, conversion, created_at
                  checked as a catalog row's columns are (``ingest.fields``)
    attributes    a JSON object; any other field is an attribute too, as in catalogs

A message that cannot be an item raises :class:`MessageError` with its reason; the
consumer moves it to the dead-letter stream.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal

from imgsearch.errors import InvalidFieldError
from imgsearch.ingest import fields as item_fields
from imgsearch.types import KNOWN_FIELDS, ImageInput, Item

_CONTROL_FIELDS = frozenset({"op", "image_base64", "attributes"})
_USER_FIELDS = [f.name for f in fields(Item) if f.name in KNOWN_FIELDS or f.name == "attributes"]


class MessageError(Exception):
    """Why a message cannot be applied; ``code`` is a short snake_case name."""

    def __init__(self, reason: str, code: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


@dataclass
class Change:
    """One message, understood: an upsert (with its image) or a delete of ``item_id``."""

    op: Literal["upsert", "delete"]
    item_id: str
    item: Item | None = None
    image: ImageInput | None = None


def parse_message(message: Mapping[str, str], image_roots: Sequence[Path],
                  max_image_bytes: int) -> Change:
    """The change a message asks for; raises :class:`MessageError` saying what is wrong."""
    op = message.get("op", "upsert").strip().lower()
    if op not in ("upsert", "delete"):
        raise MessageError(f"unknown op {op[:50]!r}; use upsert or delete", "bad_op")
    try:
        item_id = item_fields.item_id(message.get("id"))
    except InvalidFieldError as exc:
        raise MessageError(exc.message, exc.reason_code) from None
    if op == "delete":
        return Change("delete", item_id)
    image, reference = _image(message, item_id, image_roots, max_image_bytes)
    label = f"item {item_id!r}"
    try:
        values = item_fields.item_fields(message, label)
    except InvalidFieldError as exc:
        raise MessageError(exc.message, exc.reason_code) from None
    attributes = _attributes(message.get("attributes"), label)
    attributes.update({key: item_fields.attribute(value) for key, value in message.items()
                       if key not in KNOWN_FIELDS and key not in _CONTROL_FIELDS and key
                       and not item_fields.is_empty(value)})
    values["attributes"] = attributes
    return Change("upsert", item_id, Item(id=item_id, image=reference, **values), image)


def _attributes(text: str | None, label: str) -> dict[str, object]:
    if item_fields.is_empty(text):
        return {}
    try:
        value = json.loads(str(text))
    except ValueError as exc:
        raise MessageError(f"{label}: attributes is not valid JSON ({exc})",
                           "bad_attributes") from None
    if not isinstance(value, dict):
        raise MessageError(f"{label}: attributes must be a JSON object", "bad_attributes")
    return {str(k): item_fields.attribute(v) for k, v in value.items()}


def _image(message: Mapping[str, str], item_id: str, roots: Sequence[Path],
           max_bytes: int) -> tuple[ImageInput, str | None]:
    """The image to decode and the reference the item keeps (None for bytes)."""
    encoded = message.get("image_base64")
    reference = item_fields.text(message.get("image"))
    if encoded and reference:
        raise MessageError(f"item {item_id!r}: give image or image_base64, not both",
                           "two_images")
    if encoded:
        if len(encoded) > (max_bytes // 3 + 1) * 4:
            raise MessageError(f"item {item_id!r}: image_base64 holds more than "
                               f"{max_bytes} bytes", "image_too_large")
        try:
            return base64.b64decode(encoded, validate=True), None
        except (binascii.Error, ValueError):
            raise MessageError(f"item {item_id!r}: image_base64 is not valid base64",
                               "bad_base64") from None
    if not reference:
        raise MessageError(f"item {item_id!r}: an upsert needs image (a URL or a path) or "
                           f"image_base64", "missing_image")
    if reference.startswith(("http://", "https://")):
        return reference, reference
    if "://" in reference:
        raise MessageError(f"item {item_id!r}: image {reference[:200]!r} is neither an "
                           f"http(s) URL nor a path", "bad_image_ref")
    return _allowed_path(reference, item_id, roots)


def _allowed_path(reference: str, item_id: str, roots: Sequence[Path]
                  ) -> tuple[ImageInput, str]:
    if not roots:
        raise MessageError(f"item {item_id!r}: image paths are not accepted from this "
                           f"stream (start the consumer with --image-root DIR to allow "
                           f"paths under DIR)", "path_not_allowed")
    if "\x00" in reference:
        raise MessageError(f"item {item_id!r}: the image path holds a NUL byte",
                           "bad_image_path")
    given = Path(reference)
    for root in roots:
        real_root = root.resolve()
        path = given if given.is_absolute() else real_root / given
        real = Path(os.path.realpath(path))
        if real.is_relative_to(real_root):
            return real, str(real)
    raise MessageError(f"item {item_id!r}: image path {reference[:200]!r} is outside the "
                       f"allowed image root(s) {', '.join(map(str, roots))}",
                       "path_not_allowed")


def unchanged(stored: Item | None, change: Change, content_hash: str | None) -> bool:
    """Whether applying ``change`` again would leave ``stored`` as it is: the same
    metadata and the same image (by content hash, or the same URL)."""
    if stored is None or change.item is None:
        return False
    item = change.item
    if any(getattr(stored, name) != getattr(item, name) for name in _USER_FIELDS):
        return False
    if content_hash is not None:
        return stored.content_hash == content_hash
    return item.image is not None and stored.image == item.image
