"""Re-encode items for a new encoder, from their image files, URLs or kept originals.

Before the old vectors go, every item is checked: one whose image cannot be read again
(uploaded bytes that were not kept, a file that is gone) makes re-encoding refuse, with
the list, and nothing changes. The spaces being re-encoded are recorded in the catalog
until the work is done, so a run cut short is finished by the next writer to open the
collection; what fails is reported, never dropped.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from typing import TYPE_CHECKING

from imgsearch.engine.pipeline import is_url
from imgsearch.errors import ReembedRefusedError
from imgsearch.store.files import original_exists, read_original
from imgsearch.types import ImageInput, IngestReport, Item

if TYPE_CHECKING:
    from imgsearch.engine.core import Engine, ProgressCallback

PENDING_META = "reembed_pending"
_LISTED = 20


def pending_spaces(engine: Engine) -> list[str]:
    """Spaces whose re-encoding was started and not finished."""
    return list(json.loads(engine.catalog.get_meta(PENDING_META) or "[]"))


def refuse_unless_redoable(engine: Engine, spaces: list[str]) -> None:
    """Raise ReembedRefusedError naming every item whose image cannot be read again."""
    not_kept: list[str] = []
    gone: list[str] = []
    refused: list[str] = []  # both, in the collection's order
    for item_id, image, original in engine.catalog.reembed_sources():
        if image:
            if not is_url(image) and not os.path.isfile(image):
                gone.append(item_id)
                refused.append(item_id)
        elif not original or not original_exists(engine.directory, original):
            not_kept.append(item_id)
            refused.append(item_id)
    if not (not_kept or gone):
        return
    parts = []
    if not_kept:
        parts.append(
            f"{len(not_kept)} added from uploaded bytes that were not kept (over "
            f"IMGSEARCH_ORIGINAL_MAX_BYTES = {engine.settings.original_max_bytes} bytes, "
            f"or added before imgsearch kept originals): {_listed(not_kept)}")
    if gone:
        parts.append(f"{len(gone)} whose image file is gone (or is not a regular file): "
                     f"{_listed(gone)}")
    raise ReembedRefusedError(
        f"cannot re-encode the {' and '.join(spaces)} space of collection "
        f"{engine.directory}: {len(refused)} item(s) cannot be read again; "
        f"{'; '.join(parts)}. Nothing was changed. Add those items again with their image, "
        f"or remove them (re-indexing their folder removes files that vanished), then "
        f"re-encode", items=refused)


def mark_pending(engine: Engine, conn: sqlite3.Connection, spaces: list[str]) -> None:
    """Record ``spaces`` as being re-encoded, in the transaction that drops their vectors."""
    pending = sorted(set(pending_spaces(engine)) | set(spaces))
    engine.catalog.set_meta(PENDING_META, json.dumps(pending), conn)


def run(engine: Engine, spaces: list[str],
        progress: ProgressCallback | None = None) -> IngestReport:
    """Re-encode the items lacking a vector in any of ``spaces``, then clear the record."""
    items = list(engine.catalog.items_without_vector(spaces))
    report = engine.ingest_items(inputs(engine, items), total=len(items), progress=progress)
    with engine.catalog.transaction() as conn:
        left = [s for s in pending_spaces(engine) if s not in spaces]
        engine.catalog.set_meta(PENDING_META, json.dumps(left), conn)
    return report


def run_all(engine: Engine, progress: ProgressCallback | None = None) -> IngestReport:
    """Re-encode every item, from its image reference or kept original."""
    items = list(engine.catalog.iter_items())
    return engine.ingest_items(inputs(engine, items), total=len(items), progress=progress)


def inputs(engine: Engine, items: list[Item]) -> Iterator[tuple[Item, ImageInput | None]]:
    for item in items:
        if item.image or not item.original:
            yield item, item.image
            continue
        try:
            yield item, read_original(engine.directory, item.original)
        except OSError:
            yield item, None  # reported as a failure: the item has no image


def _listed(ids: list[str]) -> str:
    shown = ", ".join(repr(i) for i in ids[:_LISTED])
    return shown + (f" and {len(ids) - _LISTED} more" if len(ids) > _LISTED else "")


__all__ = ["inputs", "mark_pending", "pending_spaces", "refuse_unless_redoable", "run",
           "run_all"]
