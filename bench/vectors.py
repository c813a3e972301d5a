"""Vector data sets for the vector-search benchmarks, with exact ground truth.

``load_dataset(name, n, queries, seed)`` returns L2-normalised float32 base vectors and
held-out query vectors (never rows of the base). Synthetic sets are generated in chunks
of ``CHUNK`` rows, each from its own seeded stream, and cached as ``.npy`` files under
``bench/data/vectors/`` (written to a temporary name, then renamed), so 1M × 512 needs
well under 1 GB of transient memory and the same ``(name, n, seed)`` always gives the
same bytes.

Generators (d = 512):

- ``clustered``: looks like image embeddings. A random rotation ``R`` (QR of a Gaussian
  matrix) of an anisotropic space whose per-dimension variance decays as
  ``1/(1+i)^0.7`` (a few strong directions, a long tail). ``max(16, n // 100)`` cluster
  centres are drawn from that spectrum; cluster sizes follow lognormal weights
  (σ = 1.5: a few clusters hold thousands of items, most a few dozen); each cluster has
  its own spread (lognormal around 0.6) of noise with a flatter spectrum
  ``1/(1+i)^0.35``. A shared mean direction of norm 0.8 is added before normalising,
  so unrelated items have cosines of ~0.2–0.45 (mean ~0.32) and near neighbours ~0.8,
  as with CLIP-like embeddings. The centres, weights and spreads come from stream
  ``[seed, 0]``; base chunk ``c`` from ``[seed, 1, c]``; queries from ``[seed, 2]``:
  new points around the same clusters, picked with the same weights.
- ``random``: uniform on the sphere (Gaussian, normalised), the hardest case for any ANN
  index; base chunk ``c`` from ``[seed, 1, c]``, queries from ``[seed, 2]``.
- ``real-text`` / ``real-image``: real embeddings from ``bench/realdata.py``
  (``realdata.load(name)``), the base truncated to ``n`` rows when it has more; a copy of
  the truncated base is cached here so that worker processes can memory-map it.

``exact_topk`` computes exact inner-product top-k in blocks of queries × blocks of base
rows (numpy matmul + argpartition) and caches the answer next to the data.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from common import DATA_DIR

VECTORS_DIR = DATA_DIR / "vectors"
DIM = 512
CHUNK = 50_000
SYNTHETIC = ("clustered", "random")
REAL = ("real-text", "real-image")
NAMES = SYNTHETIC + REAL

_SPECTRUM_DECAY = 0.7
_NOISE_DECAY = 0.35
_MEAN_NORM = 0.8
_CLUSTER_SIZE = 100
_SIZE_SIGMA = 1.5
_SPREAD_MEDIAN = 0.6
_SPREAD_SIGMA = 0.35
_QUERY_BLOCK = 256
_BASE_BLOCK = 65_536


@dataclass
class Dataset:
    """Base vectors (possibly memory-mapped) and held-out queries, both unit float32."""

    name: str
    base: NDArray[np.float32]
    queries: NDArray[np.float32]
    description: str
    base_path: Path
    queries_path: Path

    @property
    def dim(self) -> int:
        return int(self.base.shape[1])


@dataclass(frozen=True)
class _Clusters:
    rotation: NDArray[np.float32]
    centres: NDArray[np.float32]
    weights: NDArray[np.float64]
    spreads: NDArray[np.float32]
    mean: NDArray[np.float32]
    noise_scale: NDArray[np.float32]


def _unit(x: NDArray[np.float32]) -> NDArray[np.float32]:
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def _spectrum(decay: float) -> NDArray[np.float32]:
    var = 1.0 / (1.0 + np.arange(DIM, dtype=np.float64)) ** decay
    return np.sqrt(var / var.sum()).astype(np.float32)


def _clusters(n: int, seed: int) -> _Clusters:
    rng = np.random.default_rng([seed, 0])
    rotation, _ = np.linalg.qr(rng.standard_normal((DIM, DIM)))
    count = max(16, n // _CLUSTER_SIZE)
    weights = rng.lognormal(0.0, _SIZE_SIGMA, count)
    centres = rng.standard_normal((count, DIM), dtype=np.float32) * _spectrum(_SPECTRUM_DECAY)
    spreads = rng.lognormal(np.log(_SPREAD_MEDIAN), _SPREAD_SIGMA, count).astype(np.float32)
    mean = rng.standard_normal(DIM).astype(np.float32)
    mean *= _MEAN_NORM / np.linalg.norm(mean)
    return _Clusters(rotation.astype(np.float32), centres, weights / weights.sum(), spreads,
                     mean, _spectrum(_NOISE_DECAY))


def _clustered_points(c: _Clusters, rng: np.random.Generator, rows: int) -> NDArray[np.float32]:
    labels = rng.choice(len(c.weights), size=rows, p=c.weights)
    noise = rng.standard_normal((rows, DIM), dtype=np.float32) * c.noise_scale
    x = c.centres[labels] + c.spreads[labels, None] * noise
    x = x @ c.rotation.T + c.mean
    return _unit(x.astype(np.float32, copy=False))


def _random_points(rng: np.random.Generator, rows: int) -> NDArray[np.float32]:
    return _unit(rng.standard_normal((rows, DIM), dtype=np.float32))


def _save_atomic(path: Path, array: NDArray[np.float32]) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}.npy")
    np.save(tmp, array)
    tmp.replace(path)


def _generate_base(name: str, n: int, seed: int, path: Path) -> None:
    clusters = _clusters(n, seed) if name == "clustered" else None
    tmp = path.with_name(path.name + f".tmp{os.getpid()}.npy")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, DIM))
    for chunk, start in enumerate(range(0, n, CHUNK)):
        rows = min(CHUNK, n - start)
        rng = np.random.default_rng([seed, 1, chunk])
        out[start:start + rows] = (_clustered_points(clusters, rng, rows) if clusters
                                   else _random_points(rng, rows))
    out.flush()
    del out
    tmp.replace(path)


def _generate_queries(name: str, n: int, queries: int, seed: int) -> NDArray[np.float32]:
    rng = np.random.default_rng([seed, 2])
    if name == "clustered":
        return _clustered_points(_clusters(n, seed), rng, queries)
    return _random_points(rng, queries)


def _real(name: str, n: int, queries: int) -> Dataset:
    try:
        import realdata
    except ImportError as exc:
        raise RuntimeError(
            f"data set {name!r} needs bench/realdata.py (realdata.load), which could not "
            f"be imported ({exc}); use --data clustered or random, or add realdata.py"
        ) from exc
    try:
        base, held_out, description = realdata.load(name)
    except Exception as exc:
        raise RuntimeError(f"realdata.load({name!r}) failed: {exc}; see bench/realdata.py "
                           f"for how that data set is built") from exc
    base = np.asarray(base, dtype=np.float32)[:n]
    held_out = np.ascontiguousarray(np.asarray(held_out, dtype=np.float32)[:queries])
    VECTORS_DIR.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(np.ascontiguousarray(base[:1000]).tobytes()).hexdigest()[:12]
    base_path = VECTORS_DIR / f"{name}-{len(base)}-{digest}.npy"
    queries_path = VECTORS_DIR / f"{name}-{len(base)}-{digest}-q{len(held_out)}.npy"
    if not base_path.exists():
        _save_atomic(base_path, np.ascontiguousarray(base))
    if not queries_path.exists():
        _save_atomic(queries_path, held_out)
    return Dataset(name, np.load(base_path, mmap_mode="r"), held_out,
                   f"{description} ({len(base):,} × {base.shape[1]}-d)", base_path, queries_path)


def load_dataset(name: str, n: int, queries: int, seed: int) -> Dataset:
    """``n`` base vectors and ``queries`` held-out query vectors of the named data set."""
    if name in REAL:
        return _real(name, n, queries)
    if name not in SYNTHETIC:
        raise ValueError(f"unknown data set {name!r}; choose one of {', '.join(NAMES)}")
    VECTORS_DIR.mkdir(parents=True, exist_ok=True)
    base_path = VECTORS_DIR / f"{name}-{n}-s{seed}.npy"
    queries_path = VECTORS_DIR / f"{name}-{n}-s{seed}-q{queries}.npy"
    if not base_path.exists():
        _generate_base(name, n, seed, base_path)
    if not queries_path.exists():
        _save_atomic(queries_path, _generate_queries(name, n, queries, seed))
    if name == "clustered":
        description = (f"clustered synthetic embeddings ({n:,} × {DIM}-d, max(16, n/100) "
                       f"lognormal-sized clusters, decaying spectrum, shared mean; seed {seed})")
    else:
        description = f"uniform on the sphere ({n:,} × {DIM}-d, seed {seed})"
    return Dataset(name, np.load(base_path, mmap_mode="r"), np.load(queries_path),
                   description, base_path, queries_path)


def exact_topk(base: NDArray[np.float32], queries: NDArray[np.float32], k: int, *,
               exclude: NDArray[np.int64] | None = None, cache: Path | None = None
               ) -> NDArray[np.int64]:
    """Exact top-``k`` base rows by inner product for each query, best first.

    ``exclude[i]`` is a base row that query ``i`` must not return (the query item itself
    in similar-by-id). ``cache``: a ``.npy`` path read when present, written otherwise.
    """
    if cache is not None and cache.exists():
        cached = np.load(cache)
        if cached.shape == (len(queries), k):
            return cached.astype(np.int64, copy=False)
    out = np.empty((len(queries), k), np.int64)
    for q0 in range(0, len(queries), _QUERY_BLOCK):
        q = np.ascontiguousarray(queries[q0:q0 + _QUERY_BLOCK], dtype=np.float32)
        best_s = np.full((len(q), k), -np.inf, np.float32)
        best_i = np.full((len(q), k), -1, np.int64)
        for b0 in range(0, len(base), _BASE_BLOCK):
            sims = q @ np.asarray(base[b0:b0 + _BASE_BLOCK], dtype=np.float32).T
            if exclude is not None:
                rows = exclude[q0:q0 + _QUERY_BLOCK] - b0
                inside = (rows >= 0) & (rows < sims.shape[1])
                sims[np.flatnonzero(inside), rows[inside]] = -np.inf
            kk = min(k, sims.shape[1])
            top = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
            all_s = np.concatenate([best_s, np.take_along_axis(sims, top, axis=1)], axis=1)
            all_i = np.concatenate([best_i, top + b0], axis=1)
            keep = np.argsort(-all_s, axis=1, kind="stable")[:, :k]
            best_s = np.take_along_axis(all_s, keep, axis=1)
            best_i = np.take_along_axis(all_i, keep, axis=1)
        out[q0:q0 + len(q)] = best_i
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, out)
    return out


TIE_EPS = 1e-5  # similarities this close to the k-th are ties (float32 sums of 512 terms)


def with_ties(base: NDArray[np.float32], queries: NDArray[np.float32],
              truth: NDArray[np.int64], *, exclude: NDArray[np.int64] | None = None,
              cache: Path | None = None) -> NDArray[np.int64]:
    """``truth`` (exact top k, best first) followed by every other base row whose
    similarity is within ``TIE_EPS`` of the k-th one, padded with -1.

    When many rows tie with the k-th (real image sets hold identical and near-identical
    pictures), which of them exact search lists is arbitrary, and counting only those
    would make a correct answer look wrong. ``recall_at`` counts a tie as found."""
    if cache is not None and cache.exists():
        cached = np.load(cache)
        if len(cached) == len(queries) and np.array_equal(cached[:, :truth.shape[1]], truth):
            return cached.astype(np.int64, copy=False)
    k = truth.shape[1]
    floors = np.einsum("ij,ij->i", np.asarray(base[truth[:, -1]], dtype=np.float32),
                       np.asarray(queries, dtype=np.float32)) - TIE_EPS
    extra: list[list[int]] = [[] for _ in range(len(queries))]
    for q0 in range(0, len(queries), _QUERY_BLOCK):
        q = np.ascontiguousarray(queries[q0:q0 + _QUERY_BLOCK], dtype=np.float32)
        for b0 in range(0, len(base), _BASE_BLOCK):
            sims = q @ np.asarray(base[b0:b0 + _BASE_BLOCK], dtype=np.float32).T
            for i, j in zip(*np.nonzero(sims >= floors[q0:q0 + len(q), None]), strict=True):
                row = int(j) + b0
                query = q0 + int(i)
                if row not in truth[query] and (exclude is None or row != exclude[query]):
                    extra[query].append(row)
    out = np.full((len(queries), k + max((len(e) for e in extra), default=0)), -1, np.int64)
    out[:, :k] = truth
    for query, rows in enumerate(extra):
        out[query, k:k + len(rows)] = rows
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, out)
    return out


def recall_at(found: Sequence[Sequence[int]], truth: NDArray[np.int64], k: int) -> float:
    """Mean fraction of each query's first ``k`` returned rows that are in its exact top
    ``k`` or tie with the k-th (``truth`` from ``with_ties``: extra columns, -1 pads)."""
    hits = sum(len(set(list(f)[:k]) & (set(t.tolist()) - {-1}))
               for f, t in zip(found, truth, strict=True))
    return hits / (len(truth) * k) if len(truth) else float("nan")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Generate (or load) a data set and print "
                                     "its statistics.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data", choices=NAMES, default="clustered")
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data = load_dataset(args.data, args.n, args.queries, args.seed)
    print(data.description)
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, len(data.base), (2, 2000))
    cosines = np.einsum("ij,ij->i", data.base[np.sort(a)], data.base[np.sort(b)])
    truth = exact_topk(data.base, data.queries[:200], 10)
    nn = np.einsum("ij,ij->i", data.queries[:200], data.base[truth[:, 0]])
    print(f"random pairs: cosine mean {cosines.mean():.3f}, p5 {np.percentile(cosines, 5):.3f}, "
          f"p95 {np.percentile(cosines, 95):.3f}; query → nearest base: mean {nn.mean():.3f}")
