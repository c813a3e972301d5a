"""Filters as SQL over the items table (and its tag / colour / attribute tables)."""

from __future__ import annotations

import json
import math
from typing import Any

from imgsearch.errors import InvalidFilterError
from imgsearch.types import Filters

_ORIENTATIONS = ("landscape", "portrait", "square")


def _norms(values: tuple[str, ...], name: str) -> list[str]:
    out = []
    for value in values:
        if not isinstance(value, str) or not value.strip():
            raise InvalidFilterError(f"{name} filter values must be non-empty strings, "
                                     f"got {value!r}")
        out.append(value.strip().casefold())
    return out


def _number(value: float | None, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidFilterError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def validate(filters: Filters) -> None:
    if filters.orientation is None and filters.is_empty():
        return  # nothing to check (the usual search): spares building the SQL
    filter_sql(filters)


def filter_sql(filters: Filters) -> tuple[str, list[Any]]:
    """A WHERE clause (never empty) and its parameters; InvalidFilterError if unusable."""
    clauses: list[str] = []
    params: list[Any] = []
    if filters.categories:
        values = _norms(filters.categories, "category")
        clauses.append(f"category_norm IN ({', '.join('?' * len(values))})")
        params += values
    if filters.brands:
        values = _norms(filters.brands, "brand")
        clauses.append(f"brand_norm IN ({', '.join('?' * len(values))})")
        params += values
    if filters.licenses:
        values = _norms(filters.licenses, "license")
        clauses.append(f"license_norm IN ({', '.join('?' * len(values))})")
        params += values
    low = _number(filters.price_min, "price_min")
    high = _number(filters.price_max, "price_max")
    if low is not None and high is not None and low > high:
        raise InvalidFilterError(f"price_min ({low:g}) is greater than price_max ({high:g})")
    if low is not None:
        clauses.append("price >= ?")
        params.append(low)
    if high is not None:
        clauses.append("price <= ?")
        params.append(high)
    if filters.colors:
        values = _norms(filters.colors, "color")
        clauses.append(f"key IN (SELECT key FROM item_colors WHERE color IN "
                       f"({', '.join('?' * len(values))}))")
        params += values
    for tag in _norms(filters.tags, "tag"):
        # every tag given must be present
        clauses.append("key IN (SELECT key FROM item_tags WHERE tag = ?)")
        params.append(tag)
    if filters.orientation is not None:
        if filters.orientation not in _ORIENTATIONS:
            raise InvalidFilterError(f"orientation must be one of {', '.join(_ORIENTATIONS)}, "
                                     f"got {filters.orientation!r}")
        clauses.append("orientation = ?")
        params.append(filters.orientation)
    for name, column in (("min_width", "width"), ("min_height", "height")):
        value = getattr(filters, name)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidFilterError(f"{name} must be a non-negative integer, got {value!r}")
            clauses.append(f"{column} >= ?")
            params.append(value)
    for name, value in filters.attributes.items():
        if not isinstance(name, str) or not name:
            raise InvalidFilterError(f"attribute names must be non-empty strings, got {name!r}")
        forms = {value if isinstance(value, str) else json.dumps(value, sort_keys=True)}
        if isinstance(value, str):
            forms.update(_numeric_forms(value))
        clauses.append(f"key IN (SELECT key FROM item_attributes WHERE name = ? AND value IN "
                       f"({', '.join('?' * len(forms))}))")
        params += [name, *sorted(forms)]
    return (" AND ".join(clauses) or "1"), params


def _numeric_forms(text: str) -> set[str]:
    """'5' on a command line also matches an attribute stored as the number 5 or 5.0."""
    try:
        number = float(text)
    except ValueError:
        return {text.lower()} if text.lower() in ("true", "false") else set()
    forms = {json.dumps(number)}
    if number.is_integer():
        forms.add(json.dumps(int(number)))
    return forms
