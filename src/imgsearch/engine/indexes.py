"""The collection's vector indexes, one per space, and what is kept with them: their
calibrations, the readers–writer lock searches take, the manifest's record of them.
Writes go into them here; they are snapshotted here; a reader that did not write takes
in the writer's journal here."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from imgsearch.config import Settings
from imgsearch.encode.base import Encoder
from imgsearch.engine.compaction import compact_vector_files
from imgsearch.engine.derived import Derived
from imgsearch.engine.locking import RWLock
from imgsearch.engine.storage import storage_faults
from imgsearch.errors import StorageFullError
from imgsearch.search.calibration import (
    MIN_VECTORS,
    PROBE_TEXTS,
    Calibration,
    calibrate,
    calibrate_probes,
    is_stale,
)
from imgsearch.search.space import JournalGap, SpaceIndex
from imgsearch.store.catalog import Catalog, WriteResult
from imgsearch.store.manifest import Manifest, remember_spaces, write_manifest

_log = logging.getLogger("imgsearch.engine")


class Indexes:
    """``spaces`` by name (filled when the collection opens), their ``calibrations``,
    and ``lock``: searches read under it, a write goes in whole under it."""

    def __init__(self, directory: Path, settings: Settings, catalog: Catalog,
                 manifest: Manifest, readonly: bool, derived: Derived,
                 encoder: Callable[[str], Encoder]) -> None:
        self.directory = directory
        self.settings = settings
        self.catalog = catalog
        self.manifest = manifest
        self.readonly = readonly
        self.derived = derived
        self.encoder = encoder
        self.lock = RWLock()
        # what writes hold (the Writer's); a save compacts vector files only when it gets it
        self.write_mutex = threading.Lock()
        self.spaces: dict[str, SpaceIndex] = {}
        self.calibrations: dict[str, Calibration | None] = {}
        self._seen_version: int | None = None  # catalog data_version a reader last took in
        self._refresh_mutex = threading.Lock()

    def refresh_calibration(self, force: bool = False) -> None:
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

    def record_index_params(self) -> None:
        self.manifest.index = {
            name: {"kind": sp.capabilities.kind, "vectors": len(sp),
                   "journal_seq": sp.applied_seq}
            for name, sp in self.spaces.items()}
        if not self.readonly:
            with storage_faults(self.directory):
                write_manifest(self.directory, self.manifest)
                remember_spaces(self.catalog, self.manifest)

    def save(self) -> None:
        """Snapshot indexes (atomically) and prune the journal they no longer need."""
        if self.readonly:
            return
        with storage_faults(self.directory):
            with self.lock.write():
                for name in list(self.spaces):
                    self.spaces[name] = self.spaces[name].maintain()
                    self.spaces[name].save()
                self.refresh_calibration()
            if self.write_mutex.acquire(blocking=False):  # not while a write is under way
                try:
                    with self.lock.write():  # rows move under searches' feet otherwise
                        compact_vector_files(self.catalog, min_dead_ratio=(
                            self.settings.compact_tombstone_ratio), live={
                                name: len(sp) for name, sp in self.spaces.items()})
                finally:
                    self.write_mutex.release()
            low = min((sp.saved_seq for sp in self.spaces.values()), default=0)
            if low > int(self.catalog.get_meta("journal_pruned_upto") or 0):
                self.catalog.prune_journal(low)
                with self.catalog.transaction() as conn:
                    self.catalog.set_meta("journal_pruned_upto", str(low), conn)
        self.record_index_params()

    def save_if_room(self) -> None:
        """Save the indexes unless the disk is full: they are caches of the catalog, whose
        journal brings them up to date on the next open, so a write that committed is
        not failed for want of room to save them."""
        try:
            self.save()
        except StorageFullError as exc:
            _log.warning("indexes not saved: %s", exc.message)

    def apply(self, results: list[WriteResult], vectors: dict[int, Any]) -> None:
        """Committed writes into every space's index (``vectors`` by catalog key)."""
        head = self.catalog.journal_head()
        with self.lock.write():
            for name, space in self.spaces.items():
                added = {r.added[name]: (r.key, vectors[r.key][name])
                         for r in results if name in r.added}
                removed = {r.removed[name]: r.key for r in results if name in r.removed}
                space.apply(added, removed, head)

    def warm(self, wait: bool) -> list[str]:
        """Do now the opens put off to each space's first search (on a thread of its own
        without ``wait``: a failure is then left for that search to meet and report);
        the names of the spaces whose searches re-score candidates from vector files."""
        spaces = list(self.spaces.values())
        if wait:
            for space in spaces:
                space.load()
        else:
            def load_quietly() -> None:
                for space in spaces:
                    with contextlib.suppress(Exception):
                        space.load()
            threading.Thread(target=load_quietly, name="imgsearch-load", daemon=True).start()
        return [name for name, space in self.spaces.items()
                if not space.capabilities.exact_scores]

    def save_if_due(self) -> None:
        """Save when some index has ``index_save_every`` journal entries unsaved."""
        every = self.settings.index_save_every
        if any(sp.applied_seq - sp.saved_seq >= every for sp in self.spaces.values()):
            self.save_if_room()

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
            self.derived.forget()
            with self.lock.write():
                for name, space in list(self.spaces.items()):
                    try:
                        space.follow()
                    except JournalGap:
                        pruned = int(self.catalog.get_meta("journal_pruned_upto") or 0)
                        self.spaces[name], _report = SpaceIndex.open(
                            space.space, self.catalog, space.path, self.settings,
                            pruned_upto=pruned)
            self.derived.forget()  # anything made meanwhile saw the old indexes
            self._seen_version = version
        return True


__all__ = ["Indexes"]
