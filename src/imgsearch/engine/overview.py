"""What a collection holds and how it has been searched: the values a search form
offers, the numbers ``imgsearch info`` prints, and the search log's clicks and report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from imgsearch.enrich.colors import BASIC_COLORS
from imgsearch.enrich.places import places_facet
from imgsearch.errors import InvalidInputError
from imgsearch.search.space import SpaceIndex
from imgsearch.store.catalog import Catalog
from imgsearch.store.health import connect_for_reading
from imgsearch.store.logs import LOG_NAME, SearchLog, read_only_report


def facets(catalog: Catalog, limit: int) -> dict[str, Any]:
    """Categories and brands (most common first, with counts), the colour names with
    their swatch hex, and the places photos were taken."""
    return {
        "categories": [{"value": v, "count": n}
                       for v, n in catalog.distinct_values("category", limit)],
        "brands": [{"value": v, "count": n}
                   for v, n in catalog.distinct_values("brand", limit)],
        "colors": {name: "#{:02x}{:02x}{:02x}".format(*rgb)
                   for name, rgb in BASIC_COLORS.items()},
        "places": places_facet(catalog.place_counts(limit * 10), limit),
    }


def info(directory: Path, catalog: Catalog, spaces: dict[str, SpaceIndex]) -> dict[str, Any]:
    """The catalog's counts, each space's encoder, index and vector file, the items
    without an image vector, and the bytes the collection takes on disk."""
    stats = catalog.stats()
    stats["collection"] = str(directory)
    files = catalog.vector_file_stats()
    stats["spaces"] = {
        name: {"encoder": sp.space.encoder, "model_id": sp.space.model_id,
               "dim": sp.space.dim, "index": sp.capabilities.kind, "vectors": len(sp),
               "tombstones": sp.index.tombstones,
               "index_resident_bytes": sp.index.memory_bytes(),
               "vector_file": files.get(name)}
        for name, sp in spaces.items()}
    if "image" in spaces:
        # an item that failed re-encoding has no image vector: say so, every time
        lacking = catalog.count_without_vector("image")
        stats["without_vector"] = {"image": lacking} if lacking else {}
    stats["disk_bytes"] = sum(f.stat().st_size for f in directory.rglob("*")
                              if f.is_file())
    return stats


def record_click(logs: SearchLog | None, search_id: str, item_id: str,
                 position: int | None) -> None:
    """A result of a logged search was clicked (durable when it returns)."""
    if logs is None:
        raise InvalidInputError("search logging is off for this collection "
                                "(IMGSEARCH_LOG_SEARCHES=0); clicks cannot be recorded")
    logs.record_click(search_id, item_id, position)


def search_report(logs: SearchLog | None, directory: Path, catalog: Catalog,
                  since: float | None) -> dict[str, Any]:
    """CTR, MRR of clicks, zero-result rate and latency percentiles per query type; read
    from the log file itself where the collection is on read-only storage."""
    if logs is None:
        log = directory / LOG_NAME
        if catalog.read_only_storage and log.exists():
            return read_only_report(connect_for_reading(log), since)
        return {}
    return logs.report(since)


__all__ = ["facets", "info", "record_click", "search_report"]
