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

import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from numpy.typing import NDArray

from imgsearch.config import Settings
from imgsearch.encode.base import Encoder
from imgsearch.encode.registry import describe_encoder, get_encoder
from imgsearch.engine import reembed as reembedding
from imgsearch.engine.batching import LRUCache, MicroBatcher
from imgsearch.engine.dedup import (
    Duplicate,
    build_hamming_index,
    duplicate_groups,
    item_duplicates,
)
from imgsearch.engine.maintenance import (
    HealthReport,
    backup_collection,
    check_collection,
    repair_collection,
)
from imgsearch.engine.pipeline import Prepared, Preparer, batched
from imgsearch.engine.shared_cache import RedisCache
from imgsearch.engine.storage import lock_collection, refuse_emptied, storage_faults
from imgsearch.engine.timing import load_model, stage
from imgsearch.enrich.colors import BASIC_COLORS
from imgsearch.enrich.places import places_facet
from imgsearch.enrich.thumbnails import remove_thumbnail, thumbnail_relpath, write_thumbnail
from imgsearch.errors import (
    CollectionError,
    CollectionLockedError,
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
    MIN_VECTORS,
    PROBE_TEXTS,
    Calibration,
    calibrate,
    calibrate_probes,
    is_stale,
)
from imgsearch.search.space import JournalGap, SpaceIndex
from imgsearch.search.understand import Vocabulary
from imgsearch.search.verify import LARGE_SIDE, FeatureCache
from imgsearch.store.catalog import Catalog, WriteResult
from imgsearch.store.files import (
    ORIGINALS_DIR,
    PendingFiles,
    remove_original,
    write_original,
)
from imgsearch.store.health import connect_for_reading
from imgsearch.store.logs import LOG_NAME, open_search_log, read_only_report
from imgsearch.store.manifest import (
    Manifest,
    read_manifest,
    remember_spaces,
    spaces_from_catalog,
    write_manifest,
)
from imgsearch.types import (
    ImageInput,
    IngestFailure,
    IngestReport,
    Item,
    Progress,
    VectorSpace,
)

ProgressCallback = Callable[[Progress], None]
CATALOG_NAME = "catalog.sqlite3"
_log = logging.getLogger("imgsearch.engine")


class _Reading:
    """``with lock.read():`` (a class: every search enters it, a generator costs more)."""

    __slots__ = ("_lock",)

    def __init__(self, lock: RWLock) -> None:
        self._lock = lock

    def __enter__(self) -> None:
        self._lock.acquire_read()

    def __exit__(self, *exc: object) -> None:
        self._lock.release_read()


class RWLock:
    """Many readers or one writer; a waiting writer holds back new readers."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._waiting_writers = 0
        self._reading = _Reading(self)

    def read(self) -> _Reading:
        return self._reading

    def acquire_read(self) -> None:
        with self._cond:
            while self._writer or self._waiting_writers:
                self._cond.wait()
            self._readers += 1

    def release_read(self) -> None:
        with self._cond:
            self._readers -= 1
            if not self._readers and self._waiting_writers:
                self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._waiting_writers += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._waiting_writers -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


def _refuse_file_in_the_way(directory: Path) -> None:
    """CollectionError when ``directory``, or a folder it would be made in, is a file."""
    for place in (directory, *directory.absolute().parents):
        if place.exists() or place.is_symlink():
            if not place.is_dir():
                raise CollectionError(
                    f"cannot make a collection at {directory}: {place} is a file, not a "
                    f"folder; give --collection a folder (new or existing)")
            return


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
        self.lock = RWLock()
        self._write_mutex = threading.Lock()
        self.spaces: dict[str, SpaceIndex] = {}
        self._encoders: dict[str, Encoder] = {}
        self._encoder_lock = threading.Lock()
        self.fetcher = Fetcher(settings)
        self._preparer: Preparer | None = None
        self.open_notes: list[str] = list(notes or ())
        self.pending = PendingFiles(directory)
        # what re-encoding items for a new encoder did, when opening did that
        self.reembed_report: IngestReport | None = None
        self._closed = False
        self._vocabulary: Vocabulary | None = None
        # known_values, until the next write
        self._known: dict[str, tuple[list[str], frozenset[str]]] = {}
        self.calibrations: dict[str, Calibration | None] = {}
        self.feature_cache = FeatureCache()  # local features of verified candidates
        self._hamming: Any = None
        self.logs = None
        if settings.log_searches and catalog.read_only_storage:
            self.open_notes.append("search logging is off: the collection is on read-only "
                                   "storage")
        elif settings.log_searches:
            self.logs = open_search_log(directory, self.open_notes)
        self._batchers: dict[str, MicroBatcher[Any]] = {}
        self.embedding_cache: LRUCache[NDArray[np.float32]] = LRUCache(
            settings.embedding_cache_size)
        self.result_cache: LRUCache[Any] = LRUCache(settings.result_cache_size,
                                                    settings.result_cache_ttl_s)
        self.write_version = 0
        self._seen_version: int | None = None  # catalog data_version a reader last took in
        self._refresh_mutex = threading.Lock()
        self.shared_cache = RedisCache(settings.redis_url, str(directory.resolve()),
                                       settings.result_cache_ttl_s) \
            if settings.redis_url else None

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
                engine = cls(directory, settings, catalog, manifest, readonly, lock_fd,
                             notes)
            with storage_faults(directory):
                if not readonly:
                    engine._sweep_files()
                engine._open_spaces(image_encoder, text_encoder, reembed)
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

    def _wanted_spaces(self, image_encoder: str | None, text_encoder: str | None,
                       ) -> dict[str, VectorSpace]:
        old = self.manifest.spaces
        s = self.settings
        wanted: dict[str, VectorSpace] = {}
        for name, asked, default in (("image", image_encoder, s.image_encoder),
                                     ("text", text_encoder, s.text_encoder)):
            encoder = asked or (old[name].encoder if name in old else default)
            if encoder == "none":
                continue
            if name in old and old[name].encoder == encoder and encoder == "clip" \
                    and s.clip_model == Settings().clip_model:
                # a clip collection remembers which CLIP made it (hub id or directory)
                source = self.manifest.extra.get("clip_model", old[name].model_id)
                self.settings = s = s.replace(clip_model=source)
            model_id, dim = describe_encoder(encoder, s)
            wanted[name] = VectorSpace(name, encoder, model_id, dim,
                                       "image" if name == "image" else "text")
        return wanted

    def _open_spaces(self, image_encoder: str | None, text_encoder: str | None,
                     reembed: bool) -> None:
        wanted = self._wanted_spaces(image_encoder, text_encoder)
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
        self._refresh_calibration()
        try:
            self._record_index_params()
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

    def _refresh_calibration(self, force: bool = False) -> None:
        """Calibrate each signal: image pairs for images, probe queries for text."""
        wanted: dict[str, tuple[str, str | None]] = {}
        if "image" in self.spaces:
            wanted["image"] = ("image", None)
            # a stored calibration says the image encoder reads text without loading it
            if self.calibrations.get("clip_text") is not None or \
                    "text" in self.encoder("image").modalities:
                wanted["clip_text"] = ("image", "image")
        if "text" in self.spaces:
            wanted["text"] = ("text", "text")
        for name, (space_name, text_encoder) in wanted.items():
            space = self.spaces[space_name]
            # image pairs need a few items; text probes are judged against any number
            minimum = MIN_VECTORS if text_encoder is None else 1
            if not (force or is_stale(self.calibrations.get(name), len(space), minimum)):
                continue
            if text_encoder is None:
                self.calibrations[name] = calibrate(space)
            elif len(space) >= minimum:
                probes = self.encoder(text_encoder).embed_texts(list(PROBE_TEXTS))
                self.calibrations[name] = calibrate_probes(space, probes)
        self.manifest.extra["calibration"] = {
            name: cal.to_dict() for name, cal in self.calibrations.items() if cal is not None}

    def _record_index_params(self) -> None:
        self.manifest.index = {
            name: {"kind": sp.capabilities.kind, "vectors": len(sp),
                   "journal_seq": sp.applied_seq}
            for name, sp in self.spaces.items()}
        if not self.readonly:
            with storage_faults(self.directory):
                write_manifest(self.directory, self.manifest)
                remember_spaces(self.catalog, self.manifest)

    # -- encoders --------------------------------------------------------------------
    def encoder(self, space: str) -> Encoder:
        with self._encoder_lock:
            if space not in self._encoders:
                self._encoders[space] = get_encoder(self.manifest.spaces[space].encoder,
                                                    self.settings)
            return self._encoders[space]

    def _batcher(self, key: str, encode: Callable[[Any], Any]) -> MicroBatcher[Any]:
        with self._encoder_lock:
            batcher = self._batchers.get(key)
            if batcher is None:
                s = self.settings
                batcher = self._batchers[key] = MicroBatcher(
                    encode, max_batch=s.micro_batch_max,
                    max_wait_s=s.micro_batch_wait_ms / 1000.0, name=f"encode-{key}")
            return batcher

    def embed_query_text(self, space: str, text: str) -> NDArray[np.float32]:
        """A query text's vector in ``space`` ("text", or "image" for CLIP), cached and,
        under concurrent load, encoded in micro-batches."""
        key = ("text", space, self.manifest.spaces[space].model_id, text)
        cached = self._cached_vector(key)
        if cached is not None:
            return cached
        encoder = self.encoder(space)
        load_model(encoder)
        if self.settings.micro_batch:
            vector = self._batcher(f"{space}-text", encoder.embed_texts).encode(text)
        else:
            vector = encoder.embed_text(text)
        self._store_vector(key, vector)
        return vector

    def embed_query_image(self, value: ImageInput) -> NDArray[np.float32]:
        """A query image's vector, cached by the hash of its content."""
        return self.look_at(value)[1]

    def look_at(self, value: ImageInput) -> tuple[DecodedImage, NDArray[np.float32]]:
        """A query image as decoded (its pixels serve verification) and its vector."""
        with stage("decode"):
            decoded = self.preparer.decode(value, value if isinstance(value, str)
                                           else "<query image>", longer_at_least=LARGE_SIDE)
        key = ("image", self.manifest.spaces["image"].model_id, decoded.content_hash)
        cached = self._cached_vector(key)
        if cached is not None:
            return decoded, cached
        encoder = self.encoder("image")
        load_model(encoder)
        if self.settings.micro_batch:
            vector = self._batcher("image", encoder.embed_images).encode(decoded.image)
        else:
            vector = encoder.embed_image(decoded.image)
        self._store_vector(key, vector)
        return decoded, vector

    def _cached_vector(self, key: tuple[Any, ...]) -> NDArray[np.float32] | None:
        vector = self.embedding_cache.get(key)
        if vector is None and self.shared_cache is not None:
            vector = self.shared_cache.get_vector(key)
            if vector is not None:
                self.embedding_cache.put(key, vector)
        return vector

    def _store_vector(self, key: tuple[Any, ...], vector: NDArray[np.float32]) -> None:
        self.embedding_cache.put(key, vector)
        if self.shared_cache is not None:
            self.shared_cache.put_vector(key, vector)

    def text_encoder(self) -> Encoder | None:
        return self.encoder("text") if "text" in self.manifest.spaces else None

    @property
    def preparer(self) -> Preparer:
        if self._preparer is None:
            self._preparer = Preparer(self.settings, self.encoder("image"),
                                      self.text_encoder, self.fetcher)
        return self._preparer

    # -- writes ----------------------------------------------------------------------
    def _require_writable(self) -> None:
        if self.catalog.read_only_storage:
            raise ReadOnlyCollectionError(
                f"collection {self.directory} is on read-only storage; it can be searched "
                f"but not written")
        if self.readonly:
            raise CollectionLockedError(
                f"collection {self.directory} was opened read-only; writes need a writer")

    def commit(self, prepared: list[Prepared]) -> list[WriteResult]:
        """Write prepared items durably, then make them searchable. Returns per item."""
        self._require_writable()
        if not prepared:
            return []
        with self._write_mutex, storage_faults(self.directory):
            files = self._name_files(prepared)
            # noted before they exist: a crash from here to the commit leaves nothing behind
            self.pending.note(files, durable=any(p.original is not None for p in prepared))
            try:
                self._write_files(prepared)
                with self.catalog.transaction() as conn:
                    results = self.catalog.upsert_many(
                        conn, [(p.item, p.vectors) for p in prepared])
                    self.pending.note(_replaced_files(results))  # still in use until COMMIT
            except BaseException:
                with contextlib.suppress(OSError):  # else the next open sweeps them
                    self._drop_unused(files)
                    self.pending.clear()
                raise
            self._apply(results, {r.key: p.vectors for r, p in zip(results, prepared,
                                                                      strict=True)})
            self._drop_unused(_replaced_files(results))
            self.pending.clear()
        return results

    @staticmethod
    def _name_files(prepared: list[Prepared]) -> list[str]:
        """Name the thumbnail (by content) of each item; the files a batch will write."""
        files = []
        for p in prepared:
            p.item.thumbnail = thumbnail_relpath(_thumbnail_key(p.item))
            files.append(p.item.thumbnail)
            if p.original is not None and p.item.original:
                files.append(p.item.original)
        return files

    def _write_files(self, prepared: list[Prepared]) -> None:
        """Write the thumbnails and originals a batch refers to. Originals are durable
        before the commit; thumbnails can be made again from the image."""
        for p in prepared:
            write_thumbnail(self.directory, _thumbnail_key(p.item), p.thumbnail)
            if p.original is not None and p.item.original:
                write_original(self.directory, p.item.original, p.original)

    def _file_in_use(self, relpath: str) -> bool:
        if relpath.startswith(ORIGINALS_DIR + "/"):
            return self.catalog.original_in_use(relpath)
        return self.catalog.thumbnail_in_use(relpath)

    def _remove_file(self, relpath: str) -> None:
        if relpath.startswith(ORIGINALS_DIR + "/"):
            remove_original(self.directory, relpath)
        else:
            remove_thumbnail(self.directory, relpath)

    def _drop_unused(self, relpaths: Iterable[str]) -> None:
        """Remove those thumbnails and originals that no committed item uses."""
        for relpath in dict.fromkeys(relpaths):
            if not self._file_in_use(relpath):
                self._remove_file(relpath)

    def _sweep_files(self) -> None:
        """At open, by the writer: remove files a crash left before their commit."""
        removed = self.pending.sweep(self._file_in_use, self._remove_file)
        removed += self.catalog.sweep_vector_files()
        if removed:
            self.open_notes.append(f"removed {removed} file(s) an interrupted write left")

    def _apply(self, results: list[WriteResult], vectors: dict[int, Any]) -> None:
        self._vocabulary = None
        self._known = {}
        self.write_version += 1
        self.result_cache.clear()
        if self.shared_cache is not None:
            self.shared_cache.bump()
        self._hamming = None
        head = self.catalog.journal_head()
        with self.lock.write():
            for name, space in self.spaces.items():
                added = {r.added[name]: (r.key, vectors[r.key][name])
                         for r in results if name in r.added}
                removed = {r.removed[name]: r.key for r in results if name in r.removed}
                space.apply(added, removed, head)
        # A search that began before the indexes changed may have cached its answer under
        # the version bumped above: start a new version once they have.
        self._forget_derived()
        every = self.settings.index_save_every
        if any(sp.applied_seq - sp.saved_seq >= every for sp in self.spaces.values()):
            self._save_if_room()

    def _forget_derived(self) -> None:
        """After a write: what was made from the collection as it was is no longer right."""
        self._vocabulary = None
        self._known = {}
        self._hamming = None
        self.write_version += 1
        self.result_cache.clear()

    def upsert(self, item: Item, image: ImageInput | None = None) -> str:
        """Add or replace one item; returns "added" or "updated" once it is durable."""
        outcome = self.upsert_many([(item, image)])[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def upsert_many(self, entries: Sequence[tuple[Item, ImageInput | None]]
                    ) -> list[str | ImgSearchError | OSError]:
        """The one write path of items given with their images (the CLI's ``add``, the
        item routes, the batch route): decoded, enriched and encoded as one batch and
        committed in one transaction. An image of None is the item's own reference.

        Per entry, in order: "added" or "updated" once durable, or the error that kept
        it out (its image could not be read, fetched or decoded) — the others are written.
        A failed commit (storage full, ...) is the error of every entry it would have
        written."""
        self._require_writable()
        answers = self.preparer.prepare_each(
            [(item, image if image is not None else item.image) for item, image in entries])
        prepared = [a for a in answers if isinstance(a, Prepared)]
        try:
            written: list[str | ImgSearchError] = [r.status for r in self.commit(prepared)]
        except ImgSearchError as exc:
            written = [exc] * len(prepared)
        statuses = iter(written)
        return [next(statuses) if isinstance(a, Prepared) else a for a in answers]

    def delete(self, item_id: str) -> bool:
        """Remove an item; False when there was none. Durable when it returns."""
        return bool(self.delete_many([item_id]))

    def delete_many(self, ids: Iterable[str]) -> int:
        self._require_writable()
        with self._write_mutex, storage_faults(self.directory):
            with self.catalog.transaction() as conn:
                results = [r for r in (self.catalog.delete(conn, i) for i in ids) if r]
                self.pending.note(_replaced_files(results))
            self._apply(results, {})
            self._drop_unused(_replaced_files(results))
            self.pending.clear()
        return len(results)

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
        self._require_writable()
        report = report or IngestReport()
        started = time.perf_counter()
        done = 0

        def flush(batch: Sequence[tuple[Item, ImageInput | None]],
                  prepared: list[Prepared], failures: list[IngestFailure]) -> None:
            nonlocal done
            report.failed.extend(failures)
            try:
                results = self.commit(prepared)
            except StorageFullError as exc:
                # what was committed before stays; this batch is reported, not lost
                report.failed.extend(IngestFailure(p.item.image or p.item.id, exc.message,
                                                   exc.code) for p in prepared)
                report.seconds += time.perf_counter() - started
                raise StorageFullError(exc.message, report=report) from exc
            for r in results:
                if r.status == "added":
                    report.added += 1
                else:
                    report.updated += 1
            done += len(batch)
            if on_commit and prepared:
                on_commit([p.item.id for p in prepared])
            if progress:
                progress(Progress("ingest", done, total, len(report.failed)))

        # the next batch decodes in the workers while this one is encoded and written
        for batch, prepared, failures in self.preparer.prepare_ahead(
                batched(items, self.settings.ingest_batch_size)):
            flush(batch, prepared, failures)
        self._save_if_room()
        report.seconds += time.perf_counter() - started
        return report

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
        if self.readonly:
            return
        with storage_faults(self.directory):
            with self.lock.write():
                for name in list(self.spaces):
                    self.spaces[name] = self.spaces[name].maintain()
                    self.spaces[name].save()
                self._refresh_calibration()
            low = min((sp.saved_seq for sp in self.spaces.values()), default=0)
            if low > int(self.catalog.get_meta("journal_pruned_upto") or 0):
                self.catalog.prune_journal(low)
                with self.catalog.transaction() as conn:
                    self.catalog.set_meta("journal_pruned_upto", str(low), conn)
        self._record_index_params()

    def _save_if_room(self) -> None:
        """Save the indexes unless the disk is full: they are caches of the catalog, whose
        journal brings them up to date on the next open, so a write that committed is
        not failed for want of room to save them."""
        try:
            self.save()
        except StorageFullError as exc:
            _log.warning("indexes not saved: %s", exc.message)

    # -- reads -----------------------------------------------------------------------
    def refresh(self) -> bool:
        """Take in what another process committed since the last look; True if anything.

        Only a read-only engine has anything to do: its reads call this first, so a
        write the collection's writer acknowledged is visible to the next search here
        (journal entries go into the indexes; cached rows, filters and results go).
        Checking costs one ``PRAGMA data_version``.
        """
        if not self.readonly:
            return False
        version = self.catalog.data_version()
        if version == self._seen_version:
            return False
        with self._refresh_mutex:
            if version == self._seen_version:
                return False
            # version was read first: a commit landing from here on is seen next time
            self.catalog.forget_cached()
            self._forget_derived()
            with self.lock.write():
                for name, space in list(self.spaces.items()):
                    try:
                        space.follow()
                    except JournalGap:
                        pruned = int(self.catalog.get_meta("journal_pruned_upto") or 0)
                        self.spaces[name], _report = SpaceIndex.open(
                            space.space, self.catalog, space.path, self.settings,
                            pruned_upto=pruned)
            self._forget_derived()  # anything made meanwhile saw the old indexes
            self._seen_version = version
        return True

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
        known = self._known.get(column)
        if known is None:
            version = self.write_version
            values = [v for v, _ in self.catalog.distinct_values(column, 1_000_000)]
            known = (values, frozenset(v.strip().casefold() for v in values))
            if version == self.write_version:  # else a write landed while it was read
                self._known[column] = known
        return known

    def vocabulary(self) -> Vocabulary:
        """Brand and category values for query understanding; refreshed after writes."""
        vocabulary = self._vocabulary
        if vocabulary is None:
            version = self.write_version
            vocabulary = Vocabulary(self.known_values("brand")[0],
                                    self.known_values("category")[0],
                                    self.known_values("camera")[0])
            if version == self.write_version:
                self._vocabulary = vocabulary
        return vocabulary

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
        index = self._hamming
        if index is None:
            version = self.write_version
            index = build_hamming_index(self)
            if version == self.write_version:  # else a write landed while it was read
                self._hamming = index
        return index

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
        """Bring the collection's storage up to date: what opening it upgraded (schema,
        and where the old catalog is kept), then every vector file with dead rows or in
        another ``vector_dtype`` than the setting's compacted into a new one."""
        self._require_writable()
        upgraded = self.catalog.upgraded_from
        report: dict[str, Any] = {
            "schema_version": self.catalog.schema_version,
            "upgraded_from": None if upgraded is None else upgraded[0],
            "backup": None if upgraded is None else str(upgraded[1]), "compacted": {}}
        with self._write_mutex, storage_faults(self.directory):
            for space, stats in self.catalog.vector_file_stats().items():
                if stats["rows"] > stats["live"] or stats["dtype"] != self.catalog.vector_dtype:
                    dropped = self.catalog.compact_vectors(space)
                    report["compacted"][space] = {"dead_rows_dropped": dropped,
                                                  "dtype": self.catalog.vector_dtype}
        return report

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
            self._save_if_room()
        finally:
            if self._preparer is not None:
                self._preparer.close()
            if self.logs is not None:
                self.logs.close()
            for batcher in self._batchers.values():
                batcher.close()
            self.catalog.close()
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _thumbnail_key(item: Item) -> int:
    """Thumbnails are named by content: items with the same image share one."""
    name = item.content_hash or hashlib.sha256(item.id.encode()).hexdigest()
    return int(name[:15], 16)


def _replaced_files(results: Iterable[WriteResult]) -> list[str]:
    """The thumbnails and originals that written items no longer use."""
    return [path for r in results for path in (r.old_thumbnail, r.old_original) if path]


__all__ = ["Engine"]
