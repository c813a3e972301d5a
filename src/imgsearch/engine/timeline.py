"""The timeline: items newest first, grouped by the month they were taken.

Which date places an item is decided in one place, :data:`DATE_SQL` (and
:func:`month_of` reads what it gives): the date its EXIF says it was taken (local time),
else its ``created_at`` (catalog rows carry it), else its file's modification time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from imgsearch.errors import InvalidQueryError
from imgsearch.types import SearchHit

if TYPE_CHECKING:
    from imgsearch.engine.core import Engine

# The date an item is placed by, as ISO 8601 text (an SQL expression over items).
DATE_SQL = ("COALESCE(CASE WHEN taken_from = 'exif' THEN taken_local END, created_at, "
            "taken_local, strftime('%Y-%m-%dT%H:%M:%S', source_mtime, 'unixepoch', "
            "'localtime'))")
UNDATED = "undated"
MAX_PAGE = 500
MAX_OFFSET = 10_000_000
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")


def month_of(date: str | None) -> str:
    """``"2019-06"`` for any ISO 8601 date or date-time in June 2019; ``"undated"``."""
    if not date:
        return UNDATED
    try:
        parsed = datetime.fromisoformat(date.strip().replace("Z", "+00:00"))
    except ValueError:
        return UNDATED
    return f"{parsed.year:04d}-{parsed.month:02d}"


def month_label(month: str) -> str:
    """``"June 2019"`` for ``"2019-06"``; ``"Undated"``."""
    if month == UNDATED:
        return "Undated"
    year, number = month.split("-")
    return f"{_MONTHS[int(number) - 1]} {year}"


@dataclass
class MonthGroup:
    month: str  # "2019-06", or "undated"
    label: str  # "June 2019"
    hits: list[SearchHit] = field(default_factory=list)
    dates: list[str | None] = field(default_factory=list)  # each hit's date, in order


@dataclass
class TimelinePage:
    groups: list[MonthGroup]
    total: int  # items in the collection
    offset: int
    limit: int

    @property
    def shown(self) -> int:
        return sum(len(g.hits) for g in self.groups)

    @property
    def has_more(self) -> bool:
        return self.offset + self.shown < self.total


def timeline(engine: Engine, offset: int = 0, limit: int = 120) -> TimelinePage:
    """One page of the timeline: ``limit`` items from ``offset``, grouped by month."""
    if not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidQueryError(f"limit must be between 1 and {MAX_PAGE}, got {limit!r}")
    if not isinstance(offset, int) or not 0 <= offset <= MAX_OFFSET:
        raise InvalidQueryError(f"offset must be between 0 and {MAX_OFFSET}, got {offset!r}")
    engine.refresh()
    dated = engine.catalog.keys_by_date(DATE_SQL, offset, limit)
    rows = engine.catalog.hits_by_key([key for key, _ in dated])
    groups: list[MonthGroup] = []
    for key, date in dated:
        found = rows.get(key)
        if found is None:  # deleted since the keys were read
            continue
        month = month_of(date)
        if not groups or groups[-1].month != month:
            groups.append(MonthGroup(month, month_label(month)))
        ident, title, category, brand, price, image, thumbnail = found
        groups[-1].hits.append(SearchHit(ident, 0.0, title, category, brand, price, image,
                                         thumbnail, 0.0, 0, {"timeline": {"score": 0.0}}))
        groups[-1].dates.append(date)
    return TimelinePage(groups, engine.catalog.count(), offset, limit)


__all__ = ["DATE_SQL", "MonthGroup", "TimelinePage", "month_label", "month_of", "timeline"]
