"""FAISS vector indexes: exact (flat), HNSW, HNSW over 8-bit codes and IVF-PQ, with deletes,
filters and persistence.

Inner product on L2-normalised vectors, so scores are cosine similarities. ``allowed``
restricts a search to some labels through a FAISS ``IDSelector`` handed over in per-call
``SearchParameters``; nothing about a search is stored on the shared index, so searches
with different ``ef_search``/``nprobe`` may run concurrently (see ``base`` for the
writer contract).
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faiss as _faiss
import numpy as np
from numpy.typing import NDArray

from imgsearch.errors import CollectionError, InvalidInputError, InvalidQueryError
from imgsearch.index.base import (
    INDEX_KINDS,
    IndexParams,
    LabelMap,
    VectorIndex,
    as_labels,
    as_vectors,
    read_index_file,
    write_index_file,
)
from imgsearch.index.memo import IdentityMemo

# The type stubs shipped with faiss miss most of its SWIG API (search parameters, IO
# callbacks, index subclasses' fields), so it is used untyped here.
faiss: Any = _faiss
FaissObject = Any

_BATCH_SELECTOR_MAX = 4096  # above this many ids, a bitmap is faster to test (when compact)
_COMPACT_CHUNK = 65536


def make_selector(ids: NDArray[np.int64]) -> FaissObject:
    """A selector accepting exactly ``ids``: a bitmap when ids are many and dense."""
    if len(ids) > _BATCH_SELECTOR_MAX and ids.min() >= 0 and ids.max() < 64 * len(ids):
        member = np.zeros(int(ids.max()) + 1, dtype=bool)
        member[ids] = True
        return faiss.IDSelectorBitmap(np.packbits(member, bitorder="little"))
    return faiss.IDSelectorBatch(ids)


def _padded(nq: int, k: int) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    return np.full((nq, k), -np.inf, np.float32), np.full((nq, k), -1, np.int64)


class _FaissIndex(ABC):
    """What the three kinds share: label bookkeeping, validation and saving."""

    kind: str
    exact_scores: bool = True

    def __init__(self, index: FaissObject, dim: int, params: IndexParams) -> None:
        self.index = index
        self.dim = dim
        self.params = params
        self._map = LabelMap()

    def __len__(self) -> int:
        return len(self._map)

    def contains(self, label: int) -> bool:
        return self._map.lookup_one(int(label)) >= 0

    def labels(self) -> NDArray[np.int64]:
        return self._map.items()[0]

    def stored(self, label: int) -> NDArray[np.float32] | None:
        return None

    @property
    def tombstones(self) -> int:
        return 0

    def needs_compaction(self, max_ratio: float) -> bool:
        return self.tombstones > max_ratio * max(1, len(self) + self.tombstones)

    def compact(self) -> VectorIndex:
        return self

    def memory_bytes(self) -> int:
        """Bytes this index holds in memory: FAISS' codes and structures plus the label
        bookkeeping (computed from their sizes, not measured)."""
        labels, _slots = self._map.items()
        dense = self._map.dense
        return self._faiss_bytes() + 16 * len(labels) + (0 if dense is None else 8 * len(dense))

    def _faiss_bytes(self) -> int:
        return int(self.index.ntotal) * (self.dim * 4 + 8)

    @abstractmethod
    def add(self, labels: NDArray[np.int64], vectors: NDArray[np.float32]) -> None: ...

    @abstractmethod
    def remove(self, labels: NDArray[np.int64]) -> int: ...

    @abstractmethod
    def search(self, queries: NDArray[np.float32], k: int, *,
               allowed: NDArray[np.int64] | None = None, ef_search: int | None = None,
               nprobe: int | None = None, allowed_slots: NDArray[np.int64] | None = None
               ) -> tuple[NDArray[np.float32], NDArray[np.int64]]: ...

    def slot_table(self) -> NDArray[np.int64] | None:
        """None: this kind has no slots of its own (see ``HNSWIndex.slot_table``)."""
        return None

    def _no_slots(self, allowed_slots: NDArray[np.int64] | None) -> None:
        if allowed_slots is not None:
            raise InvalidInputError(f"a {self.kind} index has no slots; pass allowed labels")

    def _prepare_add(self, labels: Any, vectors: Any) -> tuple[NDArray[np.int64],
                                                              NDArray[np.float32]]:
        labels, vectors = as_labels(labels), as_vectors(vectors, self.dim)
        if len(labels) != len(vectors):
            raise InvalidInputError(
                f"add got {len(labels)} labels for {len(vectors)} vectors; pass one each")
        if len(np.unique(labels)) != len(labels):
            raise InvalidInputError("add got the same label twice in one batch")
        self.remove(labels)  # an existing label is an update: drop the old vector first
        return labels, vectors

    def _prepare_search(self, queries: Any, k: int) -> NDArray[np.float32]:
        if k < 1:
            raise InvalidQueryError(f"k must be at least 1, got {k}")
        return as_vectors(queries, self.dim, "queries")

    def _arrays(self) -> dict[str, NDArray[Any]]:
        return {}

    def save(self, path: Path, *, journal_seq: int) -> None:
        header = {"kind": self.kind, "dim": self.dim, "journal_seq": int(journal_seq),
                  "params": dataclasses.asdict(self.params)}

        def write_blob(sink: Callable[[bytes], int]) -> None:
            faiss.write_index(self.index, faiss.PyCallbackIOWriter(sink))

        write_index_file(path, header, self._arrays(), write_blob)


class _IdIndex(_FaissIndex):
    """Kinds whose FAISS index stores the labels itself and can delete them."""

    def add(self, labels: NDArray[np.int64], vectors: NDArray[np.float32]) -> None:
        labels, vectors = self._prepare_add(labels, vectors)
        self.index.add_with_ids(vectors, labels)
        self._map.insert(labels, np.zeros(len(labels), np.int64))

    def remove(self, labels: NDArray[np.int64]) -> int:
        labels = as_labels(labels)
        present = np.unique(labels[self._map.lookup(labels) >= 0])
        if len(present):
            self.index.remove_ids(faiss.IDSelectorBatch(present))
            self._map.delete(present)
        return len(present)


class FlatIndex(_IdIndex):
    """Exact search: ``IndexIDMap2(IndexFlatIP)``; removal really deletes."""

    kind = "flat"

    def __init__(self, dim: int, params: IndexParams, index: FaissObject | None = None) -> None:
        super().__init__(index or faiss.IndexIDMap2(faiss.IndexFlatIP(dim)), dim, params)
        ids = faiss.vector_to_array(self.index.id_map).astype(np.int64)
        self._map = LabelMap(ids, np.zeros(len(ids), np.int64))

    def stored(self, label: int) -> NDArray[np.float32] | None:
        if not self.contains(label):
            return None
        return np.asarray(self.index.reconstruct(int(label)), dtype=np.float32)

    def search(self, queries: NDArray[np.float32], k: int, *,
               allowed: NDArray[np.int64] | None = None, ef_search: int | None = None,
               nprobe: int | None = None, allowed_slots: NDArray[np.int64] | None = None
               ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        self._no_slots(allowed_slots)
        queries = self._prepare_search(queries, k)
        params = None
        n_candidates = len(self)
        if allowed is not None:
            allowed = as_labels(allowed)
            allowed = allowed[self._map.lookup(allowed) >= 0]
            n_candidates = len(allowed)
            params = faiss.SearchParameters(sel=make_selector(allowed))
        return _run(self.index, queries, k, n_candidates, params)


class HNSWIndex(_FaissIndex):
    """``IndexHNSWFlat`` cannot delete: its sequential ids map to labels, removals are
    tombstones that every search excludes, and ``compact`` rebuilds without them."""

    kind = "hnsw"

    def __init__(self, dim: int, params: IndexParams, index: FaissObject | None = None,
                 id_to_label: NDArray[np.int64] | None = None,
                 dead: NDArray[np.bool_] | None = None) -> None:
        if index is None:
            index = faiss.IndexHNSWFlat(dim, params.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = params.ef_construction
        super().__init__(index, dim, params)
        self._id_to_label = np.empty(0, np.int64) if id_to_label is None else id_to_label
        self._dead = np.zeros(len(self._id_to_label), bool) if dead is None else dead
        live = np.flatnonzero(~self._dead)
        self._map = LabelMap(self._id_to_label[live], live.astype(np.int64))
        self._live_selector: FaissObject | None = None
        self._version = 0  # bumped by every add and remove
        # a cached filter's labels come back query after query: derive from them once
        self._allowed: IdentityMemo[NDArray[np.int64]] = IdentityMemo()  # internal ids
        self._selectors: IdentityMemo[FaissObject] = IdentityMemo()
        self._plain_params: dict[int, FaissObject] = {}  # efSearch -> unfiltered parameters
        # its flat vectors seen in place as rows; made again after an add, which may move
        # them (the caller of ``stored`` holds the read lock, an add the write lock)
        self._rows: NDArray[np.float32] | None = None

    @property
    def tombstones(self) -> int:
        return len(self._id_to_label) - len(self._map)

    def stored(self, label: int) -> NDArray[np.float32] | None:
        internal = self._map.lookup_one(int(label))
        if internal < 0:
            return None
        rows = self._rows
        if rows is None or internal >= len(rows):
            storage = faiss.downcast_index(self.index.storage)
            rows = self._rows = faiss.rev_swig_ptr(
                storage.get_xb(), storage.ntotal * self.dim).reshape(-1, self.dim)
        return rows[internal].copy()  # a copy: the rows belong to FAISS

    def add(self, labels: NDArray[np.int64], vectors: NDArray[np.float32]) -> None:
        labels, vectors = self._prepare_add(labels, vectors)
        first = self.index.ntotal
        self._rows = None
        self.index.add(vectors)
        self._id_to_label = np.concatenate([self._id_to_label, labels])
        self._dead = np.concatenate([self._dead, np.zeros(len(labels), bool)])
        self._map.insert(labels, np.arange(first, first + len(labels), dtype=np.int64))
        self._live_selector = None
        self._version += 1

    def remove(self, labels: NDArray[np.int64]) -> int:
        internal = self._map.delete(as_labels(labels))
        if len(internal):
            self._dead[internal] = True
            self._live_selector = None
            self._version += 1
        return len(internal)

    def slot_table(self) -> NDArray[np.int64] | None:
        """label -> slot (-1: absent), the slots ``search(allowed_slots=...)`` takes;
        None while the labels are too sparse for one array."""
        return self._map.dense

    def search(self, queries: NDArray[np.float32], k: int, *,
               allowed: NDArray[np.int64] | None = None, ef_search: int | None = None,
               nprobe: int | None = None, allowed_slots: NDArray[np.int64] | None = None
               ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """As :meth:`VectorIndex.search`; ``allowed_slots`` (live slots, from
        :meth:`slot_table`) may stand in for ``allowed`` labels."""
        queries = self._prepare_search(queries, k)
        ef = max(ef_search or self.params.ef_search, k)
        if allowed is None and allowed_slots is not None:
            allowed, internal = allowed_slots, allowed_slots
            selector, n_candidates = None, len(internal)
        elif allowed is None:
            selector, n_candidates = self._live(), len(self)
        else:
            internal = self._allowed.get(allowed, self._version,
                                         lambda: self._internal_of(allowed))
            selector, n_candidates = None, len(internal)
        if n_candidates < self.index.ntotal:
            # A filtered walk only keeps accepted nodes, so its ef must grow as the filter
            # narrows or it stops short. k·total/(2·accepted) keeps recall@10 at 0.99 at
            # 10% and above on clustered data (bench/filters.py: ef 256 at 10%, 96 at
            # 50%); narrower filters are scored exactly by the executor before this.
            wanted = -(-k * self.index.ntotal // max(1, 2 * n_candidates))
            ef = max(ef, min(self.index.ntotal, wanted))
        if allowed is not None and n_candidates <= ef:
            # No walk can return more than these: scoring them all is exact and cheaper.
            return self._exact_subset(queries, k, internal)
        if allowed is not None:  # made only for a walk: a selector of many ids costs
            selector = self._selectors.get(allowed, self._version,
                                           lambda: make_selector(internal))
        if selector is None:
            params = self._plain_params.get(ef)
            if params is None:  # read-only once made: searches may share it
                params = self._plain_params[ef] = faiss.SearchParametersHNSW(efSearch=ef)
        else:
            params = faiss.SearchParametersHNSW(efSearch=ef)
            params.sel = selector
        if n_candidates >= k:
            scores, ids = self.index.search(queries, k, params=params)
        else:
            scores, ids = _run(self.index, queries, k, n_candidates, params)
        if not ids.size or ids.min() >= 0:
            return scores, self._id_to_label[ids]
        found = ids >= 0
        scores[~found] = -np.inf
        labels = np.full(ids.shape, -1, np.int64)
        labels[found] = self._id_to_label[ids[found]]
        return scores, labels

    def _internal_of(self, allowed: NDArray[np.int64]) -> NDArray[np.int64]:
        """Internal ids of the allowed labels still live."""
        internal = self._map.lookup(as_labels(allowed))
        if len(internal) and internal.min() < 0:
            internal = internal[internal >= 0]
        return internal

    def _live(self) -> FaissObject | None:
        if not self.tombstones:
            return None
        selector = self._live_selector
        if selector is None:  # racing readers build equal selectors; either one is right
            selector = faiss.IDSelectorBitmap(np.packbits(~self._dead, bitorder="little"))
            self._live_selector = selector
        return selector

    def _exact_subset(self, queries: NDArray[np.float32], k: int, internal: NDArray[np.int64]
                      ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        scores, labels = _padded(len(queries), k)
        if not len(internal):
            return scores, labels
        # Inner products with the stored vectors where they lie: copying 10,000 of them
        # out first would cost twice as much as the products themselves.
        storage = faiss.downcast_index(self.index.storage)
        sims = np.empty((len(queries), len(internal)), np.float32)
        subset = np.ascontiguousarray(np.broadcast_to(internal, sims.shape), dtype=np.int64)
        storage.compute_distance_subset(len(queries), faiss.swig_ptr(queries), len(internal),
                                        faiss.swig_ptr(sims), faiss.swig_ptr(subset))
        if k < sims.shape[1]:  # order only the best k of up to tens of thousands
            part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            order = np.argsort(-np.take_along_axis(sims, part, axis=1), axis=1, kind="stable")
            top = np.take_along_axis(part, order, axis=1)
        else:
            top = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        n = top.shape[1]
        scores[:, :n] = np.take_along_axis(sims, top, axis=1)
        labels[:, :n] = self._id_to_label[internal[top]]
        return scores, labels

    def compact(self) -> VectorIndex:
        if not self.tombstones:
            return self
        fresh = HNSWIndex(self.dim, self.params)
        labels, internal = self._map.items()
        order = np.argsort(internal)  # keep insertion order, as a rebuild would
        labels, internal = labels[order], internal[order]
        for start in range(0, len(internal), _COMPACT_CHUNK):
            part = internal[start:start + _COMPACT_CHUNK]
            fresh.add(labels[start:start + _COMPACT_CHUNK],
                      self.index.storage.reconstruct_batch(part))
        return fresh

    def _arrays(self) -> dict[str, NDArray[Any]]:
        return {"id_to_label": self._id_to_label, "dead": self._dead}

    def _faiss_bytes(self) -> int:
        hnsw = self.index.hnsw
        graph = 4 * (hnsw.neighbors.size() + hnsw.levels.size()) + 8 * hnsw.offsets.size()
        codes = int(self.index.ntotal) * int(faiss.downcast_index(self.index.storage).code_size)
        return graph + codes + 9 * len(self._id_to_label)


class HNSWSQ8Index(HNSWIndex):
    """HNSW over 8-bit scalar-quantised vectors (``IndexHNSWSQ``): a quarter of the
    float32 vectors' memory, the same graph. Scores are approximate (decoded codes): the
    engine re-scores candidates exactly from the vector files."""

    kind = "hnsw_sq8"
    exact_scores = False

    def stored(self, label: int) -> NDArray[np.float32] | None:
        return None  # only a lossy code of it

    def _exact_subset(self, queries: NDArray[np.float32], k: int, internal: NDArray[np.int64]
                      ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """The allowed vectors scored from their decoded codes (approximate, like every
        score of this kind)."""
        scores, labels = _padded(len(queries), k)
        if not len(internal):
            return scores, labels
        decoded = self.index.storage.reconstruct_batch(np.ascontiguousarray(internal))
        sims = queries @ decoded.T
        kk = min(k, sims.shape[1])
        top = np.argsort(-sims, axis=1, kind="stable")[:, :kk]
        scores[:, :kk] = np.take_along_axis(sims, top, axis=1)
        labels[:, :kk] = self._id_to_label[internal[top]]
        return scores, labels

    def compact(self) -> VectorIndex:
        return self  # rebuilt from the exact vectors instead (SpaceIndex.maintain)


class IVFPQIndex(_IdIndex):
    """IVF-PQ with labels as FAISS ids: ``IndexIVFPQFastScan`` (4-bit codes scanned in
    SIMD registers), or the ``IndexIVFPQ`` of an index file written before it. Scores are
    approximate (PQ codes): the engine re-scores candidates from stored vectors."""

    kind = "ivfpq"
    exact_scores = False

    def __init__(self, dim: int, params: IndexParams, index: FaissObject,
                 labels: NDArray[np.int64] | None = None) -> None:
        super().__init__(index, dim, params)
        if isinstance(index, faiss.IndexIVFFastScan):
            # The scan made for one query at a time (the engine's searches): at 10M
            # vectors, 2,000 lists, nprobe 32 and 1,600 candidates, 2.5 ms against the
            # 3.3 ms of the default choice (made for batches of queries), same scores
            # (bench/tenmillion.py's index, one thread, 100 queries).
            index.implem = 10
        if labels is not None:
            self._map = LabelMap(labels, np.zeros(len(labels), np.int64))

    def search(self, queries: NDArray[np.float32], k: int, *,
               allowed: NDArray[np.int64] | None = None, ef_search: int | None = None,
               nprobe: int | None = None, allowed_slots: NDArray[np.int64] | None = None
               ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        self._no_slots(allowed_slots)
        queries = self._prepare_search(queries, k)
        nlist = self.index.nlist
        probes = min(nlist, max(1, nprobe or self.params.nprobe))
        params = faiss.SearchParametersIVF(nprobe=probes)
        n_candidates = len(self)
        if allowed is not None:
            allowed = as_labels(allowed)
            allowed = allowed[self._map.lookup(allowed) >= 0]
            n_candidates = len(allowed)
            params.sel = make_selector(allowed)
        if n_candidates:
            # Probe enough lists to expect several times k candidates among them: a small
            # index or a selective filter leaves most lists without any.
            wanted = math.ceil(4 * k * nlist / n_candidates)
            params.nprobe = min(nlist, max(probes, wanted))
        return _run(self.index, queries, k, n_candidates, params)

    def remove(self, labels: NDArray[np.int64]) -> int:
        if not isinstance(self.index, faiss.IndexIVFFastScan):
            return super().remove(labels)
        labels = as_labels(labels)
        present = np.unique(labels[self._map.lookup(labels) >= 0])
        if len(present):
            _drop_packed(self.index, present)
            self._map.delete(present)
        return len(present)

    def _arrays(self) -> dict[str, NDArray[Any]]:
        return {"labels": self.labels()}

    def _faiss_bytes(self) -> int:
        entries = int(self.index.invlists.compute_ntotal())
        return entries * (int(self.index.code_size) + 8) + int(self.index.nlist) * self.dim * 4


def _drop_packed(index: FaissObject, gone: NDArray[np.int64]) -> None:
    """Remove the ids ``gone`` from a fast-scan IVF index by rewriting each list that holds
    any: its codes unpacked, the others packed again into zeroed blocks. (FAISS's own
    ``remove_ids`` leaves the freed slots' bits in the last block, and codes added there
    later are packed over them and come out wrong.)"""
    invlists, packer = index.invlists, index.get_CodePacker()
    per_block, block_bytes = int(packer.nvec), int(packer.block_size)
    removed = 0
    for number in range(int(index.nlist)):
        size = int(invlists.list_size(number))
        if not size:
            continue
        ids = faiss.rev_swig_ptr(invlists.get_ids(number), size)
        keep = ~np.isin(ids, gone)
        if keep.all():
            continue
        blocks = -(-size // per_block)
        packed = faiss.rev_swig_ptr(invlists.get_codes(number), blocks * block_bytes).copy()
        flat = np.empty((blocks * per_block, int(packer.code_size)), np.uint8)
        for b in range(blocks):
            packer.unpack_all(faiss.swig_ptr(packed[b * block_bytes:]),
                              faiss.swig_ptr(flat[b * per_block:]))
        kept_ids = np.ascontiguousarray(ids[keep])
        kept = np.zeros((-(-len(kept_ids) // per_block) * per_block, flat.shape[1]), np.uint8)
        kept[:len(kept_ids)] = flat[:size][keep]
        repacked = np.zeros(len(kept) // per_block * block_bytes, np.uint8)
        for b in range(len(kept) // per_block):
            packer.pack_all(faiss.swig_ptr(kept[b * per_block:]),
                            faiss.swig_ptr(repacked[b * block_bytes:]))
        invlists.resize(number, 0)
        if len(kept_ids):  # at offset 0 the packed blocks are copied as they are
            invlists.add_entries(number, len(kept_ids), faiss.swig_ptr(kept_ids),
                                 faiss.swig_ptr(repacked))
        removed += size - len(kept_ids)
    index.ntotal = int(index.ntotal) - removed


def _run(index: FaissObject, queries: NDArray[np.float32], k: int, n_candidates: int,
         params: FaissObject | None
         ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """Search for at most as many results as exist, then pad to k with -inf / -1."""
    scores, labels = _padded(len(queries), k)
    k_eff = min(k, n_candidates)
    if k_eff == 0:
        return scores, labels
    found_scores, found = index.search(queries, k_eff, params=params)
    missing = found < 0
    found_scores[missing] = -np.inf
    scores[:, :k_eff], labels[:, :k_eff] = found_scores, found
    return scores, labels


def _auto_pq(dim: int, n_train: int, params: IndexParams) -> tuple[int, int]:
    """(nlist, pq_m) for this many training vectors: ``pq_m`` 4-bit codes, dim // 4 of
    them by default (dim / 8 bytes a vector, 64 at 512-d), or the largest count below
    that divides ``dim``."""
    nlist = params.nlist or max(1, min(int(4 * math.sqrt(n_train)), n_train // 39))
    target = params.pq_m or max(1, dim // 4)
    if dim % target:
        if params.pq_m:
            raise InvalidInputError(f"pq_m={params.pq_m} must divide the dimension {dim}")
        target = max(m for m in range(1, target + 1) if dim % m == 0)
    return nlist, target


def build_index(kind: str, dim: int, params: IndexParams, *,
                training: NDArray[np.float32] | None = None) -> VectorIndex:
    """An empty index of ``kind``; ``ivfpq`` is trained on ``training`` first."""
    if dim < 1:
        raise InvalidInputError(f"index dimension must be positive, got {dim}")
    if kind == "flat":
        return FlatIndex(dim, params)
    if kind == "hnsw":
        return HNSWIndex(dim, params)
    if kind == "hnsw_sq8":
        if training is None or len(training) == 0:
            raise InvalidInputError("an hnsw_sq8 index needs training vectors (the range "
                                    "of each dimension): pass a sample as training=")
        index = faiss.IndexHNSWSQ(dim, faiss.ScalarQuantizer.QT_8bit, params.hnsw_m,
                                  faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = params.ef_construction
        index.train(as_vectors(training, dim, "training vectors"))
        return HNSWSQ8Index(dim, params, index)
    if kind != "ivfpq":
        raise InvalidInputError(f"unknown index kind {kind!r}; use one of {INDEX_KINDS}")
    if training is None or len(training) == 0:
        raise InvalidInputError(
            "an ivfpq index needs training vectors: pass a sample of the collection's "
            "vectors as training=, or use the flat or hnsw kind")
    training = as_vectors(training, dim, "training vectors")
    nlist, pq_m = _auto_pq(dim, len(training), params)
    if len(training) < nlist:
        raise InvalidInputError(
            f"ivfpq with nlist={nlist} needs at least {nlist} training vectors, "
            f"got {len(training)}; pass more or lower nlist")
    quantizer = faiss.IndexFlatIP(dim)
    # Fast-scan: 4-bit codes whose distance tables fit SIMD registers, so a scan of the
    # probed lists costs a fraction of one-byte codes' table lookups; the ranking is a
    # little looser, which the re-scoring depth (index/auto.RESCORE_MIN_SHARE) absorbs.
    index = faiss.IndexIVFPQFastScan(quantizer, dim, nlist, pq_m, 4,
                                     faiss.METRIC_INNER_PRODUCT)
    index.train(training)
    return IVFPQIndex(dim, dataclasses.replace(params, nlist=nlist, pq_m=pq_m), index)


def load_index(path: Path) -> tuple[VectorIndex, int]:
    """(index, journal_seq) from a file written by ``save``; any defect raises
    :class:`CollectionError` so that the caller rebuilds from the catalog."""

    def read_blob(source: Callable[[int], bytes]) -> FaissObject:
        return faiss.read_index(faiss.PyCallbackIOReader(source))

    header, arrays, index = read_index_file(path, read_blob)
    try:
        kind, dim = header["kind"], int(header["dim"])
        params = IndexParams(**header["params"])
        if index.d != dim:
            raise ValueError(f"header says dim {dim}, index has {index.d}")
        loaded: VectorIndex
        if kind == "flat":
            loaded = FlatIndex(dim, params, index)
        elif kind in ("hnsw", "hnsw_sq8"):
            made = HNSWIndex if kind == "hnsw" else HNSWSQ8Index
            loaded = made(dim, params, index, arrays["id_to_label"], arrays["dead"])
            if len(arrays["id_to_label"]) != index.ntotal:
                raise ValueError("label mapping does not match the index size")
        elif kind == "ivfpq":
            loaded = IVFPQIndex(dim, params, index, arrays["labels"])
            if len(arrays["labels"]) != index.ntotal:
                raise ValueError("label list does not match the index size")
        else:
            raise ValueError(f"unknown kind {kind!r}")
        return loaded, int(header["journal_seq"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CollectionError(
            f"index file {path} is unusable: {exc}; rebuild it from the catalog") from None
