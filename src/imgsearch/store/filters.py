"""Filters as SQL over the items table (and its tag / colour / attribute tables)."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from imgsearch.enrich.places import EARTH_KM
from imgsearch.errors import InvalidFilterError
from imgsearch.types import Filters

_ORIENTATIONS = ("landscape", "portrait", "square")
# a date-time bound: a year, a month, a day, or a full local date-time
_WHEN = re.compile(r"^\d{4}(-\d{2}(-\d{2}([T ]\d{2}(:\d{2}(:\d{2})?)?)?)?)?$")


def _when(value: str | None, name: str) -> str | None:
    """A date bound as the ISO prefix the taken_local column is compared with."""
    if value is None:
        return None
    if not isinstance(value, str) or not _WHEN.match(value.strip()):
        raise InvalidFilterError(f"{name} must be a date like 2019, 2019-06 or 2019-06-01 "
                                 f"(or 2019-06-01T14:30), got {value!r}")
    return value.strip().replace(" ", "T")


def _photo_sql(filters: Filters) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    after = _when(filters.taken_after, "taken_after")
    before = _when(filters.taken_before, "taken_before")
    if after is not None and before is not None and after >= before:
        raise InvalidFilterError(f"taken_after ({after}) is not before taken_before ({before})")
    if after is not None:
        clauses.append("taken_local >= ?")
        params.append(after)
    if before is not None:
        clauses.append("taken_local < ?")
        params.append(before)
    if filters.cameras:
        values = _norms(filters.cameras, "camera")
        clauses.append(f"camera_norm IN ({', '.join('?' * len(values))})")
        params += values
    if filters.near is not None:
        lat, lon, km = _near(filters.near)
        # a box first (the latitude index answers it), then the exact distance
        dlat = math.degrees(km / EARTH_KM)
        clauses.append("latitude BETWEEN ? AND ? AND km_between(latitude, longitude, ?, ?) "
                       "<= ?")
        params += [lat - dlat, lat + dlat, lat, lon, km]
    if filters.places:
        values = _norms(filters.places, "place")
        marks = ", ".join("?" * len(values))
        # fold(): SQLite's lower() folds ASCII only ("ZÜRICH" is Zürich too)
        clauses.append(f"(fold(city) IN ({marks}) OR fold(region) IN ({marks}) "
                       f"OR fold(country) IN ({marks}))")
        params += values * 3
    return clauses, params


def fold(value: object) -> str | None:
    """A text value case-folded (the SQL function ``fold``), as filter values are."""
    return value.casefold() if isinstance(value, str) else None


def _near(near: Any) -> tuple[float, float, float]:
    try:
        lat, lon, km = (float(v) for v in near)
    except (TypeError, ValueError):
        raise InvalidFilterError(f"near must be latitude, longitude and a radius in km, "
                                 f"got {near!r}") from None
    if not all(math.isfinite(v) for v in (lat, lon, km)):
        raise InvalidFilterError(f"near must be finite numbers, got {near!r}")
    if not -90 <= lat <= 90 or not -180 <= lon <= 180:
        raise InvalidFilterError(f"near: latitude must be within -90..90 and longitude "
                                 f"within -180..180, got {lat:g}, {lon:g}")
    if not 0 < km <= 20_000:
        raise InvalidFilterError(f"near: the radius must be over 0 and at most 20000 km, "
                                 f"got {km:g}")
    return lat, lon, km


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
            forms.update(numeric_forms(value))
        clauses.append(f"key IN (SELECT key FROM item_attributes WHERE name = ? AND value IN "
                       f"({', '.join('?' * len(forms))}))")
        params += [name, *sorted(forms)]
    photo_clauses, photo_params = _photo_sql(filters)
    clauses += photo_clauses
    params += photo_params
    return (" AND ".join(clauses) or "1"), params


def numeric_forms(text: str) -> set[str]:
    """'5' on a command line also matches an attribute stored as the number 5 or 5.0."""
    try:
        number = float(text)
    except ValueError:
        return {text.lower()} if text.lower() in ("true", "false") else set()
    forms = {json.dumps(number)}
    if number.is_integer():
        forms.add(json.dumps(int(number)))
    return forms
