"""Opening a collection: the checks before anything is written (a missing collection,
read-only storage, a file in the way), the writer's OS lock, the catalog and manifest,
the collaborators an ``Engine`` wires, and then its indexes — a change of encoder refused
or re-encoded, a re-encoding cut short finished.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import faiss
import numpy as np
from numpy.typing import NDArray

from imgsearch.config import Settings
from imgsearch.encode.registry import describe_encoder
from imgsearch.engine import reembed as reembedding
from imgsearch.engine.batching import LRUCache
from imgsearch.engine.derived import Derived
from imgsearch.engine.indexes import Indexes
from imgsearch.engine.query_encoder import CachedQueryEncoder, QueryEncoder
from imgsearch.engine.shared_cache import RedisCache
from imgsearch.engine.storage import lock_collection, refuse_emptied, storage_faults
from imgsearch.engine.writer import Writer
from imgsearch.errors import (
    CollectionError,
    CollectionNotFoundError,
    CorruptCollectionError,
    EncoderMismatchError,
    ReadOnlyCollectionError,
    StorageFullError,
)
from imgsearch.index.early import index_file
from imgsearch.ingest.fetch import Fetcher
from imgsearch.search.calibration import Calibration
from imgsearch.search.searcher import Searcher
from imgsearch.search.space import SpaceIndex
from imgsearch.store.catalog import Catalog
from imgsearch.store.logs import SearchLog, open_search_log
from imgsearch.store.manifest import Manifest, read_manifest, spaces_from_catalog
from imgsearch.types import VectorSpace

if TYPE_CHECKING:
    from collections.abc import Callable

    from imgsearch.engine.core import Engine

CATALOG_NAME = "catalog.sqlite3"


@dataclass
class Opened:
    """A collection's storage, opened: what every collaborator is built on."""

    directory: Path
    settings: Settings
    catalog: Catalog
    manifest: Manifest
    readonly: bool
    lock_fd: int | None  # the writer's OS lock; None when opened read-only
    notes: list[str]  # what opening found and did, for the user

    def close(self) -> None:
        """Close the catalog and release the writer's lock."""
        self.catalog.close()
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None


@dataclass
class Collaborators:
    """What an ``Engine`` delegates to, built from an opened collection."""

    fetcher: Fetcher
    logs: SearchLog | None
    embedding_cache: LRUCache[NDArray[np.float32]]
    result_cache: LRUCache[Any]
    shared_cache: RedisCache | None
    derived: Derived
    query_encoder: QueryEncoder
    indexes: Indexes
    writer: Writer
    searcher: Searcher

    def close(self) -> None:
        """Stop the query encoder's threads and close the search log."""
        self.query_encoder.close()
        if self.logs is not None:
            self.logs.close()


def collaborators(opened: Opened) -> Collaborators:
    """Build the collaborators of an engine over ``opened``, each given what it uses."""
    directory, settings, catalog = opened.directory, opened.settings, opened.catalog
    logs = None
    if settings.log_searches and catalog.read_only_storage:
        opened.notes.append("search logging is off: the collection is on read-only "
                            "storage")
    elif settings.log_searches:
        logs = open_search_log(directory, opened.notes)
    fetcher = Fetcher(settings)
    embedding_cache: LRUCache[NDArray[np.float32]] = LRUCache(settings.embedding_cache_size)
    result_cache: LRUCache[Any] = LRUCache(settings.result_cache_size,
                                           settings.result_cache_ttl_s)
    derived = Derived(catalog, result_cache)
    shared_cache = RedisCache(settings.redis_url, str(directory.resolve()),
                              settings.result_cache_ttl_s) \
        if settings.redis_url else None
    query_encoder = CachedQueryEncoder(settings, opened.manifest, fetcher, embedding_cache,
                                       shared_cache)
    indexes = Indexes(directory, settings, catalog, opened.manifest, opened.readonly,
                      derived, query_encoder.encoder)
    writer = Writer(directory, settings, catalog, opened.readonly, indexes, derived,
                    shared_cache, lambda: query_encoder.preparer)
    searcher = Searcher(settings, directory, catalog, indexes.spaces, indexes.calibrations,
                        indexes.lock, query_encoder, derived,
                        lambda space: opened.manifest.spaces[space].model_id, result_cache,
                        shared_cache=shared_cache, logs=logs)
    return Collaborators(fetcher, logs, embedding_cache, result_cache, shared_cache, derived,
                         query_encoder, indexes, writer, searcher)


def open_collection(engine_class: Callable[[Opened, Collaborators], Engine],
                    path: str | Path, settings: Settings | None, *,
                    image_encoder: str | None, text_encoder: str | None, create: bool,
                    readonly: bool, reembed: bool) -> Engine:
    """``Engine.open`` (see there)."""
    settings = settings or Settings()
    # One thread per query: concurrent single queries scale across cores, while
    # FAISS's own threading of a single small query mostly adds contention.
    faiss.omp_set_num_threads(max(1, settings.search_threads))
    directory = Path(path)
    catalog_path = directory / CATALOG_NAME
    exists = catalog_path.exists()
    if not exists and (readonly or not create):
        raise CollectionNotFoundError(
            f"no collection at {directory}: build one with `imgsearch index SOURCE "
            f"--collection {directory}`")
    read_only_storage = exists and not os.access(directory, os.W_OK)
    if read_only_storage and not readonly:
        raise ReadOnlyCollectionError(
            f"collection {directory} is on read-only storage (the directory cannot be "
            f"written): searching it works (search, similar, info, serve), writing "
            f"needs writable storage")
    refuse_emptied(directory, catalog_path)
    if not exists:
        _refuse_file_in_the_way(directory)
    with storage_faults(directory):
        if not exists:
            directory.mkdir(parents=True, exist_ok=True)
        lock_fd = None if readonly else lock_collection(directory)
    catalog = parts = None
    try:
        with storage_faults(directory):
            # Another process may write to a collection opened read-only: its reads
            # call refresh() first, which drops these caches when anything committed.
            catalog = Catalog(catalog_path,
                              row_cache_size=settings.row_cache_size,
                              filter_cache_size=settings.filter_cache_size,
                              hit_cache_bytes=settings.hit_cache_mb << 20,
                              read_only_storage=read_only_storage,
                              vector_dtype=settings.vector_dtype)
            notes = list(catalog.notes)
            # what the manifest says is also in the catalog: rebuilt from there
            rebuilt = "" if readonly else " and written again"
            try:
                found = read_manifest(directory)
            except CorruptCollectionError as exc:
                found = None
                notes.append(f"{exc.message}; rebuilt from the catalog{rebuilt}")
            else:
                if found is None and catalog.count():
                    notes.append(f"{directory / 'manifest.json'} is missing; rebuilt "
                                 f"from the catalog{rebuilt}")
            manifest = found or spaces_from_catalog(catalog, settings)
            wanted, settings = _wanted_spaces(manifest, settings, image_encoder,
                                              text_encoder)
            opened = Opened(directory, settings, catalog, manifest, readonly, lock_fd, notes)
            parts = collaborators(opened)
            engine = engine_class(opened, parts)
        with storage_faults(directory):
            if not readonly:
                removed = engine.writer.sweep_files()
                if removed:
                    engine.open_notes.append(
                        f"removed {removed} file(s) an interrupted write left")
            open_spaces(engine, wanted, reembed)
    except BaseException:
        if parts is not None and parts.logs is not None:
            parts.logs.close()
        if catalog is not None:
            catalog.close()
        if lock_fd is not None:
            os.close(lock_fd)
        raise
    return engine


def _refuse_file_in_the_way(directory: Path) -> None:
    """CollectionError when ``directory``, or a folder it would be made in, is a file."""
    for place in (directory, *directory.absolute().parents):
        if place.exists() or place.is_symlink():
            if not place.is_dir():
                raise CollectionError(
                    f"cannot make a collection at {directory}: {place} is a file, not a "
                    f"folder; give --collection a folder (new or existing)")
            return


def _wanted_spaces(manifest: Manifest, settings: Settings, image_encoder: str | None,
                   text_encoder: str | None) -> tuple[dict[str, VectorSpace], Settings]:
    """The spaces a collection opened with these encoders has, and the settings to
    open it with (a clip collection's own CLIP model)."""
    old = manifest.spaces
    s = settings
    wanted: dict[str, VectorSpace] = {}
    for name, asked, default in (("image", image_encoder, s.image_encoder),
                                 ("text", text_encoder, s.text_encoder)):
        encoder = asked or (old[name].encoder if name in old else default)
        if encoder == "none":
            continue
        if name in old and old[name].encoder == encoder and encoder == "clip" \
                and s.clip_model == Settings().clip_model:
            # a clip collection remembers which CLIP made it (hub id or directory)
            source = manifest.extra.get("clip_model", old[name].model_id)
            s = s.replace(clip_model=source)
        model_id, dim = describe_encoder(encoder, s)
        wanted[name] = VectorSpace(name, encoder, model_id, dim,
                                   "image" if name == "image" else "text")
    return wanted, s


def open_spaces(engine: Engine, wanted: dict[str, VectorSpace], reembed: bool) -> None:
    """Open an index per wanted space; refuse (or, with ``reembed``, start) a change of
    encoder; load the stored calibrations, record the index parameters, and finish any
    re-encoding that was cut short."""
    old = engine.manifest.spaces
    changed = [n for n in wanted if n in old and old[n] != wanted[n]]
    if changed and engine.catalog.count() and not reembed:
        name = changed[0]
        if old[name].encoder == wanted[name].encoder:
            # same encoder name, new model (e.g. a new descriptor version): naming
            # nothing does not help, and the vectors of the two never mix
            raise EncoderMismatchError(
                f"collection {engine.directory} holds {name} vectors of "
                f"{old[name].model_id} ({old[name].dim}-d), but the "
                f"{old[name].encoder!r} encoder of this imgsearch makes "
                f"{wanted[name].model_id} ({wanted[name].dim}-d), and the two cannot be "
                f"searched together; re-encode every item with `imgsearch index SOURCE "
                f"--collection {engine.directory} --reembed`")
        raise EncoderMismatchError(
            f"collection {engine.directory} was built with {name} encoder "
            f"{old[name].encoder!r} ({old[name].model_id}, {old[name].dim}-d) but "
            f"{wanted[name].encoder!r} ({wanted[name].model_id}, {wanted[name].dim}-d) "
            f"was asked for; open it without naming an encoder to use what it was "
            f"built with, or re-encode every item with --reembed")
    if changed and engine.catalog.count() and engine.readonly:
        raise EncoderMismatchError(f"re-encoding collection {engine.directory} needs a "
                                   f"writer; open it without readonly")
    if changed and engine.catalog.count():
        reembedding.refuse_unless_redoable(engine, changed)  # before anything is dropped
    pruned = int(engine.catalog.get_meta("journal_pruned_upto") or 0)
    for name, space in wanted.items():
        path = index_file(engine.directory, name)
        if name in changed:
            # Vectors of the old encoder go first, so that no index ever mixes the two;
            # items are re-encoded below (one cut short is finished at the next open).
            with engine.catalog.transaction() as conn:
                engine.catalog.drop_space(conn, name)
                reembedding.mark_pending(engine, conn, [name])
            path.unlink(missing_ok=True)
        # a reader reads an index file when it first searches that space
        opener = SpaceIndex.open_deferred if engine.readonly else SpaceIndex.open
        index, report = opener(space, engine.catalog, path, engine.settings,
                               pruned_upto=pruned)
        if report.rebuilt_because and engine.catalog.count_vectors(name):
            engine.open_notes.append(f"{name} index rebuilt: {report.rebuilt_because}")
        engine.spaces[name] = index
    engine.manifest.spaces = wanted
    if any(space.encoder == "clip" for space in wanted.values()):
        engine.manifest.extra["clip_model"] = engine.settings.clip_model
    stored = engine.manifest.extra.get("calibration", {})
    for name, data in stored.items():
        space_name = "image" if name == "clip_text" else name
        if space_name in engine.spaces and space_name not in changed:
            engine.calibrations[name] = Calibration.from_dict(data)
    engine.indexes.refresh_calibration()
    try:
        engine.indexes.record_index_params()
    except StorageFullError as exc:
        # the manifest on disk stays as it was (written atomically): a full disk must
        # not keep the collection from being searched
        engine.open_notes.append(f"manifest not updated: {exc.message}")
    pending = [name for name in reembedding.pending_spaces(engine) if name in engine.spaces]
    if pending and not engine.readonly:
        _reembed_on_open(engine, pending)

def _reembed_on_open(engine: Engine, spaces: list[str]) -> None:
    report = engine.reembed_report = reembedding.run(engine, spaces)
    note = (f"re-encoded {report.added + report.updated} item(s) for the "
            f"{' and '.join(spaces)} space")
    if report.failed:
        shown = "; ".join(f"{f.source}: {f.reason}" for f in report.failed[:5])
        more = f" and {len(report.failed) - 5} more" if len(report.failed) > 5 else ""
        note += (f"; {len(report.failed)} failed and have no vector there until they "
                 f"are added again ({shown}{more})")
    engine.open_notes.append(note)


__all__ = ["CATALOG_NAME", "Collaborators", "Opened", "collaborators", "open_collection",
           "open_spaces"]
