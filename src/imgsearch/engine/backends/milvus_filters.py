"""``Filters`` as a Milvus boolean expression over the scalar fields that
``milvus_schema`` writes: the same meaning as the catalog's SQL (store.filters), field
by field, so that a filtered search returns the same items on both backends."""

from __future__ import annotations

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


def filter_expression(filters: Filters | None, places: bool = True) -> str:
    """The expression (empty: everything); InvalidFilterError as the catalog raises it,
    UnsupportedOnBackendError for what the Milvus collection cannot evaluate: ``near``
    (an expression computes no distance), and ``places`` in a collection made before it
    kept them (``places`` False)."""
    if filters is None or filters.is_empty():
        return ""
    validate(filters)  # the same checks and messages as the local backend
    if filters.near is not None:
        raise UnsupportedOnBackendError(
            "the near (latitude, longitude, radius) filter is not supported on the milvus "
            "backend")
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
    return " and ".join(clauses)


__all__ = ["filter_expression", "literal"]
