"""One validation for an item's fields, whatever they came from.

Catalog rows (CSV, JSONL, Parquet) and API bodies (``PUT /v1/items/{id}``, batch
upserts) both pass their values through :func:`item_fields`, so that a price, a number
or a date the catalog refuses is refused over HTTP too, with the same words. A bad
value raises :class:`~imgsearch.errors.InvalidFieldError` naming the field.

Text is made safe to store: a file name that is not UTF-8 reaches Python as lone
surrogates (``surrogateescape``), which SQLite and tokenizers refuse; :func:`safe_text`
turns them into replacement characters and :func:`name_text` into ``\\xNN`` escapes.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from imgsearch.errors import InvalidFieldError

TEXT_FIELDS = ("title", "description", "category", "brand", "color", "license")
NUMBER_FIELDS = ("popularity", "rating", "conversion")
_TAG_SEPARATORS = re.compile(r"[,|;]")
_SURROGATES = re.compile("[\ud800-\udfff]")
# "$1,234.50", "1234.5", "EUR 12", "12 €": a currency mark or code, dot decimals and
# optional comma thousands separators. "79,99" is refused rather than guessed at.
_PRICE = re.compile(
    r"^(?:[A-Z]{3}\s*)?[$€£¥]?\s*(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?\s*[$€£¥]?(?:\s*[A-Z]{3})?$")


def safe_text(value: str) -> str:
    """``value`` with lone surrogates (undecodable bytes) replaced by U+FFFD."""
    return _SURROGATES.sub("\ufffd", value)


def name_text(name: str) -> str:
    """A file name as valid UTF-8 text: undecodable bytes become ``\\xNN``.

    Unlike :func:`safe_text`, two names that differ only in their undecodable bytes
    stay different, so the result can serve as an id.
    """
    if not _SURROGATES.search(name):
        return name
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def is_empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, str):
        return not value.strip()
    return False


def text(value: Any) -> str | None:
    if is_empty(value):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # ids stored as floats by spreadsheet tools: 12.0 is "12"
    return safe_text(str(value).strip())


def item_id(value: Any) -> str:
    """An item id: non-empty text that is valid Unicode (ids are never rewritten)."""
    found = None if is_empty(value) else str(value).strip()
    if found is None:
        raise InvalidFieldError("id", "missing or empty id", "missing_id")
    if _SURROGATES.search(found):
        raise InvalidFieldError("id", f"id {safe_text(found)[:200]!r} is not valid Unicode "
                                      "text (it holds undecodable characters)")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return found


def item_fields(values: Mapping[str, Any], label: str) -> dict[str, Any]:
    """The user fields of an item, checked and normalised.

    ``values`` holds any of the text fields, ``price``, the number fields,
    ``created_at`` and ``tags`` (missing ones are None); ``label`` names the item in
    messages (e.g. ``item 'a'``).
    """
    fields: dict[str, Any] = {name: text(values.get(name)) for name in TEXT_FIELDS}
    fields["price"] = price(label, values.get("price"))
    for name in NUMBER_FIELDS:
        fields[name] = number(label, name, values.get(name))
    fields["created_at"] = timestamp(label, values.get("created_at"))
    fields["tags"] = tags(values.get("tags"))
    return fields


def price(label: str, value: Any) -> float | None:
    if is_empty(value):
        return None
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        found = float(value)
    else:
        match = _PRICE.match(str(value).strip())
        if match is None:
            raise InvalidFieldError("price", f"{label}: cannot read price {str(value)[:50]!r}; "
                                             "write it like 79.99 or $1,234.50")
        found = float(match.group(1).replace(",", "") + (match.group(2) or ""))
    if not math.isfinite(found) or found < 0:
        raise InvalidFieldError("price", f"{label}: price {value!r} must be a number >= 0")
    return found


def number(label: str, name: str, value: Any) -> float | None:
    if is_empty(value):
        return None
    try:
        if isinstance(value, bool):
            raise ValueError(value)
        found = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError, OverflowError):
        raise InvalidFieldError(name, f"{label}: {name} {str(value)[:50]!r} is not a number"
                                ) from None
    if not math.isfinite(found):
        raise InvalidFieldError(name, f"{label}: {name} must be a finite number, not "
                                      f"{str(value)[:50]!r}")
    return found


def timestamp(label: str, value: Any) -> str | None:
    if is_empty(value):
        return None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, tz=UTC).isoformat()
        except (OverflowError, OSError, ValueError):
            raise InvalidFieldError("created_at", f"{label}: created_at {value!r} is not a "
                                                  "valid timestamp") from None
    found = str(value).strip()
    try:
        datetime.fromisoformat(found)
    except ValueError:
        raise InvalidFieldError("created_at", f"{label}: created_at {safe_text(found)[:50]!r} "
                                "is not an ISO 8601 date (e.g. 2024-05-01 or "
                                "2024-05-01T12:00:00Z)") from None
    return found


def tags(value: Any) -> tuple[str, ...]:
    if is_empty(value):
        return ()
    parts = value if isinstance(value, list | tuple) else _TAG_SEPARATORS.split(str(value))
    cleaned = (text(part) for part in parts if not is_empty(part))
    return tuple(dict.fromkeys(tag for tag in cleaned if tag))


def attribute(value: Any) -> Any:
    """Keep attribute values JSON-friendly and storable."""
    if isinstance(value, str):
        return safe_text(value.strip())
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, list | tuple):
        return [attribute(part) for part in value if not is_empty(part)]
    if isinstance(value, dict):
        return {safe_text(str(k)): attribute(v) for k, v in value.items() if not is_empty(v)}
    return value


__all__ = [
    "NUMBER_FIELDS",
    "TEXT_FIELDS",
    "attribute",
    "is_empty",
    "item_fields",
    "item_id",
    "name_text",
    "number",
    "price",
    "safe_text",
    "tags",
    "text",
    "timestamp",
]
