"""Collection backends side by side: ``local`` (SQLite + FAISS) and ``milvus`` (the
standalone Milvus 2.3.5 server binary of the ``milvus`` package, and Milvus Lite, each
labelled), on the same vectors and the same queries.

The base vectors (``bench/vectors.py``: clustered synthetic embeddings, 512-d) are
written as items through each backend's ``upsert`` (``CollectionBackend``: items with a
category and a price, one image vector each) in batches of ``--batch`` rows. Each
backend is then measured with an exact index and with HNSW over the same rows, without
writing them again:

1. written into an exact index (local ``flat``, Milvus ``FLAT``); ingest time runs until
   ``count()`` (a Strong read) sees every row. Milvus is then flushed (segments sealed)
   and its FLAT index built on every sealed segment (``index s``);
2. ``--slow-queries`` queries (exact search costs O(n) a query) unfiltered and filtered
   (category = one of 10, pushed down: a tenth of the items pass), k = 10, one at a time,
   through ``CollectionBackend.search``; on Milvus once per read consistency level;
3. the index rebuilt as HNSW (M = 32, efConstruction = 80, ef = 128, the local
   defaults): local reopens the collection with ``index_type=hnsw`` and its index file
   removed, so it is built again from the catalog's vectors; Milvus releases the
   collection, drops the FLAT index, creates HNSW, waits until every row is indexed and
   loads it again. That time is ``index s``;
4. ``--queries`` queries as in 2 (the first ``--slow-queries`` of them are those of 2).

Reported: recall@10 against exact search over the rows the filter lets through, p50 and
p99 latency, and memory: VmRSS and its anonymous part (RssAnon) of the process that
holds the collection, this one for local (base vectors are read from a memory map that
is dropped after each use, so they are not counted), the server process for milvus.

Ray encoding throughput at 1 and 2 workers against the sequential encoder is measured by
``bench/encode.py`` (its table in BENCHMARKS.md); not repeated here.

    python bench/backends.py --n 1000000 --backends server
    python bench/backends.py --n 1000000 --backends local
    python bench/backends.py --n 100000 --queries 200 --backends local,server,lite
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # milvuskit

from common import (
    command_line,
    load_average,
    machine,
    machine_line,
    now,
    percentile,
    table,
    write_results,
)
from imgsearch.engine.backends.base import CollectionBackend, Row
from imgsearch.types import Filters, Item
from peers import _descendants, _engine_settings, _status_kb
from vectors import VECTORS_DIR, Dataset, exact_topk, load_dataset

CATEGORIES = 10
FILTERED = 3  # the category the filtered queries ask for
HNSW = {"M": 32, "efConstruction": 80, "ef": 128}  # the local defaults
LABELS = {"local": "local (SQLite + FAISS)", "server": "milvus (2.3.5 server)",
          "lite": "milvus (Milvus Lite 3.2.2)"}


def memory_mb(pids: list[int]) -> dict[str, float]:
    return {field: sum(_status_kb(p, field) for p in pids) / 1024
            for field in ("VmRSS", "RssAnon")}


def base_rows(data: Dataset, start: int, stop: int) -> NDArray[np.float32]:
    """A copy of base rows from a memory map opened and dropped here, so that the pages
    read do not stay in this process's RSS."""
    mapped = np.load(data.base_path, mmap_mode="r")
    rows = np.array(mapped[start:stop], dtype=np.float32)
    del mapped
    return rows


def ground_truth(data: Dataset, n: int, k: int = 10) -> dict[str, list[set[str]]]:
    """Exact top-k ids of every query, unfiltered and in the filtered category."""
    mapped = np.load(data.base_path, mmap_mode="r")
    tag = f"{data.base_path.stem}-q{len(data.queries)}"
    unfiltered = exact_topk(mapped, data.queries, k,
                            cache=VECTORS_DIR / f"{tag}-gt{k}.npy")
    rows = np.arange(FILTERED, n, CATEGORIES)
    inside = exact_topk(np.ascontiguousarray(mapped[FILTERED::CATEGORIES]), data.queries, k,
                        cache=VECTORS_DIR / f"{tag}-cat{FILTERED}of{CATEGORIES}-gt{k}.npy")
    del mapped
    return {"unfiltered": [{f"v{i:07d}" for i in top} for top in unfiltered],
            "category": [{f"v{i:07d}" for i in rows[top]} for top in inside]}


def ingest(backend: CollectionBackend, data: Dataset, n: int, batch: int) -> float:
    started = time.perf_counter()
    for start in range(0, n, batch):
        stop = min(n, start + batch)
        vectors = base_rows(data, start, stop)
        backend.upsert([Row(Item(id=f"v{i:07d}", category=f"cat-{i % CATEGORIES}",
                                 price=float(i % 200)),
                            {"image": vectors[i - start]}) for i in range(start, stop)])
        if (start // batch) % 20 == 19:
            rate = stop / (time.perf_counter() - started)
            print(f"#   {stop:,} rows, {rate:.0f} rows/s", file=sys.stderr, flush=True)
    while backend.count() < n:  # a bounded read may lag the last writes
        if time.perf_counter() - started > 4 * 3600:
            raise SystemExit(f"{backend.uri}: {backend.count()} of {n} rows after 4 h")
        time.sleep(0.05)
    return time.perf_counter() - started


def queries(backend: CollectionBackend, data: Dataset, truth: dict[str, list[set[str]]],
            count: int) -> dict[str, Any]:
    out: dict[str, Any] = {"queries": count}
    for label, filters in (("unfiltered", None),
                           ("category", Filters(categories=(f"cat-{FILTERED}",)))):
        latencies, recall = [], []
        for q, expected in zip(data.queries[:count], truth[label][:count], strict=True):
            t0 = time.perf_counter()
            hits = backend.search("image", q, 10, filters)
            latencies.append((time.perf_counter() - t0) * 1000)
            recall.append(len({h.id for h in hits} & expected) / 10)
        out[label] = {"recall@10": float(np.mean(recall)), "p50_ms": percentile(latencies, 50),
                      "p99_ms": percentile(latencies, 99), "per_query_recall": recall,
                      "latencies_ms": [round(x, 3) for x in latencies]}
    return out


def bench_local(data: Dataset, n: int, truth: dict[str, list[set[str]]],
                workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    from imgsearch.engine.backends.local import LocalBackend

    settings = _engine_settings(data.dim).replace(ingest_batch_size=args.batch)
    me = [os.getpid()]
    out: dict[str, Any] = {"backend": LABELS["local"], "n": n, "before": memory_mb(me)}
    backend = LocalBackend.open(workdir / "local", settings.replace(index_type="flat"))
    try:
        out["ingest_s"] = ingest(backend, data, n, args.batch)
        out["flat"] = {"index_s": 0.0, "memory": memory_mb(me),
                       "reads": {"-": queries(backend, data, truth, args.slow_queries)}}
    finally:
        backend.close()
    for index_file in (workdir / "local" / "indexes").glob("image*"):
        index_file.unlink()  # so that the reopening builds HNSW from the catalog
    started = time.perf_counter()
    backend = LocalBackend.open(workdir / "local", settings.replace(
        index_type="hnsw", hnsw_m=HNSW["M"], hnsw_ef_construction=HNSW["efConstruction"],
        hnsw_ef_search=HNSW["ef"]))
    try:
        out["hnsw"] = {"index_s": time.perf_counter() - started, "memory": memory_mb(me),
                       "reads": {"-": queries(backend, data, truth, args.queries)}}
    finally:
        backend.close()
    return out


@contextmanager
def milvus_running(kind: str, workdir: Path) -> Iterator[tuple[str, list[int]]]:
    """(address, pids of the server) while a server of ``kind`` runs."""
    if kind == "server":
        import milvusserver

        with contextmanager(milvusserver.milvus_server)(workdir / kind) as (address, root):
            yield address, _descendants(root)
    else:
        import milvuskit

        with contextmanager(milvuskit.milvus_lite)(workdir / kind) as address:
            yield address, [p for p in _descendants(os.getpid())
                            if "milvus_lite" in _cmdline(p)]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def _wait_indexed(client: Any, name: str, n: int) -> None:
    """Until the server reports every row of the vector field indexed."""
    while True:
        described = client.describe_index(name, "v_image")
        if int(described.get("indexed_rows", 0)) >= n and \
                int(described.get("pending_index_rows", 0)) == 0:
            return
        time.sleep(1.0)


def _rebuild_hnsw(client: Any, name: str, n: int) -> None:
    client.release_collection(name)
    client.drop_index(name, "v_image")
    params = client.prepare_index_params()
    params.add_index("v_image", index_type="HNSW", metric_type="IP",
                     params={"M": HNSW["M"], "efConstruction": HNSW["efConstruction"]})
    client.create_index(name, params)
    _wait_indexed(client, name, n)
    client.load_collection(name, timeout=3600)


def reads(uri: str, data: Dataset, truth: dict[str, list[set[str]]], count: int
          ) -> dict[str, Any]:
    """``queries`` through a client of its own reading at the URI's consistency level."""
    from imgsearch.engine.backends.milvus import MilvusBackend

    backend = MilvusBackend.open(uri, create=False)
    try:
        return queries(backend, data, truth, count)
    finally:
        backend.close()


def segments(address: str) -> list[int]:
    """Rows of each loaded segment (each sealed segment has an index of its own, and a
    search visits every segment and merges their answers)."""
    from pymilvus import connections, utility

    with warnings.catch_warnings():  # MilvusClient has no segment listing
        warnings.simplefilter("ignore", FutureWarning)
        connections.connect(alias="bench-segments", uri=f"http://{address}")
        try:
            return sorted(int(s.num_rows) for s in utility.get_query_segment_info(
                "bench", using="bench-segments"))
        finally:
            connections.disconnect("bench-segments")


def bench_milvus(kind: str, data: Dataset, n: int, truth: dict[str, list[set[str]]],
                 workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    from imgsearch.engine.backends.milvus import MilvusBackend

    out: dict[str, Any] = {"backend": LABELS[kind], "n": n}
    levels = args.consistency.split(",")
    with milvus_running(kind, workdir) as (address, pids):
        out["before"] = memory_mb(pids)
        uri = f"milvus://{address}/bench"
        backend = MilvusBackend.open(uri, {"image": data.dim})
        client = backend._client  # flush and index rebuilds are not backend operations
        try:
            out["ingest_s"] = ingest(backend, data, n, args.batch)
            started = time.perf_counter()
            if kind == "server":
                client.flush("bench")
                _wait_indexed(client, "bench", n)
            out["flat"] = {"index_s": time.perf_counter() - started}
            out["flat"]["reads"] = {level: reads(f"{uri}?consistency={level}", data, truth,
                                                 args.slow_queries) for level in levels}
            out["flat"]["memory"] = memory_mb(pids)
            if kind == "server":
                started = time.perf_counter()
                _rebuild_hnsw(client, "bench", n)
                hnsw = "&index=HNSW&" + "&".join(f"{k}={v}" for k, v in HNSW.items())
                out["hnsw"] = {"index_s": time.perf_counter() - started}
                out["hnsw"]["reads"] = {level: reads(f"{uri}?consistency={level}{hnsw}",
                                                     data, truth, args.queries)
                                        for level in levels}
                out["hnsw"]["memory"] = memory_mb(pids)
                out["hnsw"]["segments"] = segments(address)
        finally:
            backend.close()
    return out


def report(results: list[dict[str, Any]]) -> str:
    rows = []
    for r in results:
        for index in ("flat", "hnsw"):
            if index not in r:
                continue
            part = r[index]
            for level, measured in part["reads"].items():
                rows.append([r["backend"], index, level, measured["queries"],
                             f"{r['ingest_s']:.0f}", f"{r['n'] / r['ingest_s']:.0f}",
                             f"{part['index_s']:.0f}",
                             *(f"{measured[f]['recall@10']:.3f} / {measured[f]['p50_ms']:.2f}"
                               f" / {measured[f]['p99_ms']:.2f}"
                               for f in ("unfiltered", "category")),
                             f"{part['memory']['VmRSS']:.0f} ({part['memory']['RssAnon']:.0f})"])
    return table(["backend", "index", "reads", "queries", "ingest s", "rows/s", "index s",
                  "unfiltered R@10 / p50 / p99 ms", "category (1/10) R@10 / p50 / p99 ms",
                  "RSS MB (anon)"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200,
                        help="queries on HNSW, at every Milvus consistency level")
    parser.add_argument("--slow-queries", type=int, default=50,
                        help="queries on the exact indexes (the first of --queries)")
    parser.add_argument("--batch", type=int, default=5000, help="rows per upsert call")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--consistency", default="strong,bounded",
                        help="milvus read consistency levels to measure (comma-separated: "
                             "strong, session, bounded, eventually)")
    parser.add_argument("--backends", default="local,server",
                        help="comma-separated: local, server (Milvus 2.3.5 binary), lite")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the collections go (a temporary folder by default; "
                             "removed afterwards either way)")
    args = parser.parse_args()
    data = load_dataset("clustered", args.n, max(args.queries, args.slow_queries), args.seed)
    info = machine()
    print(f"# backends: {data.description}; {args.queries} queries on HNSW, "
          f"the first {args.slow_queries} of them on exact indexes, k = 10\n"
          f"# {machine_line(info)}\n# {command_line()}", flush=True)
    truth = ground_truth(data, args.n)
    results, load_before, started = [], load_average(), now()
    scratch = Path(tempfile.mkdtemp(prefix="bench-backends-", dir=args.workdir))
    try:
        for name in args.backends.split(","):
            print(f"# running {LABELS[name]} ...", file=sys.stderr, flush=True)
            run = bench_local if name == "local" else (
                lambda *a, kind=name: bench_milvus(kind, *a))
            results.append(run(data, args.n, truth, scratch / name, args))
            results[-1]["load_average_after"] = load_average()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(report(results))
    print(f"load average before {load_before}, after {load_average()}")
    write_results(f"backends-{args.n}-{'-'.join(args.backends.split(','))}",
                  {"benchmark": "backends", "command": command_line(), "date": started,
                   "machine": info, "args": {k: str(v) for k, v in vars(args).items()},
                   "load_average": {"before": load_before, "after": load_average()},
                   "results": results})


if __name__ == "__main__":
    main()
