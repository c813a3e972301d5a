"""Search and click logs, and the report made from them.

Logs live in their own SQLite file (``logs.sqlite3``) so that logging from a searching
process never waits on the catalog's writer. Searches are queued and written in batches
by a background thread: a search never waits for its log line, and at most the last
fraction of a second of search lines can be lost in a crash. Clicks are feedback a
caller acknowledges, so they are written before ``record_click`` returns.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from imgsearch.errors import CorruptCollectionError, InvalidInputError, storage_fault
from imgsearch.ids import new_id

if TYPE_CHECKING:
    from imgsearch.types import Query, SearchHit, SearchResult

LOG_NAME = "logs.sqlite3"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS searches (
    id TEXT PRIMARY KEY, at REAL NOT NULL, kind TEXT NOT NULL, text TEXT,
    filters TEXT NOT NULL, interpretation TEXT NOT NULL, result_ids TEXT NOT NULL,
    scores TEXT NOT NULL, latency_ms REAL NOT NULL, empty_reason TEXT,
    model_load_ms REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS searches_at ON searches (at);
CREATE TABLE IF NOT EXISTS clicks (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, search_id TEXT NOT NULL,
    item_id TEXT NOT NULL, position INTEGER
);
CREATE INDEX IF NOT EXISTS clicks_search ON clicks (search_id);
"""
_STOP = object()
# one logged search in a report: result ids, latency, clicks, model load time
_Entry = tuple[list[str], float, list[tuple[str, int | None]], float]
_log = logging.getLogger("imgsearch.logs")
_GATHER_S = 0.1
# Lines are written one at a time, with a pause between: a search waiting for the
# interpreter while this thread made a tenth of a second's lines at a go waited up to
# the interpreter's switch interval (5 ms). With this and the line made as the search
# answers (``Searcher._logged``), bench/peers.py at 1M items went from p99 1.28 / 2.47 ms
# (by vector / by id) to 0.89 / 0.91 ms (BENCHMARKS.md, the 1M peers rerun). A batch
# too large to write in pauses within a few tenths of a second is written at a go.
_TURN_S = 0.0001
_PAUSED_BATCH = 2_000
_MAX_PENDING = 100_000  # lines waiting to be written; past this, searches go unlogged
_COLUMNS = ("id, at, kind, text, filters, interpretation, result_ids, scores, latency_ms, "
            "empty_reason, model_load_ms")


@dataclass(frozen=True)
class SearchRecord:
    kind: str
    text: str | None
    filters: dict[str, Any]
    interpretation: dict[str, Any]
    result_ids: list[str]
    scores: list[float]
    latency_ms: float  # answering the query, without loading a model
    empty_reason: str | None
    model_load_ms: float = 0.0  # loading the model the query needed (its first use)

    @classmethod
    def of(cls, query: Query, result: SearchResult, hits: Sequence[SearchHit],
           interpretation: dict[str, Any], latency_ms: float, model_load_ms: float = 0.0
           ) -> SearchRecord:
        """What the log keeps of ``query`` and its ``result`` (whose ``hits`` were taken
        when it was answered): the filters it set, the hits' ids and scores."""
        return cls(kind=result.query_kind, text=query.text,
                   filters={} if query.filters.is_empty() else
                   {f.name: dict(value) if f.name == "attributes" else value
                    for f in dataclasses.fields(query.filters)
                    if (value := getattr(query.filters, f.name))},
                   interpretation=interpretation, result_ids=[h.id for h in hits],
                   scores=[h.score for h in hits], latency_ms=latency_ms,
                   empty_reason=result.empty_reason, model_load_ms=model_load_ms)


def check_click(search_id: str, item_id: str, position: int | None) -> None:
    """Refuse a click that names no search or item, or a position under 1."""
    if not search_id or not item_id:
        raise InvalidInputError("a click needs the search id and the clicked item id")
    if position is not None and position < 1:
        raise InvalidInputError(f"click position counts from 1, got {position}")


def open_search_log(directory: Path, notes: list[str]) -> SearchLog | None:
    """The collection's search log, or None (with a note saying why) when it cannot be
    written: the log never stands in the way of a search. A damaged log is set aside
    (renamed with the time) and a new one started."""
    try:
        return SearchLog(directory)
    except sqlite3.Error as exc:
        fault = storage_fault(exc, str(directory / LOG_NAME))
        if not isinstance(fault, CorruptCollectionError):
            notes.append(f"search logging is off: {directory / LOG_NAME} cannot be "
                         f"written ({exc})")
            return None
    aside = set_aside(directory / LOG_NAME)
    notes.append(f"the search log {directory / LOG_NAME} was damaged; it was set aside as "
                 f"{aside.name if aside else 'another process did'} and a new one started")
    try:
        return SearchLog(directory)
    except sqlite3.Error as exc:
        notes.append(f"search logging is off: a new log cannot be started ({exc})")
        return None


def set_aside(path: Path) -> Path | None:
    """Rename a damaged database (with its -wal and -shm files) out of the way, keeping
    it for inspection: ``logs.sqlite3`` becomes ``logs.sqlite3.damaged-20260102T030405``.
    None when another process moved it first."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
    try:
        os.replace(path, target)
    except FileNotFoundError:
        return None
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        with contextlib.suppress(FileNotFoundError):
            os.replace(side, target.with_name(target.name + suffix))
    return target


class SearchLog:
    def __init__(self, directory: Path) -> None:
        self.path = directory / LOG_NAME
        self._conn = self._connect()
        self._lock = threading.Lock()
        # Searches append here and never wait or wake anyone: the log's thread looks every
        # _GATHER_S and writes what gathered in one transaction.
        self._pending: collections.deque[Any] = collections.deque()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._drain, name="imgsearch-log", daemon=True)
        self._thread.start()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                               timeout=30.0)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            # The log is not an acknowledged write: a power cut may cost its last moments.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
            if not _has_load_column(conn):  # a log from before model load was recorded
                try:
                    conn.execute("ALTER TABLE searches ADD COLUMN "
                                 "model_load_ms REAL NOT NULL DEFAULT 0")
                except sqlite3.OperationalError as exc:  # another process added it first
                    if "duplicate column" not in str(exc):
                        raise
        except BaseException:
            conn.close()
            raise
        return conn

    def _recover(self, exc: sqlite3.Error) -> bool:
        """After ``exc`` (the log's lock held): a damaged log is set aside and a new one
        started, with a warning; True when that was done."""
        if not isinstance(storage_fault(exc, str(self.path)), CorruptCollectionError):
            return False
        self._conn.close()
        aside = set_aside(self.path)
        _log.warning("the search log %s was damaged (%s); it was set aside as %s and a new "
                     "one started", self.path, exc, aside.name if aside else "(moved)")
        self._conn = self._connect()
        return True

    def log_search(self, record: SearchRecord | Callable[[], SearchRecord]) -> str:
        """Queue a search line; returns its id (for click feedback). ``record`` may be a
        function that makes the line: it is then called on the log's thread."""
        search_id = new_id()
        # under a flood of searches the log gives way, never the search
        if len(self._pending) < _MAX_PENDING:
            self._pending.append((search_id, time.time(), record))
        return search_id

    def record_click(self, search_id: str, item_id: str, position: int | None = None) -> None:
        check_click(search_id, item_id, position)
        row = (time.time(), search_id, item_id, position)
        insert = "INSERT INTO clicks (at, search_id, item_id, position) VALUES (?, ?, ?, ?)"
        with self._lock:
            try:
                self._conn.execute(insert, row)
            except sqlite3.Error as exc:
                if not self._recover(exc):
                    raise
                self._conn.execute(insert, row)

    def flush(self) -> None:
        """Until every search logged before this call is written."""
        written = threading.Event()
        self._pending.append(written)
        self._wake.set()
        written.wait(timeout=30)

    def close(self) -> None:
        self._pending.append(_STOP)
        self._wake.set()
        self._thread.join(timeout=10)
        with self._lock:
            self._conn.close()

    def _drain(self) -> None:
        pending = self._pending
        while True:
            self._wake.wait(_GATHER_S)
            self._wake.clear()
            batch = [pending.popleft() for _ in range(len(pending))]
            rows: list[tuple[Any, ...]] = []
            for b in batch:
                if rows and len(batch) <= _PAUSED_BATCH:
                    time.sleep(_TURN_S)  # let searches have the interpreter
                if isinstance(b, tuple):
                    try:
                        rows.append(_row(*b))
                    except Exception:  # one bad line must not stop the log
                        _log.exception("search log: a line could not be made")
            if rows:
                try:
                    with self._lock:
                        try:
                            self._conn.execute("BEGIN")
                            self._conn.executemany(
                                f"INSERT OR IGNORE INTO searches ({_COLUMNS}) "
                                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
                            self._conn.execute("COMMIT")  # a full disk fails here too
                        except BaseException:
                            if self._conn.in_transaction:
                                self._conn.execute("ROLLBACK")
                            raise
                except sqlite3.Error as exc:  # a full disk: these lines are lost, not the log
                    with self._lock:
                        recovered = self._recover(exc)
                    if not recovered:
                        _log.warning("search log: %d lines could not be written (%s)",
                                     len(rows), exc)
            for b in batch:
                if isinstance(b, threading.Event):
                    b.set()
            if any(b is _STOP for b in batch):
                return

    def report(self, since: float | None = None) -> dict[str, Any]:
        """Click-through rate, MRR of clicks, zero-result rate and latency per query type.

        CTR = searches with at least one click / searches. MRR of clicks = mean over
        searches of 1 / position of the first clicked result (0 without a click; a click
        whose item is not among the results counts as 0). Zero-result rate = searches
        that returned nothing / searches. Latency percentiles are over search time in ms,
        without the time a search spent loading a model: that is reported apart, as the
        number of searches that loaded one and their load times.
        """
        self.flush()
        with self._lock:
            try:
                rows, clicks = _read(self._conn, since)
            except sqlite3.Error as exc:
                if not self._recover(exc):
                    raise
                rows, clicks = _read(self._conn, since)
        return _report(rows, clicks)


def read_only_report(conn: sqlite3.Connection, since: float | None = None
                     ) -> dict[str, Any]:
    """``SearchLog.report`` over a read-only connection to the log (read-only storage,
    where no log is written)."""
    try:
        return _report(*_read(conn, since))
    finally:
        conn.close()


def report_of(rows: list[Any], clicks: dict[str, list[tuple[str, int | None]]]
              ) -> dict[str, Any]:
    """``SearchLog.report`` over a log held elsewhere: ``rows`` are (search id, kind,
    result ids as JSON, latency ms, model load ms), ``clicks`` (item id, position) per
    search id, in the order they were recorded."""
    return _report(rows, clicks)


def _report(rows: list[Any], clicks: dict[str, list[tuple[str, int | None]]]
            ) -> dict[str, Any]:
    per_kind: dict[str, list[_Entry]] = {}
    for search_id, kind, result_ids, latency, load in rows:
        per_kind.setdefault(kind, []).append(
            (json.loads(result_ids), float(latency), clicks.get(search_id, []),
             float(load or 0.0)))
    per_kind["all"] = [entry for kind in list(per_kind) for entry in per_kind[kind]]
    return {kind: _summary(entries) for kind, entries in sorted(per_kind.items())}



def _read(conn: sqlite3.Connection, since: float | None
          ) -> tuple[list[Any], dict[str, list[tuple[str, int | None]]]]:
    load = "model_load_ms" if _has_load_column(conn) else "0"  # an older log: none recorded
    rows = conn.execute(
        f"SELECT id, kind, result_ids, latency_ms, {load} FROM searches WHERE at >= ?",
        (since or 0.0,)).fetchall()
    clicks: dict[str, list[tuple[str, int | None]]] = {}
    for search_id, item_id, position in conn.execute(
            "SELECT search_id, item_id, position FROM clicks ORDER BY id"):
        clicks.setdefault(search_id, []).append((item_id, position))
    return rows, clicks


def _has_load_column(conn: sqlite3.Connection) -> bool:
    return any(row[1] == "model_load_ms"
               for row in conn.execute("PRAGMA table_info(searches)"))


def _summary(entries: list[_Entry]) -> dict[str, Any]:
    n = len(entries)
    if not n:
        return {"searches": 0}
    latencies = np.asarray([latency for _, latency, _, _ in entries])
    loads = np.asarray([load for *_, load in entries if load > 0])
    reciprocal = []
    clicked = 0
    for results, _, clicks, _ in entries:
        if clicks:
            clicked += 1
        first = clicks[0] if clicks else None
        if first is None:
            reciprocal.append(0.0)
            continue
        position = first[1] or (results.index(first[0]) + 1 if first[0] in results else None)
        reciprocal.append(1.0 / position if position else 0.0)
    return {
        "searches": n,
        "click_through_rate": round(clicked / n, 4),
        "mrr_of_clicks": round(float(np.mean(reciprocal)), 4),
        "zero_result_rate": round(sum(1 for r, *_ in entries if not r) / n, 4),
        "latency_ms": {f"p{q}": round(float(np.percentile(latencies, q)), 3)
                       for q in (50, 95, 99)},
        "model_loads": len(loads),
        "model_load_ms": {"p50": round(float(np.median(loads)), 3),
                          "max": round(float(loads.max()), 3)} if len(loads) else {},
    }


# made once: json.dumps with options makes an encoder on every call
_SORTED_JSON = json.JSONEncoder(sort_keys=True, default=str).encode
_JSON = json.JSONEncoder(default=str).encode


def _row(search_id: str, at: float, record: SearchRecord | Callable[[], SearchRecord]
         ) -> tuple[Any, ...]:
    if callable(record):
        record = record()
    return (search_id, at, record.kind, record.text,
            _SORTED_JSON(record.filters), _JSON(record.interpretation),
            json.dumps(record.result_ids),
            json.dumps([round(s, 6) for s in record.scores]), record.latency_ms,
            record.empty_reason, record.model_load_ms)
