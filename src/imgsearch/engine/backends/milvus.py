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
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

import numpy as np
from numpy.typing import NDArray

from imgsearch.engine.backends.base import BackendCapabilities, Hit, Row, ranked
from imgsearch.engine.backends.milvus_filters import filter_expression
from imgsearch.engine.backends.milvus_schema import (
    MAX_ID,
    MAX_LIST,
    MAX_SHORT,
    MAX_TEXT,
    SCALARS,
    SCHEMA_MARK,
    SCHEMA_VERSION,
    from_row,
    presence_field,
    to_row,
    vector_field,
)
from imgsearch.errors import (
    BackendMismatchError,
    BackendUnavailableError,
    ImgSearchError,
    InvalidInputError,
    InvalidQueryError,
    UnsupportedOnBackendError,
)
from imgsearch.types import Filters, Item

T = TypeVar("T")
SCHEME = "milvus"
CONSISTENCY = "Strong"
_BATCH_ROWS = 500
_BACKOFF_S = 0.2  # the first wait before reconnecting; doubles up to 2 s
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
_VERSION = re.compile(r"(\d+)\.(\d+)")
# index parameters a URI may set (milvus://host:port/name?index=HNSW&M=16&efConstruction=200)
_BUILD_PARAMS = {"M": int, "efConstruction": int, "nlist": int, "m": int, "nbits": int}
_SEARCH_PARAMS = {"ef": int, "nprobe": int}
_INDEXES = ("FLAT", "HNSW", "IVF_FLAT", "IVF_SQ8", "IVF_PQ")
_LEVELS = {"strong": "Strong", "session": "Session", "bounded": "Bounded",
           "eventually": "Eventually"}


@dataclass(frozen=True)
class MilvusTarget:
    """Where a milvus collection lives and how it is indexed, from its URI."""

    uri: str  # as given, for messages
    address: str  # http://host:port, as pymilvus takes it
    name: str
    index: str = "FLAT"
    build: dict[str, int] = field(default_factory=dict)
    search: dict[str, int] = field(default_factory=dict)
    consistency: str = "Strong"  # of reads; writes are ordered by the server either way
    timeout_s: float = 10.0
    retries: int = 4


def is_milvus_uri(value: str) -> bool:
    return value.startswith(f"{SCHEME}://")


def parse_uri(uri: str) -> MilvusTarget:
    """``milvus://HOST:PORT/NAME[?index=HNSW&M=16&efConstruction=200&ef=64]``, and
    ``consistency=strong|session|bounded|eventually`` for reads (default strong)."""
    parts = urlsplit(uri)
    name = parts.path.strip("/")
    if parts.scheme != SCHEME or not parts.hostname or not name:
        raise InvalidInputError(f"{uri!r} is not a milvus collection URI: write "
                                f"milvus://HOST:PORT/NAME, e.g. milvus://localhost:19530/shop")
    if not _NAME.match(name):
        raise InvalidInputError(f"{uri!r}: a Milvus collection name has letters, digits and "
                                f"_ only, and does not start with a digit; got {name!r}")
    try:
        port = parts.port or 19530
    except ValueError:
        raise InvalidInputError(f"{uri!r}: the port is not a number") from None
    options = dict(parse_qsl(parts.query))
    level = _LEVELS.get(options.pop("consistency", "strong").lower())
    if level is None:
        raise InvalidInputError(f"{uri!r}: consistency must be one of {', '.join(_LEVELS)}")
    index = options.pop("index", "FLAT").upper()
    if index not in _INDEXES:
        raise InvalidInputError(f"{uri!r}: index must be one of {', '.join(_INDEXES)}, "
                                f"got {index!r}")
    build: dict[str, int] = {}
    search: dict[str, int] = {}
    for key, value in options.items():
        table = _BUILD_PARAMS if key in _BUILD_PARAMS else _SEARCH_PARAMS
        if key not in table or not value.isdigit():
            raise InvalidInputError(f"{uri!r}: unknown or non-integer option {key}={value!r}; "
                                    f"known: index, {', '.join([*_BUILD_PARAMS, *_SEARCH_PARAMS])}")
        (build if table is _BUILD_PARAMS else search)[key] = int(value)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return MilvusTarget(uri, f"http://{host}:{port}", name, index, build, search, level)


def _unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says the server cannot be reached (rather than refusing a call)."""
    text = f"{type(exc).__name__} {exc}".lower()
    return any(word in text for word in ("unavailable", "fail connecting", "connection",
                                         "deadline", "timed out", "timeout", "connect"))


class MilvusBackend:
    """A collection in Milvus (see the module docstring)."""

    def __init__(self, target: MilvusTarget, client: Any, spaces: dict[str, int],
                 version: str, bm25: bool) -> None:
        self.target = target
        self._client = client
        self._spaces = spaces
        self.version = version
        self._bm25 = bm25
        self._hybrid = _at_least(version, 2, 4)

    # -- opening ---------------------------------------------------------------------
    @classmethod
    def open(cls, uri: str, spaces: Mapping[str, int] | None = None, *,
             create: bool = True) -> MilvusBackend:
        """Open the collection ``uri`` names; create it with ``spaces`` when missing.
        BackendUnavailableError when the server cannot be reached, BackendMismatchError
        for a collection imgsearch did not make or one with other spaces/dimensions."""
        target = parse_uri(uri)
        client = _connect(target)
        version = _call(target, lambda: str(client.get_server_version()))
        if _call(target, lambda: client.has_collection(target.name)):
            found, bm25 = _check_existing(target, client, spaces)
        elif not create:
            from imgsearch.errors import CollectionNotFoundError

            raise CollectionNotFoundError(f"no collection {target.name!r} on the Milvus server "
                                          f"at {target.address} ({uri})")
        elif not spaces:
            raise InvalidInputError(f"{uri}: a new milvus collection needs its vector spaces "
                                    f"(index a source into it, or migrate one)")
        else:
            found, bm25 = dict(spaces), _at_least(version, 2, 5)
            _create(target, client, found, bm25)
        _check_indexes(target, client, found)
        _call(target, lambda: client.load_collection(target.name, timeout=target.timeout_s))
        return cls(target, client, found, version, bm25)

    @property
    def uri(self) -> str:
        return self.target.uri

    @property
    def capabilities(self) -> BackendCapabilities:
        return BackendCapabilities(filters=True, bm25=self._bm25, hybrid=self._hybrid,
                                   read_your_writes=self.target.consistency == "Strong")

    def spaces(self) -> dict[str, int]:
        return dict(self._spaces)

    def _do(self, what: Callable[[Any], T]) -> T:
        """Run ``what(client)``; reconnect with backoff while the server is unreachable,
        and load the collection again once if the server came back with it released."""
        delay, failures, reloaded = _BACKOFF_S, 0, False
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
        data = [to_row(r.item, r.vectors, self._spaces) for r in rows]
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

    def _search_params(self) -> dict[str, Any]:
        return {"metric_type": "IP", "params": dict(self.target.search)}

    def search(self, space: str, vector: NDArray[np.float32], k: int,
               filters: Filters | None = None) -> list[Hit]:
        anns = self._field(space)
        where = " and ".join(e for e in (f"{presence_field(space)} == true",
                                         filter_expression(filters)) if e)
        if k <= 0:
            return []
        data = [np.asarray(vector, np.float32).tolist()]
        found = self._do(lambda c: c.search(
            self.target.name, data=data, anns_field=anns, limit=k, filter=where,
            output_fields=["id"], search_params=self._search_params(),
            consistency_level=self.target.consistency, timeout=self.target.timeout_s))
        return ranked([(str(h["id"]), float(h["distance"])) for h in found[0]], k)

    def keyword_search(self, text: str, k: int, filters: Filters | None = None) -> list[Hit]:
        if not self._bm25:
            raise UnsupportedOnBackendError(
                f"keyword search needs Milvus 2.5 or later (BM25); the server at "
                f"{self.target.address} runs {self.version}")
        where = filter_expression(filters)
        if not text.strip() or k <= 0:
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

        where = filter_expression(filters)
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

    def _get(self, ids: Sequence[str], fields: list[str]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for start in range(0, len(ids), _BATCH_ROWS):
            chunk = list(ids[start:start + _BATCH_ROWS])
            out += self._do(lambda c, ch=chunk: list(c.get(  # type: ignore[misc]
                self.target.name, ids=ch, output_fields=fields,
                consistency_level=self.target.consistency, timeout=self.target.timeout_s)))
        return out

    def fetch_vectors(self, space: str, ids: Sequence[str]
                      ) -> dict[str, NDArray[np.float32]]:
        anns, present = self._field(space), presence_field(space)
        return {str(r["id"]): np.asarray(r[anns], np.float32)
                for r in self._get(list(dict.fromkeys(ids)), ["id", anns, present])
                if r[present]}

    def get(self, ids: Sequence[str]) -> dict[str, Item]:
        return {str(r["id"]): from_row(r)
                for r in self._get(list(dict.fromkeys(ids)), ["id", "item"])}

    def count(self) -> int:
        found = self._do(lambda c: c.query(self.target.name, filter="",
                                           output_fields=["count(*)"],
                                           consistency_level=self.target.consistency,
                                           timeout=self.target.timeout_s))
        return int(found[0]["count(*)"])

    def rows(self, batch: int = 1000) -> Iterator[list[Row]]:
        fields = ["id", "item", *(f for s in self._spaces
                                  for f in (vector_field(s), presence_field(s)))]
        iterator = self._do(lambda c: c.query_iterator(
            self.target.name, batch_size=batch, filter="", output_fields=fields,
            timeout=self.target.timeout_s))
        while True:
            page = self._do(lambda _c: iterator.next())
            if not page:
                iterator.close()
                return
            yield [Row(from_row(r), {s: np.asarray(r[vector_field(s)], np.float32)
                                     for s in self._spaces if r[presence_field(s)]})
                   for r in page]

    def close(self) -> None:
        with contextlib.suppress(Exception):  # a connection to a server that went away
            self._client.close()


# -- helpers -------------------------------------------------------------------------
def _at_least(version: str, major: int, minor: int) -> bool:
    if version.startswith("milvus_lite-"):
        return True  # Milvus Lite 3 speaks the 2.5+ API (BM25, hybrid search)
    found = _VERSION.search(version)
    return found is not None and (int(found.group(1)), int(found.group(2))) >= (major, minor)


def _released(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "released" in text or "not loaded" in text or "call load()" in text


def _down(target: MilvusTarget, exc: BaseException) -> str:
    return (f"the Milvus server for {target.uri} cannot be reached at {target.address} "
            f"({str(exc).strip()[:200]}); start it, or check the host and port")


def _refused(target: MilvusTarget, exc: BaseException) -> ImgSearchError:
    return BackendMismatchError(f"the Milvus server at {target.address} refused a call on "
                                f"collection {target.name!r}: {str(exc).strip()[:300]}")


def _connect(target: MilvusTarget, retries: int | None = None) -> Any:
    from pymilvus import MilvusClient

    delay, tries = _BACKOFF_S, target.retries if retries is None else retries
    for attempt in range(tries + 1):
        try:
            return MilvusClient(uri=target.address, timeout=target.timeout_s)
        except Exception as exc:
            if attempt == tries:
                raise BackendUnavailableError(target.uri, _down(target, exc)) from None
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
    raise AssertionError("unreachable")


def _call(target: MilvusTarget, what: Callable[[], T]) -> T:
    try:
        return what()
    except ImgSearchError:
        raise
    except Exception as exc:
        if _unreachable(exc):
            raise BackendUnavailableError(target.uri, _down(target, exc)) from None
        raise _refused(target, exc) from None


def _description(spaces: Mapping[str, int]) -> str:
    listed = ",".join(f"{s}:{d}" for s, d in sorted(spaces.items()))
    return f"{SCHEMA_MARK} v{SCHEMA_VERSION}; spaces {listed}"


def _create(target: MilvusTarget, client: Any, spaces: Mapping[str, int], bm25: bool) -> None:
    from pymilvus import DataType, Function, FunctionType

    schema = client.create_schema(auto_id=False, enable_dynamic_field=False,
                                  description=_description(spaces))
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=MAX_ID)
    for name in ("category_norm", "brand_norm", "license_norm", "camera_norm", "orientation",
                 "taken_local"):
        schema.add_field(name, DataType.VARCHAR, max_length=MAX_SHORT)
    schema.add_field("price", DataType.DOUBLE)
    schema.add_field("has_price", DataType.BOOL)
    schema.add_field("width", DataType.INT64)
    schema.add_field("height", DataType.INT64)
    for name in ("colors", "tags"):
        schema.add_field(name, DataType.ARRAY, element_type=DataType.VARCHAR,
                         max_capacity=MAX_LIST, max_length=MAX_SHORT)
    schema.add_field("attributes", DataType.JSON)
    schema.add_field("item", DataType.JSON)
    if bm25:
        schema.add_field("text", DataType.VARCHAR, max_length=MAX_TEXT, enable_analyzer=True)
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_function(Function(name="text_bm25", function_type=FunctionType.BM25,
                                     input_field_names=["text"],
                                     output_field_names=["sparse"]))
    else:
        schema.add_field("text", DataType.VARCHAR, max_length=MAX_TEXT)
    for space, dim in sorted(spaces.items()):
        schema.add_field(vector_field(space), DataType.FLOAT_VECTOR, dim=dim)
        schema.add_field(presence_field(space), DataType.BOOL)
    index = client.prepare_index_params()
    for space in sorted(spaces):
        index.add_index(vector_field(space), index_type=target.index, metric_type="IP",
                        params=dict(target.build))
    if bm25:
        index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    try:
        client.create_collection(target.name, schema=schema, index_params=index,
                                 consistency_level=CONSISTENCY, timeout=target.timeout_s)
    except Exception as exc:
        if _unreachable(exc):
            raise BackendUnavailableError(target.uri, _down(target, exc)) from None
        raise UnsupportedOnBackendError(
            f"the Milvus server at {target.address} cannot hold collection {target.name!r} "
            f"with spaces {', '.join(f'{s} ({d}-d)' for s, d in sorted(spaces.items()))}: "
            f"{str(exc).strip()[:300]}") from None


def _check_existing(target: MilvusTarget, client: Any, spaces: Mapping[str, int] | None
                    ) -> tuple[dict[str, int], bool]:
    """The spaces of the existing collection, refused when imgsearch did not make it or
    when ``spaces`` asks for other dimensions; and whether it has BM25."""
    described = _call(target, lambda: client.describe_collection(target.name))
    description = str(described.get("description") or "")
    fields = {f["name"]: f for f in described.get("fields", [])}
    # the description says so where the server keeps it (Milvus Lite does not): the
    # fields every imgsearch collection has decide
    missing = sorted(set(SCALARS) - set(fields))
    if (description and not description.startswith(SCHEMA_MARK)) or missing:
        raise BackendMismatchError(
            f"Milvus collection {target.name!r} at {target.address} was not made by "
            f"imgsearch (it lacks the field(s) {', '.join(missing) or 'none'}; its "
            f"description is {description[:80]!r}); name another collection")
    found: dict[str, int] = {}
    for name, spec in fields.items():
        if name.startswith("v_"):
            params = spec.get("params") or {}
            found[name[2:]] = int(params.get("dim", 0))
    for space, dim in (spaces or {}).items():
        if space in found and found[space] != dim:
            raise BackendMismatchError(
                f"Milvus collection {target.name!r} holds {found[space]}-d {space} vectors; "
                f"these are {dim}-d (another encoder?): use another collection name")
        if space not in found:
            raise BackendMismatchError(
                f"Milvus collection {target.name!r} has no {space} space (it has "
                f"{', '.join(sorted(found)) or 'none'}); use another collection name")
    return found, "sparse" in fields


def _check_indexes(target: MilvusTarget, client: Any, spaces: Mapping[str, int]) -> None:
    """Refuse a collection whose index the server built otherwise than asked (a server
    may silently drop parameters it does not know)."""
    for space in sorted(spaces):
        name = vector_field(space)
        described = _call(target, lambda n=name: client.describe_index(  # type: ignore[misc]
            target.name, n))
        if not described:
            raise BackendMismatchError(f"Milvus collection {target.name!r} has no index on "
                                       f"{name}")
        kind = str(described.get("index_type", "")).upper()
        metric = str(described.get("metric_type", "")).upper()
        problems = []
        if metric != "IP":
            problems.append(f"metric {metric or 'none'} instead of IP")
        if kind != target.index:
            problems.append(f"index {kind or 'none'} instead of {target.index}")
        for key, value in target.build.items():
            have = described.get(key, (described.get("params") or {}).get(key))
            if have is None or str(have) != str(value):
                problems.append(f"{key}={have} instead of {value}")
        if problems:
            raise BackendMismatchError(
                f"Milvus collection {target.name!r} at {target.address}: the {space} index "
                f"has {'; '.join(problems)} (the server dropped or changed the build "
                f"parameters); drop the collection and create it again, or name another")


__all__ = ["CONSISTENCY", "MilvusBackend", "MilvusTarget", "is_milvus_uri", "parse_uri"]
