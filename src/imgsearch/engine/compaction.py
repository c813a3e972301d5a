"""When the vector files are compacted: dead rows past a share of a file, or on request.

A vector file is append-only (``store.vectors``): a replaced or deleted vector leaves its
row behind, dead. Compaction (``Catalog.compact_vectors``) copies the live rows into the
next generation's file, fsyncs it, and names it in the catalog in one commit; the old
file goes after that commit. A kill at any point leaves the catalog naming one whole
file: the old one until the commit, the new one after it (a writer opening the
collection removes the file the catalog does not name).

- ``Engine.save`` compacts a file when its dead rows reach ``compact_tombstone_ratio``
  of its rows (the share at which indexes are rebuilt too), when no write is under way;
- ``imgsearch compact`` (``Engine.compact``) compacts every file with a dead row, and
  ``imgsearch upgrade`` every file with a dead row or in another ``vector_dtype``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

__all__ = ["VectorCompactor", "compact_vector_files", "due"]


class VectorCompactor(Protocol):
    """What compaction needs of the catalog."""

    vector_dtype: str

    def vector_file_stats(self, resident: bool = ..., count_live: bool = ...
                          ) -> dict[str, dict[str, Any]]: ...

    def count_vectors(self, space: str) -> int: ...

    def compact_vectors(self, space: str) -> int: ...


def due(stats: dict[str, Any], *, min_dead_ratio: float, vector_dtype: str | None) -> bool:
    """Whether a file (its ``vector_file_stats`` entry) is to be compacted: it has dead
    rows and they are at least ``min_dead_ratio`` of its rows, or (with
    ``vector_dtype``) it stores numbers in another type."""
    rows, live = int(stats["rows"]), int(stats["live"])
    dead = rows - live
    if vector_dtype is not None and stats["dtype"] != vector_dtype:
        return True
    return dead > 0 and dead >= min_dead_ratio * rows


def compact_vector_files(catalog: VectorCompactor, *, min_dead_ratio: float,
                         convert_dtype: bool = False, live: Mapping[str, int] | None = None
                         ) -> dict[str, dict[str, Any]]:
    """Compact each space's file that is ``due``; the caller keeps other writers out.

    ``live``: each space's live vectors as its index holds them, so that a save does not
    count them in the catalog (a scan of the space's rows: a second at 10M); a space
    missing there is counted. Returns, per space compacted: the dead rows dropped, the
    dtype now stored, and the file's bytes before and after."""
    done: dict[str, dict[str, Any]] = {}
    wanted = catalog.vector_dtype if convert_dtype else None
    for space, stats in catalog.vector_file_stats(resident=False,
                                                  count_live=live is None).items():
        if live is not None:
            stats["live"] = (live[space] if space in live
                             else catalog.count_vectors(space))
        if not due(stats, min_dead_ratio=min_dead_ratio, vector_dtype=wanted):
            continue
        dropped = catalog.compact_vectors(space)
        after = catalog.vector_file_stats(resident=False)[space]
        done[space] = {"dead_rows_dropped": dropped, "dtype": after["dtype"],
                       "bytes_before": stats["disk_bytes"], "bytes_after": after["disk_bytes"],
                       "file": after["file"]}
    return done
