"""``serve --watch FOLDER``: folders kept in sync by the serving process that writes.

Each sync's report goes to the server log: one line per failed file, with its reason
and code, and a summary line per sync that changed something.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from imgsearch.engine import Engine
from imgsearch.engine.watch import FolderWatcher
from imgsearch.types import IngestReport

_LOG = logging.getLogger("imgsearch.watch")


def folder_watchers(engine: Engine, folders: Sequence[Path]) -> list[FolderWatcher]:
    """Watchers for ``folders`` (checked now; started with the app), or none where this
    process does not write (a read-only engine hands its writes to the writer, which
    watches)."""
    if not folders or engine.readonly or engine.catalog.read_only_storage:
        return []
    return [FolderWatcher(engine, Path(folder), on_report=_reporter(Path(folder)),
                          on_error=_error_logger(Path(folder)))
            for folder in folders]


def _error_logger(folder: Path) -> Callable[[str], None]:
    def log(message: str) -> None:
        _LOG.error("watch %s: %s", folder, message)
    return log


def _reporter(folder: Path) -> Callable[[IngestReport], None]:
    def log(report: IngestReport) -> None:
        for failure in report.failed:
            _LOG.warning("watch %s: failed: %s: %s (%s)", folder, failure.source,
                         failure.reason, failure.code)
        _LOG.info("watch %s: added %d, updated %d, removed %d, failed %d", folder,
                  report.added, report.updated, report.removed, len(report.failed))
    return log
