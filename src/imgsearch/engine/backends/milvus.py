"""``milvus``: a collection held by a Milvus server (2.3 and later; Milvus Lite too), so
that API nodes keep no state of their own.

One Milvus collection per imgsearch collection: a vector field per space, scalar fields
for every filter, the item as JSON, and (from Milvus 2.5, and Milvus Lite) the items'
text with Milvus's own BM25 function for keyword search. Filters are pushed down as a
Milvus expression (``milvus_filters``).

Consistency: reads are Strong by default (the collection is created with that level
too), so a search through any node sees every write acknowledged by any other node
(read-your-writes across a load balancer; Session would only promise it to the node
that wrote). ``?consistency=bounded`` trades that for latency: a Strong read waits for
the server's next time tick (about 200 ms on Milvus 2.3 with default settings). Counts
are ``count(*)`` queries, never ``num_entities`` (which counts deleted rows until
compaction).

pymilvus is imported when a milvus collection is opened, never before: the command line
starts without it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from imgsearch.engine.backends import milvus_target
from imgsearch.engine.backends.base import BackendCapabilities, Hit, Row, ranked
from imgsearch.engine.backends.milvus_collection import (
    _at_least,
    _check_existing,
    _check_indexes,
    _create,
)
from imgsearch.engine.backends.milvus_encoders import (
    check_encoders,
    encoders_property,
    record_encoders,
    recorded_encoders,
)
from imgsearch.engine.backends.milvus_feedback import MilvusSearchLog
from imgsearch.engine.backends.milvus_filters import filter_expression, literal
from imgsearch.engine.backends.milvus_positions import (
    BROWSE_OLD,
    Stamps,
    browse_page,
    ids_expression,
    stamped,
    within,
)
from imgsearch.engine.backends.milvus_schema import (
    POSITIONED,
    from_row,
    presence_field,
    to_row,
    vector_field,
)
from imgsearch.engine.backends.milvus_target import (
    CONSISTENCY,
    MilvusTarget,
    T,
    _call,
    _connect,
    _down,
    _refused,
    _released,
    _unreachable,
    is_milvus_uri,
    parse_uri,
    scan_rows,
)
from imgsearch.engine.backends.milvus_thumbnails import from_field, mark
from imgsearch.errors import (
    BackendUnavailableError,
    ImgSearchError,
    InvalidInputError,
    InvalidQueryError,
    UnsupportedOnBackendError,
)
from imgsearch.index.base import SearchParams
from imgsearch.types import Filters, Item, VectorSpace

_BATCH_ROWS = 500


class MilvusBackend:
    """A collection in Milvus (see the module docstring)."""

    def __init__(self, target: MilvusTarget, client: Any, spaces: dict[str, int],
                 version: str, bm25: bool, places: bool = True,
                 encoders: Mapping[str, VectorSpace] | None = None,
                 thumbnails: bool = True, positioned: bool = True) -> None:
        self.target = target
        self._client = client
        self._spaces = spaces
        self.version = version
        self._bm25 = bm25
        self._places = places
        self._thumbnails = thumbnails  # the thumbnail field (milvus schema 3)
        self._encoders = dict(encoders or {})
        self._hybrid = _at_least(version, 2, 4)
        self._positioned = positioned  # schema 3: browsing and the near filter
        self._stamps = Stamps()
        self._feedback: MilvusSearchLog | None = None
        self._feedback_lock = threading.Lock()

    # -- opening ---------------------------------------------------------------------
    @classmethod
    def open(cls, uri: str, spaces: Mapping[str, int] | None = None, *,
             create: bool = True, encoders: Mapping[str, VectorSpace] | None = None
             ) -> MilvusBackend:
        """Open the collection ``uri`` names; create it with ``spaces`` when missing.
        BackendUnavailableError when the server cannot be reached, BackendMismatchError
        for a collection imgsearch did not make or one with other spaces/dimensions,
        EncoderMismatchError when ``encoders`` are not those it records (a collection
        made before they were recorded takes them)."""
        if encoders and not spaces:
            spaces = {name: space.dim for name, space in encoders.items()}
        target = parse_uri(uri)
        client = _connect(target)
        version = _call(target, lambda: str(client.get_server_version()))
        if _call(target, lambda: client.has_collection(target.name)):
            found, bm25, places, described = _check_existing(target, client, spaces)
            names = {f.get("name") for f in described.get("fields", [])}
            thumbnails = "thumbnail" in names
            positioned = set(POSITIONED) <= names
            recorded = recorded_encoders(target, described)
            check_encoders(target, recorded, encoders or {})
            if encoders and not recorded:
                record_encoders(target, client, encoders)
                recorded = dict(encoders)
        elif not create:
            from imgsearch.errors import CollectionNotFoundError

            raise CollectionNotFoundError(f"no collection {target.name!r} on the Milvus server "
                                          f"at {target.address} ({uri})")
        elif not spaces:
            raise InvalidInputError(f"{uri}: a new milvus collection needs its vector spaces "
                                    f"(index a source into it, or migrate one)")
        else:
            found, bm25 = dict(spaces), _at_least(version, 2, 5)
            places = thumbnails = positioned = True
            recorded = dict(encoders or {})
            _create(target, client, found, bm25,
                    encoders_property(recorded) if recorded else None)
        _check_indexes(target, client, found)
        _call(target, lambda: client.load_collection(target.name, timeout=target.timeout_s))
        return cls(target, client, found, version, bm25, places, recorded,
                   thumbnails=thumbnails, positioned=positioned)

    @property
    def uri(self) -> str:
        return self.target.uri

    @property
    def capabilities(self) -> BackendCapabilities:
        return BackendCapabilities(filters=True, bm25=self._bm25, hybrid=self._hybrid,
                                   read_your_writes=self.target.consistency == "Strong",
                                   thumbnails=self._thumbnails, browse=self._positioned,
                                   near=self._positioned)

    def spaces(self) -> dict[str, int]:
        return dict(self._spaces)

    def encoders(self) -> dict[str, VectorSpace]:
        return dict(self._encoders)

    def _do(self, what: Callable[[Any], T]) -> T:
        """Run ``what(client)``; reconnect with backoff while the server is unreachable,
        and load the collection again once if the server came back with it released."""
        delay, failures, reloaded = milvus_target._BACKOFF_S, 0, False
        while True:
            try:
                return what(self._client)
            except ImgSearchError:
                raise
            except Exception as exc:
                if _released(exc) and not reloaded:
                    # a server started again may come back with the collection released
                    reloaded = True
                    with contextlib.suppress(Exception):  # else the call fails again
                        self._client.load_collection(self.target.name,
                                                     timeout=self.target.timeout_s)
                    continue
                if not _unreachable(exc):
                    raise _refused(self.target, exc) from None
                if failures == self.target.retries:
                    raise BackendUnavailableError(self.target.uri, _down(self.target, exc)) \
                        from None
                failures += 1
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
                with contextlib.suppress(BackendUnavailableError):
                    self._client = _connect(self.target, retries=0)

    # -- writes ----------------------------------------------------------------------
    def upsert(self, rows: Sequence[Row]) -> None:
        added: dict[str, int] = {}
        if self._positioned:  # an update keeps the item's first ``added``
            ids = list(dict.fromkeys(r.item.id for r in rows))
            added = stamped({str(r["id"]): int(r["added"])
                             for r in self._get(ids, ["id", "added"])}, ids, self._stamps)
        data = [to_row(r.item, r.vectors, self._spaces, self._places, r.thumbnail,
                       self._thumbnails, added.get(r.item.id)) for r in rows]
        timeout = self.target.timeout_s
        for start in range(0, len(data), _BATCH_ROWS):
            batch = data[start:start + _BATCH_ROWS]
            self._do(lambda c, b=batch: c.upsert(  # type: ignore[misc]
                self.target.name, b, timeout=timeout))

    def delete(self, ids: Sequence[str]) -> int:
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return 0
        existing = [r["id"] for r in self._get(wanted, ["id"])]
        if existing:
            self._do(lambda c: c.delete(self.target.name, ids=existing,
                                        timeout=self.target.timeout_s))
        return len(existing)

    # -- reads -----------------------------------------------------------------------
    def _field(self, space: str) -> str:
        if space not in self._spaces:
            raise InvalidQueryError(f"collection {self.uri} has no {space!r} space; it has "
                                    f"{', '.join(sorted(self._spaces)) or 'none'}")
        return vector_field(space)

    def _search_params(self, hints: Mapping[str, int] | None = None, k: int = 0
                       ) -> dict[str, Any]:
        """The URI's search parameters, overridden by a query's hints mapped onto this
        index: ef_search is HNSW's ef (at least ``k``, which Milvus requires), nprobe
        IVF's; a FLAT index is exact and takes neither (as the local flat index)."""
        params: dict[str, int] = dict(self.target.search)
        hinted = SearchParams.from_hints(hints or {})
        if self.target.index == "HNSW" and hinted.ef_search is not None:
            params["ef"] = max(hinted.ef_search, k)
        if self.target.index.startswith("IVF") and hinted.nprobe is not None:
            params["nprobe"] = hinted.nprobe
        return {"metric_type": "IP", "params": params}

    def search(self, space: str, vector: NDArray[np.float32], k: int,
               filters: Filters | None = None, params: Mapping[str, int] | None = None
               ) -> list[Hit]:
        anns = self._field(space)
        passing = self._where(filters)
        if k <= 0 or passing is None:
            return []
        where = " and ".join(e for e in (f"{presence_field(space)} == true", passing) if e)
        data = [np.asarray(vector, np.float32).tolist()]
        found = self._do(lambda c: c.search(
            self.target.name, data=data, anns_field=anns, limit=k, filter=where,
            output_fields=["id"], search_params=self._search_params(params, k),
            consistency_level=self.target.consistency, timeout=self.target.timeout_s))
        return ranked([(str(h["id"]), float(h["distance"])) for h in found[0]], k)

    def keyword_search(self, text: str, k: int, filters: Filters | None = None) -> list[Hit]:
        if not self._bm25:
            raise UnsupportedOnBackendError(
                f"keyword search needs Milvus 2.5 or later (BM25); the server at "
                f"{self.target.address} runs {self.version}")
        where = self._where(filters)
        if not text.strip() or k <= 0 or where is None:
            return []
        found = self._do(lambda c: c.search(
            self.target.name, data=[text], anns_field="sparse", limit=k, filter=where,
            output_fields=["id"], search_params={"metric_type": "BM25"},
            consistency_level=self.target.consistency, timeout=self.target.timeout_s))
        # the server's order (Milvus Lite reports BM25 scores negated)
        return [Hit(str(h["id"]), abs(float(h["distance"]))) for h in found[0]]

    def hybrid_search(self, vectors: Mapping[str, NDArray[np.float32]], text: str | None,
                      k: int, filters: Filters | None = None, rrf_k: int = 60) -> list[Hit]:
        """Reciprocal-rank fusion on the server of a search per space (and BM25 over
        ``text``), each restricted by ``filters``."""
        if not self._hybrid:
            raise UnsupportedOnBackendError(
                f"hybrid search needs Milvus 2.4 or later; the server at "
                f"{self.target.address} runs {self.version}")
        from pymilvus import AnnSearchRequest, RRFRanker

        where = self._where(filters)
        if where is None:
            return []
        requests = []
        for space, vector in sorted(vectors.items()):
            expr = " and ".join(e for e in (f"{presence_field(space)} == true", where) if e)
            requests.append(AnnSearchRequest(
                data=[np.asarray(vector, np.float32).tolist()], anns_field=self._field(space),
                param=self._search_params(), limit=k, expr=expr))
        if text and text.strip():
            if not self._bm25:
                raise UnsupportedOnBackendError(f"keyword search needs Milvus 2.5 or later; "
                                                f"{self.target.address} runs {self.version}")
            requests.append(AnnSearchRequest(data=[text], anns_field="sparse",
                                             param={"metric_type": "BM25"}, limit=k,
                                             expr=where))
        if not requests:
            raise InvalidQueryError("a hybrid search needs a vector or text")
        found = self._do(lambda c: c.hybrid_search(
            self.target.name, requests, ranker=RRFRanker(rrf_k), limit=k, output_fields=["id"],
            consistency_level=self.target.consistency, timeout=self.target.timeout_s))
        return [Hit(str(h["id"]), float(h["distance"])) for h in found[0]]

    def _where(self, filters: Filters | None) -> str | None:
        """``filters`` as an expression (see ``milvus_filters``); None when no item can
        pass. A near filter's box is resolved here into the ids truly within its radius
        (``milvus_positions``)."""
        expr = filter_expression(filters, self._places, self._positioned)
        if filters is None or filters.near is None:
            return expr
        ids = within(self._scan(expr, ["id", "latitude", "longitude"]), filters.near)
        return ids_expression(ids) if ids else None

    def _scan(self, where: str, fields: list[str], batch: int = 1000
              ) -> Iterator[dict[str, Any]]:
        """The rows ``where`` passes (only ``fields``), read with the collection's
        consistency level."""
        return scan_rows(self._do, self.target, self.target.name, where, fields, batch)

    def newest(self, filters: Filters | None, offset: int, limit: int
               ) -> tuple[int, list[str]]:
        if not self._positioned:
            raise UnsupportedOnBackendError(BROWSE_OLD)
        where = self._where(filters)
        if where is None:
            return 0, []
        # rows of two small fields: few round trips (Milvus returns at most 16,384)
        return browse_page(where, offset, limit, self._count,
                           lambda e: self._scan(e, ["id", "added"], batch=10_000))

    def _count(self, where: str, consistency: str | None = None) -> int:
        found = self._do(lambda c: c.query(
            self.target.name, filter=where, output_fields=["count(*)"],
            consistency_level=consistency or self.target.consistency,
            timeout=self.target.timeout_s))
        return int(found[0]["count(*)"])

    def _get(self, ids: Sequence[str], fields: list[str], consistency: str | None = None
             ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        level = consistency or self.target.consistency
        for start in range(0, len(ids), _BATCH_ROWS):
            chunk = list(ids[start:start + _BATCH_ROWS])
            out += self._do(lambda c, ch=chunk: list(c.get(  # type: ignore[misc]
                self.target.name, ids=ch, output_fields=fields,
                consistency_level=level, timeout=self.target.timeout_s)))
        return out

    def fetch_vectors(self, space: str, ids: Sequence[str]
                      ) -> dict[str, NDArray[np.float32]]:
        anns, present = self._field(space), presence_field(space)
        return {str(r["id"]): np.asarray(r[anns], np.float32)
                for r in self._get(list(dict.fromkeys(ids)), ["id", anns, present])
                if r[present]}

    def thumbnails(self, ids: Sequence[str], expected: Mapping[str, str] | None = None
                   ) -> dict[str, bytes]:
        """The JPEG thumbnails of those ``ids`` that have one: read only here, never by
        a search (its output fields leave them out). With ``expected`` (an id's
        ``Item.thumbnail`` as read before), they are read first without waiting for the
        server's time tick (Eventually: 200 ms a read saved on Milvus 2.3 under Strong
        reads), and read again at the collection's consistency only where that gave
        another thumbnail than expected (a write not seen there yet)."""
        if not self._thumbnails:
            return {}
        wanted = list(dict.fromkeys(ids))
        found: dict[str, bytes | None] = {}
        if expected:
            for r in self._get(wanted, ["id", "thumbnail"], "Eventually"):
                if r["thumbnail"] and mark(r["thumbnail"]) == expected.get(str(r["id"])):
                    found[str(r["id"])] = from_field(r["thumbnail"])
        rest = [i for i in wanted if i not in found]
        if rest:
            found.update((str(r["id"]), from_field(r["thumbnail"]))
                         for r in self._get(rest, ["id", "thumbnail"]))
        return {i: data for i, data in found.items() if data}

    def get(self, ids: Sequence[str]) -> dict[str, Item]:
        return {str(r["id"]): from_row(r)
                for r in self._get(list(dict.fromkeys(ids)), ["id", "item"])}

    def count(self) -> int:
        return self._count("")

    def distinct_values(self, field: str, limit: int) -> list[str] | None:
        """Read by scanning the field's trimmed, case-folded column (Milvus has no
        DISTINCT): the values come back in that form, most common first."""
        if field not in ("brand", "category", "camera"):
            raise ValueError(field)
        if self.count() > limit:
            return None
        column = f"{field}_norm"
        iterator = self._do(lambda c: c.query_iterator(
            self.target.name, batch_size=1000, filter=f'{column} != ""',
            output_fields=[column], timeout=self.target.timeout_s))
        found: Counter[str] = Counter()
        while page := self._do(lambda _c: iterator.next()):
            found.update(str(r[column]) for r in page)
        iterator.close()
        return [value for value, _n in sorted(found.items(), key=lambda p: (-p[1], p[0]))]

    def rows(self, batch: int = 1000, source: str | None = None) -> Iterator[list[Row]]:
        fields = ["id", "item", *(f for s in self._spaces
                                  for f in (vector_field(s), presence_field(s))),
                  *(["thumbnail"] if self._thumbnails else [])]
        where = "" if source is None else f'item["source"] == {literal(source)}'
        iterator = self._do(lambda c: c.query_iterator(
            self.target.name, batch_size=batch, filter=where, output_fields=fields,
            timeout=self.target.timeout_s))
        while True:
            page = self._do(lambda _c: iterator.next())
            if not page:
                iterator.close()
                return
            yield [Row(from_row(r), {s: np.asarray(r[vector_field(s)], np.float32)
                                     for s in self._spaces if r[presence_field(s)]},
                       from_field(r.get("thumbnail")))
                   for r in page]

    def ids(self, batch: int = 10_000) -> Iterator[list[str]]:
        iterator = self._do(lambda c: c.query_iterator(
            self.target.name, batch_size=min(batch, 16_384), filter="",
            output_fields=["id"], timeout=self.target.timeout_s))
        while page := self._do(lambda _c: iterator.next()):
            yield [str(r["id"]) for r in page]
        iterator.close()

    def items(self, batch: int = 1000) -> Iterator[list[Item]]:
        iterator = self._do(lambda c: c.query_iterator(
            self.target.name, batch_size=min(batch, 16_384), filter="",
            output_fields=["id", "item"], timeout=self.target.timeout_s))
        while page := self._do(lambda _c: iterator.next()):
            yield [from_row(r) for r in page]
        iterator.close()

    def filter_ids(self, ids: Sequence[str], filters: Filters) -> set[str]:
        where = filter_expression(filters, self._places)
        found: set[str] = set()
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), _BATCH_ROWS):
            chunk = unique[start:start + _BATCH_ROWS]
            size = len(chunk)
            expr = f"id in [{', '.join(literal(i) for i in chunk)}]" + \
                (f" and ({where})" if where else "")
            found.update(str(r["id"]) for r in self._do(
                lambda c, e=expr, n=size: c.query(  # type: ignore[misc]
                    self.target.name, filter=e, output_fields=["id"], limit=n,
                    consistency_level=self.target.consistency,
                    timeout=self.target.timeout_s)))
        return found

    def feedback(self) -> MilvusSearchLog:
        """The search and click log every node of this collection shares
        (``milvus_feedback``), made on first use."""
        with self._feedback_lock:
            if self._feedback is None:
                self._feedback = MilvusSearchLog(self.target, self._do)
            return self._feedback

    def close(self) -> None:
        if self._feedback is not None:
            self._feedback.close()
        with contextlib.suppress(Exception):  # a connection to a server that went away
            self._client.close()


__all__ = ["CONSISTENCY", "MilvusBackend", "MilvusTarget", "is_milvus_uri", "parse_uri"]
