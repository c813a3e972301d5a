"""One vector space as search sees it: a FAISS index kept in step with the catalog.

The index file is a cache. On open it is loaded and the catalog's journal replayed from
the position it was saved at; when it is missing, corrupt, of the wrong shape or older
than the journal still held, it is rebuilt from the stored vectors. Labels in the index
are vids (unique forever); ``vid_key``/``key_vid`` map them to items.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import faiss
import numpy as np
from numpy.typing import NDArray

from imgsearch.config import Settings
from imgsearch.errors import CollectionError
from imgsearch.index.auto import choose_index_kind, ivf_lists, params_from_settings, rescore_depth
from imgsearch.index.base import SearchParams, VectorIndex, gather, read_index_header
from imgsearch.index.faiss_index import (
    FlatIndex,
    HNSWIndex,
    HNSWSQ8Index,
    IVFPQIndex,
    build_index,
    load_index,
)
from imgsearch.index.memo import IdentityMemo
from imgsearch.search.backend import Capabilities
from imgsearch.store.catalog import Catalog
from imgsearch.types import VectorSpace

log = logging.getLogger(__name__)

_TRAIN_SAMPLE = 100_000
# IVF-PQ needs vectors to train on; below this a space stays exact until it has them.
IVFPQ_MIN_VECTORS = 256


# Up to this many allowed items, an index with approximate scores is skipped: they are
# all scored exactly from stored vectors.
BRUTE_FORCE_MAX = 2_000


def exact_cutoff(k: int, total: int) -> int:
    """Up to how many allowed items scoring them all beats a filtered HNSW walk.

    The walk needs efSearch ≈ k·total / (2·allowed) to keep its recall, and each unit of
    efSearch costs about 15× what scoring one stored vector costs (bench/filters.py, 100k
    and 1M items), so exact scoring is cheaper while allowed² < 7.5·k·total: about 7,000
    items of 100,000 and 22,000 of 1,000,000 for a first page (k = 64)."""
    return int(math.sqrt(7.5 * k * total))


def _members(keys: NDArray[np.int64], allowed: NDArray[np.int64]) -> NDArray[np.bool_]:
    """Which ``keys`` are in ``allowed`` (sorted, as the catalog gives it): a binary
    search per key instead of sorting both sides."""
    if not len(allowed):
        return np.zeros(len(keys), bool)
    at = np.searchsorted(allowed, keys).clip(max=len(allowed) - 1)
    return allowed[at] == keys


def index_kind_for(n: int, settings: Settings, dim: int = 512) -> str:
    kind = choose_index_kind(n, settings, dim)
    return "flat" if kind in ("ivfpq", "hnsw_sq8") and n < IVFPQ_MIN_VECTORS else kind


def _grow(array: NDArray[np.int64], size: int) -> NDArray[np.int64]:
    if size <= len(array):
        return array
    grown = np.full(max(size, 2 * len(array), 1024), -1, dtype=np.int64)
    grown[: len(array)] = array
    return grown


@dataclass
class OpenReport:
    loaded: bool
    rebuilt_because: str | None
    replayed: int


class JournalGap(Exception):
    """Journal entries this index still needs were pruned: reload it from its snapshot."""


# whether each index kind's own scores are exact, known before its file is read
_EXACT_SCORES = {made.kind: made.exact_scores
                 for made in (FlatIndex, HNSWIndex, HNSWSQ8Index, IVFPQIndex)}


class _DeferredIndex:
    """Stands for an index file not read yet: it knows the index's kind, dimension and
    size; any other use reads the file (``SpaceIndex.open_deferred``)."""

    load: Callable[[], VectorIndex]  # set by the SpaceIndex it stands in for

    def __init__(self, kind: str, dim: int, exact_scores: bool,
                 count: Callable[[], int]) -> None:
        self.kind = kind
        self.dim = dim
        self.exact_scores = exact_scores
        self._count = count

    def __len__(self) -> int:
        # counted now, not at open: another process's writes since then are in the
        # index once it is read (its open replays the journal), so they count already
        return self._count()

    def __getattr__(self, name: str) -> Any:
        if name == "load":  # not set yet: no index to read
            raise AttributeError(name)
        return getattr(self.load(), name)


class SpaceIndex:
    def __init__(self, space: VectorSpace, index: VectorIndex, catalog: Catalog,
                 path: Path, settings: Settings, applied_seq: int) -> None:
        # pruned_upto of an open deferred to first use (open_deferred), else None
        self._deferred: int | None = None
        self._deferred_lock = threading.Lock()
        # while deferred: (journal head, vid_key, key_vid) read from the catalog alone
        self._catalog_tables: tuple[int, NDArray[np.int64], NDArray[np.int64]] | None = None
        self.space = space
        self.index = index
        self.catalog = catalog
        self.path = path
        self.settings = settings
        self.applied_seq = applied_seq
        self.saved_seq = -1
        self.vid_key = np.full(1024, -1, dtype=np.int64)
        self.key_vid = np.full(1024, -1, dtype=np.int64)
        # Whether the key <-> vid tables are still to be read from the catalog (an open
        # reads them at first use: a one-shot search maps its few hits' vids by SQL).
        self._mapping_due = False
        self._mapping_lock = threading.Lock()
        self._vids_memo: IdentityMemo[NDArray[np.int64]] = IdentityMemo()
        self._slots_memo: IdentityMemo[NDArray[np.int64]] = IdentityMemo()
        # (version, key -> index slot): see slots_of
        self._key_slot: tuple[Any, NDArray[np.int64]] | None = None
        # (the index they describe, its capabilities): asked on every query
        self._capabilities: tuple[VectorIndex, Capabilities] | None = None

    # The key <-> vid tables: an open deferred to first use is done by the first look,
    # and the tables an open left to first use are read then.
    @property
    def vid_key(self) -> NDArray[np.int64]:
        if self._deferred is not None:
            self._open_now()
        if self._mapping_due:
            self._read_mapping()
        return self._vid_key

    @vid_key.setter
    def vid_key(self, value: NDArray[np.int64]) -> None:
        self._vid_key = value

    @property
    def key_vid(self) -> NDArray[np.int64]:
        if self._deferred is not None:
            self._open_now()
        if self._mapping_due:
            self._read_mapping()
        return self._key_vid

    @key_vid.setter
    def key_vid(self, value: NDArray[np.int64]) -> None:
        self._key_vid = value

    # -- lifecycle -------------------------------------------------------------------
    @classmethod
    def open_deferred(cls, space: VectorSpace, catalog: Catalog, path: Path,
                      settings: Settings, *, pruned_upto: int) -> tuple[SpaceIndex, OpenReport]:
        """``open`` for a reader that may never search this space (an image query does
        not search the text space): when the index file is up to date with the journal,
        only its header is read now, and the file (checksum, index, key tables) on first
        use. Otherwise, or when the header says anything ``open`` would not accept, this
        is ``open``."""
        header = read_index_header(path)
        try:
            kind, dim = str(header["kind"]), int(header["dim"])  # type: ignore[index]
            seq = int(header["journal_seq"])  # type: ignore[index]
        except (KeyError, TypeError, ValueError):
            return cls.open(space, catalog, path, settings, pruned_upto=pruned_upto)
        head = catalog.journal_head()
        count = catalog.count_vectors(space.name)
        if (kind not in _EXACT_SCORES or dim != space.dim or not pruned_upto <= seq <= head
                or catalog.journal_since(seq, space.name)
                or (settings.index_type != "auto"
                    and kind != index_kind_for(count, settings, space.dim))):
            return cls.open(space, catalog, path, settings, pruned_upto=pruned_upto)
        stand_in = _DeferredIndex(kind, dim, _EXACT_SCORES[kind],
                                  lambda: catalog.count_vectors(space.name))
        self = cls(space, cast(VectorIndex, stand_in), catalog, path, settings, head)
        stand_in.load = self._open_now
        self.saved_seq = seq
        self._deferred = pruned_upto
        return self, OpenReport(True, None, 0)

    @property
    def deferred(self) -> bool:
        """Whether this space's index file is still to be read (``open_deferred``)."""
        return self._deferred is not None

    def read_index(self) -> None:
        """Do now an open put off by ``open_deferred``, leaving the key <-> vid tables to
        first use (a query reads its index file ahead of need on a worker thread)."""
        if self._deferred is not None:
            self._open_now()

    def load(self) -> None:
        """Do now an open put off by ``open_deferred``, and read the key <-> vid tables an
        open left to first use (``Engine.warm``: a server's first search finds them)."""
        if self._deferred is not None:
            self._open_now()
        if self._mapping_due:
            self._read_mapping()

    def _open_now(self) -> VectorIndex:
        """Do the open ``open_deferred`` put off (once, whichever thread asks first)."""
        with self._deferred_lock:
            if self._deferred is not None:
                opened, _report = SpaceIndex.open(self.space, self.catalog, self.path,
                                                  self.settings, pruned_upto=self._deferred)
                self.index = opened.index
                self.applied_seq, self.saved_seq = opened.applied_seq, opened.saved_seq
                self._vid_key, self._key_vid = opened._vid_key, opened._key_vid
                self._mapping_due = opened._mapping_due
                self._deferred = None
                self._catalog_tables = None
        return self.index

    @classmethod
    def open(cls, space: VectorSpace, catalog: Catalog, path: Path, settings: Settings,
             *, pruned_upto: int) -> tuple[SpaceIndex, OpenReport]:
        reason: str | None = None
        index: VectorIndex | None = None
        seq = 0
        if not path.exists():
            reason = "index file missing"
        else:
            try:
                index, seq = load_index(path)
                if index.dim != space.dim:
                    reason, index = f"index dimension {index.dim} != space {space.dim}", None
                elif seq < pruned_upto:
                    reason, index = "index older than the journal kept", None
                elif seq > catalog.journal_head():
                    reason, index = "index newer than the catalog", None
                elif settings.index_type != "auto" and index.kind != index_kind_for(
                        len(index), settings, space.dim):
                    reason = f"{index.kind} index, {settings.index_type} asked for"
                    index = None
            except CollectionError as exc:
                reason = f"index file unreadable ({exc})"
        if index is None:
            self = cls.rebuild(space, catalog, path, settings)
            self._mapping_due = True
            return self, OpenReport(False, reason, 0)
        self = cls(space, index, catalog, path, settings, seq)
        self.saved_seq = seq
        replayed = self.replay()
        # read after the replay, at first use: a vector another process adds meanwhile
        # then has its key here (follow() adds the vector itself later), and one it
        # removes has none (follow() removes it from the index)
        self._mapping_due = True
        return self, OpenReport(True, None, replayed)

    @classmethod
    def rebuild(cls, space: VectorSpace, catalog: Catalog, path: Path, settings: Settings,
                kind: str | None = None) -> SpaceIndex:
        """A fresh index of the space's stored vectors, of the kind its size calls for."""
        head = catalog.journal_head()
        n = catalog.count_vectors(space.name)
        kind = kind or index_kind_for(n, settings, space.dim)
        training = None
        params = params_from_settings(settings)
        if kind == "ivfpq":
            # nlist follows the whole space, not the training sample
            nlist = ivf_lists(n)
            params = dataclasses.replace(params, nlist=nlist)
            training = _sample(catalog, space, max(_TRAIN_SAMPLE, 40 * nlist))
        elif kind == "hnsw_sq8":
            training = _sample(catalog, space, _TRAIN_SAMPLE)
        started = time.monotonic()
        if training is not None:
            log.info("%s: training a %s index on a sample of %d of %d vectors", space.name,
                     kind, len(training), n)
        index = build_index(kind, space.dim, params, training=training)
        if training is not None:
            log.info("%s: %s index trained in %.0f s", space.name, kind,
                     time.monotonic() - started)
        adding = time.monotonic()
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(os.cpu_count() or 1)
        added = 0
        try:
            for vids, _keys, vectors in catalog.iter_vectors(space.name, space.dim):
                index.add(vids, vectors)
                added += len(vids)
                if added % 500_000 < len(vids):
                    spent = time.monotonic() - adding
                    log.info("%s: %s index holds %d of %d vectors (%.0f s, %.0f/s, %.0f s "
                             "left)", space.name, kind, added, n, time.monotonic() - started,
                             added / spent, (n - added) * spent / added)
        finally:
            faiss.omp_set_num_threads(threads)
        return cls(space, index, catalog, path, settings, head)

    def _read_mapping(self) -> None:
        """Read the key <-> vid tables an open left to first use (once)."""
        with self._mapping_lock:
            if not self._mapping_due:
                return
            keys, vids = self.catalog.key_vid_pairs(self.space.name)
            vid_key = _grow(self._vid_key, int(vids.max(initial=0)) + 1)
            key_vid = _grow(self._key_vid, int(keys.max(initial=0)) + 1)
            vid_key[vids] = keys
            key_vid[keys] = vids
            self._vid_key, self._key_vid = vid_key, key_vid
            self._mapping_due = False

    def replay(self) -> int:
        """Apply journal entries written after the index was saved."""
        head = self.catalog.journal_head()  # first: entries after it are in what follows
        entries = self.catalog.journal_since(self.applied_seq, self.space.name)
        adds = [e.vid for e in entries if e.op == "add"]
        removes = [e.vid for e in entries if e.op == "remove"]
        if removes:
            self.index.remove(np.asarray(removes, dtype=np.int64))
        if adds:
            vids, vectors = self.catalog.vectors_by_vid(adds, self.space.dim)
            # a vid added then removed within the replayed span has no stored vector left
            live = np.asarray([v for v in vids if not self.index.contains(int(v))],
                              dtype=np.int64)
            if len(live):
                keep = np.isin(vids, live)
                self.index.add(vids[keep], vectors[keep])
        if entries:
            self.applied_seq = entries[-1].seq
        self.applied_seq = max(self.applied_seq, head)
        return len(entries)

    def follow(self) -> int:
        """Apply what another process committed since the last look (caller holds the
        write lock): journal entries after ``applied_seq``, with their keys."""
        if self._deferred is not None:  # the open, when it comes, replays the journal
            return 0
        head = self.catalog.journal_head()  # first: entries after it are in what follows
        entries = self.catalog.journal_since(self.applied_seq, self.space.name)
        if self.catalog.journal_floor() > self.applied_seq + 1:
            raise JournalGap(self.applied_seq)
        if not entries:
            # the journal is shared by the spaces: others' entries move this one on too
            self.applied_seq = max(self.applied_seq, head)
            return 0
        # tables read only now are the catalog's as it stands: the vids removed since
        # are not in them, and leave the index by their vids alone
        unread = self._mapping_due
        removed: dict[int, int] = {}
        gone: list[int] = []
        for e in entries:
            if e.op != "remove":
                continue
            if e.vid < len(self.vid_key) and self.vid_key[e.vid] >= 0:
                removed[e.vid] = int(self.vid_key[e.vid])
            elif unread and self.index.contains(e.vid):
                gone.append(e.vid)
        if gone:
            self.index.remove(np.asarray(gone, dtype=np.int64))
        adds = [e.vid for e in entries if e.op == "add"]
        # a vid added then removed within the span has no stored vector left
        vids, keys, vectors = self.catalog.vectors_with_keys(adds, self.space.dim)
        added = {int(v): (int(k), vectors[i])
                 for i, (v, k) in enumerate(zip(vids, keys, strict=True))
                 if not self.index.contains(int(v))}
        self.apply(added, removed, max(entries[-1].seq, head))
        return len(entries)

    def save(self) -> None:
        if self.saved_seq == self.applied_seq and self.path.exists():
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.index.save(self.path, journal_seq=self.applied_seq)
        self.saved_seq = self.applied_seq

    def maintain(self) -> SpaceIndex:
        """Rebuild when the size calls for another index kind or tombstones pile up."""
        wanted = index_kind_for(len(self.index), self.settings, self.space.dim)
        if wanted != self.index.kind or self.index.needs_compaction(
                self.settings.compact_tombstone_ratio):
            fresh = SpaceIndex.rebuild(self.space, self.catalog, self.path, self.settings,
                                       wanted)
            fresh.vid_key, fresh.key_vid = self.vid_key, self.key_vid
            return fresh
        return self

    # -- writes (caller holds the write lock) ---------------------------------------
    def apply(self, added: Mapping[int, tuple[int, NDArray[np.float32]]],
              removed: Mapping[int, int], seq: int) -> None:
        """Apply committed changes: ``added`` vid -> (key, vector), ``removed`` vid -> key."""
        if removed:
            vids = np.fromiter(removed.keys(), dtype=np.int64)
            self.index.remove(vids)
            self.vid_key[vids] = -1
            for vid, key in removed.items():
                if self.key_vid[key] == vid:
                    self.key_vid[key] = -1
        if added:
            vids = np.fromiter(added.keys(), dtype=np.int64)
            keys = np.fromiter((k for k, _ in added.values()), dtype=np.int64)
            vectors = np.stack([v for _, v in added.values()]).astype(np.float32)
            self.vid_key = _grow(self.vid_key, int(vids.max()) + 1)
            self.key_vid = _grow(self.key_vid, int(keys.max()) + 1)
            self.index.add(vids, vectors)
            self.vid_key[vids] = keys
            self.key_vid[keys] = vids
        self.applied_seq = max(self.applied_seq, seq)

    # -- reads -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.index)

    def vids_of(self, keys: NDArray[np.int64]) -> NDArray[np.int64]:
        """Vector ids of those keys that have a vector here. Read-only ``keys`` (a cached
        filter's) give a read-only answer, remembered until the next applied write."""
        def compute() -> NDArray[np.int64]:
            table = self.key_vid
            inside = keys if not len(keys) or keys.max() < len(table) else \
                keys[keys < len(table)]
            vids = table[inside]
            if len(vids) and vids.min() < 0:  # masks cost more than the checks: only if needed
                vids = vids[vids >= 0]
            vids.flags.writeable = keys.flags.writeable
            return vids
        return self._vids_memo.get(keys, (self.applied_seq, len(self.index)), compute)

    @property
    def capabilities(self) -> Capabilities:
        """The index's kind and whether its scores are exact: made once per index (a
        rebuild or a deferred open puts another in its place)."""
        index = self.index
        made = self._capabilities
        if made is None or made[0] is not index:
            made = self._capabilities = (index, Capabilities(kind=index.kind,
                                                             exact_scores=index.exact_scores))
        return made[1]

    def search(self, vector: NDArray[np.float32], k: int, allowed: NDArray[np.int64] | None,
               params: Mapping[str, Any]) -> tuple[NDArray[np.int64], NDArray[np.float32], str]:
        """Up to ``k`` item keys with exact scores among ``allowed`` keys (None: all), and
        the plan: exact scoring of a small allowed set, the index with the filter pushed
        into it (prefilter) or applied to an over-fetch (postfilter), and re-scoring
        from stored vectors where the index's own scores are approximate."""
        settings, total = self.settings, len(self)
        if total == 0:
            return np.empty(0, np.int64), np.empty(0, np.float32), "empty"
        given = SearchParams.from_hints(params)
        exact = self.index.exact_scores
        if allowed is not None and len(allowed) <= BRUTE_FORCE_MAX and not exact:
            keys, scores = self.exact_scores(vector, allowed)
            return keys, scores, "exact-subset"
        ef = given.ef_search or settings.hnsw_ef_search
        probe = given.nprobe or settings.ivf_nprobe
        fetch = k if exact else rescore_depth(k, settings.pq_rescore_factor, total,
                                              self.index.params.nlist, probe)
        kind = self.index.kind
        if allowed is None:
            scores, vids = self.index.search(vector[None, :], min(fetch, total),
                                             ef_search=max(ef, fetch), nprobe=probe)
            plan = kind
        elif len(allowed) / total <= settings.prefilter_max_fraction:
            # Few enough allowed items: an ef covering them all makes the index score
            # each from the vectors it holds, which is exact and cheaper than a walk.
            small = exact and len(allowed) <= min(settings.exact_filter_max,
                                                  exact_cutoff(fetch, total))
            walk = max(ef, fetch, len(allowed)) if small else max(ef, fetch)
            scores, vids = self.search_among(vector, min(fetch, total), allowed,
                                             ef_search=walk, nprobe=probe)
            plan = "exact-subset" if small else f"{kind}+prefilter"
        else:
            # Unselective filter: search unrestricted with over-fetch, drop what fails.
            over = int(np.ceil(fetch * total / max(len(allowed), 1) * 1.5))
            scores, vids = self.index.search(vector[None, :], min(over, total),
                                             ef_search=max(ef, over), nprobe=probe)
            plan = f"{kind}+postfilter"
        keys = self.keys_of(vids[0])
        found = scores[0]
        if allowed is not None and plan.endswith("postfilter"):
            ok = (keys >= 0) & _members(keys, allowed)
            keys, found = keys[ok], found[ok]
        elif len(keys) and keys.min() < 0:  # unfilled places, unknown ids: most lists have none
            ok = keys >= 0
            keys, found = keys[ok], found[ok]
        if not exact and len(keys):
            keys, found = self.exact_scores(vector, keys)
            plan += "+rescore"
        return keys, found, plan

    def exact_scores(self, vector: NDArray[np.float32], keys: NDArray[np.int64]
                     ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """Exact scores of those ``keys`` that have a vector here, from stored vectors."""
        found, vectors = self.vectors_of_keys(keys)
        return found, (vectors @ vector).astype(np.float32) if len(found) else \
            np.empty(0, np.float32)

    def search_among(self, vector: NDArray[np.float32], k: int, keys: NDArray[np.int64], *,
                     ef_search: int, nprobe: int
                     ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """The index's search restricted to the vectors of ``keys``: (1, k) scores and
        vector ids. An index with slots of its own (HNSW) is handed those (see
        ``slots_of``); the others the vector ids."""
        slots = self.slots_of(keys)
        if slots is not None:
            return self.index.search(vector[None, :], k, allowed_slots=slots,
                                     ef_search=ef_search, nprobe=nprobe)
        return self.index.search(vector[None, :], k, allowed=self.vids_of(keys),
                                 ef_search=ef_search, nprobe=nprobe)

    def slots_of(self, keys: NDArray[np.int64]) -> NDArray[np.int64] | None:
        """The HNSW index's own slots for those keys that have a vector here; None for
        the other kinds, and while the index's labels are too sparse for one table.

        ``vids_of`` and then the index's label lookup read two tables of a million
        entries at scattered places, a few tenths of a millisecond each for a filter
        passing 100,000 of 1,000,000 items; one key -> slot table, made once per change
        of the space (a few milliseconds at 1M), halves that. Read-only ``keys`` give a
        read-only answer, remembered until the next applied write."""
        version = (self.applied_seq, len(self.index))
        made = self._key_slot
        if made is None or made[0] != version:
            labels = self.index.slot_table()
            if labels is None:
                return None
            made = self._key_slot = (version, gather(labels, self.key_vid))  # -1: no vector
        table = made[1]

        def compute() -> NDArray[np.int64]:
            slots = gather(table, keys)
            if len(slots) and slots.min() < 0:
                slots = slots[slots >= 0]
            slots.flags.writeable = keys.flags.writeable
            return slots
        return self._slots_memo.get(keys, version, compute)

    def keys_of(self, vids: NDArray[np.int64]) -> NDArray[np.int64]:
        """The item key of each vector id; -1 for ids the index did not fill (-1) or
        does not know."""
        if self._mapping_due:  # a few hits of a one-shot search: their rows, not all
            few = self.catalog.keys_of_vids(self.space.name, vids)
            if few is not None:
                return few
        return gather(self.vid_key, vids)

    def vector_of_key(self, key: int) -> NDArray[np.float32] | None:
        """One item's stored vector: from the index when it holds it exactly (the caller
        holds the read lock), else from the catalog."""
        vid = int(self.key_vid[key]) if 0 <= key < len(self.key_vid) else -1
        if vid < 0:
            return None
        vector = self.index.stored(vid)
        if vector is not None:
            return vector
        mapped = self.catalog.vectors_at(self.space.name, np.array([vid], np.int64),
                                         self.space.dim)
        if mapped is not None:
            return mapped[0]
        found, vectors = self.catalog.vectors_by_vid([vid], self.space.dim)
        return vectors[0] if len(found) else None

    def vectors_of_keys(self, keys: NDArray[np.int64]
                        ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """Stored (exact) vectors for those keys that have one in this space. A space
        whose open is deferred answers without reading its index file (a text query's
        smoothing in the image space reads only stored vectors)."""
        keys = np.asarray(keys, dtype=np.int64)
        if self._deferred is not None or self._mapping_due:  # a few keys: their rows
            few = self.catalog.vectors_of_keys(self.space.name, keys, self.space.dim)
            if few is not None:
                return few
        vid_key, key_vid = self._tables()
        inside = keys[(keys >= 0) & (keys < len(key_vid))]
        vids = key_vid[inside]
        vids = vids[vids >= 0]
        mapped = self.catalog.vectors_at(self.space.name, vids, self.space.dim)
        if mapped is not None:  # the usual case: no SQL
            return gather(vid_key, vids), mapped
        found_vids, vectors = self.catalog.vectors_by_vid(list(vids), self.space.dim)
        return gather(vid_key, found_vids), vectors

    def _tables(self) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """``vid_key`` and ``key_vid``; while the open is deferred, read from the catalog
        alone (the index file stays unread), again whenever its journal has moved on."""
        if self._deferred is None:
            return self.vid_key, self.key_vid
        head = self.catalog.journal_head()  # first: a later write moves it past this
        held = self._catalog_tables
        if held is None or held[0] != head:
            keys, vids = self.catalog.key_vid_pairs(self.space.name)
            vid_key = _grow(np.empty(0, np.int64), int(vids.max(initial=0)) + 1)
            key_vid = _grow(np.empty(0, np.int64), int(keys.max(initial=0)) + 1)
            vid_key[vids] = keys
            key_vid[keys] = vids
            held = self._catalog_tables = (head, vid_key, key_vid)
        if self._deferred is None:  # opened meanwhile by another thread
            return self.vid_key, self.key_vid
        return held[1], held[2]


def _sample(catalog: Catalog, space: VectorSpace, n: int) -> NDArray[np.float32]:
    """Up to ``n`` of the space's vectors drawn at random (seeded): the first ones written
    would train on whatever came first (one folder, one category)."""
    _keys, vids = catalog.key_vid_pairs(space.name)
    if not len(vids):
        raise CollectionError(f"cannot train an index for space {space.name!r}: it holds "
                              f"no vectors")
    if len(vids) > n:
        vids = np.sort(np.random.default_rng(0).choice(vids, size=n, replace=False))
    _found, vectors = catalog.vectors_by_vid(vids.tolist(), space.dim)
    return vectors
