"""What an answer judged as locally costs a node over Milvus: ``RemoteEngine.search``
(candidates, calibrated confidence, the minimum, exact matches, ranking stages) against
the bare ``CollectionBackend.search`` of the same block of candidates (its peer, timed
in the same run, query by query in turn).

The collection: ``--n`` clustered unit vectors of the descriptor's dimension (50
clusters), written straight into a fresh Milvus Lite collection. Queries: stored vectors
moved a little, asked as vector queries with ``min_confidence`` 0.5 (so that the
confidence is computed and applied). The first query, which measures the collection's
calibration (up to 2,000 stored vectors fetched), is reported on its own.

    python bench/remote_answers.py --n 2000 --queries 100
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # milvuskit

import milvuskit
from imgsearch.config import Settings
from imgsearch.engine.backends.base import Row
from imgsearch.engine.backends.milvus import MilvusBackend
from imgsearch.engine.remote import RemoteEngine, encoders_for
from imgsearch.search.executor import fetch_size
from imgsearch.types import Item, Query


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=100)
    args = parser.parse_args()
    settings = Settings(image_encoder="descriptor", text_encoder="none")
    encoders = encoders_for(settings)
    dim = encoders["image"].dim
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(50, dim)).astype(np.float32)
    vectors = centres[rng.integers(0, 50, args.n)] + rng.normal(size=(args.n, dim)) * 0.6
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    with tempfile.TemporaryDirectory() as work, \
            contextmanager(milvuskit.milvus_lite)(Path(work)) as address:
        backend = MilvusBackend.open(f"milvus://{address}/bench_answers", encoders=encoders)
        for start in range(0, args.n, 1000):
            backend.upsert([Row(Item(id=f"v{i}", category=f"c{i % 10}"),
                                {"image": vectors[i]}) for i in range(start,
                                                                      min(start + 1000, args.n))])
        engine = RemoteEngine(backend, settings)
        picks = rng.integers(0, args.n, args.queries)
        queries = vectors[picks] + rng.normal(size=(args.queries, dim)).astype(np.float32) * 0.05
        queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)

        def answer(q: np.ndarray) -> int:
            return len(engine.search(Query(vector=q.tolist(), vector_space="image",
                                           min_confidence=0.5)).hits)

        started = time.perf_counter()
        answer(queries[0])
        first_ms = (time.perf_counter() - started) * 1000
        bare, full = [], []
        for q in queries:
            t0 = time.perf_counter()
            backend.search("image", q, fetch_size(0, 10))
            t1 = time.perf_counter()
            answer(q)
            t2 = time.perf_counter()
            bare.append((t1 - t0) * 1000)
            full.append((t2 - t1) * 1000)
        ratios = [f / b for f, b in zip(full, bare, strict=True)]
        print(f"n={args.n} queries={args.queries} (Milvus Lite, descriptor dim {dim})")
        print(f"first query (calibration measured): {first_ms:.1f} ms")
        print(f"bare backend.search k=64: p50 {statistics.median(bare):.2f} ms")
        print(f"RemoteEngine.search:      p50 {statistics.median(full):.2f} ms")
        print(f"ratio per query (full / bare): median {statistics.median(ratios):.2f}")
        engine.close()


if __name__ == "__main__":
    main()
