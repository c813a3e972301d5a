"""Collection backends side by side: ``local`` (SQLite + FAISS) and ``milvus`` (the
standalone Milvus 2.3.5 server binary where it runs, and Milvus Lite, each labelled).

The same base vectors (``bench/vectors.py``: clustered synthetic embeddings, 512-d) are
written as items through each backend's ``upsert`` (``CollectionBackend``: items with a
category and a price, one image vector each), then the same held-out queries run
unfiltered and filtered (category = one of 10, pushed down: about a tenth of the items
pass) with k = 10, one query at a time. Reported per backend and index: ingest time
(upsert of every row, until ``count()`` sees them all), recall@10 against exact search over the rows
the filter lets through, p50 and p99 latency, and the resident memory of the process
that holds the collection (this one for local, the server's for milvus).

Ray encoding throughput at 1 and 2 workers against the sequential encoder is measured by
``bench/encode.py`` (its ``--runner`` table in BENCHMARKS.md); not repeated here.

    python bench/backends.py --n 100000 --queries 200 --index flat
    python bench/backends.py --n 100000 --queries 200 --index hnsw --backends local,server
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from common import command_line, machine, machine_line, percentile, table, write_results
from imgsearch.engine.backends.base import CollectionBackend, Row
from imgsearch.types import Filters, Item
from peers import _descendants, _engine_settings, _status_kb
from vectors import load_dataset

CATEGORIES = 10
BATCH = 5000


def rss_tree_mb(pid: int) -> float:
    return sum(_status_kb(p, "VmRSS") for p in [pid, *_descendants(pid)]) / 1024


def rows_of(base: NDArray[np.float32], start: int, stop: int) -> list[Row]:
    return [Row(Item(id=f"v{i:07d}", category=f"cat-{i % CATEGORIES}", price=float(i % 200)),
                {"image": np.ascontiguousarray(base[i], dtype=np.float32)})
            for i in range(start, stop)]


def truth(base: NDArray[np.float32], queries: NDArray[np.float32], mask: NDArray[np.bool_],
          k: int = 10) -> list[set[str]]:
    rows = np.flatnonzero(mask)
    out = []
    for q in queries:
        scores = np.asarray(base[rows] @ q)
        top = rows[np.argsort(-scores)[:k]]
        out.append({f"v{i:07d}" for i in top})
    return out


@contextmanager
def local(workdir: Path, index: str, dim: int) -> Iterator[tuple[CollectionBackend, int]]:
    from imgsearch.engine.backends.local import LocalBackend

    settings = _engine_settings(dim).replace(index_type=index, ingest_batch_size=BATCH)
    backend = LocalBackend.open(workdir / "local", settings)
    try:
        yield backend, os.getpid()
    finally:
        backend.close()


@contextmanager
def milvus(kind: str, workdir: Path, index: str, dim: int, consistency: str
           ) -> Iterator[tuple[CollectionBackend, int]]:
    import milvuskit
    from imgsearch.engine.backends.milvus import MilvusBackend

    start = milvuskit.milvus_server if kind == "server" else milvuskit.milvus_lite
    servers = start(workdir / kind)
    address = next(servers)
    query = f"?consistency={consistency}"
    if index == "hnsw":
        query += "&index=HNSW&M=32&efConstruction=80&ef=128"  # the local defaults
    backend = MilvusBackend.open(f"milvus://{address}/bench{query}", {"image": dim})
    try:
        pid = int(next(p for p in _children(os.getpid()) if rss_tree_mb(p) > 0))
        yield backend, pid
    finally:
        backend.close()
        servers.close()


def _children(pid: int) -> list[int]:
    return [p for p in _descendants(pid)]


def measure(name: str, opened: Any, base: NDArray[np.float32], queries: NDArray[np.float32]
            ) -> dict[str, Any]:
    n = len(base)
    with opened as (backend, pid):
        before = rss_tree_mb(pid)
        started = time.perf_counter()
        for start in range(0, n, BATCH):
            backend.upsert(rows_of(base, start, min(n, start + BATCH)))
        # until every row counts (a bounded read may lag the last writes)
        while backend.count() < n:
            if time.perf_counter() - started > 3600:
                raise SystemExit(f"{name}: {backend.count()} of {n} rows after an hour")
            time.sleep(0.05)
        ingest_s = time.perf_counter() - started
        out: dict[str, Any] = {"backend": name, "n": n, "ingest_s": ingest_s,
                               "rows_per_s": n / ingest_s}
        cats = np.arange(n) % CATEGORIES
        for label, filters, mask in (
                ("unfiltered", None, np.ones(n, bool)),
                ("category", Filters(categories=("cat-3",)), cats == 3)):
            want = truth(base, queries, mask)
            latencies, recall = [], []
            for q, expected in zip(queries, want, strict=True):
                t0 = time.perf_counter()
                hits = backend.search("image", q, 10, filters)
                latencies.append((time.perf_counter() - t0) * 1000)
                recall.append(len({h.id for h in hits} & expected) / 10)
            out[label] = {"recall@10": float(np.mean(recall)),
                          "p50_ms": percentile(latencies, 50),
                          "p99_ms": percentile(latencies, 99)}
        out["rss_mb"] = rss_tree_mb(pid)
        out["rss_growth_mb"] = out["rss_mb"] - before
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--index", choices=["flat", "hnsw"], default="flat")
    parser.add_argument("--consistency", default="strong",
                        help="milvus read consistency: strong (read-your-writes from every "
                             "node, the default), session, bounded, eventually")
    parser.add_argument("--backends", default="local,server,lite",
                        help="comma-separated: local, server (Milvus 2.3.5 binary), lite")
    args = parser.parse_args()
    data = load_dataset("clustered", args.n, args.queries, args.seed)
    base = np.asarray(data.base, dtype=np.float32)
    info = machine()
    print(f"# backends: {data.description}; {args.queries} queries, k = 10, "
          f"index {args.index}, milvus reads {args.consistency}\n# {machine_line(info)}\n"
          f"# {command_line()}")
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-backends-") as scratch:
        workdir = Path(scratch)
        makers: dict[str, Callable[[], Any]] = {
            "local": lambda: local(workdir, args.index, data.dim),
            "server": lambda: milvus("server", workdir, args.index, data.dim,
                                     args.consistency),
            "lite": lambda: milvus("lite", workdir, args.index, data.dim, args.consistency)}
        for name in args.backends.split(","):
            label = {"local": "local (SQLite + FAISS)", "server": "milvus (2.3.5 server)",
                     "lite": "milvus (Milvus Lite 3.2.2)"}[name]
            print(f"# running {label} ...", file=sys.stderr, flush=True)
            results.append(measure(label, makers[name](), base, data.queries))
    rows = [[r["backend"], f"{r['ingest_s']:.1f}", f"{r['rows_per_s']:.0f}",
             *(f"{r[f]['recall@10']:.3f} / {r[f]['p50_ms']:.2f} / {r[f]['p99_ms']:.2f}"
               for f in ("unfiltered", "category")), f"{r['rss_mb']:.0f}"]
            for r in results]
    print(table(["backend", "ingest s", "rows/s", "unfiltered R@10 / p50 / p99 ms",
                 "category (1/10) R@10 / p50 / p99 ms", "RSS MB"], rows))
    write_results(f"backends-{args.index}-{args.n}-{args.consistency}",
                  {"machine": info, "args": vars(args), "results": results})


if __name__ == "__main__":
    main()
