"""The search and click log of a milvus collection, in a companion collection
``NAME__feedback`` on the same server, so that every API node writes it and reads it
(a click recorded through one node counts in the report any other node makes).

Searches are queued and written in batches by a thread of their own, as the local log
writes them (``store.logs``): a search never waits for its log line, and a node that
dies loses at most its last fraction of a second of them. A click is written before
``record_click`` returns, after the searches this node queued before it. One row per
search or click; Milvus holds no collection without a vector, so each row carries a
2-d zero vector nobody searches.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from imgsearch.engine.backends.milvus_target import (
    CONSISTENCY,
    MilvusTarget,
    Runner,
    scan_rows,
)
from imgsearch.errors import ImgSearchError
from imgsearch.ids import new_id
from imgsearch.store.logs import SearchRecord, check_click, report_of

SUFFIX = "__feedback"
_GATHER_S = 0.1
_MAX_PENDING = 100_000
_MAX_JSON = 60_000
_log = logging.getLogger("imgsearch.logs")

def _create(target: MilvusTarget, client: Any, name: str) -> None:
    from pymilvus import DataType

    schema = client.create_schema(auto_id=False, enable_dynamic_field=False,
                                  description=f"imgsearch feedback of {target.name}")
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field("kind", DataType.VARCHAR, max_length=16)  # "search" or "click"
    schema.add_field("at", DataType.DOUBLE)
    schema.add_field("search_id", DataType.VARCHAR, max_length=256)
    schema.add_field("item_id", DataType.VARCHAR, max_length=1024)
    schema.add_field("position", DataType.INT64)  # 0: not given
    schema.add_field("record", DataType.JSON)
    schema.add_field("v", DataType.FLOAT_VECTOR, dim=2)
    index = client.prepare_index_params()
    index.add_index("v", index_type="FLAT", metric_type="L2")
    client.create_collection(name, schema=schema, index_params=index,
                             consistency_level=CONSISTENCY, timeout=target.timeout_s)


class MilvusSearchLog:
    """``store.logs.SearchLog``'s calls over the companion collection."""

    def __init__(self, target: MilvusTarget, run: Runner) -> None:
        self.target = target
        self.name = target.name + SUFFIX
        self._run = run
        if not run(lambda c: c.has_collection(self.name)):
            try:
                run(lambda c: _create(target, c, self.name))
            except ImgSearchError:  # another node made it first: use theirs
                if not run(lambda c: c.has_collection(self.name)):
                    raise
        run(lambda c: c.load_collection(self.name, timeout=target.timeout_s))
        self._pending: collections.deque[Any] = collections.deque()
        self._lock = threading.Lock()  # one writer of queued searches at a time
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, name="imgsearch-log",
                                        daemon=True)
        self._thread.start()

    def log_search(self, record: SearchRecord | Callable[[], SearchRecord]) -> str:
        search_id = new_id()
        if len(self._pending) < _MAX_PENDING:  # under a flood the log gives way
            self._pending.append((search_id, time.time(), record))
        return search_id

    def record_click(self, search_id: str, item_id: str, position: int | None = None) -> None:
        check_click(search_id, item_id, position)
        self.flush()
        row = {"id": new_id(), "kind": "click", "at": time.time(), "search_id": search_id,
               "item_id": item_id, "position": position or 0, "record": {},
               "v": [0.0, 0.0]}
        self._insert([row])

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        self._run(lambda c: c.insert(self.name, rows, timeout=self.target.timeout_s))

    def flush(self) -> None:
        """Write the searches queued so far (this thread does it, the log's waits)."""
        with self._lock:
            batch = [self._pending.popleft() for _ in range(len(self._pending))]
            rows = [r for b in batch if (r := _row(*b)) is not None]
            if rows:
                self._insert(rows)

    def _drain(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(_GATHER_S)
            try:
                self.flush()
            except (ImgSearchError, OSError) as exc:  # those lines are lost, not the log
                _log.warning("search log: lines could not be written to %s (%s)",
                             self.name, exc)

    def _scan(self, where: str, fields: list[str]) -> Iterator[dict[str, Any]]:
        return scan_rows(self._run, self.target, self.name, where, fields)

    def report(self, since: float | None = None) -> dict[str, Any]:
        """As ``SearchLog.report``, over what every node logged."""
        self.flush()
        rows = [(r["id"], r["record"].get("kind", "unknown"),
                 json.dumps(r["record"].get("result_ids", [])),
                 float(r["record"].get("latency_ms", 0.0)),
                 float(r["record"].get("model_load_ms", 0.0)))
                for r in self._scan(f'kind == "search" and at >= {float(since or 0.0)!r}',
                                    ["id", "record"])]
        clicks: dict[str, list[tuple[str, int | None]]] = {}
        found = sorted(self._scan('kind == "click"',
                                  ["id", "at", "search_id", "item_id", "position"]),
                       key=lambda r: (r["at"], r["id"]))
        for r in found:
            clicks.setdefault(str(r["search_id"]), []).append(
                (str(r["item_id"]), int(r["position"]) or None))
        return report_of(rows, clicks)

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)
        try:
            self.flush()
        except (ImgSearchError, OSError) as exc:
            _log.warning("search log: the last lines could not be written (%s)", exc)


def _row(search_id: str, at: float, record: SearchRecord | Callable[[], SearchRecord]
         ) -> dict[str, Any] | None:
    try:
        made = record() if callable(record) else record
        kept = {"kind": made.kind, "text": made.text, "filters": made.filters,
                "result_ids": made.result_ids, "scores": [round(s, 6) for s in made.scores],
                "latency_ms": made.latency_ms, "empty_reason": made.empty_reason,
                "model_load_ms": made.model_load_ms}
        text = json.dumps(kept, default=str)
        if len(text.encode()) > _MAX_JSON:  # the filters or text of a huge query
            kept["text"], kept["filters"] = None, {}
            text = json.dumps(kept, default=str)
    except Exception:  # one bad line must not stop the log
        _log.exception("search log: a line could not be made")
        return None
    return {"id": search_id, "kind": "search", "at": at, "search_id": search_id,
            "item_id": "", "position": 0, "record": json.loads(text), "v": [0.0, 0.0]}


__all__ = ["SUFFIX", "MilvusSearchLog"]
