"""HammingIndex against a brute-force numpy popcount oracle."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from imgsearch.errors import InvalidInputError, InvalidQueryError
from imgsearch.index.binary import HammingIndex


def planted_hashes(n: int, seed: int) -> tuple[NDArray[np.int64], NDArray[np.uint64]]:
    """Random 64-bit hashes where a third are copies of others with 0-10 bits flipped."""
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 2**64, n, dtype=np.uint64)
    copies = rng.choice(n, n // 3, replace=False)
    for i in copies:
        flips = rng.choice(64, rng.integers(0, 11), replace=False)
        mask = np.bitwise_or.reduce(np.uint64(1) << flips.astype(np.uint64), initial=np.uint64(0))
        hashes[i] = hashes[rng.integers(0, n)] ^ mask
    labels = rng.permutation(n).astype(np.int64) * 5 + 2
    return labels, hashes


def distances(a: NDArray[np.uint64], b: NDArray[np.uint64]) -> NDArray[np.int64]:
    return np.bitwise_count(a[:, None] ^ b[None, :]).astype(np.int64)


def oracle_radius(labels: NDArray[np.int64], hashes: NDArray[np.uint64],
                  queries: NDArray[np.uint64], radius: int) -> list[list[tuple[int, int]]]:
    dist = distances(queries, hashes)
    return [sorted((int(labels[j]), int(row[j])) for j in np.flatnonzero(row <= radius))
            for row in dist]


def oracle_pairs(labels: NDArray[np.int64], hashes: NDArray[np.uint64], radius: int
                 ) -> list[tuple[int, int, int]]:
    dist = distances(hashes, hashes)
    i, j = np.nonzero(dist <= radius)
    pairs = {(int(min(labels[a], labels[b])), int(max(labels[a], labels[b])), int(dist[a, b]))
             for a, b in zip(i, j, strict=True) if a != b}
    return sorted(pairs, key=lambda p: (p[2], p[0], p[1]))


def by_distance(rows: list[list[tuple[int, int]]]) -> list[list[tuple[int, int]]]:
    return [sorted(row, key=lambda p: (p[1], p[0])) for row in rows]


LABELS, HASHES = planted_hashes(1500, 0)


@pytest.fixture(scope="module")
def index() -> HammingIndex:
    idx = HammingIndex()
    idx.add(LABELS[:700], HASHES[:700])
    idx.add(LABELS[700:], HASHES[700:])
    return idx


@pytest.mark.parametrize("radius", [0, 3, 8, 12])
def test_radius_search_matches_oracle(index: HammingIndex, radius: int) -> None:
    queries = np.concatenate([HASHES[:100], np.random.default_rng(1).integers(
        0, 2**64, 50, dtype=np.uint64)])
    got = index.radius_search(queries, radius)
    assert got == by_distance(oracle_radius(LABELS, HASHES, queries, radius))
    assert all(row for row in got[:100]), "every stored hash finds itself"


@pytest.mark.parametrize("radius", [0, 4, 8])
def test_pairs_within_matches_oracle(index: HammingIndex, radius: int) -> None:
    got = index.pairs_within(radius)
    assert got == oracle_pairs(LABELS, HASHES, radius)
    assert len(got) > 40, "planted near-duplicates must be found"


def test_removed_and_updated_hashes() -> None:
    idx = HammingIndex()
    idx.add(LABELS, HASHES)
    gone = LABELS[::3]
    assert idx.remove(np.concatenate([gone, [-1]])) == len(gone)
    assert idx.remove(gone) == 0 and len(idx) == len(LABELS) - len(gone)
    keep = ~np.isin(LABELS, gone)
    assert idx.pairs_within(8) == oracle_pairs(LABELS[keep], HASHES[keep], 8)
    found = {label for row in idx.radius_search(HASHES, 10) for label, _ in row}
    assert not found & set(gone.tolist())
    # a new hash for an existing label replaces the old one
    target = int(LABELS[1])
    idx.add(np.array([target]), np.array([~HASHES[1]], dtype=np.uint64))
    assert len(idx) == len(LABELS) - len(gone)
    assert (target, 0) not in idx.radius_search(HASHES[1:2], 0)[0]
    assert idx.radius_search(np.array([~HASHES[1]], np.uint64), 0)[0] == [(target, 0)]


def test_signed_hashes_mean_the_same_bits() -> None:
    idx = HammingIndex()
    idx.add(np.array([1, 2]), np.array([2**63 + 5, 7], dtype=np.uint64))
    signed = np.array([2**63 + 5], dtype=np.uint64).view(np.int64)
    assert signed[0] < 0
    assert idx.radius_search(signed, 1) == [[(1, 0)]]
    assert idx.pairs_within(64) == [(1, 2, int(np.bitwise_count(np.uint64(2**63 + 5) ^ 7)))]


def test_empty_index_and_bad_input() -> None:
    idx = HammingIndex()
    assert idx.radius_search(HASHES[:2], 8) == [[], []]
    assert idx.pairs_within(8) == [] and len(idx) == 0
    with pytest.raises(InvalidQueryError, match="radius"):
        idx.radius_search(HASHES[:1], 65)
    with pytest.raises(InvalidInputError, match="one each"):
        idx.add(np.array([1, 2]), HASHES[:1])
    with pytest.raises(InvalidInputError, match="64-bit integers"):
        idx.add(np.array([1]), np.array([0.5]))
