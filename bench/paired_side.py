"""One side of ``bench/paired_older.py``: a process that holds one code's engine open over
the collection that code's ``bench/peers.py`` built, and times blocks of queries when
told to, each next to a bare FAISS search on the same index.

Run by ``paired_older.py`` with the code's ``src`` first on ``PYTHONPATH`` and its tree as
the working directory; it reads one JSON line per block on stdin (``{"start": i,
"count": c}``) and answers one JSON line with the nanoseconds of each query of the block.
Only the public ``Engine`` API and that tree's own ``bench/peers.py`` helpers are used, so
an older commit runs it unchanged.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tree", type=Path, required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--queries", type=Path, required=True,
                        help=".npy of query vectors (the first --warmup are warm-up)")
    parser.add_argument("--id-rows", type=Path, required=True,
                        help=".npy of base rows asked for by id")
    parser.add_argument("--base", type=Path, required=True, help=".npy of the base vectors")
    parser.add_argument("--warmup", type=int, default=100)
    args = parser.parse_args()
    sys.path.insert(0, str(args.tree / "bench"))
    import faiss

    from imgsearch import Engine
    from imgsearch.types import Query
    from peers import _engine_settings, _row_map, item_id  # that tree's own

    faiss.omp_set_num_threads(1)
    settings = _engine_settings(512)
    directory = args.tree / "bench" / "data" / f"peers-clustered-{args.n}-s0" / "collection"
    engine = Engine.open(directory, settings)
    engine.warm()
    bare, _rows = _row_map(engine)
    params = faiss.SearchParametersHNSW(efSearch=settings.hnsw_ef_search)
    queries = np.ascontiguousarray(np.load(args.queries), dtype=np.float32)
    id_rows = np.load(args.id_rows).astype(np.int64)
    base = np.load(args.base, mmap_mode="r")
    id_vectors = np.ascontiguousarray(base[id_rows], dtype=np.float32)
    warm, count = args.warmup, len(queries) - args.warmup
    half = count // 2

    def timed_query(i: int) -> list[int]:
        """Bare FAISS on another query of the kind, then the engine's query; both kinds."""
        j = warm + i % half
        other = j + half  # FAISS's query: one of the other half
        calls: list[Callable[[], object]] = [
            lambda: bare.search(queries[other][None, :], 10, params=params),
            lambda: engine.search(Query(vector=queries[j], vector_space="image", limit=10)),
            lambda: bare.search(id_vectors[other][None, :], 11, params=params),
            lambda: engine.similar(item_id(int(id_rows[j])), limit=10),
        ]
        out = []
        for call in calls:
            started = time.perf_counter_ns()
            call()
            out.append(time.perf_counter_ns() - started)
        return out

    for i in range(warm):
        engine.search(Query(vector=queries[i], vector_space="image", limit=10))
        engine.similar(item_id(int(id_rows[i])), limit=10)
        bare.search(queries[i][None, :], 10, params=params)
    print(json.dumps({"ready": True, "half": half}), flush=True)
    try:
        for line in sys.stdin:
            block = json.loads(line)
            times = [timed_query(i) for i in range(block["start"],
                                                    block["start"] + block["count"])]
            print(json.dumps({"ns": times}), flush=True)
    finally:
        engine.close()


if __name__ == "__main__":
    main()
