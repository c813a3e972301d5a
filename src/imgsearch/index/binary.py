"""Hamming search over 64-bit perceptual hashes, for near-duplicate detection.

Hashes are stored as 8 little-endian bytes in a FAISS ``IndexBinaryFlat``: its range
search is an exhaustive popcount scan, exact for every radius and quicker than
multi-index hashing at the radii near-duplicate detection needs (all pairs of 100k
hashes take about two seconds on two cores). Signed int64 hashes, as SQLite stores
them, are read as the same 64 bits.

Concurrency: searches may run concurrently; ``add``/``remove`` need a single writer
with no search running, as for vector indexes.
"""

from __future__ import annotations

from typing import Any

import faiss
import numpy as np
from numpy.typing import NDArray

from imgsearch.errors import InvalidInputError, InvalidQueryError
from imgsearch.index.base import as_labels

HashArray = NDArray[np.uint64] | NDArray[np.int64]
_QUERY_BATCH = 16384  # bounds the memory of one range search over a large index


def as_hash_codes(hashes: Any) -> NDArray[np.uint8]:
    """(n, 8) uint8 codes from 64-bit hashes (uint64, or int64 holding the same bits)."""
    arr = np.asarray(hashes)
    if arr.dtype.kind not in "iu":
        raise InvalidInputError(f"perceptual hashes must be 64-bit integers, got {arr.dtype}")
    if arr.dtype.kind == "i":
        arr = arr.astype(np.int64).view(np.uint64)
    arr = np.ascontiguousarray(arr.reshape(-1), dtype="<u8")
    return arr.view(np.uint8).reshape(-1, 8)


class HammingIndex:
    """Labelled 64-bit hashes searched by Hamming distance."""

    def __init__(self) -> None:
        self._index = faiss.IndexBinaryFlat(64)
        self._labels = np.empty(0, np.int64)  # label of each stored code, in FAISS order

    def __len__(self) -> int:
        return len(self._labels)

    def add(self, labels: NDArray[np.int64], hashes: HashArray) -> None:
        """Add hashes; a label already present gets the new hash."""
        labels, codes = as_labels(labels), as_hash_codes(hashes)
        if len(labels) != len(codes):
            raise InvalidInputError(
                f"add got {len(labels)} labels for {len(codes)} hashes; pass one each")
        ordered = np.sort(labels)  # (not np.unique: its first call imports numpy.ma)
        if bool((ordered[1:] == ordered[:-1]).any()):
            raise InvalidInputError("add got the same label twice in one batch")
        self.remove(labels)
        self._index.add(codes)
        self._labels = np.concatenate([self._labels, labels])

    def remove(self, labels: Any) -> int:
        """Remove labels; returns how many were present."""
        gone = np.flatnonzero(np.isin(self._labels, as_labels(labels)))
        if len(gone):
            # FAISS compacts in place keeping order, as the boolean mask below does.
            self._index.remove_ids(faiss.IDSelectorBatch(gone.astype(np.int64)))
            self._labels = np.delete(self._labels, gone)
        return len(gone)

    def radius_search(self, hashes: HashArray, radius: int
                      ) -> list[list[tuple[int, int]]]:
        """Per query, every (label, distance) with distance <= radius, nearest first."""
        _check_radius(radius)
        codes = as_hash_codes(hashes)
        results: list[list[tuple[int, int]]] = []
        for start in range(0, len(codes), _QUERY_BATCH):
            lims, dist, ids = self._range(codes[start:start + _QUERY_BATCH], radius)
            labels = self._labels[ids]
            for q in range(len(lims) - 1):
                lo, hi = lims[q], lims[q + 1]
                order = np.lexsort((labels[lo:hi], dist[lo:hi]))
                results.append(list(zip(labels[lo:hi][order].tolist(),
                                        dist[lo:hi][order].tolist(), strict=True)))
        return results

    def pairs_within(self, radius: int) -> list[tuple[int, int, int]]:
        """Every (label_a, label_b, distance) with label_a < label_b and distance <= radius,
        sorted by distance, then labels."""
        _check_radius(radius)
        if not len(self):
            return []
        codes = self._index.reconstruct_n(0, self._index.ntotal)
        found_a, found_b, found_d = [], [], []
        for start in range(0, len(codes), _QUERY_BATCH):
            lims, dist, ids = self._range(codes[start:start + _QUERY_BATCH], radius)
            query_labels = np.repeat(self._labels[start:start + _QUERY_BATCH], np.diff(lims))
            other = self._labels[ids]
            keep = query_labels < other  # each pair is found from both ends; self excluded
            found_a.append(query_labels[keep])
            found_b.append(other[keep])
            found_d.append(dist[keep])
        a, b, d = (np.concatenate(x) for x in (found_a, found_b, found_d))
        order = np.lexsort((b, a, d))
        return list(zip(a[order].tolist(), b[order].tolist(), d[order].tolist(), strict=True))

    def _range(self, codes: NDArray[np.uint8], radius: int
               ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
        if not len(self._labels):
            return np.zeros(len(codes) + 1, np.int64), np.empty(0, np.int64), np.empty(0, np.int64)
        # FAISS binary range search keeps distances strictly below its threshold.
        lims, dist, ids = self._index.range_search(codes, radius + 1)
        return lims.astype(np.int64), dist.astype(np.int64), ids.astype(np.int64)


def _check_radius(radius: int) -> None:
    if not 0 <= radius <= 64:
        raise InvalidQueryError(f"Hamming radius must be between 0 and 64, got {radius}")
