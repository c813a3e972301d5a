"""The SQLite catalog: the collection's source of truth.

Items, their tags/colours/attributes, which vector each (item, space) has and a journal
of vector additions and removals live in one database in WAL mode with
``synchronous=FULL``: a write that returned has reached the disk. The vectors' numbers
live in one memory-mapped file per space (``store.vectors``), appended to and fsynced
before the commit that names their rows. FAISS indexes are
caches that remember the last journal position they applied and replay the rest.

One writer connection (callers serialise writes); each other thread reads through a
connection of its own, so searches never wait for a write and never see half of one.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import sqlite3
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray

from imgsearch.enrich.places import km_between
from imgsearch.errors import CollectionError, InvalidInputError
from imgsearch.store.columns import COLUMNS, FilterColumns, answers
from imgsearch.store.filters import filter_sql, fold
from imgsearch.store.rowcache import KeyColumn, PackedRows, RowCache
from imgsearch.store.schema import (
    SCHEMA_VERSION,
    backup_before_upgrade,
    check_version,
    migrate,
)
from imgsearch.store.vectors import (
    META_PREFIX,
    VECTOR_DIR,
    StoreFile,
    VectorFiles,
    available_memory,
    check_dtype,
    sync_directory,
)
from imgsearch.titles import clean_title
from imgsearch.types import PHOTO_FIELDS, Filters, Item

_ITEM_COLUMNS = (
    "id", "image", "title", "description", "category", "brand", "price", "color",
    "license", "tags", "popularity", "rating", "conversion", "created_at", "attributes",
    "width", "height", "orientation", "phash", "colors", "thumbnail", "content_hash",
    "source_size", "source_mtime", "source", "original", "category_norm", "brand_norm",
    "license_norm", "updated_at",
)
# what a photo says of itself (schema migration 4), read after the columns above
PHOTO_COLUMNS = PHOTO_FIELDS
_WRITE_COLUMNS = (*_ITEM_COLUMNS, *PHOTO_COLUMNS, "taken_local", "camera_norm")
STOPWORDS = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "from", "has", "have", "i",
    "in", "is", "it", "its", "me", "my", "of", "on", "or", "our", "so", "than", "that", "the",
    "their", "them", "then", "there", "these", "they", "this", "to", "too", "very", "was", "we",
    "were", "what", "when", "where", "which", "while", "who", "whom", "why", "will", "with",
    "you", "your", "some", "any", "something", "thing", "things",
})
_TERM = re.compile(r"\w+", re.UNICODE)
# keyword fields a hit names in matched_by when the query's words were found there
FIELD_SIGNALS = ("ocr", "album", "place")
# the keyword-index columns that say what an item is (concept expansion looks there)
CONCEPT_COLUMNS = ("title", "description", "tags", "category")
_FTS_COLUMNS = frozenset({"title", "description", "tags", "category", "brand", "colors",
                          "ocr", "album", "place"})
_SELECT_ITEM = ("SELECT key, " + ", ".join((*_ITEM_COLUMNS[:26], *PHOTO_COLUMNS))
                + " FROM items")
HIT_FIELDS = ("id", "title", "category", "brand", "price", "image", "thumbnail")
HitRow = tuple[str, str | None, str | None, str | None, float | None, str | None, str | None]
_SELECT_HIT = "SELECT key, " + ", ".join(HIT_FIELDS) + " FROM items"
# a vector's row and the file it is in, read in one statement (one snapshot): a
# compaction that moves rows to another file changes both in one commit
_SELECT_VECTOR = ("SELECT v.vid, v.key, v.space, v.slot, m.value FROM vectors v "
                  f"JOIN meta m ON m.key = '{META_PREFIX}' || v.space")
_MOVE_BATCH = 20_000
# A read of at most this many rows (vectors, keys, hashes, result-page fields), while
# the table made by one scan of them all is not made, asks SQLite for those rows; the
# first _FEW_READS of each kind (of a space) do, then the scan is made (after ``warm``,
# which starts the hashes', the pages' and the filter columns' at once, every scan is
# made when first due, as a server wants). A command-line search reads
# a few hundred rows and exits: the scans took 0.19 s of a text search's 0.30 s at 10k,
# and more the larger the collection.
_FEW_VECTORS = 2048
_FEW_READS = 32
_BULK_MIN = 8  # fewer items than this are upserted one by one (no set-up to pay for)


@dataclass(frozen=True)
class JournalEntry:
    seq: int
    space: str
    op: str  # "add" | "remove"
    vid: int


@dataclass(frozen=True)
class WriteResult:
    """What one upsert or delete changed: the indexes apply exactly this."""

    key: int
    status: str  # "added" | "updated" | "deleted"
    added: dict[str, int]  # space -> new vid
    removed: dict[str, int]  # space -> old vid
    old_thumbnail: str | None = None
    old_original: str | None = None


def read_only_uri(path: Path, notes: list[str], *, storage_writable: bool = False) -> str:
    """How to open a database read-only. Where nothing can be written: with a ``-wal``
    file left by a writer, SQLite reads it read-only (it holds the last commits); without
    one, the database cannot change, and ``immutable`` opens it without any lock or
    ``-shm``. On writable storage, ``mode=ro`` (a writer may be at work)."""
    quoted = urllib.parse.quote(str(path.resolve()))
    if storage_writable:
        return f"file:{quoted}?mode=ro"
    wal = path.with_name(path.name + "-wal")
    shm = path.with_name(path.name + "-shm")
    if wal.exists() and wal.stat().st_size:
        if shm.exists():
            return f"file:{quoted}?mode=ro"
        notes.append(f"{wal} holds commits that cannot be read on read-only storage "
                     f"without its -shm file; they are left out until the collection is "
                     f"opened on writable storage")
    return f"file:{quoted}?immutable=1"


def norm(value: str | None) -> str | None:
    """The form used to compare categories, brands, licences and tags."""
    return value.strip().casefold() if value else None


def attribute_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


class Catalog:
    def __init__(self, path: Path, *, row_cache_size: int = 0,
                 filter_cache_size: int = 0, hit_cache_bytes: int = 0,
                 read_only_storage: bool = False, read_only: bool = False,
                 vector_dtype: str = "float32") -> None:
        self.path = path
        # how new vector files store numbers; an existing file keeps its own until compacted
        self.vector_dtype = check_dtype(vector_dtype)
        # On read-only storage nothing may be written, not even SQLite's -shm file: see
        # _connect. ``notes`` says what that costs. ``read_only`` (a check) writes nothing
        # either, on writable storage.
        self.read_only_storage = read_only_storage
        self.notes: list[str] = []
        self._uri = read_only_uri(path, self.notes, storage_writable=not read_only_storage) \
            if read_only_storage or read_only else None
        # key -> item row, for the reads every search repeats; writes invalidate after commit
        self.rows: RowCache[int, Item] = RowCache(row_cache_size)
        # key -> the fields a search hit shows (HIT_FIELDS), packed: every result page
        # reads them, and a catalog's worth fits in memory where a row cache would not
        self.hit_rows = PackedRows(hit_cache_bytes)
        # filters -> passing keys (read-only arrays): a shop's filters repeat, and reading
        # half a million keys out of SQLite costs more than the search itself
        self.filtered: RowCache[str, NDArray[np.int64]] = RowCache(filter_cache_size)
        # key -> perceptual hash, read for every candidate of a search that folds
        # duplicates; kept (like the rows) only where this process sees every write
        self.hashes: KeyColumn | None = KeyColumn() if row_cache_size > 0 else None
        # item id -> key, for "more like this" by id; only a delete changes a known one
        self.keys: RowCache[str, int] = RowCache(row_cache_size)
        # price, size, orientation, category, brand, licence of every item, in arrays:
        # a filter never asked before costs vectorised comparisons, not a SQL scan
        self.columns: FilterColumns | None = FilterColumns() if row_cache_size > 0 else None
        self._hash_scans = _ScanGate()
        self._column_scans = _ScanGate()
        self._hit_scans = _ScanGate()
        self._scans: list[threading.Thread] = []  # background scans, for warm() to wait on
        self._scans_lock = threading.Lock()
        self._dirty: set[int] = set()
        self._dirty_ids: set[str] = set()
        # space -> (its vector file, vid -> row in it; -1: unknown): re-scoring reads
        # hundreds of vectors a query, and asking SQLite for their rows costs more than
        # reading them. Rows written here join it at commit; another process's writes and
        # compactions drop it (forget_cached).
        self._slot_tables: dict[str, tuple[StoreFile, NDArray[np.int32]]] = {}
        self._new_slots: list[tuple[str, int, int]] = []
        self._slot_lock = threading.Lock()
        # reads answered row by row, by kind ("vectors" or "keys" of a space, "phash",
        # "hits", "columns"), until the scan of them all is due
        self._few_reads: Counter[tuple[str, str]] = Counter()
        self._warmed = False  # a long-lived reader (warm): every scan when first due
        self._wrote = False
        self._local = threading.local()
        self._local_conns: list[sqlite3.Connection] = []
        self._writer = self._connect()
        self.vector_files = VectorFiles(path.parent / VECTOR_DIR, writable=self._uri is None)
        # where an upgrade kept the catalog as it was before (None: no upgrade now)
        self.upgraded_from: tuple[int, Path] | None = None
        if self._uri is not None:
            self.schema_version = check_version(self._writer, path=str(path),
                                                refuse_older=read_only_storage)
        else:
            upgraded = backup_before_upgrade(self._writer, path)
            migrate(self._writer, path=str(path))
            self.schema_version = SCHEMA_VERSION
            moved = self._move_vectors_out()
            if upgraded is not None:
                self.upgraded_from = upgraded
                self.notes.append(
                    f"catalog upgraded from schema {upgraded[0]} to {SCHEMA_VERSION}"
                    + (f" ({moved} vectors moved to {self.vector_files.directory})"
                       if moved else "")
                    + f"; the catalog as it was is kept at {upgraded[1]}")
        self._watch: sqlite3.Connection | None = None
        self._watch_lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        if self._uri is not None:
            conn = sqlite3.connect(self._uri, uri=True, isolation_level=None,
                                   check_same_thread=False, timeout=30.0)
            conn.execute("PRAGMA cache_size=-65536")
            conn.create_function("km_between", 4, km_between, deterministic=True)
            conn.create_function("fold", 1, fold, deterministic=True)
            return conn
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                               timeout=30.0)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA cache_size=-65536")
        conn.create_function("km_between", 4, km_between, deterministic=True)
        conn.create_function("fold", 1, fold, deterministic=True)
        return conn

    @property
    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            self._local_conns.append(conn)
        return conn

    def data_version(self) -> int:
        """A number that changes whenever another connection (another process) commits
        to the catalog: what a reader checks to know it must look again."""
        with self._watch_lock:
            if self._watch is None:
                self._watch = self._connect()
                self._local_conns.append(self._watch)
            return int(self._watch.execute("PRAGMA data_version").fetchone()[0])

    def forget_cached(self) -> None:
        """Drop every cached row, hash and filter (another process wrote)."""
        self._slot_tables = {}
        self.rows.invalidate()
        self.hit_rows.invalidate()
        self.keys.invalidate()
        self.filtered.invalidate()
        if self.hashes is not None:
            self.hashes.invalidate()
        if self.columns is not None:
            self.columns.invalidate()

    def close(self) -> None:
        for conn in [*self._local_conns, self._writer]:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._local_conns = []
        self.vector_files.close()

    # -- transactions --------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One durable write: everything inside commits together or not at all."""
        conn = self._writer
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            # SQLite rolls back by itself on some errors (a full disk): then there is
            # nothing left to roll back, and the original error is the one to raise
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._new_slots = []
            self._invalidate()
            raise
        try:
            # the rows this commit names must be on disk before it (nothing acknowledged
            # may name a row a crash could lose)
            self.vector_files.sync()
            conn.execute("COMMIT")  # in WAL mode most pages are written here (a full disk)
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._new_slots = []
            self._invalidate()
            raise
        self._publish_slots()
        self._invalidate()

    def _invalidate(self) -> None:
        """After a commit (or a rollback): cached rows of the keys written are stale."""
        dirty, self._dirty = self._dirty, set()
        dirty_ids, self._dirty_ids = self._dirty_ids, set()
        if dirty_ids:
            self.keys.invalidate(dirty_ids)
        if dirty:
            self.rows.invalidate(dirty)
            self.hit_rows.invalidate(dirty)
            if self.hashes is not None:
                self.hashes.invalidate(dirty)
            if self.columns is not None:
                self.columns.invalidate(dirty)
        if self._wrote:
            self._wrote = False
            self.filtered.invalidate()

    # -- meta ------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self._reader.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str, conn: sqlite3.Connection | None = None) -> None:
        (conn or self._writer).execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))

    # -- writes (inside transaction()) ----------------------------------------------
    def upsert(self, conn: sqlite3.Connection, item: Item,
               vectors: Mapping[str, NDArray[np.float32]]) -> WriteResult:
        """Insert or replace ``item`` and its vectors; journal every vector change."""
        row = conn.execute("SELECT key, thumbnail, original, source FROM items WHERE id = ?",
                           (item.id,)).fetchone()
        self._wrote = True
        if row is not None and item.source is None and row[3] is not None:
            # an update by id (API, add) keeps the item where ingest found it
            item = replace(item, source=row[3])
        values = _item_values(item)
        if row is None:
            cur = conn.execute(
                f"INSERT INTO items ({', '.join(_WRITE_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(_WRITE_COLUMNS))})", values)
            key = int(cur.lastrowid or 0)
            self._dirty.add(key)  # the filter columns learn of new rows this way
            status, old_thumb, old_original = "added", None, None
        else:
            key, old_thumb, old_original = int(row[0]), row[1], row[2]
            self._dirty.add(key)
            sets = ", ".join(f"{c} = ?" for c in _WRITE_COLUMNS[1:])
            conn.execute(f"UPDATE items SET {sets} WHERE key = ?", (*values[1:], key))
            for table in ("item_tags", "item_colors", "item_attributes"):
                conn.execute(f"DELETE FROM {table} WHERE key = ?", (key,))
            status = "updated"
        _write_facets(conn, key, item)
        _write_fts(conn, key, item, replace=status == "updated")
        added: dict[str, int] = {}
        removed: dict[str, int] = {}
        for space, vector in vectors.items():
            old = conn.execute("SELECT vid FROM vectors WHERE key = ? AND space = ?",
                               (key, space)).fetchone()
            if old is not None:
                removed[space] = int(old[0])
                conn.execute("DELETE FROM vectors WHERE vid = ?", (old[0],))
                conn.execute("INSERT INTO journal (space, op, vid) VALUES (?, 'remove', ?)",
                             (space, old[0]))
            slot = self._append_vector(conn, space, vector)
            cur = conn.execute("INSERT INTO vectors (key, space, vector, slot) "
                               "VALUES (?, ?, x'', ?)", (key, space, slot))
            vid = int(cur.lastrowid or 0)
            self._new_slots.append((space, vid, slot))
            added[space] = vid
            conn.execute("INSERT INTO journal (space, op, vid) VALUES (?, 'add', ?)",
                         (space, vid))
        # A space the new version has no vector for (e.g. text removed) loses the old one.
        for old_vid, space in conn.execute(
                "SELECT vid, space FROM vectors WHERE key = ?", (key,)).fetchall():
            if space not in vectors:
                removed[space] = int(old_vid)
                conn.execute("DELETE FROM vectors WHERE vid = ?", (old_vid,))
                conn.execute("INSERT INTO journal (space, op, vid) VALUES (?, 'remove', ?)",
                             (space, old_vid))
        return WriteResult(key, status, added, removed,
                           old_thumb if old_thumb != item.thumbnail else None,
                           old_original if old_original != item.original else None)

    def upsert_many(self, conn: sqlite3.Connection,
                    entries: Sequence[tuple[Item, Mapping[str, NDArray[np.float32]]]]
                    ) -> list[WriteResult]:
        """``upsert`` of each entry in turn, the same rows written; items new to the
        catalog are written a statement per table for all of them (``executemany``) and
        their vectors a file write per space, which makes a large batch many times
        faster. An id already stored, or repeated within the batch, is upserted alone,
        after the new ones (in the batch's order)."""
        if len(entries) < _BULK_MIN:
            return [self.upsert(conn, item, vectors) for item, vectors in entries]
        ids = [item.id for item, _vectors in entries]
        stored = {str(row[0]) for row in self._rows_in_text(conn, ids)}
        fresh: list[int] = []
        seen: set[str] = set()
        for at, item_id in enumerate(ids):
            if item_id not in stored and item_id not in seen:
                fresh.append(at)
            seen.add(item_id)
        results: dict[int, WriteResult] = {}
        if fresh:
            new = self._insert_new(conn, [entries[at] for at in fresh])
            for at, written in zip(fresh, new, strict=True):
                results[at] = written
        fresh_set = set(fresh)
        for at, (item, vectors) in enumerate(entries):
            if at not in fresh_set:
                results[at] = self.upsert(conn, item, vectors)
        return [results[at] for at in range(len(entries))]

    def _rows_in_text(self, conn: sqlite3.Connection, ids: Sequence[str]
                      ) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = []
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            marks = ",".join("?" * len(part))
            rows += conn.execute(f"SELECT id FROM items WHERE id IN ({marks})",
                                 part).fetchall()
        return rows

    def _insert_new(self, conn: sqlite3.Connection,
                    entries: Sequence[tuple[Item, Mapping[str, NDArray[np.float32]]]]
                    ) -> list[WriteResult]:
        """Items not in the catalog (ids checked by the caller), with their vectors: the
        rows ``upsert`` writes for a new item, keys and vids given in order from where
        AUTOINCREMENT would give them."""
        key = _next_rowid(conn, "items", "key")
        keys = list(range(key, key + len(entries)))
        columns, rows = _without_null_columns(
            ("key", *_WRITE_COLUMNS),
            [(k, *_item_values(item)) for k, (item, _v) in zip(keys, entries, strict=True)],
            _null_default_columns(conn))
        conn.executemany(f"INSERT INTO items ({', '.join(columns)}) "
                         f"VALUES ({', '.join('?' * len(columns))})", rows)
        tags, colors, attributes = [], [], []
        for k, (item, _vectors) in zip(keys, entries, strict=True):
            facets = _facet_rows(k, item)
            tags += facets[0]
            colors += facets[1]
            attributes += facets[2]
        _insert_facets(conn, tags, colors, attributes)
        conn.executemany(_INSERT_FTS, [_fts_row(k, item) for k, (item, _v)
                                       in zip(keys, entries, strict=True)])
        added: list[dict[str, int]] = [{} for _ in entries]
        spaces = sorted({space for _item, vectors in entries for space in vectors})
        for space in spaces:
            where = [at for at, (_item, vectors) in enumerate(entries) if space in vectors]
            matrix = np.stack([np.asarray(entries[at][1][space], np.float32).reshape(-1)
                               for at in where])
            spec = self._store_file(conn, space, matrix.shape[1])
            slots = self.vector_files.file(space, spec).append(matrix)
            vid = _next_rowid(conn, "vectors", "vid")
            vids = range(vid, vid + len(where))
            conn.executemany("INSERT INTO vectors (vid, key, space, vector, slot) "
                             "VALUES (?, ?, ?, x'', ?)",
                             [(v, keys[at], space, int(slot))
                              for v, at, slot in zip(vids, where, slots, strict=True)])
            conn.executemany("INSERT INTO journal (space, op, vid) VALUES (?, 'add', ?)",
                             [(space, v) for v in vids])
            for v, at, slot in zip(vids, where, slots, strict=True):
                added[at][space] = v
                self._new_slots.append((space, v, int(slot)))
        self._wrote = True
        self._dirty.update(keys)
        return [WriteResult(k, "added", a, {}, None, None)
                for k, a in zip(keys, added, strict=True)]

    def delete(self, conn: sqlite3.Connection, item_id: str) -> WriteResult | None:
        row = conn.execute("SELECT key, thumbnail, original FROM items WHERE id = ?",
                           (item_id,)).fetchone()
        if row is None:
            return None
        key = int(row[0])
        self._dirty.add(key)
        self._dirty_ids.add(item_id)
        self._wrote = True
        removed: dict[str, int] = {}
        for vid, space in conn.execute("SELECT vid, space FROM vectors WHERE key = ?",
                                       (key,)).fetchall():
            removed[space] = int(vid)
            conn.execute("INSERT INTO journal (space, op, vid) VALUES (?, 'remove', ?)",
                         (space, vid))
        conn.execute("DELETE FROM vectors WHERE key = ?", (key,))
        for table in ("item_tags", "item_colors", "item_attributes"):
            conn.execute(f"DELETE FROM {table} WHERE key = ?", (key,))
        conn.execute("DELETE FROM items WHERE key = ?", (key,))
        conn.execute("DELETE FROM items_fts WHERE rowid = ?", (key,))
        return WriteResult(key, "deleted", {}, removed, row[1], row[2])

    def drop_space(self, conn: sqlite3.Connection, space: str) -> int:
        """Remove every vector of ``space`` (journalled); returns how many."""
        conn.execute("INSERT INTO journal (space, op, vid) "
                     "SELECT space, 'remove', vid FROM vectors WHERE space = ?", (space,))
        # its file is removed when a writer next opens (a reader may still map it)
        conn.execute("DELETE FROM meta WHERE key = ?", (META_PREFIX + space,))
        self._slot_tables.pop(space, None)
        return conn.execute("DELETE FROM vectors WHERE space = ?", (space,)).rowcount

    def update_source_stat(self, item_id: str, size: int, mtime: float) -> None:
        with self.transaction() as conn:
            row = conn.execute("SELECT key FROM items WHERE id = ?", (item_id,)).fetchone()
            if row is not None:
                self._dirty.add(int(row[0]))
            conn.execute("UPDATE items SET source_size = ?, source_mtime = ? WHERE id = ?",
                         (size, mtime, item_id))

    def prune_journal(self, upto_seq: int) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM journal WHERE seq <= ?", (upto_seq,))

    # -- reads ---------------------------------------------------------------------
    def count(self) -> int:
        return int(self._reader.execute("SELECT COUNT(*) FROM items").fetchone()[0])

    def newest_keys(self, offset: int, limit: int) -> list[int]:
        """Keys of the items added last first (a key is given once, when an item is new)."""
        return [int(r[0]) for r in self._reader.execute(
            "SELECT key FROM items ORDER BY key DESC LIMIT ? OFFSET ?", (limit, offset))]

    def keys_by_date(self, date_sql: str, offset: int, limit: int
                     ) -> list[tuple[int, str | None]]:
        """(key, date) of items by ``date_sql`` (an expression over the items' columns,
        written in code, never from input): newest first, undated last."""
        return [(int(key), None if day is None else str(day)) for key, day in
                self._reader.execute(f"SELECT key, {date_sql} AS day FROM items "
                                     "ORDER BY day IS NULL, day DESC, key DESC "
                                     "LIMIT ? OFFSET ?", (limit, offset))]

    def count_vectors(self, space: str) -> int:
        return int(self._reader.execute(
            "SELECT COUNT(*) FROM vectors WHERE space = ?", (space,)).fetchone()[0])

    def space_dims(self) -> dict[str, int]:
        """Each vector space stored, with the dimension of its vectors."""
        if not self._vectors_in_files():  # an older schema's: vectors still in the catalog
            return {str(space): int(nbytes) // 4 for space, nbytes in self._reader.execute(
                "SELECT space, (SELECT length(vector) FROM vectors v WHERE v.space = "
                "s.space LIMIT 1) FROM (SELECT DISTINCT space FROM vectors) s")}
        return {str(space): StoreFile.from_json(value).dim
                for space, value in self._reader.execute(
                    "SELECT s.space, m.value FROM (SELECT DISTINCT space FROM vectors) s "
                    f"JOIN meta m ON m.key = '{META_PREFIX}' || s.space")}

    def key_of(self, item_id: str) -> int | None:
        key = self.keys.get(item_id)
        if key is None:
            key = self.hit_rows.key_of_first(item_id)  # a result page's first field: the id
        if key is not None:
            return key
        generation = self.keys.generation
        row = self._reader.execute("SELECT key FROM items WHERE id = ?", (item_id,)).fetchone()
        if row is None:
            return None
        self.keys.put_many({item_id: int(row[0])}, generation)
        return int(row[0])

    def get(self, item_id: str) -> Item | None:
        row = self._reader.execute(_SELECT_ITEM + " WHERE id = ?", (item_id,)).fetchone()
        return None if row is None else _row_item(row)[1]

    def items_by_key(self, keys: Iterable[int]) -> dict[int, Item]:
        """The items of ``keys`` that exist. Items may come from the row cache: treat them
        as read-only."""
        found, missing = self.rows.get_many(int(k) for k in keys)
        if not missing:
            return found
        generation = self.rows.generation
        read = dict(_row_item(row) for row in self._rows_in(_SELECT_ITEM, "key", missing))
        self.rows.put_many(read, generation)
        found.update(read)
        return found

    def category_and_brand(self, key: int) -> tuple[str | None, str | None]:
        """Item ``key``'s category and brand (None: none, or no such item), which similar
        by id reads on every query: not read at all where the filter columns show that
        no item has either (a folder of photos), else from its result-page fields."""
        columns = self.columns
        if columns is not None and columns.hold_no_value(("category_norm", "brand_norm")):
            return None, None
        row = self.hit_rows.get(key)
        if row is None:
            row = self.hits_by_key([key]).get(key)
        return (None, None) if row is None else (row[2], row[3])

    def hits_by_key(self, keys: Sequence[int] | NDArray[np.int64]) -> dict[int, HitRow]:
        """The fields of HIT_FIELDS for those ``keys`` that exist: what a result page
        shows, without decoding whole rows."""
        found, missing = self.hit_rows.get_many(keys)
        if not missing:
            return found
        if not self._few("hits", "", len(missing)) and self._claim_hit_scan():
            # one scan (about a second a million rows, on a thread of its own) instead of
            # a read of scattered rows for every page from then on; SQL answers meanwhile
            # (and answers a reader's first few pages alone: a one-shot search would
            # exit before the scan ends, and the scan's thread took turns at the GIL
            # with it)
            self._start_scan(self._scan_hits, "imgsearch-hit-rows")
        generation = self.hit_rows.generation
        read: dict[int, HitRow] = {row[0]: row[1:]
                                   for row in self._rows_in(_SELECT_HIT, "key", missing)}
        self.hit_rows.put_many(read, generation)
        found.update(read)
        return found

    def _claim_hit_scan(self) -> bool:
        """True, once in a while, where the result-page fields are kept in memory."""
        return bool(self.hit_rows.capacity) and self._hit_scans.claim()

    def _scan_hits(self) -> None:
        """Pack the result-page fields of every item (as many as fit)."""
        def scan(conn: sqlite3.Connection) -> None:
            with self._hit_scans.timed():
                generation = self.hit_rows.generation  # before the read starts
                self.hit_rows.fill(conn.execute(_SELECT_HIT), generation)
        self._apart(scan)

    def _apart(self, scan: Callable[[sqlite3.Connection], None]) -> None:
        """``scan`` on a connection of its own: a background scan runs on a thread of its
        own. An SQLite error keeps nothing: SQL keeps answering, and a later search or
        filter scans again."""
        conn = self._connect()
        try:
            scan(conn)
        except sqlite3.Error:
            pass
        finally:
            conn.close()

    def _start_scan(self, scan: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=scan, name=name, daemon=True)
        with self._scans_lock:
            self._scans = [t for t in self._scans if t.is_alive()] + [thread]
        thread.start()

    def warm(self, wait: bool = True, rescored: Sequence[str] = ()) -> None:
        """Start reading now what searches would otherwise start reading into memory on
        their first runs (the result-page fields, the perceptual hashes that fold
        duplicates, the filter columns, and the vector files of the ``rescored`` spaces,
        whose rows re-scoring reads); with ``wait``, return when every such read under way
        is done. (Before it read the hashes, the first search after ``warm`` at 1M items
        took 120 ms scanning them; it takes about 5 ms now.)"""
        self._warmed = True
        scans: list[Callable[[], None]] = []
        if self._claim_hit_scan():
            scans.append(self._scan_hits)
        if self.hashes is not None and self._hash_scans.claim():
            scans.append(partial(self._apart, partial(self._scan_hashes, self.hashes)))
        columns = self.columns
        if columns is not None and not columns.ready and self._column_scans.claim():
            scans.append(partial(self._scan_columns, columns))
        scans.extend(partial(self._cache_vectors, space) for space in rescored)

        def one_after_another() -> None:  # side by side they would fight over the GIL
            for scan in scans:
                scan()
        if scans:
            self._start_scan(one_after_another, "imgsearch-warm")
        if not wait:
            return
        with self._scans_lock:
            running = list(self._scans)
        for thread in running:
            thread.join()

    def _cache_vectors(self, space: str) -> None:
        """Read ``space``'s vector file into the page cache when it takes at most half the
        memory the system has available (``SpaceFile.cache``)."""
        made = self._slot_table(space)
        if made is not None:
            with contextlib.suppress(OSError, CollectionError):
                self.vector_files.file(space, made[0]).cache(available_memory() // 2)

    def _rows_in(self, select: str, column: str, values: Sequence[int], *,
                 where: str = "", params: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
        """Rows of ``select`` whose ``column`` is one of ``values`` (and that meet
        ``where``, with ``params``), read 500 at a time (SQLite limits the parameters of
        one statement)."""
        also = f"{where} AND " if where else ""
        for start in range(0, len(values), 500):
            chunk = [int(v) for v in values[start:start + 500]]
            yield from self._reader.execute(
                f"{select} WHERE {also}{column} IN ({', '.join('?' * len(chunk))})",
                [*params, *chunk])

    def iter_items(self, batch: int = 1000) -> Iterator[Item]:
        last = 0
        while True:
            rows = self._reader.execute(
                _SELECT_ITEM + " WHERE key > ? ORDER BY key LIMIT ?", (last, batch)).fetchall()
            if not rows:
                return
            for row in rows:
                yield _row_item(row)[1]
            last = int(rows[-1][0])

    def source_states(self, source: str
                      ) -> dict[str, tuple[int | None, float | None, str | None]]:
        """id -> (size, mtime, content hash) of the items found in ``source``, for
        incremental re-indexing."""
        return {str(r[0]): (r[1], r[2], r[3]) for r in self._reader.execute(
            "SELECT id, source_size, source_mtime, content_hash FROM items WHERE source = ?",
            (source,))}

    def sources_of(self, ids: Sequence[str]) -> dict[str, str | None]:
        """id -> source of those ``ids`` that exist (None: added by id)."""
        found: dict[str, str | None] = {}
        for start in range(0, len(ids), 500):
            chunk = list(ids[start:start + 500])
            found.update((str(i), s) for i, s in self._reader.execute(
                f"SELECT id, source FROM items WHERE id IN ({', '.join('?' * len(chunk))})",
                chunk))
        return found

    def folder_prefix(self, root: str, aliases: Sequence[str] = ()) -> str:
        """The prefix of the ids of folder ``root`` (a resolved path), registering it.

        The first folder of a collection has none (ids are paths relative to it); a
        folder added while another one's items hold unprefixed ids gets its name and
        ``//`` (a relative path never holds an empty part, so no id of another folder
        can be the same), with ``~2``, ``~3``… after the name when that name is taken.
        ``aliases`` are other spellings of ``root`` an earlier version recorded.
        """
        with self.transaction() as conn:
            row = conn.execute("SELECT prefix FROM sources WHERE root = ?", (root,)).fetchone()
            if row is not None:
                return str(row[0])
            for alias in aliases:
                row = conn.execute("SELECT prefix FROM sources WHERE root = ?",
                                   (alias,)).fetchone()
                if row is not None:
                    conn.execute("UPDATE sources SET root = ? WHERE root = ?", (root, alias))
                    conn.execute("UPDATE items SET source = ? WHERE source = ?", (root, alias))
                    self._wrote = True
                    self.rows.invalidate()
                    return str(row[0])
            plain_taken = conn.execute(
                "SELECT 1 FROM items WHERE source IN "
                "(SELECT root FROM sources WHERE prefix = '') LIMIT 1").fetchone()
            prefix = ""
            if plain_taken is not None:
                taken = {str(p) for (p,) in conn.execute("SELECT prefix FROM sources")}
                name = PurePosixPath(root).name or "root"
                prefix, n = f"{name}//", 1
                while prefix in taken:
                    n += 1
                    prefix = f"{name}~{n}//"
            conn.execute("INSERT INTO sources (root, prefix, added_at) VALUES (?, ?, ?)",
                         (root, prefix, time.time()))
            return prefix

    def ids_of_source(self, source: str) -> list[str]:
        return [str(r[0]) for r in self._reader.execute(
            "SELECT id FROM items WHERE source = ?", (source,))]

    def reembed_sources(self) -> list[tuple[str, str | None, str | None]]:
        """(id, image, original) of every item: what re-encoding would read."""
        return [(str(i), im, o) for i, im, o in self._reader.execute(
            "SELECT id, image, original FROM items ORDER BY key")]

    def items_without_vector(self, spaces: Sequence[str], batch: int = 1000
                             ) -> Iterator[Item]:
        """The items that lack a vector in any of ``spaces``, in key order."""
        lacking = " OR ".join("key NOT IN (SELECT key FROM vectors WHERE space = ?)"
                              for _ in spaces) or "0"
        last = 0
        while True:
            rows = self._reader.execute(
                f"{_SELECT_ITEM} WHERE key > ? AND ({lacking}) ORDER BY key LIMIT ?",
                (last, *spaces, batch)).fetchall()
            if not rows:
                return
            for row in rows:
                yield _row_item(row)[1]
            last = int(rows[-1][0])

    def count_without_vector(self, space: str) -> int:
        # an item has at most one vector per space (a unique index says so)
        return self.count() - self.count_vectors(space)

    def phashes(self, conn: sqlite3.Connection | None = None
                ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """(keys, perceptual hashes) of every item that has a hash."""
        rows = (conn or self._reader).execute(
            "SELECT key, phash FROM items WHERE phash IS NOT NULL ORDER BY key").fetchall()
        return (np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)),
                np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows)))

    def phashes_of(self, keys: NDArray[np.int64]
                   ) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
        """One hash per key, in order, and which keys have one (0 stands in for none)."""
        keys = np.asarray(keys, dtype=np.int64).reshape(-1)
        column = self.hashes
        if column is None:
            hashes, present = np.zeros(len(keys), np.int64), np.zeros(len(keys), bool)
            unknown = np.ones(len(keys), bool)
        else:
            hashes, present, unknown = column.get(keys)
            if not unknown.any():
                return hashes, present
            if not self._few("phash", "", len(keys)) and self._hash_scans.claim():
                self._scan_hashes(column)
                hashes, present, unknown = column.get(keys)
                if not unknown.any():
                    return hashes, present
        generation = column.generation if column is not None else 0
        missing = np.sort(keys[unknown])  # distinct (np.unique's first call imports numpy.ma)
        if len(missing) > 1:
            missing = missing[np.concatenate(([True], missing[1:] != missing[:-1]))]
        read: dict[int, int | None] = dict(
            self._rows_in("SELECT key, phash FROM items", "key", missing.tolist()))
        got = np.fromiter((read.get(int(k)) is not None for k in missing), bool,
                          count=len(missing))
        values = np.fromiter((read.get(int(k)) or 0 for k in missing), np.int64,
                             count=len(missing))
        if column is not None:
            # keys not found were deleted: leave them unknown rather than remember "none"
            exists = np.fromiter((int(k) in read for k in missing), bool, count=len(missing))
            column.put(missing[exists], values[exists], got[exists], generation)
        at = np.searchsorted(missing, keys[unknown])
        hashes[unknown] = values[at]
        present[unknown] = got[at]
        return hashes, present

    def _scan_hashes(self, column: KeyColumn, conn: sqlite3.Connection | None = None
                     ) -> None:
        """Fill the hash column from one scan of the table: searches then fold duplicates
        without a query per candidate."""
        conn = conn or self._reader
        with self._hash_scans.timed():
            generation = column.generation
            top = conn.execute("SELECT max(key) FROM items").fetchone()[0]
            keys, hashes = self.phashes(conn)
            column.fill(int(top or 0) + 1, keys, hashes, generation)

    def ids_of(self, keys: Sequence[int]) -> dict[int, str]:
        return {int(k): str(i) for k, i in self._rows_in("SELECT key, id FROM items", "key",
                                                         keys)}

    def is_empty(self) -> bool:
        return self._reader.execute("SELECT 1 FROM items LIMIT 1").fetchone() is None

    def has_text(self) -> bool:
        return self._reader.execute(
            "SELECT 1 FROM items WHERE coalesce(title, description, category, brand) "
            "IS NOT NULL OR tags != '[]' LIMIT 1").fetchone() is not None

    def thumbnail_in_use(self, relpath: str) -> bool:
        return self._reader.execute("SELECT 1 FROM items WHERE thumbnail = ? LIMIT 1",
                                    (relpath,)).fetchone() is not None

    def original_in_use(self, relpath: str) -> bool:
        return self._reader.execute("SELECT 1 FROM items WHERE original = ? LIMIT 1",
                                    (relpath,)).fetchone() is not None

    def vid_of(self, space: str, key: int) -> int | None:
        row = self._reader.execute("SELECT vid FROM vectors WHERE key = ? AND space = ?",
                                   (key, space)).fetchone()
        return None if row is None else int(row[0])

    def vector_of(self, space: str, key: int) -> NDArray[np.float32] | None:
        rows = self._reader.execute(_SELECT_VECTOR + " WHERE v.key = ? AND v.space = ?",
                                    (key, space)).fetchall()
        if not rows:
            return None
        return self._vectors_of_rows(rows, StoreFile.from_json(rows[0][4]).dim)[2][0]

    def vectors_by_vid(self, vids: Sequence[int], dim: int
                       ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """The stored vectors of those vids that still exist, in the order given."""
        found, _keys, vectors = self.vectors_with_keys(vids, dim)
        return found, vectors

    def iter_vectors(self, space: str, dim: int, batch: int = 20_000
                     ) -> Iterator[tuple[NDArray[np.int64], NDArray[np.int64],
                                         NDArray[np.float32]]]:
        """(vids, keys, vectors) of a space in vid order, in batches."""
        last = 0
        while True:
            rows = self._reader.execute(
                _SELECT_VECTOR + " WHERE v.space = ? AND v.vid > ? ORDER BY v.vid LIMIT ?",
                (space, last, batch)).fetchall()
            if not rows:
                return
            vids, keys, matrix = self._vectors_of_rows(rows, dim)
            yield vids, keys, matrix
            last = int(vids[-1])

    def vectors_with_keys(self, vids: Sequence[int], dim: int
                          ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float32]]:
        """(vids, keys, vectors) of those vids that still exist, in the order given."""
        found = {int(row[0]): row for row in self._rows_in(_SELECT_VECTOR, "v.vid", vids)}
        return self._vectors_of_rows([found[int(v)] for v in vids if int(v) in found], dim)

    def _vectors_of_rows(self, rows: Sequence[tuple[Any, ...]], dim: int
                         ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float32]]:
        """(vids, keys, vectors) of ``_SELECT_VECTOR`` rows, read from the vector files."""
        n = len(rows)
        vids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=n)
        keys = np.fromiter((r[1] for r in rows), dtype=np.int64, count=n)
        slots = np.fromiter((r[3] for r in rows), dtype=np.int64, count=n)
        out = np.empty((n, dim), np.float32)
        places: dict[tuple[str, str], list[int]] = {}
        for at, row in enumerate(rows):
            places.setdefault((row[2], row[4]), []).append(at)
        for (space, value), where in places.items():
            spec = StoreFile.from_json(value)
            if spec.dim != dim:
                raise CollectionError(f"space {space!r} holds {spec.dim}-d vectors, "
                                      f"{dim}-d were asked for")
            stored = self.vector_files.file(space, spec)
            if len(where) == n:
                out[:] = stored.read(slots)
            else:
                picked = np.asarray(where, dtype=np.intp)
                out[picked] = stored.read(slots[picked])
        return vids, keys, out

    # -- the vector files ---------------------------------------------------------------
    def _vectors_in_files(self) -> bool:
        """Whether this catalog names vector files (schema 5 on); a catalog of an older
        schema opened without upgrading (a check) holds its vectors as blobs."""
        return any(row[1] == "slot" for row in
                   self._reader.execute("PRAGMA table_info(vectors)"))

    def vectors_at(self, space: str, vids: NDArray[np.int64], dim: int
                   ) -> NDArray[np.float32] | None:
        """The vectors of ``vids`` — live vids of ``space``, as an index holds them — read
        from the map through the in-memory vid -> row table, in the order given; None
        when one is not in the table, or while the table is not made and the read is one
        of a space's first few small ones (the caller asks ``vectors_with_keys``)."""
        if space not in self._slot_tables and self._few("vectors", space, len(vids)):
            return None
        made = self._slot_table(space)
        if made is None or made[0].dim != dim:
            return None
        spec, table = made
        vids = np.asarray(vids, dtype=np.int64)
        if not len(vids):
            return np.empty((0, dim), np.float32)
        if vids.min() < 0 or vids.max() >= len(table):
            return None
        slots = table[vids]
        if slots.min() < 0:
            return None
        return self.vector_files.file(space, spec).read(slots.astype(np.int64))

    def vectors_of_keys(self, space: str, keys: NDArray[np.int64], dim: int
                        ) -> tuple[NDArray[np.int64], NDArray[np.float32]] | None:
        """(keys, vectors) of those ``keys`` that have a vector in ``space``, in the order
        given, read through SQLite; None unless the read is one of the space's first few
        small ones (the caller's key -> vid tables answer it then)."""
        if not self._few("vectors", space, len(keys)):
            return None
        wanted = [int(k) for k in keys]
        rows = {int(row[1]): row for row in self._rows_in(
            _SELECT_VECTOR, "v.key", wanted, where="v.space = ?", params=(space,))}
        _vids, found, vectors = self._vectors_of_rows(
            [rows[k] for k in wanted if k in rows], dim)
        return found, vectors

    def keys_of_vids(self, space: str, vids: NDArray[np.int64]) -> NDArray[np.int64] | None:
        """The item key of each of ``vids`` in ``space`` (-1: none), read through SQLite;
        None unless the read is one of the space's first few small ones."""
        if not self._few("keys", space, len(vids)):
            return None
        asked = [int(v) for v in vids]
        found: dict[int, int] = dict(self._rows_in(
            "SELECT vid, key FROM vectors", "vid", asked, where="space = ?", params=(space,)))
        return np.fromiter((found.get(v, -1) for v in asked), dtype=np.int64,
                           count=len(asked))

    def _few(self, what: str, space: str, n: int) -> bool:
        """Whether a read of ``n`` rows of kind ``what`` (of ``space``) goes to SQLite row
        by row, as one of its first few such reads, rather than through a table made by
        one scan of them all; never after ``warm``."""
        if self._warmed or n > _FEW_VECTORS or self._few_reads[what, space] >= _FEW_READS:
            return False
        self._few_reads[what, space] += 1
        return True

    def _slot_table(self, space: str) -> tuple[StoreFile, NDArray[np.int32]] | None:
        made = self._slot_tables.get(space)
        if made is not None:
            return made
        with self._slot_lock:
            made = self._slot_tables.get(space)
            if made is not None:
                return made
            reader = self._reader
            reader.execute("BEGIN")  # the file and the rows of one snapshot
            try:
                row = reader.execute("SELECT value FROM meta WHERE key = ?",
                                     (META_PREFIX + space,)).fetchone()
                if row is None:
                    return None
                top = reader.execute("SELECT max(vid) FROM vectors WHERE space = ?",
                                     (space,)).fetchone()[0] or 0
                table = np.full(int(top) + 1, -1, np.int32)
                pairs = np.fromiter(
                    (v for pair in reader.execute(
                        "SELECT vid, slot FROM vectors WHERE space = ?", (space,))
                     for v in pair), dtype=np.int64)
            finally:
                reader.execute("COMMIT")
            table[pairs[0::2]] = pairs[1::2]
            made = (StoreFile.from_json(row[0]), table)
            self._slot_tables[space] = made
            return made

    def _publish_slots(self) -> None:
        """After a commit: the rows it wrote join the tables already made."""
        new, self._new_slots = self._new_slots, []
        for space in {entry[0] for entry in new}:
            made = self._slot_tables.get(space)
            if made is None:
                continue
            vids = np.fromiter((v for sp, v, _ in new if sp == space), dtype=np.int64)
            slots = np.fromiter((s for sp, _, s in new if sp == space), dtype=np.int32)
            table = made[1]
            if vids.max() >= len(table):
                grown = np.full(max(int(vids.max()) + 1, 2 * len(table)), -1, np.int32)
                grown[:len(table)] = table
                table = grown
            table[vids] = slots
            self._slot_tables[space] = (made[0], table)

    def _store_file(self, conn: sqlite3.Connection, space: str, dim: int) -> StoreFile:
        """The file ``space``'s new vectors go to, made (and named in the catalog, in the
        open transaction) for a space's first vector."""
        row = conn.execute("SELECT value FROM meta WHERE key = ?",
                           (META_PREFIX + space,)).fetchone()
        if row is not None:
            spec = StoreFile.from_json(row[0])
            if spec.dim != dim:
                raise InvalidInputError(
                    f"space {space!r} holds {spec.dim}-d vectors, got a {dim}-d one; "
                    f"re-embed the collection to change its encoder")
            return spec
        spec = StoreFile(self.vector_files.next_generation(space), self.vector_dtype, dim)
        self.set_meta(META_PREFIX + space, spec.to_json(), conn)
        return spec

    def _append_vector(self, conn: sqlite3.Connection, space: str,
                       vector: NDArray[np.float32]) -> int:
        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        spec = self._store_file(conn, space, len(vector))
        return int(self.vector_files.file(space, spec).append(vector[None, :])[0])

    def _move_vectors_out(self) -> int:
        """Move vectors an older schema kept in the catalog into the vector files, a
        batch per commit (an interrupted move goes on where it stopped); then give the
        space back to the disk. Returns how many moved."""
        moved = 0
        while True:
            rows = self._writer.execute(
                "SELECT vid, space, vector FROM vectors WHERE slot IS NULL ORDER BY vid "
                "LIMIT ?", (_MOVE_BATCH,)).fetchall()
            if not rows:
                break
            with self.transaction() as conn:
                by_space: dict[str, list[tuple[int, bytes]]] = {}
                for vid, space, blob in rows:
                    by_space.setdefault(str(space), []).append((int(vid), blob))
                for space, entries in by_space.items():
                    matrix = np.frombuffer(b"".join(b for _, b in entries), dtype="<f4")
                    dim = len(entries[0][1]) // 4
                    spec = self._store_file(conn, space, dim)
                    slots = self.vector_files.file(space, spec).append(
                        matrix.reshape(len(entries), dim))
                    conn.executemany("UPDATE vectors SET slot = ?, vector = x'' WHERE vid = ?",
                                     [(int(s), v) for s, (v, _) in zip(slots, entries,
                                                                       strict=True)])
            moved += len(rows)
        if moved:
            self._writer.execute("VACUUM")
        return moved

    def sweep_vector_files(self) -> int:
        """Remove the vector files no catalog row names (a crashed compaction's, a dropped
        space's, a new space's whose first commit never came); returns how many. Only the
        writer may (holding the collection's lock): another process's open transaction
        may be appending to a file its commit has not named yet."""
        named = {StoreFile.from_json(value).name(key[len(META_PREFIX):])
                 for key, value in self._writer.execute(
                     "SELECT key, value FROM meta WHERE key LIKE ?", (META_PREFIX + "%",))}
        removed = self.vector_files.sweep(named)
        if removed:
            sync_directory(self.vector_files.directory)
        return len(removed)

    def vector_rows_named(self, space: str) -> int:
        """How many rows ``space``'s file must hold: one past the last the catalog names."""
        top = self._reader.execute("SELECT max(slot) FROM vectors WHERE space = ?",
                                   (space,)).fetchone()[0]
        return 0 if top is None else int(top) + 1

    def vector_file_stats(self, resident: bool = True, count_live: bool = True
                          ) -> dict[str, dict[str, Any]]:
        """Per space: its file, dtype, rows written, rows live, bytes on disk (and in
        memory, unless ``resident`` is False: reading that costs a pass over smaps;
        rows live are None unless ``count_live``: counting scans the space's rows)."""
        stats: dict[str, dict[str, Any]] = {}
        for key, value in self._reader.execute(
                "SELECT key, value FROM meta WHERE key LIKE ?", (META_PREFIX + "%",)):
            space, spec = key[len(META_PREFIX):], StoreFile.from_json(value)
            stored = self.vector_files.file(space, spec)
            size = stored.path.stat().st_size if stored.path.exists() else 0
            stats[space] = {"file": stored.path.name, "dtype": spec.dtype, "dim": spec.dim,
                            "rows": size // stored.row_bytes,
                            "live": self.count_vectors(space) if count_live else None,
                            "disk_bytes": size,
                            "resident_bytes": stored.resident_bytes() if resident else 0}
        return stats

    def compact_vectors(self, space: str) -> int:
        """Copy ``space``'s live rows into a new file (in ``vector_dtype``) and switch to
        it in one commit; returns the dead rows dropped. Writers wait meanwhile."""
        with self.transaction() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?",
                               (META_PREFIX + space,)).fetchone()
            if row is None:
                return 0
            old = StoreFile.from_json(row[0])
            source = self.vector_files.file(space, old)
            written = (source.path.stat().st_size // source.row_bytes
                       if source.path.exists() else 0)
            new = StoreFile(self.vector_files.next_generation(space), self.vector_dtype,
                            old.dim)
            target = self.vector_files.file(space, new)
            live = conn.execute("SELECT vid, slot FROM vectors WHERE space = ? ORDER BY slot",
                                (space,)).fetchall()
            for start in range(0, len(live), _MOVE_BATCH):
                part = live[start:start + _MOVE_BATCH]
                slots = np.fromiter((s for _, s in part), dtype=np.int64, count=len(part))
                new_slots = target.append(source.read(slots))
                conn.executemany("UPDATE vectors SET slot = ? WHERE vid = ?",
                                 [(int(s), v) for s, (v, _) in zip(new_slots, part,
                                                                   strict=True)])
            if not live:
                target.append(np.empty((0, old.dim), np.float32))
            self.set_meta(META_PREFIX + space, new.to_json(), conn)
        # readers in this process keep the old map while they use it; the name goes now
        self._slot_tables.pop(space, None)
        self.vector_files.forget(space, old.generation)
        source.path.unlink(missing_ok=True)
        return written - len(live)

    def journal_since(self, seq: int, space: str) -> list[JournalEntry]:
        return [JournalEntry(int(s), sp, op, int(v)) for s, sp, op, v in self._reader.execute(
            "SELECT seq, space, op, vid FROM journal WHERE seq > ? AND space = ? ORDER BY seq",
            (seq, space))]

    def journal_floor(self) -> int:
        """The oldest journal entry kept (pruning removes older ones); head + 1 if none."""
        row = self._reader.execute("SELECT MIN(seq) FROM journal").fetchone()
        return int(row[0]) if row[0] is not None else self.journal_head() + 1

    def journal_head(self) -> int:
        row = self._reader.execute("SELECT MAX(seq) FROM journal").fetchone()
        # An emptied journal keeps its AUTOINCREMENT counter in sqlite_sequence.
        if row[0] is not None:
            return int(row[0])
        seq = self._reader.execute(
            "SELECT seq FROM sqlite_sequence WHERE name = 'journal'").fetchone()
        return int(seq[0]) if seq else 0

    def key_vid_pairs(self, space: str) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        # The (key, space) index covers both columns (vid is the rowid): scanning it
        # reads a few bytes per vector, where the (space, vid) index leads to each row
        # and its vector (five times slower on a 10k collection).
        rows = self._reader.execute(
            "SELECT key, vid FROM vectors INDEXED BY vectors_key_space WHERE space = ?",
            (space,)).fetchall()
        keys = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        vids = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
        return keys, vids

    def keyword_search(self, text: str, limit: int, weights: Sequence[float],
                       filters: Filters | None = None
                       ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """BM25 over the text fields; scores are positive, higher is better."""
        terms = _query_terms(text)
        if not terms:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        match = " OR ".join(f'"{t}"' for t in dict.fromkeys(terms))
        restrict, params = "", cast(list[Any], [])
        if filters is not None and not filters.is_empty():
            where, params = filter_sql(filters)
            restrict = f"AND rowid IN (SELECT key FROM items WHERE {where})"
        rows = self._reader.execute(
            f"SELECT rowid, -bm25(items_fts, {', '.join('?' * len(weights))}) AS score "
            f"FROM items_fts WHERE items_fts MATCH ? {restrict} "
            f"ORDER BY score DESC, rowid LIMIT ?",
            (*weights, match, *params, limit)).fetchall()
        keys = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        scores = np.fromiter((r[1] for r in rows), dtype=np.float32, count=len(rows))
        return keys, scores

    def iter_words(self, columns: Sequence[str] = CONCEPT_COLUMNS,
                   batch: int = 5000) -> Iterator[str]:
        """Every word of those keyword-index columns, row by row (lower case, repeats
        included): the collection's own vocabulary."""
        wanted = ", ".join(_fts_column(c) for c in columns)
        cursor = self._reader.execute(f"SELECT {wanted} FROM items_fts")
        while rows := cursor.fetchmany(batch):
            for row in rows:
                for value in row:
                    if value:
                        yield from _TERM.findall(value.casefold())

    def keys_matching_any(self, words: Sequence[str], columns: Sequence[str] = CONCEPT_COLUMNS
                          ) -> NDArray[np.int64]:
        """Sorted keys of the items whose ``columns`` contain any of ``words`` (each word
        or phrase stemmed as the index stems it)."""
        phrases = [" ".join(_TERM.findall(w.casefold())) for w in words]
        phrases = [p for p in dict.fromkeys(phrases) if p]
        if not phrases:
            return np.empty(0, np.int64)
        match = "{" + " ".join(_fts_column(c) for c in columns) + "} : (" + \
            " OR ".join(f'"{p}"' for p in phrases) + ")"
        rows = self._reader.execute("SELECT rowid FROM items_fts WHERE items_fts MATCH ? "
                                    "ORDER BY rowid", (match,)).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def term_coverage(self, text: str, keys: NDArray[np.int64]) -> NDArray[np.float32]:
        """For each key, the fraction of the query's terms its text fields contain."""
        terms = list(dict.fromkeys(_query_terms(text)))
        coverage = np.zeros(len(keys), dtype=np.float32)
        if not terms or not len(keys):
            return coverage
        position = {int(k): i for i, k in enumerate(keys)}
        chunk = [int(k) for k in keys]
        for term in terms:
            for (rowid,) in self._reader.execute(
                    f"SELECT rowid FROM items_fts WHERE items_fts MATCH ? AND rowid IN "
                    f"({', '.join('?' * len(chunk))})", (f'"{term}"', *chunk)):
                coverage[position[int(rowid)]] += 1.0
        return coverage / np.float32(len(terms))

    def field_matches(self, text: str, keys: NDArray[np.int64]
                      ) -> dict[str, NDArray[np.float32]]:
        """For the photo fields (FIELD_SIGNALS) a key's query words were found in: the
        share of the query's terms found there (NaN: none), so hits can say how they
        matched ("ocr": by text read from the image)."""
        terms = list(dict.fromkeys(_query_terms(text)))
        found: dict[str, NDArray[np.float32]] = {}
        if not terms or not len(keys):
            return found
        position = {int(k): i for i, k in enumerate(keys)}
        chunk = [int(k) for k in keys]
        marks = ", ".join("?" * len(chunk))
        # one look at the photo fields together first: most catalogs have none of them
        anywhere = "{" + " ".join(FIELD_SIGNALS) + "} : (" + \
            " OR ".join(f'"{t}"' for t in terms) + ")"
        if self._reader.execute(f"SELECT 1 FROM items_fts WHERE items_fts MATCH ? AND rowid "
                                f"IN ({marks}) LIMIT 1", (anywhere, *chunk)).fetchone() is None:
            return found
        for name in FIELD_SIGNALS:
            counts = np.zeros(len(keys), dtype=np.float32)
            for term in terms:
                for (rowid,) in self._reader.execute(
                        f"SELECT rowid FROM items_fts WHERE items_fts MATCH ? AND rowid IN "
                        f"({marks})", (f'{name} : "{term}"', *chunk)):
                    counts[position[int(rowid)]] += 1.0
            if counts.any():
                found[name] = np.where(counts > 0, counts / np.float32(len(terms)),
                                       np.float32(np.nan)).astype(np.float32)
        return found

    def filter_keys(self, filters: Filters) -> NDArray[np.int64]:
        """Keys of the items that pass ``filters``: sorted, read-only (possibly cached)."""
        where, params = filter_sql(filters)
        token = f"{where}\0{params!r}"
        found, _ = self.filtered.get_many((token,))
        if found:
            return found[token]
        generation = self.filtered.generation
        keys = self._column_keys(filters) if answers(filters) else None
        if keys is None:
            # No ORDER BY: it would make SQLite walk the whole table in key order instead
            # of using the filtered column's index; numpy sorts the (smaller) answer faster.
            rows = self._reader.execute(f"SELECT key FROM items WHERE {where}", params)
            keys = np.sort(np.fromiter((r[0] for r in rows), dtype=np.int64))
        keys.flags.writeable = False
        self.filtered.put_many({token: keys}, generation)
        return keys

    def _column_keys(self, filters: Filters) -> NDArray[np.int64] | None:
        """Passing keys from the in-memory columns; None where they cannot answer yet."""
        columns = self.columns
        if columns is None:
            return None
        if not columns.ready:
            if not self._few("columns", "", 0) and self._column_scans.claim():
                # a million rows take seconds to read: SQL answers until they are in
                self._start_scan(partial(self._scan_columns, columns),
                                 "imgsearch-filter-columns")
            return None
        columns.refresh(self._column_rows)
        return columns.keys(filters)

    def _scan_columns(self, columns: FilterColumns) -> None:
        """Read the filter columns of every item, on a thread of its own."""
        def scan(conn: sqlite3.Connection) -> None:
            with self._column_scans.timed():
                top = conn.execute("SELECT max(key) FROM items").fetchone()[0]

                def rows() -> Iterator[list[Any]]:
                    cursor = conn.execute(f"SELECT key, {', '.join(COLUMNS)} FROM items")
                    return iter(lambda: cursor.fetchmany(50_000), [])

                columns.install(int(top or 0) + 1, rows, columns.begin_scan())
        self._apart(scan)

    def _column_rows(self, keys: Sequence[int]) -> list[tuple[Any, ...]]:
        return list(self._rows_in(f"SELECT key, {', '.join(COLUMNS)} FROM items", "key", keys))

    def distinct_values(self, column: str, limit: int = 1000) -> list[tuple[str, int]]:
        """Most common values of category / brand / license / camera (grouped case-
        insensitively) or country / city, with their counts."""
        if column not in ("category", "brand", "license", "camera", "country", "city"):
            raise ValueError(column)
        group = column if column in ("country", "city") else f"{column}_norm"
        return [(str(v), int(n)) for v, n in self._reader.execute(
            f"SELECT {column}, COUNT(*) AS n FROM items WHERE {column} IS NOT NULL "
            f"GROUP BY {group} ORDER BY n DESC LIMIT ?", (limit,))]

    def place_counts(self, limit: int = 1000) -> list[tuple[str, str | None, int]]:
        """(country, city, photos) for every place photos were taken, most photos first."""
        return [(str(country), city, int(n)) for country, city, n in self._reader.execute(
            "SELECT country, city, COUNT(*) AS n FROM items WHERE country IS NOT NULL "
            "GROUP BY country, city ORDER BY n DESC, country, city LIMIT ?", (limit,))]

    def stats(self) -> dict[str, Any]:
        r = self._reader
        return {
            "items": self.count(),
            "with_price": int(r.execute(
                "SELECT COUNT(*) FROM items WHERE price IS NOT NULL").fetchone()[0]),
            "categories": int(r.execute(
                "SELECT COUNT(DISTINCT category_norm) FROM items").fetchone()[0]),
            "brands": int(r.execute("SELECT COUNT(DISTINCT brand_norm) FROM items").fetchone()[0]),
            "journal_head": self.journal_head(),
        }


class _ScanGate:
    """When a whole-table scan that fills an in-memory cache may run: one at a time, and
    after one none until twenty times its duration has passed, so rescans (another
    process's writes make every cached row unknown) take at most ~5 % of the time."""

    def __init__(self) -> None:
        self._after = 0.0  # monotonic time from which a scan may start

    def claim(self) -> bool:
        """True, and no other claim succeeds, if a scan may start now."""
        if time.monotonic() < self._after:
            return False
        self._after = math.inf
        return True

    @contextmanager
    def timed(self) -> Iterator[None]:
        """Around a claimed scan: when it ends, the next may start after 20× its time."""
        started = time.monotonic()
        try:
            yield
        finally:
            now = time.monotonic()
            self._after = now + 20 * (now - started)


def _item_values(item: Item) -> tuple[Any, ...]:
    return (
        item.id, item.image, item.title, item.description, item.category, item.brand,
        item.price, item.color, item.license, _json_list(item.tags), item.popularity,
        item.rating, item.conversion, item.created_at,
        json.dumps(item.attributes, sort_keys=True, default=str) if item.attributes else "{}",
        item.width, item.height,
        item.orientation, item.phash, _json_list(item.colors), item.thumbnail,
        item.content_hash, item.source_size, item.source_mtime, item.source, item.original,
        norm(item.category),
        norm(item.brand), norm(item.license), time.time(),
        *(getattr(item, name) for name in PHOTO_COLUMNS),
        item.taken_at[:19] if item.taken_at else None, norm(item.camera),
    )


def _null_default_columns(conn: sqlite3.Connection) -> frozenset[str]:
    """Columns of ``items`` that an INSERT leaving them out sets to NULL."""
    return frozenset(str(row[1]) for row in conn.execute("PRAGMA table_info(items)")
                     if row[4] is None and not row[3])


def _without_null_columns(columns: Sequence[str], rows: list[tuple[Any, ...]],
                          droppable: frozenset[str]
                          ) -> tuple[Sequence[str], Iterable[tuple[Any, ...]]]:
    """``columns`` and ``rows`` less the droppable columns that are NULL in every row:
    the same rows written (those columns get NULL either way), and a bulk insert binds
    and stores fewer values (most items leave most of the 45 columns empty: 2.5× faster
    for 50,000 items with an id and a title)."""
    if not rows:
        return columns, rows
    values = list(zip(*rows, strict=True))
    keep = [at for at, name in enumerate(columns)
            if name not in droppable or values[at].count(None) != len(rows)]
    if len(keep) == len(columns):
        return columns, rows
    return [columns[at] for at in keep], zip(*(values[at] for at in keep), strict=True)


def _json_list(values: Sequence[Any]) -> str:
    return json.dumps(list(values)) if values else "[]"  # most items: none (bulk writes)


def _facet_rows(key: int, item: Item
                ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """(tag, colour, attribute) rows of ``item``."""
    tags = {norm(t) for t in item.tags if t and t.strip()}
    colors = {norm(c) for c in item.colors if c}
    if item.color:
        colors.update(norm(c) for c in item.color.replace("/", ",").split(",") if c.strip())
    return ([(t, key) for t in tags], [(c, key) for c in colors if c],
            [(name, attribute_text(value), key) for name, value in item.attributes.items()
             if value is not None])


def _insert_facets(conn: sqlite3.Connection, tags: list[tuple[Any, ...]],
                   colors: list[tuple[Any, ...]], attributes: list[tuple[Any, ...]]) -> None:
    conn.executemany("INSERT OR IGNORE INTO item_tags (tag, key) VALUES (?, ?)", tags)
    conn.executemany("INSERT OR IGNORE INTO item_colors (color, key) VALUES (?, ?)", colors)
    conn.executemany(
        "INSERT OR IGNORE INTO item_attributes (name, value, key) VALUES (?, ?, ?)",
        attributes)


def _write_facets(conn: sqlite3.Connection, key: int, item: Item) -> None:
    _insert_facets(conn, *_facet_rows(key, item))


def _next_rowid(conn: sqlite3.Connection, table: str, column: str) -> int:
    """The rowid AUTOINCREMENT would give the next row of ``table`` (inside the writer's
    transaction, so nobody else takes it)."""
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)).fetchone()
    top = conn.execute(f"SELECT max({column}) FROM {table}").fetchone()[0]
    return max(int(row[0]) if row else 0, int(top or 0)) + 1


def _fts_column(name: str) -> str:
    if name not in _FTS_COLUMNS:
        raise ValueError(f"no keyword-index column {name!r}")
    return name


def _query_terms(text: str) -> list[str]:
    terms = [t for t in _TERM.findall(text.casefold()) if t]
    # "a cup of coffee" must not match every item that says "of"
    return [t for t in terms if t not in STOPWORDS] or terms


_INSERT_FTS = ("INSERT INTO items_fts (rowid, title, description, tags, category, brand, "
               "colors, ocr, album, place) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")


def _fts_row(key: int, item: Item) -> tuple[Any, ...]:
    return (key, clean_title(item.title) or "", item.description or "", " ".join(item.tags),
            item.category or "", item.brand or "", " ".join([*item.colors, item.color or ""]),
            item.ocr_text or "", item.album or "",
            " ".join(p for p in (item.city, item.region, item.country) if p))


def _write_fts(conn: sqlite3.Connection, key: int, item: Item, *, replace: bool) -> None:
    if replace:
        conn.execute("DELETE FROM items_fts WHERE rowid = ?", (key,))
    conn.execute(_INSERT_FTS, _fts_row(key, item))


def _row_item(row: Sequence[Any]) -> tuple[int, Item]:
    (key, id_, image, title, description, category, brand, price, color, license_, tags,
     popularity, rating, conversion, created_at, attributes, width, height, _orientation,
     phash, colors, thumbnail, content_hash, source_size, source_mtime, source,
     original) = row[:27]
    photo = dict(zip(PHOTO_COLUMNS, row[27:], strict=True))
    # most rows hold empty lists and maps: skip the JSON decoder for those
    return int(key), Item(
        id=id_, image=image, title=title, description=description, category=category,
        brand=brand, price=price, color=color, license=license_,
        tags=() if tags == "[]" else tuple(json.loads(tags)), popularity=popularity,
        rating=rating, conversion=conversion, created_at=created_at,
        attributes={} if attributes == "{}" else json.loads(attributes),
        width=width, height=height, phash=phash,
        colors=() if colors == "[]" else tuple(json.loads(colors)),
        thumbnail=thumbnail, content_hash=content_hash, source_size=source_size,
        source_mtime=source_mtime, source=source, original=original, **photo,
    )
