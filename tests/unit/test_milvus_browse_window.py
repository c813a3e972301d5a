"""The window a milvus browse scans (``milvus_positions.browse_page``), over rows held
in memory: the same page as sorting every row, while reading few rows where many pass."""

from __future__ import annotations

import random
import re
import time

import pytest

from imgsearch.engine.backends.milvus_positions import SCAN_ALL, browse_page, newest

YEAR_US = 365 * 24 * 3600 * 1_000_000


class Rows:
    """Rows with ``added`` stamps; counts and scans read the threshold of ``added >= T``
    (``stale``: counts see this many deleted rows too)."""

    def __init__(self, stamps: list[int], stale: int = 0) -> None:
        self.rows = [{"id": f"r{i:06d}", "added": a} for i, a in enumerate(stamps)]
        self.stale = stale
        self.read = 0
        self.counts = 0

    def _passing(self, expr: str) -> list[dict[str, int | str]]:
        found = re.search(r"added >= (\d+)$", expr)
        low = int(found.group(1)) if found else -1
        return [r for r in self.rows if int(r["added"]) >= low]

    def count(self, expr: str, _consistency: str | None) -> int:
        self.counts += 1
        return len(self._passing(expr)) + self.stale

    def scan(self, expr: str) -> list[dict[str, int | str]]:
        passing = self._passing(expr)
        self.read += len(passing)
        return passing


def stamped(kind: str, n: int) -> list[int]:
    now, rng = time.time_ns() // 1000, random.Random(kind)
    if kind == "spread":  # over the last two years
        return [now - rng.randrange(2 * YEAR_US) for _ in range(n)]
    if kind == "bulk":  # one import three years ago, a microsecond apart
        return [now - 3 * YEAR_US + i for i in range(n)]
    # an old bulk import and a few items this week
    return [now - 3 * YEAR_US + i for i in range(n - 50)] + \
           [now - rng.randrange(7 * 24 * 3600 * 1_000_000) for _ in range(50)]


@pytest.mark.parametrize("kind", ["spread", "bulk", "recent"])
@pytest.mark.parametrize("offset, limit", [(0, 10), (90, 30), (0, 1)])
def test_the_page_is_the_sorted_rows_page(kind: str, offset: int, limit: int) -> None:
    rows = Rows(stamped(kind, 3 * SCAN_ALL))
    truth = newest(rows.rows, offset, limit)
    assert browse_page("", offset, limit, rows.count, rows.scan) == truth
    assert rows.counts <= 16  # windows, then a few guesses


@pytest.mark.parametrize("kind, offset, limit", [("spread", 0, 10), ("spread", 90, 30),
                                                 ("recent", 0, 10)])
def test_a_window_reads_few_rows_where_items_came_over_time(kind: str, offset: int,
                                                            limit: int) -> None:
    rows = Rows(stamped(kind, 3 * SCAN_ALL))
    browse_page("", offset, limit, rows.count, rows.scan)
    assert rows.read <= SCAN_ALL // 2  # not the 60,000 rows that pass


def test_one_bulk_import_is_scanned_whole() -> None:
    rows = Rows(stamped("bulk", 3 * SCAN_ALL))
    browse_page("", 0, 10, rows.count, rows.scan)
    assert rows.read >= 3 * SCAN_ALL  # the limit the README states


def test_counts_that_see_deleted_rows_fall_back_to_the_whole_scan() -> None:
    rows = Rows(stamped("recent", 3 * SCAN_ALL), stale=SCAN_ALL)
    truth = newest(rows.rows, 0, 20)
    assert browse_page("", 0, 20, rows.count, rows.scan)[1] == truth[1]


def test_few_passing_rows_are_scanned_whole() -> None:
    rows = Rows(stamped("spread", 100))
    assert browse_page('brand_norm == "x"', 0, 5, rows.count, rows.scan) == \
        newest(rows.rows, 0, 5)
    assert rows.counts == 1 and rows.read == 100
