"""Copy a collection from one backend to another, vectors included (nothing is encoded
again): ``imgsearch migrate ./shop milvus://host:19530/shop``; and ``imgsearch index
SOURCE --collection milvus://...``, which ingests into a local staging collection (the
whole ingest pipeline: decode, enrich, encode) and copies it over."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from imgsearch.config import Settings
from imgsearch.engine.backends.base import CollectionBackend
from imgsearch.engine.backends.local import LocalBackend
from imgsearch.engine.backends.registry import backend_name, open_backend
from imgsearch.engine.core import Engine
from imgsearch.errors import InvalidInputError
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
    """Ingest ``source`` into a throwaway local collection, then copy it to ``target``.
    Every run encodes the whole source again (nothing is kept between runs); items are
    upserted by id, so a run again replaces them."""
    with tempfile.TemporaryDirectory(prefix="imgsearch-staging-") as scratch:
        engine = Engine.open(Path(scratch) / "staging", settings,
                             image_encoder=image_encoder, text_encoder=text_encoder)
        staged = LocalBackend(engine)
        try:
            report = engine.ingest(source, progress=progress)
            destination = open_backend(target, settings, spaces=staged.spaces(),
                                       encoders=staged.encoders())
            try:
                copy_rows(staged, destination, progress=progress)
            finally:
                destination.close()
        finally:
            staged.close()
    return report


__all__ = ["MigrateReport", "copy_rows", "index_remote", "migrate"]
