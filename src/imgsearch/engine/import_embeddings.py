"""Load embedding shards into a collection without encoding again:
``imgsearch import-embeddings``.

Each shard's vectors must come from the encoders of the collection's spaces (same
encoder, model id and dimension); a shard that does not is refused, naming both. Items
are written through ``Engine.commit``, as ingest writes them, so an import upserts by
id: importing the same shards twice leaves the same collection.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

from imgsearch.config import Settings
from imgsearch.engine.core import Engine
from imgsearch.engine.pipeline import Prepared
from imgsearch.errors import (
    CatalogFormatError,
    CollectionNotFoundError,
    EncoderMismatchError,
)
from imgsearch.store.shards import item_from_json, read_plan, read_shard, shard_files
from imgsearch.types import IngestFailure, IngestReport, Progress, VectorSpace

_NORM_TOLERANCE = 1e-3


def shard_spaces(directory: Path) -> list[VectorSpace]:
    """The vector spaces the shards in ``directory`` hold (from plan.json, else the first
    shard's rows)."""
    plan = read_plan(directory)
    if plan is not None:
        return plan.spaces
    table, _ = read_shard(shard_files(directory)[0])
    return sorted(_spaces_of(table, shard_files(directory)[0]).values(),
                  key=lambda s: s.name)


def _spaces_of(table: pa.Table, path: Path) -> dict[str, VectorSpace]:
    found: dict[str, VectorSpace] = {}
    columns = table.select(["space", "encoder", "model_id", "vector"]).to_pydict()
    for name, encoder, model_id, vector in zip(columns["space"], columns["encoder"],
                                               columns["model_id"], columns["vector"],
                                               strict=True):
        space = VectorSpace(name, encoder, model_id, len(vector or ()),
                            "image" if name == "image" else "text")
        if found.setdefault(name, space) != space:
            other = found[name]
            raise CatalogFormatError(
                f"{path}: its {name} rows mix vectors of {other.encoder!r} ({other.model_id}, "
                f"{other.dim}-d) and {encoder!r} ({model_id}, {space.dim}-d)")
    return found


def open_for_import(collection: Path, settings: Settings, spaces: list[VectorSpace]
                    ) -> Engine:
    """Open ``collection``; a new one is created with the encoders the shards name."""
    try:
        return Engine.open(collection, settings, create=False)
    except CollectionNotFoundError:
        pass
    named = {space.name: space for space in spaces}
    clip = [s.model_id for s in spaces if s.encoder == "clip"]
    if clip:
        settings = settings.replace(clip_model=clip[0])
    return Engine.open(collection, settings,
                       image_encoder=named["image"].encoder if "image" in named else None,
                       text_encoder=named["text"].encoder if "text" in named else "none")


def check_spaces(engine: Engine, found: dict[str, VectorSpace], where: Path) -> None:
    """Refuse vectors that were not made by the collection's encoders, naming both."""
    for name, space in sorted(found.items()):
        have = engine.manifest.spaces.get(name)
        made = f"{space.encoder!r} ({space.model_id}, {space.dim}-d)"
        if have is None:
            raise EncoderMismatchError(
                f"{where} holds {name} vectors of {made}, but collection {engine.directory} "
                f"has no {name} space")
        if (have.encoder, have.model_id, have.dim) != (space.encoder, space.model_id,
                                                       space.dim):
            raise EncoderMismatchError(
                f"{where} holds {name} vectors of {made}, but collection "
                f"{engine.directory} holds {name} vectors of {have.encoder!r} "
                f"({have.model_id}, {have.dim}-d); import them into a collection built "
                f"with that encoder, or encode again with --{name}-encoder {have.encoder}")


def import_embeddings(engine: Engine, directory: Path, *,
                      progress: Callable[[Progress], None] | None = None) -> IngestReport:
    """Write every item of the shards in ``directory`` into ``engine``'s collection."""
    started = time.perf_counter()
    report = IngestReport()
    paths = shard_files(Path(directory))
    for path in paths:  # every shard is checked before anything is written
        table, _ = read_shard(path)
        check_spaces(engine, _spaces_of(table, path), path)
    for done, path in enumerate(paths, start=1):
        table, failures = read_shard(path)
        report.failed.extend(failures)
        prepared, bad = _prepared(table, path)
        report.failed.extend(bad)
        size = max(1, engine.settings.ingest_batch_size)
        for start in range(0, len(prepared), size):
            for result in engine.commit(prepared[start:start + size]):
                if result.status == "added":
                    report.added += 1
                else:
                    report.updated += 1
        if progress:
            progress(Progress("import", done, len(paths), len(report.failed)))
    engine.save()  # as ingest does: indexes saved, calibration brought up to date
    report.seconds = time.perf_counter() - started
    return report


def _prepared(table: pa.Table, path: Path) -> tuple[list[Prepared], list[IngestFailure]]:
    """One ``Prepared`` per item of a shard; items with a bad vector become failures."""
    if "item" not in table.column_names or "thumbnail" not in table.column_names:
        raise CatalogFormatError(f"{path}: has no item and thumbnail columns; import reads "
                                 f"shards written by `imgsearch encode`")
    columns = table.select(["id", "space", "vector", "item", "thumbnail"]).to_pydict()
    by_id: dict[str, Prepared] = {}
    bad: dict[str, IngestFailure] = {}
    for item_id, space, vector, item_text, thumbnail in zip(
            columns["id"], columns["space"], columns["vector"], columns["item"],
            columns["thumbnail"], strict=True):
        where = f"{path.name} (id {item_id})"
        if item_text is not None:
            if item_id in by_id:
                raise CatalogFormatError(f"{where}: the item is listed twice in the shard")
            item = item_from_json(item_text, where)
            if item.id != item_id:
                raise CatalogFormatError(f"{where}: its item column names id {item.id!r}")
            by_id[item_id] = Prepared(item, {}, thumbnail or b"")
        entry = by_id.get(item_id)
        if entry is None:
            raise CatalogFormatError(f"{where}: a {space} vector comes before the item's "
                                     f"first row")
        array = np.asarray(vector, dtype=np.float32)
        norm = float(np.linalg.norm(array)) if np.all(np.isfinite(array)) else float("nan")
        if not abs(norm - 1.0) <= _NORM_TOLERANCE:
            bad[item_id] = IngestFailure(where, f"its {space} vector is not unit length "
                                                f"(norm {norm:.4g})", "bad_vector", item_id)
        entry.vectors[space] = array
    return [p for i, p in by_id.items() if i not in bad], list(bad.values())
