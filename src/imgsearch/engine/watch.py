"""Keep a collection in sync with a folder as files are added, changed, moved or removed.

``FolderWatcher`` listens for file-system events (``watchfiles``: inotify, FSEvents,
ReadDirectoryChangesW) and answers each burst with the same folder sync that
``imgsearch index FOLDER`` runs (``engine.ingest.run_ingest``), so a watched folder and
an indexed folder give the same item ids, sources and reports.

Events are coalesced into a set of changed paths, at most ``max_pending`` of them; a
sync looks only at those (``ingest.changes``): what is there now is indexed, what is
gone is removed. A burst of more paths than that, the first sync, and changes the
targeted listing cannot judge (symbolic links on the way) fall back to a rescan of
the whole folder (one ``stat`` per file; only new or changed files are read), so
memory stays bounded whatever the burst. Files still being written are held back until
they settle: their mtime is at least ``settle_s`` old and, where Linux leases are
available, no process has them open for writing. A file that failed is not read
again until it changes.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from imgsearch.engine.ingest import run_ingest
from imgsearch.errors import InvalidInputError
from imgsearch.ingest.fields import name_text
from imgsearch.ingest.sources import FolderEntry
from imgsearch.types import IngestReport, Progress

if TYPE_CHECKING:
    from imgsearch.engine.core import Engine

# Linux F_SETSIG: the signal a lease break sends. SIGIO, the default, would end the
# process; SIGURG is ignored unless handled. The lease is held for microseconds anyway.
_F_SETSIG = getattr(fcntl, "F_SETSIG", 10)


def open_for_writing(path: Path) -> bool | None:
    """Whether some process has ``path`` open for writing; None when this cannot be
    told (no lease support, a file of another user, another system than Linux).

    A read lease is refused (EAGAIN) while anyone holds the file open for writing.
    """
    setlease = getattr(fcntl, "F_SETLEASE", None)
    if setlease is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, _F_SETSIG, signal.SIGURG)
        try:
            fcntl.fcntl(fd, setlease, fcntl.F_RDLCK)
        except OSError as exc:
            return True if exc.errno in (errno.EAGAIN, errno.EBUSY) else None
        fcntl.fcntl(fd, setlease, fcntl.F_UNLCK)
        return False
    finally:
        os.close(fd)


class _Stopped(Exception):
    """Raised between batches of a sync when the watcher is asked to stop."""


@dataclass
class WatchStats:
    """What a watcher has done since it started."""

    syncs: int = 0
    added: int = 0
    updated: int = 0
    removed: int = 0
    failed: int = 0
    held: int = 0  # files held back at the last sync (still being written)
    rescans: int = 0  # syncs that scanned the whole folder
    last_sync_s: float = 0.0
    errors: list[str] = field(default_factory=list)  # syncs that failed as a whole


class FolderWatcher:
    """Watch ``folder`` and mirror it into ``engine``'s collection.

    ``on_report`` receives the report of every sync that changed or failed something
    (the initial sync always), from the watching thread.
    """

    def __init__(self, engine: Engine, folder: Path, *, settle_s: float = 0.4,
                 max_pending: int = 10_000,
                 on_report: Callable[[IngestReport], None] | None = None,
                 on_error: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        folder = Path(folder).absolute()
        if not folder.is_dir():
            raise InvalidInputError(f"{folder}: not a folder (or it does not exist); "
                                    "give the folder to watch")
        self.engine = engine
        self.folder = folder
        self.settle_s = settle_s
        self.on_report = on_report
        self.on_error = on_error
        self.stats = WatchStats()
        self._clock = clock
        self._failed: dict[str, tuple[int, float]] = {}  # file -> (size, mtime) that failed
        self.max_pending = max_pending
        self._pending: set[str] = set()  # paths events named since the last sync ...
        self._rescan = True  # ... unless there were too many: then the whole folder
        # when the files held back for their age become old enough (None: none, or some
        # are held because a writer has them open, which only polling can tell)
        self._settles_at: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.synced = threading.Event()  # set after each sync that left nothing held

    # -- one sync --------------------------------------------------------------------
    def sync(self, *, full: bool | None = None, hold_unsettled: bool = True) -> IngestReport:
        """Bring the collection up to date with the folder once; returns the report.

        Only the paths events named since the last sync are looked at, unless ``full``
        (or there were more than ``max_pending`` of them, or this is the first sync):
        then the whole folder is scanned. With ``hold_unsettled`` (the default), files
        still being written wait for a later sync.
        """
        full = self._rescan if full is None else full
        paths, self._pending, self._rescan = self._pending, set(), False
        held: list[str] = []
        settles: list[float | None] = []  # when each held file may be read
        admitted: dict[str, tuple[int, float]] = {}
        now = self._clock()

        def admit(entry: FolderEntry) -> bool:
            label = name_text(str(entry.path))
            if self._failed.get(label) == (entry.size, entry.mtime):
                return False  # failed as it is: read again once it changes
            if hold_unsettled and now - entry.mtime < self.settle_s:
                held.append(str(entry.path))
                settles.append(entry.mtime + self.settle_s)
                return False
            if hold_unsettled and open_for_writing(entry.path):
                held.append(str(entry.path))
                settles.append(None)
                return False
            admitted[label] = (entry.size, entry.mtime)
            return True

        try:
            report = run_ingest(self.engine, self.folder, admit=admit,
                                progress=self._check_stop,
                                changed=None if full else paths)
        except BaseException:
            self._rescan = True  # what this sync did not finish, the next one does
            raise
        self._note(held)
        times = [t for t in settles if t is not None]
        self._settles_at = min(times) if times and len(times) == len(settles) else None
        if full:
            self.stats.rescans += 1
        for failure in report.failed:
            if failure.source in admitted:
                self._failed[failure.source] = admitted[failure.source]
        for label in admitted.keys() - {f.source for f in report.failed}:
            self._failed.pop(label, None)
        self._record(report, len(held))
        return report

    def _note(self, paths: Iterable[str]) -> None:
        """Paths to look at in the next sync: at most ``max_pending``, else all."""
        if self._rescan:
            return
        self._pending.update(paths)
        if len(self._pending) > self.max_pending:
            self._pending = set()
            self._rescan = True

    def _check_stop(self, _progress: Progress) -> None:
        """Between committed batches: a stop asked for ends the sync there."""
        if self._stop.is_set():
            raise _Stopped

    def _record(self, report: IngestReport, held: int) -> None:
        stats = self.stats
        stats.syncs += 1
        stats.added += report.added
        stats.updated += report.updated
        stats.removed += report.removed
        stats.failed += len(report.failed)
        stats.held = held
        stats.last_sync_s = report.seconds
        if held:
            self.synced.clear()
        else:
            self.synced.set()
        changed = report.added or report.updated or report.removed or report.failed
        if self.on_report is not None and (changed or stats.syncs == 1):
            self.on_report(report)

    # -- the watching loop -----------------------------------------------------------
    def run(self, ready: threading.Event | None = None) -> None:
        """Sync once, then watch until :meth:`stop`; blocks the calling thread."""
        import watchfiles

        try:
            self.sync()  # as `imgsearch index FOLDER` would, holding back unsettled files
        except _Stopped:
            return
        dirty = self.stats.held > 0
        last_sync = self._clock()
        tick_ms = max(50, int(self.settle_s * 250))
        # the watch starts before ``ready`` is set: what is written after is seen
        changes = watchfiles.watch(self.folder, watch_filter=self._wanted,
                                   debounce=tick_ms * 4,
                                   step=tick_ms, rust_timeout=tick_ms, yield_on_timeout=True,
                                   stop_event=self._stop, ignore_permission_denied=True,
                                   raise_interrupt=False)
        first, failures = True, 0
        for batch in changes:
            if first:
                first = False
                # what was written between the first sync and the start of the watch
                self._rescan = dirty = True
                if ready is not None:
                    ready.set()
            if batch:
                self._note(path for _change, path in batch)
                dirty = True
            # after a failed sync, wait longer each time (up to a minute) before the next
            pause = min(self.settle_s / 2, 0.2) if not failures else min(2.0 ** failures, 60)
            due = last_sync + pause
            if not batch and not failures and self._settles_at is not None:
                # only files held for their age wait: look again the moment they settle
                # rather than at the next tick (up to a tick later)
                due = self._settles_at
            wait = due - self._clock()
            if dirty and 0 < wait <= tick_ms / 1000:
                self._stop.wait(wait)
                wait = 0
            if dirty and wait <= 0:
                last_sync = self._clock()
                try:
                    self.sync()
                except _Stopped:
                    return
                except Exception as exc:  # one failed sync must not end the watch
                    failures += 1
                    self._error(getattr(exc, "message", None)
                                or f"{type(exc).__name__}: {exc}")
                    continue
                failures = 0
                dirty = self.stats.held > 0

    def _error(self, message: str) -> None:
        """A sync that failed as a whole (not a file: those are in its report)."""
        self.stats.errors.append(message)
        del self.stats.errors[:-20]
        if self.on_error is not None:
            self.on_error(message)

    def _wanted(self, _change: object, path: str) -> bool:
        """Events that can matter: not in hidden folders (the scan skips them) nor in
        the collection itself (its own writes would wake the watcher forever)."""
        try:
            parts = Path(path).relative_to(self.folder).parts
        except ValueError:
            return True
        if any(part.startswith(".") for part in parts):
            return False
        return not Path(path).is_relative_to(self.engine.directory.absolute())

    def start(self, wait: bool = True) -> FolderWatcher:
        """Run in a background thread; with ``wait``, returns once the first sync is
        done and events are being watched (raising what stopped it, if anything)."""
        ready = threading.Event()
        failed: list[BaseException] = []

        def body() -> None:
            try:
                self.run(ready)
            except BaseException as exc:  # reported to start(), or kept in stats
                failed.append(exc)
                self._error(f"stopped watching: {getattr(exc, 'message', None) or exc}")
            finally:
                ready.set()

        self._thread = threading.Thread(target=body, name=f"imgsearch-watch-{self.folder}",
                                        daemon=True)
        self._thread.start()
        if not wait:
            return self
        ready.wait()
        if failed:
            raise failed[0]
        return self

    @property
    def settles_at(self) -> float | None:
        """When the files the last sync held back for their age may be read (the watch
        looks again then); None when none were, or a writer still holds one open."""
        return self._settles_at

    @property
    def running(self) -> bool:
        """Whether the background thread is still watching."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop watching; waits up to ``timeout`` s for a sync in progress to finish."""
        self._stop.set()
        if self._thread is not None and timeout > 0:
            self._thread.join(timeout)


__all__ = ["FolderWatcher", "WatchStats", "open_for_writing"]
