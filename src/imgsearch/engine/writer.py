"""The write path: items and their files made durable in one transaction, then taken
into the indexes; deletes; batches of items prepared ahead while the last is written;
the files a crash left behind swept at open.

One write at a time (a mutex); searches see each write whole (the indexes' lock).
Thumbnails and kept originals are noted as pending before they are written, so a crash
between writing them and the commit leaves nothing the next open does not remove.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from imgsearch.config import Settings
from imgsearch.engine.derived import Derived
from imgsearch.engine.indexes import Indexes
from imgsearch.engine.pipeline import Prepared, Preparer, batched
from imgsearch.engine.shared_cache import RedisCache
from imgsearch.engine.storage import storage_faults
from imgsearch.enrich.thumbnails import remove_thumbnail, thumbnail_relpath, write_thumbnail
from imgsearch.errors import (
    CollectionLockedError,
    ImgSearchError,
    ReadOnlyCollectionError,
    StorageFullError,
)
from imgsearch.store.catalog import Catalog, WriteResult
from imgsearch.store.files import (
    ORIGINALS_DIR,
    PendingFiles,
    remove_original,
    write_original,
)
from imgsearch.types import ImageInput, IngestFailure, IngestReport, Item, Progress

ProgressCallback = Callable[[Progress], None]


class Writer:
    """Writes to one collection's catalog, files and ``indexes``; each write forgets
    what ``derived`` (and the shared cache) made from the collection before it."""

    def __init__(self, directory: Path, settings: Settings, catalog: Catalog, readonly: bool,
                 indexes: Indexes, derived: Derived, shared_cache: RedisCache | None,
                 preparer: Callable[[], Preparer]) -> None:
        self.directory = directory
        self.settings = settings
        self.catalog = catalog
        self.readonly = readonly
        self.indexes = indexes
        self.derived = derived
        self.shared_cache = shared_cache
        self.preparer = preparer
        self.pending = PendingFiles(directory)
        self._write_mutex = threading.Lock()

    def require_writable(self) -> None:
        if self.catalog.read_only_storage:
            raise ReadOnlyCollectionError(
                f"collection {self.directory} is on read-only storage; it can be searched "
                f"but not written")
        if self.readonly:
            raise CollectionLockedError(
                f"collection {self.directory} was opened read-only; writes need a writer")

    def commit(self, prepared: list[Prepared]) -> list[WriteResult]:
        """Write prepared items durably, then make them searchable. Returns per item."""
        self.require_writable()
        if not prepared:
            return []
        with self._write_mutex, storage_faults(self.directory):
            files = self._name_files(prepared)
            # noted before they exist: a crash from here to the commit leaves nothing behind
            self.pending.note(files, durable=any(p.original is not None for p in prepared))
            try:
                self._write_files(prepared)
                with self.catalog.transaction() as conn:
                    results = [self.catalog.upsert(conn, p.item, p.vectors) for p in prepared]
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

    def sweep_files(self) -> int:
        """At open, by the writer: remove files a crash left before their commit; how
        many."""
        removed = self.pending.sweep(self._file_in_use, self._remove_file)
        removed += self.catalog.sweep_vector_files()
        return removed

    def _apply(self, results: list[WriteResult], vectors: dict[int, Any]) -> None:
        self.derived.forget()
        if self.shared_cache is not None:
            self.shared_cache.bump()
        self.indexes.apply(results, vectors)
        # A search that began before the indexes changed may have cached its answer under
        # the version bumped above: start a new version once they have.
        self.derived.forget()
        self.indexes.save_if_due()

    def upsert_many(self, entries: Sequence[tuple[Item, ImageInput | None]]
                    ) -> list[str | ImgSearchError | OSError]:
        """The one write path of items given with their images (the CLI's ``add``, the
        item routes, the batch route): decoded, enriched and encoded as one batch and
        committed in one transaction. An image of None is the item's own reference.

        Per entry, in order: "added" or "updated" once durable, or the error that kept
        it out (its image could not be read, fetched or decoded) — the others are written.
        A failed commit (storage full, ...) is the error of every entry it would have
        written."""
        self.require_writable()
        answers = self.preparer().prepare_each(
            [(item, image if image is not None else item.image) for item, image in entries])
        prepared = [a for a in answers if isinstance(a, Prepared)]
        try:
            written: list[str | ImgSearchError] = [r.status for r in self.commit(prepared)]
        except ImgSearchError as exc:
            written = [exc] * len(prepared)
        statuses = iter(written)
        return [next(statuses) if isinstance(a, Prepared) else a for a in answers]

    def delete_many(self, ids: Iterable[str]) -> int:
        self.require_writable()
        with self._write_mutex, storage_faults(self.directory):
            with self.catalog.transaction() as conn:
                results = [r for r in (self.catalog.delete(conn, i) for i in ids) if r]
                self.pending.note(_replaced_files(results))
            self._apply(results, {})
            self._drop_unused(_replaced_files(results))
            self.pending.clear()
        return len(results)

    def ingest_items(self, items: Iterable[tuple[Item, ImageInput | None]], *,
                     total: int | None = None, progress: ProgressCallback | None = None,
                     on_commit: Callable[[list[str]], None] | None = None,
                     report: IngestReport | None = None) -> IngestReport:
        """Prepare and commit items in batches; failures are recorded, never fatal."""
        self.require_writable()
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
        for batch, prepared, failures in self.preparer().prepare_ahead(
                batched(items, self.settings.ingest_batch_size)):
            flush(batch, prepared, failures)
        self.indexes.save_if_room()
        report.seconds += time.perf_counter() - started
        return report

    def upgrade(self) -> dict[str, Any]:
        """Bring the collection's storage up to date: what opening it upgraded (schema,
        and where the old catalog is kept), then every vector file with dead rows or in
        another ``vector_dtype`` than the setting's compacted into a new one."""
        self.require_writable()
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


def _thumbnail_key(item: Item) -> int:
    """Thumbnails are named by content: items with the same image share one."""
    name = item.content_hash or hashlib.sha256(item.id.encode()).hexdigest()
    return int(name[:15], 16)


def _replaced_files(results: Iterable[WriteResult]) -> list[str]:
    """The thumbnails and originals that written items no longer use."""
    return [path for r in results for path in (r.old_thumbnail, r.old_original) if path]


__all__ = ["ProgressCallback", "Writer"]
