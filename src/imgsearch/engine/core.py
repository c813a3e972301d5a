"""The Engine facade: the composition root. The CLI and the web app talk only to it.

    engine = Engine.open("./shop")
    report = engine.ingest("products.csv")
    result = engine.search(Query(text="red shoes", limit=10))
    engine.close()

A collection is a directory: ``catalog.sqlite3`` (the source of truth), one FAISS index
per vector space under ``indexes/``, ``thumbnails/`` and ``manifest.json``. One process
writes at a time (an OS lock on the collection directory, released when the process
ends however it ends); inside it a readers–writer lock lets searches run concurrently
while each write is applied whole. On read-only storage a collection opens read-only:
no lock, no log, no index saves.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from numpy.typing import NDArray

from imgsearch.config import Settings
from imgsearch.encode.base import Encoder
from imgsearch.encode.registry import describe_encoder
from imgsearch.engine import reembed as reembedding
from imgsearch.engine.batching import LRUCache
from imgsearch.engine.dedup import (
    Duplicate,
    build_hamming_index,
    duplicate_groups,
    item_duplicates,
)
from imgsearch.engine.derived import Derived
from imgsearch.engine.indexes import Indexes
from imgsearch.engine.maintenance import (
    HealthReport,
    backup_collection,
    check_collection,
    repair_collection,
)
from imgsearch.engine.pipeline import Prepared, Preparer
from imgsearch.engine.query_encoder import CachedQueryEncoder, QueryEncoder
from imgsearch.engine.shared_cache import RedisCache
from imgsearch.engine.storage import lock_collection, refuse_emptied, storage_faults
from imgsearch.engine.writer import ProgressCallback, Writer
from imgsearch.enrich.colors import BASIC_COLORS
from imgsearch.enrich.places import places_facet
from imgsearch.errors import (
    CollectionError,
    CollectionNotFoundError,
    CorruptCollectionError,
    EncoderMismatchError,
    ImgSearchError,
    InvalidInputError,
    ItemNotFoundError,
    ReadOnlyCollectionError,
    StorageFullError,
)
from imgsearch.ingest.decode import DecodedImage
from imgsearch.ingest.fetch import Fetcher
from imgsearch.search.calibration import (
    Calibration,
)
from imgsearch.search.space import SpaceIndex
from imgsearch.search.understand import Vocabulary
from imgsearch.search.verify import FeatureCache
from imgsearch.store.catalog import Catalog, WriteResult
from imgsearch.store.health import connect_for_reading
from imgsearch.store.logs import LOG_NAME, open_search_log, read_only_report
from imgsearch.store.manifest import (
    Manifest,
    read_manifest,
    spaces_from_catalog,
)
from imgsearch.types import (
    ImageInput,
    IngestReport,
    Item,
    VectorSpace,
)

CATALOG_NAME = "catalog.sqlite3"
_log = logging.getLogger("imgsearch.engine")


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


class Engine:
    def __init__(self, directory: Path, settings: Settings, catalog: Catalog,
                 manifest: Manifest, readonly: bool, lock_fd: int | None,
                 notes: list[str] | None = None) -> None:
        self.directory = directory
        self.settings = settings
        self.catalog = catalog
        self.manifest = manifest
        self.readonly = readonly
        self._lock_fd = lock_fd
        self.fetcher = Fetcher(settings)
        self.open_notes: list[str] = list(notes or ())
        # what re-encoding items for a new encoder did, when opening did that
        self.reembed_report: IngestReport | None = None
        self._closed = False
        self.feature_cache = FeatureCache()  # local features of verified candidates
        self.logs = None
        if settings.log_searches and catalog.read_only_storage:
            self.open_notes.append("search logging is off: the collection is on read-only "
                                   "storage")
        elif settings.log_searches:
            self.logs = open_search_log(directory, self.open_notes)
        self.embedding_cache: LRUCache[NDArray[np.float32]] = LRUCache(
            settings.embedding_cache_size)
        self.result_cache: LRUCache[Any] = LRUCache(settings.result_cache_size,
                                                    settings.result_cache_ttl_s)
        self.derived = Derived(catalog, self.result_cache)
        self.shared_cache = RedisCache(settings.redis_url, str(directory.resolve()),
                                       settings.result_cache_ttl_s) \
            if settings.redis_url else None
        self.query_encoder: QueryEncoder = CachedQueryEncoder(
            settings, manifest, self.fetcher, self.embedding_cache, self.shared_cache)
        self.indexes = Indexes(directory, settings, catalog, manifest, readonly,
                               self.derived, self.query_encoder.encoder)
        self.spaces = self.indexes.spaces
        self.calibrations = self.indexes.calibrations
        self.lock = self.indexes.lock
        self.writer = Writer(directory, settings, catalog, readonly, self.indexes,
                             self.derived, self.shared_cache,
                             lambda: self.query_encoder.preparer)

    @property
    def write_version(self) -> int:
        """Counts writes (and journal entries taken in): what was made before is stale."""
        return self.derived.write_version

    # -- opening ---------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path, settings: Settings | None = None, *,
             image_encoder: str | None = None, text_encoder: str | None = None,
             create: bool = True, readonly: bool = False, reembed: bool = False) -> Engine:
        """Open (or create) the collection at ``path``.

        ``image_encoder``/``text_encoder`` default to what the collection was built with
        (or the settings' defaults for a new one); naming others is refused with
        EncoderMismatchError unless ``reembed`` is set, which re-encodes every item.
        """
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
        catalog = engine = None
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
                engine = cls(directory, settings, catalog, manifest, readonly, lock_fd,
                             notes)
            with storage_faults(directory):
                if not readonly:
                    removed = engine.writer.sweep_files()
                    if removed:
                        engine.open_notes.append(
                            f"removed {removed} file(s) an interrupted write left")
                engine._open_spaces(wanted, reembed)
        except BaseException:
            if engine is not None and engine.logs is not None:
                engine.logs.close()
            if catalog is not None:
                catalog.close()
            if lock_fd is not None:
                os.close(lock_fd)
            raise
        return engine

    # -- health ----------------------------------------------------------------------
    @staticmethod
    def check(path: str | Path, *, quick: bool = False) -> HealthReport:
        """What is damaged in the collection at ``path``, changing nothing (it may be in
        use): the catalog's integrity, manifest, indexes, thumbnails and search log."""
        return check_collection(Path(path), quick=quick)

    @staticmethod
    def repair(path: str | Path, settings: Settings | None = None) -> HealthReport:
        """Rebuild indexes and manifest from the catalog, set a damaged search log aside,
        remove unused thumbnails; then check again. Takes the writer lock."""
        return repair_collection(Path(path), lambda: Engine.open(path, settings or Settings(),
                                                                 create=False))

    @staticmethod
    def backup(path: str | Path, destination: str | Path) -> dict[str, Any]:
        """A consistent copy of the collection (SQLite's backup API) in ``destination``,
        even while another process writes; restoring is copying it back."""
        return backup_collection(Path(path), Path(destination))

    def _open_spaces(self, wanted: dict[str, VectorSpace], reembed: bool) -> None:
        old = self.manifest.spaces
        changed = [n for n in wanted if n in old and old[n] != wanted[n]]
        if changed and self.catalog.count() and not reembed:
            name = changed[0]
            if old[name].encoder == wanted[name].encoder:
                # same encoder name, new model (e.g. a new descriptor version): naming
                # nothing does not help, and the vectors of the two never mix
                raise EncoderMismatchError(
                    f"collection {self.directory} holds {name} vectors of "
                    f"{old[name].model_id} ({old[name].dim}-d), but the "
                    f"{old[name].encoder!r} encoder of this imgsearch makes "
                    f"{wanted[name].model_id} ({wanted[name].dim}-d), and the two cannot be "
                    f"searched together; re-encode every item with `imgsearch index SOURCE "
                    f"--collection {self.directory} --reembed`")
            raise EncoderMismatchError(
                f"collection {self.directory} was built with {name} encoder "
                f"{old[name].encoder!r} ({old[name].model_id}, {old[name].dim}-d) but "
                f"{wanted[name].encoder!r} ({wanted[name].model_id}, {wanted[name].dim}-d) "
                f"was asked for; open it without naming an encoder to use what it was "
                f"built with, or re-encode every item with --reembed")
        if changed and self.catalog.count() and self.readonly:
            raise EncoderMismatchError(f"re-encoding collection {self.directory} needs a "
                                       f"writer; open it without readonly")
        if changed and self.catalog.count():
            reembedding.refuse_unless_redoable(self, changed)  # before anything is dropped
        pruned = int(self.catalog.get_meta("journal_pruned_upto") or 0)
        for name, space in wanted.items():
            path = self.directory / "indexes" / f"{name}.faiss"
            if name in changed:
                # Vectors of the old encoder go first, so that no index ever mixes the two;
                # items are re-encoded below (one cut short is finished at the next open).
                with self.catalog.transaction() as conn:
                    self.catalog.drop_space(conn, name)
                    reembedding.mark_pending(self, conn, [name])
                path.unlink(missing_ok=True)
            index, report = SpaceIndex.open(space, self.catalog, path, self.settings,
                                            pruned_upto=pruned)
            if report.rebuilt_because and self.catalog.count_vectors(name):
                self.open_notes.append(f"{name} index rebuilt: {report.rebuilt_because}")
            self.spaces[name] = index
        self.manifest.spaces = wanted
        if any(space.encoder == "clip" for space in wanted.values()):
            self.manifest.extra["clip_model"] = self.settings.clip_model
        stored = self.manifest.extra.get("calibration", {})
        for name, data in stored.items():
            space_name = "image" if name == "clip_text" else name
            if space_name in self.spaces and space_name not in changed:
                self.calibrations[name] = Calibration.from_dict(data)
        self.indexes.refresh_calibration()
        try:
            self.indexes.record_index_params()
        except StorageFullError as exc:
            # the manifest on disk stays as it was (written atomically): a full disk must
            # not keep the collection from being searched
            self.open_notes.append(f"manifest not updated: {exc.message}")
        pending = [name for name in reembedding.pending_spaces(self) if name in self.spaces]
        if pending and not self.readonly:
            self._reembed_on_open(pending)

    def _reembed_on_open(self, spaces: list[str]) -> None:
        report = self.reembed_report = reembedding.run(self, spaces)
        note = (f"re-encoded {report.added + report.updated} item(s) for the "
                f"{' and '.join(spaces)} space")
        if report.failed:
            shown = "; ".join(f"{f.source}: {f.reason}" for f in report.failed[:5])
            more = f" and {len(report.failed) - 5} more" if len(report.failed) > 5 else ""
            note += (f"; {len(report.failed)} failed and have no vector there until they "
                     f"are added again ({shown}{more})")
        self.open_notes.append(note)

    # -- encoders --------------------------------------------------------------------
    def encoder(self, space: str) -> Encoder:
        return self.query_encoder.encoder(space)

    def embed_query_text(self, space: str, text: str) -> NDArray[np.float32]:
        """A query text's vector in ``space`` ("text", or "image" for CLIP), cached and,
        under concurrent load, encoded in micro-batches."""
        return self.query_encoder.embed_query_text(space, text)

    def embed_query_image(self, value: ImageInput) -> NDArray[np.float32]:
        """A query image's vector, cached by the hash of its content."""
        return self.query_encoder.embed_query_image(value)

    def look_at(self, value: ImageInput) -> tuple[DecodedImage, NDArray[np.float32]]:
        """A query image as decoded (its pixels serve verification) and its vector."""
        return self.query_encoder.look_at(value)

    def text_encoder(self) -> Encoder | None:
        return self.query_encoder.text_encoder()

    @property
    def preparer(self) -> Preparer:
        return self.query_encoder.preparer

    # -- writes ----------------------------------------------------------------------
    def _require_writable(self) -> None:
        self.writer.require_writable()

    def commit(self, prepared: list[Prepared]) -> list[WriteResult]:
        """Write prepared items durably, then make them searchable. Returns per item."""
        return self.writer.commit(prepared)

    def upsert(self, item: Item, image: ImageInput | None = None) -> str:
        """Add or replace one item; returns "added" or "updated" once it is durable."""
        outcome = self.upsert_many([(item, image)])[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def upsert_many(self, entries: Sequence[tuple[Item, ImageInput | None]]
                    ) -> list[str | ImgSearchError | OSError]:
        """The one write path of items given with their images (the CLI's ``add``, the
        item routes, the batch route); see ``Writer.upsert_many``."""
        return self.writer.upsert_many(entries)

    def delete(self, item_id: str) -> bool:
        """Remove an item; False when there was none. Durable when it returns."""
        return bool(self.delete_many([item_id]))

    def delete_many(self, ids: Iterable[str]) -> int:
        return self.writer.delete_many(ids)

    def ingest(self, source: str | Path, *, progress: ProgressCallback | None = None,
               on_commit: Callable[[list[str]], None] | None = None) -> IngestReport:
        """Index a folder, a catalog file (CSV/JSONL/Parquet) or a URL list (.txt)."""
        from imgsearch.engine.ingest import run_ingest

        self._require_writable()
        return run_ingest(self, Path(source), progress=progress, on_commit=on_commit)

    def ingest_items(self, items: Iterable[tuple[Item, ImageInput | None]], *,
                     total: int | None = None, progress: ProgressCallback | None = None,
                     on_commit: Callable[[list[str]], None] | None = None,
                     report: IngestReport | None = None) -> IngestReport:
        """Prepare and commit items in batches; failures are recorded, never fatal."""
        return self.writer.ingest_items(items, total=total, progress=progress,
                                        on_commit=on_commit, report=report)

    def reembed(self, spaces: list[str] | None = None,
                progress: ProgressCallback | None = None) -> IngestReport:
        """Re-encode items from their image reference or kept original, and their
        metadata: with ``spaces``, those lacking a vector there; without, every item."""
        self._require_writable()
        if spaces is not None:
            return reembedding.run(self, spaces, progress)
        items = list(self.catalog.iter_items())
        return self.ingest_items(reembedding.inputs(self, items), total=len(items),
                                 progress=progress)

    def save(self) -> None:
        """Snapshot indexes (atomically) and prune the journal they no longer need."""
        self.indexes.save()

    # -- reads -----------------------------------------------------------------------
    def refresh(self) -> bool:
        """Take in what another process committed since the last look; True if anything
        (only a read-only engine has anything to do; see ``Indexes.refresh``)."""
        return self.indexes.refresh()

    def get(self, item_id: str) -> Item:
        self.refresh()
        item = self.catalog.get(item_id)
        if item is None:
            raise ItemNotFoundError(item_id)
        return item

    def facets(self, limit: int = 200) -> dict[str, Any]:
        """Values a search form offers: categories and brands (most common first, with
        counts), the colour names with their swatch hex, and the places photos were
        taken: countries with their cities, most photos first."""
        self.refresh()
        return {
            "categories": [{"value": v, "count": n}
                           for v, n in self.catalog.distinct_values("category", limit)],
            "brands": [{"value": v, "count": n}
                       for v, n in self.catalog.distinct_values("brand", limit)],
            "colors": {name: "#{:02x}{:02x}{:02x}".format(*rgb)
                       for name, rgb in BASIC_COLORS.items()},
            "places": places_facet(self.catalog.place_counts(limit * 10), limit),
        }

    def known_values(self, column: str) -> tuple[list[str], frozenset[str]]:
        """Every distinct category or brand (as first written), most common first, and
        the same values trimmed and case-folded; read once until the next write."""
        return self.derived.known_values(column)

    def vocabulary(self) -> Vocabulary:
        """Brand and category values for query understanding; refreshed after writes."""
        return self.derived.vocabulary()

    def record_click(self, search_id: str, item_id: str, position: int | None = None) -> None:
        """Feedback: a result of a logged search was clicked (durable when it returns)."""
        if self.logs is None:
            raise InvalidInputError("search logging is off for this collection "
                                    "(IMGSEARCH_LOG_SEARCHES=0); clicks cannot be recorded")
        self.logs.record_click(search_id, item_id, position)

    def report(self, since: float | None = None) -> dict[str, Any]:
        """CTR, MRR of clicks, zero-result rate and latency percentiles per query type."""
        if self.logs is None:
            log = self.directory / LOG_NAME
            if self.catalog.read_only_storage and log.exists():
                return read_only_report(connect_for_reading(log), since)
            return {}
        return self.logs.report(since)

    def hamming_index(self) -> Any:
        """A binary index over every item's perceptual hash; rebuilt after writes."""
        return self.derived.hamming_index(lambda: build_hamming_index(self))

    def duplicates(self, item_id: str) -> list[Duplicate]:
        """The near-duplicates of one item, strongest first (the item excluded)."""
        self.refresh()
        return item_duplicates(self, item_id)

    def duplicate_groups(self, min_tier: str = "variant") -> list[dict[str, Any]]:
        """Every group of near-duplicates at ``min_tier`` (exact, near-exact, variant)."""
        self.refresh()
        return duplicate_groups(self, min_tier)

    def __contains__(self, item_id: str) -> bool:
        return self.catalog.key_of(item_id) is not None

    def search(self, query: Any) -> Any:
        from imgsearch.engine.query import run_query

        self.refresh()
        if query.kind == "browse":
            from imgsearch.engine.browse import browse

            return browse(self, query)
        return run_query(self, query)

    def warm(self, wait: bool = True) -> None:
        """Read into memory now what searches would otherwise read on their first runs:
        the fields of every result page (up to ``hit_cache_mb``) and the filter columns,
        about a second each per million items, on threads of their own. With ``wait``,
        return when that is done (before timing searches); without, return at once (a
        server about to take requests: SQL answers until the reads are in)."""
        self.refresh()
        self.catalog.warm(wait)

    def similar(self, item_id: str, limit: int = 10, **kwargs: Any) -> Any:
        from imgsearch.types import Query

        return self.search(Query(similar_to=item_id, limit=limit, **kwargs))

    def upgrade(self) -> dict[str, Any]:
        """Bring the collection's storage up to date (see ``Writer.upgrade``)."""
        return self.writer.upgrade()

    def info(self) -> dict[str, Any]:
        self.refresh()
        stats = self.catalog.stats()
        stats["collection"] = str(self.directory)
        files = self.catalog.vector_file_stats()
        stats["spaces"] = {
            name: {"encoder": sp.space.encoder, "model_id": sp.space.model_id,
                   "dim": sp.space.dim, "index": sp.capabilities.kind, "vectors": len(sp),
                   "tombstones": sp.index.tombstones,
                   "index_resident_bytes": sp.index.memory_bytes(),
                   "vector_file": files.get(name)}
            for name, sp in self.spaces.items()}
        if "image" in self.spaces:
            # an item that failed re-encoding has no image vector: say so, every time
            lacking = self.catalog.count_without_vector("image")
            stats["without_vector"] = {"image": lacking} if lacking else {}
        stats["disk_bytes"] = sum(f.stat().st_size for f in self.directory.rglob("*")
                                  if f.is_file())
        return stats

    def close(self) -> None:
        """Snapshot the indexes and release the collection; calling it again does nothing."""
        if self._closed:
            return
        self._closed = True
        try:
            self.indexes.save_if_room()
        finally:
            self.query_encoder.close()
            if self.logs is not None:
                self.logs.close()
            self.catalog.close()
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["Engine"]
