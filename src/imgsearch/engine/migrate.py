"""Copy a collection from one backend to another, vectors included (nothing is encoded
again): ``imgsearch migrate ./shop milvus://host:19530/shop``; and ``imgsearch index
SOURCE --collection milvus://...``, which ingests into a local staging collection (the
whole ingest pipeline: decode, enrich, encode) and copies what changed over."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from imgsearch.config import Settings
from imgsearch.engine.backends.base import CollectionBackend, Row
from imgsearch.engine.backends.local import LocalBackend
from imgsearch.engine.backends.registry import backend_name, open_backend
from imgsearch.engine.core import Engine
from imgsearch.errors import InvalidInputError
from imgsearch.ingest.fields import name_text
from imgsearch.types import IngestReport, Progress

ProgressCallback = Callable[[Progress], None]


@dataclass
class MigrateReport:
    copied: int
    target_count: int
    seconds: float

    def to_dict(self) -> dict[str, float | int]:
        return {"copied": self.copied, "target_count": self.target_count,
                "seconds": round(self.seconds, 3)}


def copy_rows(source: CollectionBackend, target: CollectionBackend, *, batch: int = 1000,
              progress: ProgressCallback | None = None) -> MigrateReport:
    """Upsert every item of ``source`` (with its vectors) into ``target``."""
    started, copied, total = time.perf_counter(), 0, source.count()
    for rows in source.rows(batch):
        target.upsert(rows)
        copied += len(rows)
        if progress:
            progress(Progress("migrate", copied, total, 0))
    return MigrateReport(copied, target.count(), time.perf_counter() - started)


def migrate(source: str | Path, target: str, settings: Settings, *,
            progress: ProgressCallback | None = None) -> MigrateReport:
    """Copy the collection at ``source`` into ``target`` (made with the same spaces
    when missing; refused when it exists with other ones)."""
    if str(source) == str(target):
        raise InvalidInputError("migrate: the source and the target are the same collection")
    if backend_name(target) == "local" and Path(target).exists():
        raise InvalidInputError(f"migrate: {target} exists; migrate into a new collection")
    origin = open_backend(source, settings, create=False)
    try:
        destination = open_backend(target, settings, spaces=origin.spaces(),
                                   encoders=origin.encoders())
        try:
            return copy_rows(origin, destination, progress=progress)
        finally:
            destination.close()
    finally:
        origin.close()


def index_remote(source: Path, target: str, settings: Settings, *,
                 image_encoder: str | None = None, text_encoder: str | None = None,
                 progress: ProgressCallback | None = None) -> IngestReport:
    """Index ``source`` into the remote collection ``target`` as into a local one: only
    new and changed items are decoded and encoded, and the items of files gone from a
    folder are removed.

    The whole ingest pipeline runs into a throwaway local staging collection, seeded
    first with what ``target`` holds from this source (items with their vectors, nothing
    encoded): the local ingest then skips an item by id, file size and time, then content
    hash, as it does locally; the items it wrote are copied to ``target``, and those it
    removed are deleted there."""
    with tempfile.TemporaryDirectory(prefix="imgsearch-staging-") as scratch:
        engine = Engine.open(Path(scratch) / "staging", settings,
                             image_encoder=image_encoder, text_encoder=text_encoder)
        staged = LocalBackend(engine)
        try:
            destination = open_backend(target, settings, spaces=staged.spaces(),
                                       encoders=staged.encoders())
            try:
                origin = name_text(str(Path(source).resolve()))
                known: dict[str, tuple[int | None, float | None]] = {}
                for rows in destination.rows(source=origin):
                    staged.upsert(rows)
                    known.update((r.item.id, (r.item.source_size, r.item.source_mtime))
                                 for r in rows)
                written: list[str] = []
                report = engine.ingest(source, progress=progress, on_commit=written.extend)
                # a file touched but not changed keeps its vectors; its new time is copied
                states = engine.catalog.source_states(origin)
                touched = [i for i, state in known.items()
                           if i in states and states[i][:2] != state]
                _copy_ids(staged, destination, list(dict.fromkeys(written + touched)))
                gone = [i for i in known if i not in engine]
                if gone:
                    destination.delete(gone)
            finally:
                destination.close()
        finally:
            staged.close()
    return report


def _copy_ids(source: LocalBackend, target: CollectionBackend, ids: list[str],
              batch: int = 500) -> None:
    """Upsert the items ``ids`` of ``source`` with their vectors and thumbnails into
    ``target``; not their kept originals (files of the staging collection)."""
    spaces = sorted(source.spaces())
    for start in range(0, len(ids), batch):
        items = source.get(ids[start:start + batch])
        target.upsert([Row(replace(item, thumbnail=None, original=None),
                           source.fetch_vectors_of(item.id, spaces),
                           source.thumbnail_of(item))
                       for item in items.values()])


__all__ = ["MigrateReport", "copy_rows", "index_remote", "migrate"]
