"""Filters on values the collection does not hold: refused, with the values it does.

A category or brand filter that matches no item because of a typo would answer an empty
page without saying why. Where the collection has values for that field and a filter
value matches none of them (compared as the filters compare: trimmed, case-insensitive),
the query is refused and the error lists the known values, most common first. A
collection with no value for the field refuses nothing.
"""

from __future__ import annotations

from imgsearch.errors import InvalidFilterError
from imgsearch.search.protocols import CollectionState
from imgsearch.types import Filters

SHOWN = 20  # known values an error lists


def check_known_values(state: CollectionState, filters: Filters) -> None:
    """InvalidFilterError when a category, brand or camera filter names a value no item has."""
    for column, plural, values in (("category", "categories", filters.categories),
                                   ("brand", "brands", filters.brands),
                                   ("camera", "cameras", filters.cameras)):
        if not values:
            continue
        known, norms = state.known_values(column)
        if not known:
            continue
        unknown = [v for v in values if isinstance(v, str) and v.strip().casefold() not in norms]
        if unknown:
            shown = ", ".join(known[:SHOWN])
            more = f" and {len(known) - SHOWN} more" if len(known) > SHOWN else ""
            raise InvalidFilterError(
                f"unknown {column} {unknown[0]!r}; this collection's {plural}, most common "
                f"first: {shown}{more}")
