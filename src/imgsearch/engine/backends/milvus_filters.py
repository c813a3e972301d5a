"""``Filters`` as a Milvus boolean expression over the scalar fields that
``milvus_schema`` writes: the same meaning as the catalog's SQL (store.filters), field
by field, so that a filtered search returns the same items on both backends."""

from __future__ import annotations

import math

from imgsearch.enrich.places import EARTH_KM
from imgsearch.errors import UnsupportedOnBackendError
from imgsearch.store.catalog import attribute_text, norm
from imgsearch.store.filters import numeric_forms, validate
from imgsearch.types import Filters


def literal(value: str) -> str:
    """A Milvus string literal (double-quoted, backslash and quote escaped)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _list(values: list[str]) -> str:
    return "[" + ", ".join(literal(v) for v in values) + "]"


def _norms(values: tuple[str, ...]) -> list[str]:
    return sorted({norm(v) or "" for v in values})


NEAR_OLD = ("the near (latitude, longitude, radius) filter needs a milvus collection made "
            "by this version (it keeps the items' positions): migrate the items into a new "
            "one")


def near_box(near: tuple[float, float, float]) -> str:
    """A box on latitude and longitude holding every point within the radius of ``near``
    (an expression computes no distance: the exact great-circle check follows on the
    node). Longitude is left open where the box reaches a pole; across the 180th
    meridian it is two ranges."""
    lat, lon, km = (float(v) for v in near)
    radius = math.degrees(km / EARTH_KM)
    margin = 1e-9  # degrees: rounding must not cut a point on the circle out of the box
    south, north = lat - radius - margin, lat + radius + margin
    clauses = ["has_position == true", f"latitude >= {south!r}", f"latitude <= {north!r}"]
    if south > -90 and north < 90 and radius < 90:
        # the widest longitude spread of a spherical cap centred at ``lat``
        spread = math.degrees(math.asin(min(1.0, math.sin(math.radians(radius))
                                             / math.cos(math.radians(lat))))) + margin
        west, east = lon - spread, lon + spread
        if west < -180:
            clauses.append(f"(longitude >= {west + 360!r} or longitude <= {east!r})")
        elif east > 180:
            clauses.append(f"(longitude >= {west!r} or longitude <= {east - 360!r})")
        else:
            clauses += [f"longitude >= {west!r}", f"longitude <= {east!r}"]
    return "(" + " and ".join(clauses) + ")"


def filter_expression(filters: Filters | None, places: bool = True,
                      positions: bool = False) -> str:
    """The expression (empty: everything); InvalidFilterError as the catalog raises it,
    UnsupportedOnBackendError for what the Milvus collection cannot evaluate: ``places``
    in a collection made before it kept them (``places`` False), ``near`` in one made
    before it kept positions (``positions`` False). ``near`` becomes a box
    (``near_box``): the backend checks the exact distance of what passes."""
    if filters is None or filters.is_empty():
        return ""
    validate(filters)  # the same checks and messages as the local backend
    if filters.near is not None and not positions:
        raise UnsupportedOnBackendError(NEAR_OLD)
    if filters.places and not places:
        raise UnsupportedOnBackendError(
            "the place filter (city, region or country) needs a milvus collection made by "
            "this version (it keeps the places field): migrate the items into a new one")
    clauses: list[str] = []
    for values, field in ((filters.categories, "category_norm"),
                          (filters.brands, "brand_norm"),
                          (filters.licenses, "license_norm"),
                          (filters.cameras, "camera_norm")):
        if values:
            clauses.append(f"{field} in {_list(_norms(values))}")
    if filters.price_min is not None:
        clauses.append(f"(has_price == true and price >= {float(filters.price_min)!r})")
    if filters.price_max is not None:
        clauses.append(f"(has_price == true and price <= {float(filters.price_max)!r})")
    if filters.colors:
        clauses.append(f"array_contains_any(colors, {_list(_norms(filters.colors))})")
    for tag in _norms(filters.tags):
        clauses.append(f"array_contains(tags, {literal(tag)})")
    if filters.orientation is not None:
        clauses.append(f"orientation == {literal(filters.orientation)}")
    if filters.min_width is not None:
        clauses.append(f"width >= {int(filters.min_width)}")
    if filters.min_height is not None:
        clauses.append(f"height >= {int(filters.min_height)}")
    for name, value in sorted(filters.attributes.items()):
        forms = {attribute_text(value)}
        if isinstance(value, str):
            forms.update(numeric_forms(value))
        # equalities rather than `in`: Milvus Lite takes no JSON path left of `in`
        either = " or ".join(f"attributes[{literal(name)}] == {literal(form)}"
                             for form in sorted(forms))
        clauses.append(f"({either})")
    if filters.places:
        wanted = sorted({p.strip().casefold() for p in filters.places})
        clauses.append(f"array_contains_any(places, {_list(wanted)})")
    if filters.taken_after is not None:
        clauses.append(f"taken_local >= {literal(filters.taken_after.strip().replace(' ', 'T'))}")
    if filters.taken_before is not None:
        clauses.append(f'(taken_local != "" and taken_local < '
                       f'{literal(filters.taken_before.strip().replace(" ", "T"))})')
    if filters.near is not None:
        clauses.append(near_box(filters.near))
    return " and ".join(clauses)


__all__ = ["NEAR_OLD", "filter_expression", "literal", "near_box"]
