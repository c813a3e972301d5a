"""Vectors outside SQLite: one append-only file per vector space, read by row.

A space's vectors are fixed-size rows of ``vectors/<space>.<generation>.<f32|f16>``. A
new vector is appended after the last row; its row number (the *slot*) is what the
catalog's ``vectors`` table records next to the vid, so SQLite keeps the items, the
journal and the mapping, and the file only the numbers. Rows are never changed in place:
a replaced or removed vector's row stays, dead (no catalog row names its slot), until
``compact`` copies the live rows into the next generation's file and the catalog names
the new file and the new slots in one commit.

Durability: the rows a transaction appended are fsynced before SQLite commits the rows
and journal entries that name them (``Catalog.transaction``), so an acknowledged write
never names a row that is not on disk. Rows appended by a write that never committed
are dead from the start; a file no catalog row names is removed when a writer opens.

float16 rows (``vector_dtype``) halve the file; a vector read back then differs from
the float32 one by up to ~1e-3 per component (scores by about as much): re-scoring is
exact over what is stored, which is no longer exactly what the encoder gave.
"""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from imgsearch.errors import CorruptCollectionError, InvalidInputError

VECTOR_DIR = "vectors"
VECTOR_DTYPES = {"float32": "<f4", "float16": "<f2"}
_SUFFIX = {"float32": "f32", "float16": "f16"}
_FILE = re.compile(r"^(?P<space>.+)\.(?P<gen>\d+)\.(?P<suffix>f32|f16)$")
META_PREFIX = "vectors."  # catalog meta key of a space's file: "vectors.<space>"


@dataclass(frozen=True)
class StoreFile:
    """Which file holds a space's vectors (a catalog meta value, as JSON)."""

    generation: int
    dtype: str
    dim: int

    def name(self, space: str) -> str:
        return f"{space}.{self.generation}.{_SUFFIX[self.dtype]}"

    def to_json(self) -> str:
        return json.dumps({"generation": self.generation, "dtype": self.dtype,
                           "dim": self.dim}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> StoreFile:
        data = json.loads(text)
        return cls(int(data["generation"]), str(data["dtype"]), int(data["dim"]))


def check_dtype(dtype: str) -> str:
    name = dtype.strip().lower()
    if name not in VECTOR_DTYPES:
        raise InvalidInputError(f"vector_dtype {dtype!r} is not known; use "
                                + " or ".join(VECTOR_DTYPES))
    return name


class SpaceFile:
    """One generation's file: appends (the writer) and positioned reads (every reader)."""

    def __init__(self, path: Path, spec: StoreFile, *, writable: bool) -> None:
        self.path = path
        self.spec = spec
        self.dtype = np.dtype(VECTOR_DTYPES[spec.dtype])
        self.row_bytes = spec.dim * self.dtype.itemsize
        self._writable = writable
        self._fd: int | None = None
        self._dirty = False
        self._new = False
        self._lock = threading.Lock()
        self._read_fd: int | None = None
        self._known_rows = 0

    # -- writer ------------------------------------------------------------------------
    def _writer_fd(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._new = not self.path.exists()
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        return self._fd

    def append(self, vectors: NDArray[np.float32]) -> NDArray[np.int64]:
        """Write rows after the last whole row on disk; returns their slots. The caller
        holds the catalog's write lock, so the end of the file is the end of the rows
        (a torn row of a crashed write is written over)."""
        if not self._writable:
            raise InvalidInputError(f"{self.path} is open read-only")
        rows = np.ascontiguousarray(vectors, dtype=self.dtype).reshape(-1, self.spec.dim)
        fd = self._writer_fd()
        first = os.fstat(fd).st_size // self.row_bytes
        data = rows.tobytes()
        offset = first * self.row_bytes
        while data:
            written = os.pwrite(fd, data, offset)
            data, offset = data[written:], offset + written
        self._dirty = True
        return np.arange(first, first + len(rows), dtype=np.int64)

    def sync(self) -> None:
        """Make the appended rows durable (before the commit that names them)."""
        if self._dirty and self._fd is not None:
            os.fsync(self._fd)
            if self._new:  # a new file's name must be durable too
                sync_directory(self.path.parent)
                self._new = False
            self._dirty = False

    # -- readers -----------------------------------------------------------------------
    def _reader(self, need: int) -> int:
        """A read-only descriptor of the file, which holds at least ``need`` rows."""
        if need <= self._known_rows and self._read_fd is not None:
            return self._read_fd
        with self._lock:
            if self._read_fd is None:
                try:
                    self._read_fd = os.open(self.path, os.O_RDONLY)
                except FileNotFoundError:
                    raise CorruptCollectionError(
                        f"vector file {self.path} is missing; restore the collection from "
                        f"a backup") from None
            count = os.fstat(self._read_fd).st_size // self.row_bytes
            if count < need:
                raise CorruptCollectionError(
                    f"vector file {self.path} holds {count} rows, the catalog names "
                    f"row {need - 1}: it was truncated or replaced; restore the "
                    f"collection from a backup")
            self._known_rows = count
            return self._read_fd

    def read(self, slots: NDArray[np.int64]) -> NDArray[np.float32]:
        """The rows at ``slots``, as float32, in the order given.

        Read with ``pread`` (a run of consecutive rows in one call), not through a map:
        re-scoring reads a few hundred scattered rows a query, and a map would keep every
        page it touched (and the pages read around them) in the process's resident set,
        gigabytes of a large file after a few hundred queries."""
        slots = np.asarray(slots, dtype=np.int64)
        if not len(slots):
            return np.empty((0, self.spec.dim), np.float32)
        if int(slots.min()) < 0:
            raise InvalidInputError(f"row {int(slots.min())} of {self.path} does not exist")
        wanted, where = np.unique(slots, return_inverse=True)
        fd = self._reader(int(wanted[-1]) + 1)
        size = self.row_bytes
        breaks = np.flatnonzero(np.diff(wanted) != 1) + 1
        firsts = wanted[np.concatenate([[0], breaks])]
        lengths = np.diff(np.concatenate([[0], breaks, [len(wanted)]])) * size
        data = b"".join([os.pread(fd, length, offset) for offset, length
                         in zip((firsts * size).tolist(), lengths.tolist(), strict=True)])
        if len(data) != len(wanted) * size:  # a read stops short only at the file's end
            raise CorruptCollectionError(
                f"vector file {self.path} ended before row {int(wanted[-1])}; restore the "
                f"collection from a backup")
        rows = np.frombuffer(data, self.dtype).reshape(-1, self.spec.dim)
        return np.asarray(rows[where.reshape(-1)], dtype=np.float32)

    def cache(self, limit: int) -> int:
        """Read the whole file once, so that the kernel keeps it in its page cache and
        re-scoring's scattered row reads cost a copy rather than a disk read each; only
        when the file is at most ``limit`` bytes. Bytes read (0: skipped)."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return 0
        if not size or size > limit:
            return 0
        fd = self._reader(0)
        chunk = bytearray(8 << 20)
        done = 0
        while done < size:
            got = os.preadv(fd, [chunk], done)
            if not got:
                break
            done += got
        return done

    def resident_bytes(self) -> int:
        """Bytes of this file held in this process's memory: none (rows are read into
        arrays the caller owns; the kernel's page cache is not this process's)."""
        return 0

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        with self._lock:
            if self._read_fd is not None:
                os.close(self._read_fd)
                self._read_fd = None
                self._known_rows = 0


def available_memory() -> int:
    """Bytes of memory the system can give without swapping (Linux ``MemAvailable``);
    0 where that is not known."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


class VectorFiles:
    """The per-space files of one collection (``<collection>/vectors``)."""

    def __init__(self, directory: Path, *, writable: bool) -> None:
        self.directory = directory
        self.writable = writable
        self._files: dict[tuple[str, int], SpaceFile] = {}
        self._lock = threading.Lock()

    def file(self, space: str, spec: StoreFile) -> SpaceFile:
        key = (space, spec.generation)
        found = self._files.get(key)
        if found is None:
            with self._lock:
                found = self._files.get(key)
                if found is None:
                    found = SpaceFile(self.directory / spec.name(space), spec,
                                      writable=self.writable)
                    self._files[key] = found
        return found

    def next_generation(self, space: str) -> int:
        """A generation no file of ``space`` has had here (names are never reused)."""
        used = [int(m["gen"]) for p in self._listing()
                if (m := _FILE.match(p.name)) and m["space"] == space]
        return max(used, default=-1) + 1

    def sync(self) -> None:
        for found in list(self._files.values()):
            found.sync()

    def sweep(self, named: set[str]) -> list[Path]:
        """Remove files no catalog meta row names (a crashed compaction's or a dropped
        space's); returns them."""
        removed = []
        for path in self._listing():
            if _FILE.match(path.name) and path.name not in named:
                path.unlink(missing_ok=True)
                removed.append(path)
        return removed

    def forget(self, space: str, generation: int) -> None:
        found = self._files.pop((space, generation), None)
        if found is not None:
            found.close()

    def _listing(self) -> list[Path]:
        try:
            return [p for p in self.directory.iterdir() if p.is_file()]
        except FileNotFoundError:
            return []

    def disk_bytes(self) -> int:
        return sum(p.stat().st_size for p in self._listing() if _FILE.match(p.name))

    def resident_bytes(self) -> int:
        return sum(f.resident_bytes() for f in list(self._files.values()))

    def close(self) -> None:
        for found in list(self._files.values()):
            found.close()
        self._files.clear()


def sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

