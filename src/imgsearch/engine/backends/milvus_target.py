"""Where a milvus collection lives (its URI, parsed), connecting to it, and how a
failed call is told apart: server unreachable (BackendUnavailableError, 503) or a call
refused (BackendMismatchError)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

from imgsearch.errors import (
    BackendMismatchError,
    BackendUnavailableError,
    ImgSearchError,
    InvalidInputError,
)

T = TypeVar("T")
SCHEME = "milvus"
CONSISTENCY = "Strong"
_BACKOFF_S = 0.2  # the first wait before reconnecting; doubles up to 2 s
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
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


# run(what): what(client) with the backend's reconnects and errors (MilvusBackend._do)
Runner = Callable[[Callable[[Any], Any]], Any]


def scan_rows(run: Runner, target: MilvusTarget, collection: str, where: str,
              fields: list[str], batch: int = 1000) -> Iterator[dict[str, Any]]:
    """The rows of ``collection`` that ``where`` passes (only ``fields``), read page by
    page with the target's consistency level, each call through ``run``."""
    iterator = run(lambda c: c.query_iterator(
        collection, batch_size=batch, filter=where, output_fields=fields,
        timeout=target.timeout_s, consistency_level=target.consistency))
    try:
        while page := run(lambda _c: iterator.next()):
            yield from page
    finally:
        iterator.close()


__all__ = ["CONSISTENCY", "MilvusTarget", "Runner", "is_milvus_uri", "parse_uri", "scan_rows"]
