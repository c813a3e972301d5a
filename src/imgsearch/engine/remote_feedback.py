"""Click feedback on a node over a remote collection: searches are logged and clicks
recorded in a log the backend keeps for every node (``MilvusBackend.feedback``), and the
report (click-through, MRR of clicks, zero-result rate, latency) is made from what all
nodes logged, as the local engine makes it from its collection's log."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any, Protocol

from imgsearch.errors import ImgSearchError, InvalidInputError, UnsupportedOnBackendError
from imgsearch.store.logs import SearchRecord
from imgsearch.types import Query, SearchResult

if TYPE_CHECKING:
    from imgsearch.engine.remote import RemoteEngine

_log = logging.getLogger("imgsearch.logs")


class SharedSearchLog(Protocol):
    def log_search(self, record: SearchRecord | Any) -> str: ...

    def record_click(self, search_id: str, item_id: str,
                     position: int | None = None) -> None: ...

    def report(self, since: float | None = None) -> dict[str, Any]: ...


class RemoteFeedback:
    """The node's handle on the shared log, opened on first use (or by ``open``)."""

    def __init__(self, engine: RemoteEngine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._log: SharedSearchLog | None = None

    def open(self) -> SharedSearchLog | None:
        """The log; None when searches are not logged (``log_searches`` off)."""
        if not self._engine.settings.log_searches:
            return None
        with self._lock:
            if self._log is None:
                opener = getattr(self._engine.backend, "feedback", None)
                if opener is None:
                    raise UnsupportedOnBackendError(
                        f"the backend of {self._engine.uri} keeps no search log; clicks "
                        f"cannot be recorded")
                self._log = opener()
            return self._log

    def logged(self, query: Query, result: SearchResult) -> SearchResult:
        """``result`` with the id of its line in the log (none when the log is off or
        cannot be opened: the log never stands in the way of a search)."""
        try:
            log = self.open()
        except ImgSearchError as exc:
            _log.warning("search logging is off for now: %s", exc)
            return result
        if log is None:
            return result
        hits = list(result.hits)

        def record() -> SearchRecord:  # made on the log's thread, off the search's path
            return SearchRecord.of(query, result, hits, {}, result.query_time_ms)

        result.search_id = log.log_search(record)
        return result

    def record_click(self, search_id: str, item_id: str, position: int | None) -> None:
        log = self.open()
        if log is None:
            raise InvalidInputError("search logging is off for this node "
                                    "(IMGSEARCH_LOG_SEARCHES=0); clicks cannot be recorded")
        log.record_click(search_id, item_id, position)

    def report(self, since: float | None) -> dict[str, Any]:
        log = self.open()
        return {} if log is None else log.report(since)


__all__ = ["RemoteFeedback", "SharedSearchLog"]
