"""How deep an IVF-PQ search must go for recall@10 after exact re-scoring: nprobe × candidates.

The engine's IVF-PQ answer is the index's best ``c`` candidates by PQ score, re-scored
exactly from the float16 vector file. This measures, on the bare FAISS index (the engine's
kind: IVF lists over a flat inner-product quantizer, dim/8 one-byte PQ codes, trained on a
sample as ``SpaceIndex.rebuild`` does), recall@10 of that answer and the time of the FAISS
search (one thread) plus the re-scoring, for each nprobe and candidate count given.

``--nlist`` fixes the list count: ``--n 2000000 --nlist 400`` has the 5,000 vectors a list
of 10M's 2,000 lists (``index/auto.ivf_lists``), so the codes scanned per probed list, and
the candidate depth they call for, are the 10M ones. Vectors: ``bench/tenmillion.py``'s
(clustered, seed 7, the same base and held-out queries). Nothing is saved but the results.

    python bench/ivf_depth.py --n 2000000 --nlist 400 --nprobe 32,48,64 \
        --candidates 640,1000,1500,2000
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from common import command_line, load_average, machine, median, now, table, write_results
from tenmillion import SEED, base_chunks, merge_top10
from vectors import DIM, _generate_queries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2_000_000)
    parser.add_argument("--nlist", type=int, default=400)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--sample", type=int, default=100_000)
    parser.add_argument("--nprobe", default="32,48,64")
    parser.add_argument("--candidates", default="640,1000,1500,2000")
    parser.add_argument("--fastscan", action="store_true",
                        help="IVF-PQ fast-scan (dim/4 4-bit codes) in place of dim/8 bytes")
    args = parser.parse_args()
    import faiss

    probes = [int(p) for p in args.nprobe.split(",")]
    depths = sorted(int(c) for c in args.candidates.split(","))
    load_before = load_average()
    queries = _generate_queries("clustered", args.n, args.queries, SEED)
    stored = np.empty((args.n, DIM), np.float16)  # what the vector file holds
    best_s = np.full((len(queries), 10), -np.inf, np.float32)
    best_i = np.full((len(queries), 10), -1, np.int64)
    started = time.perf_counter()
    for start, block in base_chunks(args.n):  # exact truth over the float32 base
        stored[start:start + len(block)] = block
        sims = queries @ block.T
        best_s, best_i = merge_top10(best_s, best_i, sims, start)
    print(f"base and truth {time.perf_counter() - started:.0f} s", flush=True)

    rng = np.random.default_rng(0)
    sample = stored[np.sort(rng.choice(args.n, size=min(args.sample, args.n),
                                       replace=False))].astype(np.float32)
    faiss.omp_set_num_threads(2)
    if args.fastscan:  # 4-bit codes scanned in SIMD registers, the same 64 bytes a vector
        index = faiss.IndexIVFPQFastScan(faiss.IndexFlatIP(DIM), DIM, args.nlist, DIM // 4,
                                         4, faiss.METRIC_INNER_PRODUCT)
    else:
        index = faiss.IndexIVFPQ(faiss.IndexFlatIP(DIM), DIM, args.nlist, DIM // 8, 8,
                                 faiss.METRIC_INNER_PRODUCT)
    t = time.perf_counter()
    index.train(sample)
    train_s = time.perf_counter() - t
    t = time.perf_counter()
    for start in range(0, args.n, 100_000):
        index.add(stored[start:start + 100_000].astype(np.float32))
    add_s = time.perf_counter() - t
    print(f"train {train_s:.0f} s, add {add_s:.0f} s", flush=True)

    faiss.omp_set_num_threads(1)
    rows: list[list[Any]] = []
    results = []
    for nprobe in probes:
        params = faiss.SearchParametersIVF(nprobe=nprobe)
        for depth in depths:
            times, hits = [], 0
            for i, q in enumerate(queries):
                t0 = time.perf_counter_ns()
                _scores, ids = index.search(q[None, :], depth, params=params)
                found = ids[0][ids[0] >= 0]
                t1 = time.perf_counter_ns()
                exact = stored[np.sort(found)].astype(np.float32) @ q
                top = np.sort(found)[np.argsort(-exact)[:10]]
                t2 = time.perf_counter_ns()
                times.append(((t1 - t0) / 1e6, (t2 - t1) / 1e6))
                hits += len(set(top.tolist()) & set(best_i[i].tolist()))
            search_ms = median([a for a, _ in times])
            rescore_ms = median([b for _, b in times])
            got = hits / best_i.size
            rows.append([nprobe, depth, f"{got:.3f}", f"{search_ms:.2f}", f"{rescore_ms:.2f}",
                         f"{median([a + b for a, b in times]):.2f}"])
            results.append({"nprobe": nprobe, "candidates": depth, "recall_at_10": got,
                            "search_p50_ms": search_ms, "rescore_p50_ms": rescore_ms})
            print(rows[-1], flush=True)
    print(table(["nprobe", "candidates", "recall@10", "faiss p50 ms", "re-score p50 ms",
                 "total p50 ms"], rows))
    stem = f"ivf_depth-{args.n}-{args.nlist}" + ("-fastscan" if args.fastscan else "")
    write_results(stem, {
        "n": args.n, "nlist": args.nlist, "fastscan": args.fastscan, "sample": args.sample,
        "train_s": train_s, "add_s": add_s, "results": results, "machine": machine(),
        "command": command_line(), "date": now(),
        "load_average": {"before": load_before, "after": load_average()}})


if __name__ == "__main__":
    main()
