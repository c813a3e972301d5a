"""The ``VectorIndex`` protocol, index parameters, a label map and the index file format.

Vector indexes are caches of the catalog: every stored vector carries an int64 *label*
(its vector id, never reused), vectors are L2-normalised float32 and similarity is the
inner product, so higher scores are better.

Concurrency contract: any number of threads may call ``search`` at once; ``add``,
``remove`` and ``save`` must be called by one writer while no search runs (the engine
holds a readers–writer lock). Search parameters are passed per call and never stored.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import numpy as np
from numpy.typing import NDArray

from imgsearch.errors import (
    CollectionError,
    InvalidInputError,
    InvalidQueryError,
    SchemaVersionError,
)
from imgsearch.index import early
from imgsearch.store.rowcache import all_within

INDEX_KINDS: tuple[str, ...] = ("flat", "hnsw", "hnsw_sq8", "ivfpq")

MAGIC = b"IMGSIDX\x00"
FORMAT_VERSION = 1
_PREAMBLE = struct.Struct("<8sIQ")  # magic, format version, header length
_DIGEST_SIZE = early.DIGEST_SIZE  # sha256 over everything before it
_CHUNK = 1 << 20


@dataclass(frozen=True)
class IndexParams:
    """Build and search parameters of a vector index.

    ``nlist`` defaults to about 4·sqrt(n) inverted lists for n training vectors.
    ``pq_m`` defaults to dim // 4 sub-quantizers (4 dimensions per 4-bit fast-scan code,
    64 bytes for a 512-d vector): 32× smaller than float32, which keeps 10M vectors
    within a couple of GB, while the engine's exact re-scoring of candidates recovers
    the ranking that the coarse codes lose.
    """

    hnsw_m: int = 32
    ef_construction: int = 80
    ef_search: int = 128
    nlist: int | None = None
    pq_m: int | None = None
    nprobe: int = 64


@dataclass(frozen=True)
class SearchParams:
    """Per-query search parameters of these indexes; None: the collection's setting
    (``hnsw_ef_search``, ``ivf_nprobe``).

    They belong to this backend, not to the public query: a ``Query`` carries them as
    ``search_params`` hints (``{"ef_search": 256}``), which ``from_hints`` checks. A
    backend with other knobs reads its own names from the same hints.
    """

    ef_search: int | None = None  # HNSW: candidates kept during the walk
    nprobe: int | None = None  # IVF: inverted lists visited

    @classmethod
    def from_hints(cls, hints: Mapping[str, Any]) -> SearchParams:
        if not hints:
            return _NO_HINTS
        unknown = sorted(set(hints) - set(SEARCH_PARAM_NAMES))
        if unknown:
            raise InvalidQueryError(
                f"unknown search parameter {', '.join(map(repr, unknown))}; this "
                f"collection's indexes take {', '.join(SEARCH_PARAM_NAMES)}")
        values: dict[str, int | None] = {}
        for name in SEARCH_PARAM_NAMES:
            value = hints.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or not 1 <= value <= _MAX_SEARCH_PARAM):
                raise InvalidQueryError(f"{name} must be a whole number from 1 to "
                                        f"{_MAX_SEARCH_PARAM}, got {value!r}")
            values[name] = value
        return cls(**values)


SEARCH_PARAM_NAMES: tuple[str, ...] = ("ef_search", "nprobe")
_MAX_SEARCH_PARAM = 1 << 16
_NO_HINTS = SearchParams()


class VectorIndex(Protocol):
    """A searchable set of labelled vectors. See the module docstring for concurrency."""

    kind: str
    dim: int
    exact_scores: bool
    params: IndexParams

    def add(self, labels: NDArray[np.int64], vectors: NDArray[np.float32]) -> None:
        """Add vectors; a label already present is replaced."""
        ...

    def remove(self, labels: NDArray[np.int64]) -> int:
        """Remove labels; returns how many were present. Unknown labels are ignored."""
        ...

    def search(
        self,
        queries: NDArray[np.float32],
        k: int,
        *,
        allowed: NDArray[np.int64] | None = None,
        ef_search: int | None = None,
        nprobe: int | None = None,
        allowed_slots: NDArray[np.int64] | None = None,
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """(nq, k) scores, descending, and labels, padded with -inf / -1.
        ``allowed_slots`` (from ``slot_table``) may stand in for ``allowed`` labels."""
        ...

    def slot_table(self) -> NDArray[np.int64] | None:
        """label -> the index's own slot (-1: absent), for ``search(allowed_slots=...)``;
        None for a kind without slots, or while the labels are too sparse for one table."""
        ...

    def __len__(self) -> int: ...

    def contains(self, label: int) -> bool: ...

    def stored(self, label: int) -> NDArray[np.float32] | None:
        """The exact vector held for ``label``; None where the index holds none (absent,
        or only a lossy code of it)."""
        ...

    def labels(self) -> NDArray[np.int64]: ...

    @property
    def tombstones(self) -> int: ...

    def needs_compaction(self, max_ratio: float) -> bool: ...

    def compact(self) -> VectorIndex:
        """An equivalent index without tombstones (``self`` when there are none)."""
        ...

    def save(self, path: Path, *, journal_seq: int) -> None: ...

    def memory_bytes(self) -> int:
        """Bytes the index holds in memory (codes, graph or lists, label bookkeeping)."""
        ...


def as_labels(labels: Any) -> NDArray[np.int64]:
    """Labels as a 1-d int64 array; refuses non-integer input."""
    arr = np.asarray(labels)
    if arr.size == 0:
        return np.empty(0, dtype=np.int64)
    if arr.dtype.kind not in "iu":
        raise InvalidInputError(f"labels must be integers, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr.reshape(-1), dtype=np.int64)


def as_vectors(vectors: Any, dim: int, what: str = "vectors") -> NDArray[np.float32]:
    """Vectors as a C-contiguous (n, dim) float32 array; a 1-d input is one vector."""
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise InvalidInputError(
            f"{what} must have shape (n, {dim}) for this index, got {arr.shape}; "
            "use vectors from the encoder this collection was built with"
        )
    return np.ascontiguousarray(arr)


def gather(table: NDArray[np.int64], indices: NDArray[np.int64]) -> NDArray[np.int64]:
    """``table[indices]``, with -1 where an index falls outside the table. Checking the
    range first spares the masks in the usual case, where every index is inside."""
    if not indices.size or all_within(indices, len(table)):
        return table[indices]
    inside = (indices >= 0) & (indices < len(table))
    out = np.full(indices.shape, -1, np.int64)
    out[inside] = table[indices[inside]]
    return out


class LabelMap:
    """Sorted map from label to an int64 slot (-1: absent), cheap for growing labels.

    Labels come from an increasing counter, so inserts are usually appends to a buffer
    that doubles; deletes only mark entries, and the buffer is compacted once half is dead.
    While the labels stay small (under eight times the live count, plus 65,536) a dense
    array, label -> slot, mirrors the map: a filter's half a million labels are then
    looked up by one gather instead of a binary search each.
    """

    def __init__(self, labels: NDArray[np.int64] | None = None,
                 slots: NDArray[np.int64] | None = None) -> None:
        self._keys = np.empty(0, dtype=np.int64)
        self._slots = np.empty(0, dtype=np.int64)
        self._size = 0
        self._dead = 0
        self._dense: NDArray[np.int64] | None = np.empty(0, np.int64)
        if labels is not None and slots is not None and len(labels):
            self._rebuild(np.asarray(labels, np.int64), np.asarray(slots, np.int64))

    def __len__(self) -> int:
        return self._size - self._dead

    def _rebuild(self, keys: NDArray[np.int64], slots: NDArray[np.int64]) -> None:
        order = np.argsort(keys, kind="stable")
        self._keys, self._slots = keys[order].copy(), slots[order].copy()
        self._size, self._dead = len(keys), 0
        self._dense = np.empty(0, np.int64)
        self._mirror(self._keys, self._slots)

    def _mirror(self, labels: NDArray[np.int64], slots: NDArray[np.int64]) -> None:
        """Set ``labels`` to ``slots`` in the dense mirror, or give the mirror up."""
        dense = self._dense
        if dense is None or not len(labels):
            return
        top = int(labels.max()) + 1
        if int(labels.min()) < 0 or top > 8 * (len(self) + len(labels)) + 65_536:
            self._dense = None  # labels too sparse for a dense array: binary search only
            return
        if top > len(dense):
            grown = np.full(max(top, 2 * len(dense)), -1, np.int64)
            grown[:len(dense)] = dense
            dense = grown
        dense[labels] = slots
        self._dense = dense  # published after it holds the new slots

    def _positions(self, labels: NDArray[np.int64]) -> tuple[NDArray[np.intp], NDArray[np.bool_]]:
        keys = self._keys[: self._size]
        if self._size == 0:
            return np.zeros(len(labels), np.intp), np.zeros(len(labels), bool)
        pos = np.minimum(np.searchsorted(keys, labels), self._size - 1)
        return pos, keys[pos] == labels

    def lookup(self, labels: NDArray[np.int64]) -> NDArray[np.int64]:
        dense = self._dense
        if dense is not None:
            return gather(dense, labels)
        pos, hit = self._positions(labels)
        if not self._size:
            return np.full(len(labels), -1, np.int64)
        return np.where(hit, self._slots[pos], -1).astype(np.int64)

    @property
    def dense(self) -> NDArray[np.int64] | None:
        """label -> slot (-1: absent) as one array, while the labels are dense enough;
        changed in place by later writes."""
        return self._dense

    def lookup_one(self, label: int) -> int:
        """One label's slot (-1: absent), without the array calls of :meth:`lookup`."""
        dense = self._dense
        if dense is not None:
            return int(dense[label]) if 0 <= label < len(dense) else -1
        return int(self.lookup(np.array([label], np.int64))[0])

    def insert(self, labels: NDArray[np.int64], slots: NDArray[np.int64]) -> None:
        """Map labels (unique, none live) to slots."""
        self._mirror(labels, slots)
        pos, hit = self._positions(labels)
        if self._size and hit.any():  # re-added after removal: revive the dead entry in place
            self._slots[pos[hit]] = slots[hit]
            self._dead -= int(hit.sum())
            labels, slots = labels[~hit], slots[~hit]
        if not len(labels):
            return
        order = np.argsort(labels, kind="stable")
        labels, slots = labels[order], slots[order]
        if self._size and labels[0] <= self._keys[self._size - 1]:
            live = self._slots[: self._size] >= 0
            self._rebuild(np.concatenate([self._keys[: self._size][live], labels]),
                          np.concatenate([self._slots[: self._size][live], slots]))
            return
        end = self._size + len(labels)
        if end > len(self._keys):
            capacity = max(end, 2 * len(self._keys), 1024)
            self._keys = np.resize(self._keys, capacity)
            self._slots = np.resize(self._slots, capacity)
        self._keys[self._size:end], self._slots[self._size:end] = labels, slots
        self._size = end

    def delete(self, labels: NDArray[np.int64]) -> NDArray[np.int64]:
        """Unmap labels; returns the slots of those that were live."""
        pos, hit = self._positions(labels)
        pos = np.unique(pos[hit])
        removed = self._slots[pos]
        pos, removed = pos[removed >= 0], removed[removed >= 0]
        if self._dense is not None and len(pos):
            self._dense[self._keys[pos]] = -1
        self._slots[pos] = -1
        self._dead += len(pos)
        if self._dead > max(1024, self._size // 2):
            live = self._slots[: self._size] >= 0
            self._rebuild(self._keys[: self._size][live], self._slots[: self._size][live])
        return removed

    def items(self) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Live labels (ascending) and their slots."""
        live = self._slots[: self._size] >= 0
        return self._keys[: self._size][live].copy(), self._slots[: self._size][live].copy()


# ---- index file: preamble | JSON header | arrays | backend blob | sha256 ----------------


def write_index_file(path: Path, header: dict[str, Any], arrays: dict[str, NDArray[Any]],
                     write_blob: Callable[[Callable[[bytes], int]], None]) -> None:
    """Write atomically: temp file in the same directory, fsync, rename, fsync directory.

    ``write_blob`` receives a sink to stream the backend's serialised index into, so a
    large index is never copied whole in memory.
    """
    path = Path(path)
    arrays = {name: np.ascontiguousarray(a) for name, a in arrays.items()}
    header = dict(header, arrays=[[n, a.dtype.str, list(a.shape)] for n, a in arrays.items()])
    head = json.dumps(header, sort_keys=True).encode()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    digest = hashlib.sha256()
    try:
        with open(tmp, "wb") as fh:
            def sink(data: bytes) -> int:
                digest.update(data)
                fh.write(data)
                return len(data)

            sink(_PREAMBLE.pack(MAGIC, FORMAT_VERSION, len(head)) + head)
            for arr in arrays.values():
                sink(arr.tobytes())
            write_blob(sink)
            fh.write(digest.digest())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_index_file(path: Path, read_blob: Callable[[Callable[[int], bytes]], Any]
                    ) -> tuple[dict[str, Any], dict[str, NDArray[Any]], Any]:
    """Verify the checksum over the whole file, then parse it (a file read and checked
    ahead of need, ``index.early``, is parsed from memory).

    ``read_blob`` receives a source returning up to n bytes of the backend blob and
    returns the deserialised index. Every defect raises :class:`CollectionError`.
    """
    path = Path(path)
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below, after two passes
    except FileNotFoundError:
        raise CollectionError(f"index file {path} does not exist; rebuild the index") from None
    except OSError as exc:
        raise CollectionError(f"index file {path} cannot be opened ({exc}); rebuild it") from None
    with fh:
        stat = os.fstat(fh.fileno())
        # the file as read and checked ahead of need (index.early), if it was
        checked = early.take(path, early.stamp_of(stat))
        try:
            size = stat.st_size
            if size < _PREAMBLE.size + _DIGEST_SIZE:
                raise _corrupt(path, "it is truncated")
            magic, version, head_len = _PREAMBLE.unpack(fh.read(_PREAMBLE.size))
            if magic != MAGIC:
                raise _corrupt(path, "it is not an imgsearch index file")
            if version > FORMAT_VERSION:
                raise SchemaVersionError(
                    f"index file {path} has format version {version}, newer than this "
                    f"imgsearch ({FORMAT_VERSION}); upgrade imgsearch or rebuild the index")
            if version != FORMAT_VERSION:
                raise _corrupt(path, f"format version {version} is not supported")
            if checked is not None:
                return _parse(path, checked, size, head_len, read_blob)
            digest = hashlib.sha256()
            fh.seek(0)
            for chunk in _chunks(fh, size - _DIGEST_SIZE):
                digest.update(chunk)
            if len(stored := fh.read(_DIGEST_SIZE)) != _DIGEST_SIZE or \
                    stored != digest.digest():
                raise _corrupt(path, "its checksum does not match (truncated or damaged)")
            return _parse(path, fh, size, head_len, read_blob)
        finally:
            if checked is not None:
                checked.close()


class _Readable(Protocol):
    def read(self, n: int) -> bytes: ...

    def seek(self, pos: int) -> Any: ...

    def tell(self) -> int: ...


def _parse(path: Path, fh: _Readable, size: int, head_len: int,
           read_blob: Callable[[Callable[[int], bytes]], Any]
           ) -> tuple[dict[str, Any], dict[str, NDArray[Any]], Any]:
    """The header (``head_len`` bytes after the preamble), arrays and backend of an
    index file whose checksum was checked."""
    body_end = size - _DIGEST_SIZE
    fh.seek(_PREAMBLE.size)
    try:
        header = json.loads(fh.read(head_len))
        arrays: dict[str, NDArray[Any]] = {}
        for name, dtype, shape in header["arrays"]:
            dt = np.dtype(dtype)
            nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
            arrays[name] = np.frombuffer(fh.read(nbytes), dtype=dt).reshape(shape).copy()
        remaining = [body_end - fh.tell()]

        def source(n: int) -> bytes:
            data = fh.read(max(0, min(n, remaining[0])))
            remaining[0] -= len(data)
            return data

        backend = read_blob(source)
    except (ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise _corrupt(path, f"its contents cannot be parsed ({exc})") from None
    return header, arrays, backend


def read_index_header(path: Path) -> dict[str, Any] | None:
    """The JSON header of an index file (kind, dim, journal_seq, ...), read without the
    rest of it and without checking it (``read_index_file`` does, when the index is
    loaded); None when the file is missing or is no index file of this format."""
    try:
        with open(path, "rb") as fh:
            preamble = fh.read(_PREAMBLE.size)
            if len(preamble) != _PREAMBLE.size:
                return None
            magic, version, head_len = _PREAMBLE.unpack(preamble)
            if magic != MAGIC or version != FORMAT_VERSION or head_len > 1 << 20:
                return None
            header = json.loads(fh.read(head_len))
    except (OSError, ValueError):
        return None
    return header if isinstance(header, dict) else None


def _chunks(fh: BinaryIO, end: int) -> Iterator[bytes]:
    left = end
    while left > 0:
        chunk = fh.read(min(_CHUNK, left))
        if not chunk:
            return
        left -= len(chunk)
        yield chunk


def _corrupt(path: Path, why: str) -> CollectionError:
    return CollectionError(f"index file {path} is unusable: {why}; rebuild it from the catalog")
