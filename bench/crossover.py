"""Where exact search stops paying: flat vs HNSW by collection size, and HNSW's efSearch.

The evidence behind the index defaults (``IMGSEARCH_FLAT_MAX``, ``IMGSEARCH_HNSW_EF_SEARCH``).
For each size ``n`` of the clustered set from ``bench/vectors.py`` (held-out queries, exact
ground truth), the engine's own index classes (``imgsearch.index.faiss_index.build_index``)
are built and searched the way the executor searches for a 10-result page: k = 64 (one
page block) and, for HNSW, efSearch = max(ef, k). Reported per size:

- flat: p50 / p99 ms of one query on one thread (exact, recall 1.00);
- HNSW: build seconds, then for each efSearch in ``--efs`` the recall@10 of the top 10
  and p50 / p99 ms; the cheapest efSearch reaching ``--target`` recall is marked.

All indexes of one size take turns query by query in a random order, so machine noise
weighs alike on each. FAISS runs on one thread while timing single queries (``--threads``
for building). Prints Markdown tables, writes ``bench/results/crossover.json`` and
``bench/results/crossover.png`` (p50 against n for flat and for HNSW at the chosen
efSearch; recall against efSearch per n).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any

import faiss
import numpy as np
from numpy.typing import NDArray

from common import (
    RESULTS_DIR,
    command_line,
    load_average,
    machine,
    machine_line,
    median,
    now,
    percentile,
    table,
    write_results,
)
from imgsearch.index.base import IndexParams
from imgsearch.index.faiss_index import build_index
from vectors import exact_topk, load_dataset

PAGE_K = 64  # the executor's page block: what it asks the index for a 10-result page
LIMIT = 10


def _add(index: Any, base: NDArray[np.float32]) -> float:
    started = time.perf_counter()
    for start in range(0, len(base), 20_000):
        part = np.ascontiguousarray(base[start:start + 20_000])
        index.add(np.arange(start, start + len(part), dtype=np.int64), part)
    return time.perf_counter() - started


def measure_size(n: int, queries: int, efs: Sequence[int], seed: int, threads: int,
                 target: float) -> dict[str, Any]:
    data = load_dataset("clustered", n, queries, seed)
    base = np.ascontiguousarray(data.base[:n])
    qs = np.ascontiguousarray(data.queries)
    truth = exact_topk(base, qs, LIMIT)
    faiss.omp_set_num_threads(threads)
    params = IndexParams()
    flat = build_index("flat", base.shape[1], params)
    flat_build = _add(flat, base)
    hnsw = build_index("hnsw", base.shape[1], params)
    hnsw_build = _add(hnsw, base)
    faiss.omp_set_num_threads(1)

    methods: dict[str, Any] = {"flat": lambda q: flat.search(q, PAGE_K)}
    for ef in efs:
        methods[f"hnsw ef={ef}"] = (
            lambda q, ef=ef: hnsw.search(q, PAGE_K, ef_search=max(ef, PAGE_K)))
    for fn in methods.values():  # warm-up
        for row in range(min(50, len(qs))):
            fn(qs[row:row + 1])
    times: dict[str, list[float]] = {m: [] for m in methods}
    found: dict[str, list[list[int]]] = {m: [] for m in methods}
    rng = np.random.default_rng(seed)
    names = list(methods)
    for row in range(len(qs)):
        q = qs[row:row + 1]
        for name in rng.permutation(names).tolist():
            t0 = time.perf_counter_ns()
            _, labels = methods[name](q)
            times[name].append((time.perf_counter_ns() - t0) / 1e6)
            found[name].append([int(v) for v in labels[0][:LIMIT] if v >= 0])
    out: dict[str, Any] = {"n": n, "flat_build_s": flat_build, "hnsw_build_s": hnsw_build,
                           "methods": {}}
    for name in names:
        hits = [len(set(f) & set(t.tolist())) / LIMIT for f, t in zip(found[name], truth,
                                                                       strict=True)]
        out["methods"][name] = {"p50_ms": median(times[name]),
                                "p99_ms": percentile(times[name], 99),
                                "recall@10": float(np.mean(hits))}
    reaching = [ef for ef in efs if out["methods"][f"hnsw ef={ef}"]["recall@10"] >= target]
    out["chosen_ef"] = min(reaching) if reaching else None
    return out


def plot(results: dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = results["sizes"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    ns = [s["n"] for s in sizes]
    left.plot(ns, [s["methods"]["flat"]["p50_ms"] for s in sizes], "o-", label="flat (exact)")
    for ef in results["efs"]:
        left.plot(ns, [s["methods"][f"hnsw ef={ef}"]["p50_ms"] for s in sizes], ".--",
                  alpha=0.6, label=f"HNSW ef={max(ef, PAGE_K)}")
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("items")
    left.set_ylabel(f"p50 ms, k={PAGE_K}, 1 thread")
    left.legend(fontsize=7)
    left.grid(alpha=0.3)
    for s in sizes:
        right.plot([max(ef, PAGE_K) for ef in results["efs"]],
                   [s["methods"][f"hnsw ef={ef}"]["recall@10"] for ef in results["efs"]],
                   "o-", label=f"n={s['n']:,}")
    right.axhline(results["target"], color="grey", lw=0.8, ls=":")
    right.set_xlabel("efSearch")
    right.set_ylabel("recall@10")
    right.legend(fontsize=7)
    right.grid(alpha=0.3)
    fig.suptitle("flat vs HNSW by collection size (clustered 512-d, held-out queries)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--sizes", default="10000,25000,50000,100000",
                        help="comma-separated collection sizes")
    parser.add_argument("--efs", default="64,96,128,192,256",
                        help="efSearch values (the executor never goes below k=64)")
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="build threads (0: all)")
    parser.add_argument("--target", type=float, default=0.95, help="recall@10 to reach")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    efs = [int(e) for e in args.efs.split(",")]
    threads = args.threads or faiss.omp_get_max_threads()
    info = machine()
    print(f"machine: {machine_line(info)}")
    load_before = load_average()
    results: dict[str, Any] = {"benchmark": "crossover", "command": command_line(),
                               "date": now(), "machine": info, "k": PAGE_K,
                               "queries": args.queries, "efs": efs, "target": args.target,
                               "sizes": []}
    for n in sizes:
        print(f"n={n:,}: building flat and HNSW ...", flush=True)
        results["sizes"].append(measure_size(n, args.queries, efs, args.seed, threads,
                                             args.target))
    rows = []
    for s in results["sizes"]:
        for name, m in s["methods"].items():
            build = s["flat_build_s"] if name == "flat" else s["hnsw_build_s"]
            mark = "← cheapest ≥ target" if name == f"hnsw ef={s['chosen_ef']}" else ""
            rows.append([f"{s['n']:,}", name, m["recall@10"], m["p50_ms"], m["p99_ms"],
                         build, mark])
    print()
    print(f"k={PAGE_K} per query (a 10-result page), recall@10 of the first 10, "
          f"{args.queries} held-out queries, 1 search thread")
    print(table(["n", "index", "recall@10", "p50 ms", "p99 ms", "build s", ""], rows))
    results["load_average"] = {"before": load_before, "after": load_average()}
    path = write_results("crossover", results)
    plot(results, str(RESULTS_DIR / "crossover.png"))
    print(f"\nwrote {path} and {RESULTS_DIR / 'crossover.png'}")


if __name__ == "__main__":
    main()
