"""What every runner of ``imgsearch encode`` does with a batch of items: decode (with the
ingest limits), enrich and encode them into shard rows. Each worker holds one
``Preparer`` (its encoders), built by :func:`make_preparer`.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from imgsearch.config import Settings
from imgsearch.encode.registry import get_encoder
from imgsearch.engine.pipeline import Prepared, Preparer
from imgsearch.ingest.fetch import Fetcher
from imgsearch.store.shards import ShardRows, item_json
from imgsearch.types import ImageInput, IngestFailure, Item, VectorSpace

Entry = tuple[Item, ImageInput | None]
ShardResult = tuple[int, pa.Table, list[IngestFailure]]  # a shard's number, rows, failures


def make_preparer(settings: Settings) -> Preparer:
    """What one worker holds: the encoders and a decoder with the ingest limits."""
    image = get_encoder(settings.image_encoder, settings)
    text = None if settings.text_encoder == "none" else get_encoder(settings.text_encoder,
                                                                     settings)
    return Preparer(settings, image, lambda: text, Fetcher(settings))


def add_prepared(rows: ShardRows, prepared: Sequence[Prepared],
                 spaces: Sequence[VectorSpace]) -> None:
    for p in prepared:
        first = True
        for space in spaces:
            if space.name not in p.vectors:
                continue  # an item with no text has no text vector
            rows.add(p.item.id, p.item.content_hash, space, p.vectors[space.name],
                     item_json(p.item) if first else None, p.thumbnail if first else None)
            first = False


def encode_entries(preparer: Preparer, entries: Sequence[Entry], spaces: Sequence[VectorSpace],
                   batch_size: int) -> tuple[ShardRows, list[IngestFailure]]:
    """Decode, enrich and encode entries in batches into shard rows."""
    rows = ShardRows()
    failures: list[IngestFailure] = []
    for start in range(0, len(entries), batch_size):
        prepared, failed = preparer.prepare(entries[start:start + batch_size])
        add_prepared(rows, prepared, spaces)
        failures.extend(failed)
    return rows, failures
