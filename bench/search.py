"""Similar-by-id latency and recall on random 512-d vectors, for each index kind.

A collection of ``--n`` random L2-normalised 512-d vectors is written through the public
engine (``Engine.commit`` of prepared items; a bench-only ``bench512`` encoder gives the
space its 512 dimensions, the vectors themselves are the random ones). For each index
kind the FAISS index file is removed and the collection re-opened, so the engine rebuilds
that kind from the catalog (the build time reported). Then, query by query and in turn
(so that load from other processes weighs on every method alike):

- ``faiss k=11``: the bare FAISS index under the engine's wrapper, asked for the 10
  neighbours plus the item itself, with the engine's search parameters (efSearch, nprobe);
- ``wrapper k=<fetch>``: the engine's index wrapper, ``SpaceIndex.index.search``, with
  exactly the k and parameters the engine's executor passes for a 10-result page;
- ``engine.similar``: ``engine.similar(id, limit=10)`` end to end (id lookup, stored
  vector fetch, ANN, exact re-scoring where the index is approximate, metadata join);
- ``numpy exact``: brute-force ``X @ q`` + ``argpartition``, the reference peer.

The index methods take turns in a random order per query; the numpy peer runs in a pass
of its own right after (its BLAS threads keep spinning a while and would slow the next).

Recall@10 is measured against exact search, the item itself excluded. Prints Markdown
tables and writes ``bench/results/search.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import faiss as _faiss
import numpy as np
from numpy.typing import NDArray
from PIL import Image

from common import (
    DATA_DIR,
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
from imgsearch import Engine, Item, Settings
from imgsearch.encode.fake import FakeEncoder
from imgsearch.encode.registry import register_encoder
from imgsearch.engine.pipeline import Prepared
from imgsearch.search.executor import fetch_size

DIM = 512
LIMIT = 10
KINDS = ("flat", "hnsw", "ivfpq")
CLUSTER_SIZE = 50
# faiss's type stubs miss its search-parameter classes, so it is used untyped here.
faiss: Any = _faiss


class Bench512Encoder(FakeEncoder):
    """A 512-d space for the benchmark: the vectors are written directly, never encoded."""

    name = "bench512"
    model_id = "bench512-random"

    def __init__(self) -> None:
        super().__init__(dim=DIM)


register_encoder("bench512", lambda settings: Bench512Encoder())


def random_vectors(n: int, seed: int, data: str = "random") -> NDArray[np.float32]:
    """``random``: uniform on the sphere, where every point is about equally far from
    every other (the hardest case for any ANN index). ``clustered``: groups of about
    ``CLUSTER_SIZE`` points around random centres (cosine ~0.5 within a group), closer
    to what image embeddings look like."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, DIM), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    if data == "clustered":
        centres = rng.standard_normal((max(1, n // CLUSTER_SIZE), DIM), dtype=np.float32)
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        x += centres[rng.integers(0, len(centres), n)]
        x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def item_id(i: int) -> str:
    return f"v{i:07d}"


def tiny_thumbnail() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (128, 128, 128)).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def settings_for(kind: str) -> Settings:
    return Settings(index_type=kind, image_encoder="bench512", text_encoder="none")


def build_collection(x: NDArray[np.float32], directory: Path, batch: int) -> float:
    """Write every vector as an item through ``Engine.commit``; returns seconds."""
    shutil.rmtree(directory, ignore_errors=True)
    thumb = tiny_thumbnail()
    started = time.perf_counter()
    with Engine.open(directory, settings_for("flat")) as engine:
        for start in range(0, len(x), batch):
            prepared = []
            for i in range(start, min(len(x), start + batch)):
                ident = item_id(i)
                item = Item(id=ident, title=f"vector {i}",
                            content_hash=hashlib.sha256(ident.encode()).hexdigest())
                prepared.append(Prepared(item, {"image": x[i]}, thumb))
            engine.commit(prepared)
    return time.perf_counter() - started


def exact_neighbours(x: NDArray[np.float32], queries: NDArray[np.int64], k: int
                     ) -> NDArray[np.int64]:
    """Exact top-k item indices for each query item, the item itself excluded."""
    out = np.empty((len(queries), k), np.int64)
    for start in range(0, len(queries), 256):
        q = queries[start:start + 256]
        sims = x[q] @ x.T
        sims[np.arange(len(q)), q] = -np.inf
        top = np.argpartition(-sims, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1)
        out[start:start + 256] = np.take_along_axis(top, order, axis=1)
    return out


def recall(found: Sequence[int], truth: NDArray[np.int64]) -> float:
    return len(set(found) & set(truth.tolist())) / len(truth)


def top_without(ids: Sequence[int], itself: int, k: int) -> list[int]:
    return [i for i in ids if i != itself and i >= 0][:k]


def measure_kind(kind: str, directory: Path, x: NDArray[np.float32],
                 queries: NDArray[np.int64], warmup: NDArray[np.int64],
                 truth: NDArray[np.int64]) -> dict[str, Any]:
    index_file = directory / "indexes" / "image.faiss"
    index_file.unlink(missing_ok=True)
    settings = settings_for(kind)
    started = time.perf_counter()
    engine = Engine.open(directory, settings)
    build_s = time.perf_counter() - started
    try:
        engine.warm()  # result-page fields in memory before any timing
        space = engine.spaces["image"]
        wrapper = space.index
        if wrapper.kind != kind:
            sys.exit(f"asked for a {kind} index, the engine built {wrapper.kind}")
        bare: Any = getattr(wrapper, "index", None)
        # The executor's call for a 10-result page of a similar-by-id query (one extra
        # for the item itself, over-fetch for re-scoring when scores are approximate).
        need = fetch_size(0, LIMIT) + 1
        fetch = need if wrapper.exact_scores else max(need * settings.pq_rescore_factor, need)
        ef = max(settings.hnsw_ef_search, fetch)
        nprobe = settings.ivf_nprobe
        internal_to_item = _internal_to_item(engine, wrapper, len(x))

        def bare_search(i: int) -> list[int]:
            params: Any = None
            if kind == "hnsw":
                params = faiss.SearchParametersHNSW(efSearch=max(settings.hnsw_ef_search,
                                                                 LIMIT + 1))
            elif kind == "ivfpq":
                params = faiss.SearchParametersIVF(nprobe=nprobe)
            _, found = bare.search(x[i:i + 1], LIMIT + 1, params=params)
            return found[0].tolist()

        def wrapper_search(i: int) -> list[int]:
            _, found = wrapper.search(x[i:i + 1], fetch, ef_search=ef, nprobe=nprobe)
            return found[0].tolist()

        def engine_search(i: int) -> list[int]:
            return [int(h.id[1:]) for h in engine.similar(item_id(i), limit=LIMIT).hits]

        def numpy_search(i: int) -> list[int]:
            sims = x @ x[i]
            top = np.argpartition(-sims, LIMIT + 1)[:LIMIT + 1]
            return top[np.argsort(-sims[top])].tolist()

        methods: dict[str, Callable[[int], list[int]]] = {}
        if bare is not None:
            methods["faiss k=11"] = bare_search
        methods[f"wrapper k={fetch}"] = wrapper_search
        methods["engine.similar"] = engine_search
        methods["numpy exact"] = numpy_search
        to_items: dict[str, Callable[[list[int]], list[int]]] = {
            "faiss k=11": lambda f: [internal_to_item(v) for v in f],
            f"wrapper k={fetch}": lambda f: [_vid_to_item(engine, v) for v in f],
            "engine.similar": lambda f: f,
            "numpy exact": lambda f: f,
        }
        for i in warmup:
            for fn in methods.values():
                fn(int(i))
        latencies: dict[str, list[float]] = {m: [] for m in methods}
        recalls: dict[str, list[float]] = {m: [] for m in methods}
        # The index methods take turns in a fresh random order for every query, so that
        # load from other processes weighs on each alike. The numpy peer runs in a pass of
        # its own: BLAS threads left spinning after it would slow whatever ran next.
        order_rng = np.random.default_rng(len(queries))
        index_methods = [m for m in methods if m != "numpy exact"]
        passes = [(index_methods, True), (["numpy exact"], False)]
        for names, shuffle in passes:
            for row, i in enumerate(queries):
                for name in (order_rng.permutation(names).tolist() if shuffle else names):
                    fn = methods[name]
                    t0 = time.perf_counter_ns()
                    found = fn(int(i))
                    latencies[name].append((time.perf_counter_ns() - t0) / 1e6)
                    ids = to_items[name](found)
                    recalls[name].append(recall(top_without(ids, int(i), LIMIT), truth[row]))
    finally:
        engine.close()
    stats = {name: {"p50_ms": median(ms), "p90_ms": percentile(ms, 90),
                    "p99_ms": percentile(ms, 99), "mean_ms": float(np.mean(ms)),
                    f"recall@{LIMIT}": float(np.mean(recalls[name]))}
             for name, ms in latencies.items()}
    # per-query ratios against peers timed right beside it, then their median
    engine_ms = np.asarray(latencies["engine.similar"])
    ratios = {f"engine / {name}": float(np.median(engine_ms / np.asarray(ms)))
              for name, ms in latencies.items() if name != "engine.similar"}
    return {"kind": kind, "build_s": build_s, "index_file_bytes": index_file.stat().st_size,
            "params": {"fetch_k": fetch, "ef_search": ef if kind == "hnsw" else None,
                       "nprobe": nprobe if kind == "ivfpq" else None,
                       "hnsw_m": settings.hnsw_m if kind == "hnsw" else None,
                       "nlist": getattr(bare, "nlist", None),
                       "pq_m": getattr(getattr(bare, "pq", None), "M", None)},
            "methods": stats, "ratios": ratios}


def _internal_to_item(engine: Engine, wrapper: Any, n: int) -> Callable[[int], int]:
    """Bare FAISS ids to item indices: HNSW numbers vectors itself, the others use vids."""
    id_to_label = getattr(wrapper, "_id_to_label", None)
    if id_to_label is not None:
        return lambda v: _vid_to_item(engine, int(id_to_label[v])) if v >= 0 else -1
    return lambda v: _vid_to_item(engine, v)


def _vid_to_item(engine: Engine, vid: int) -> int:
    if vid < 0:
        return -1
    key = int(engine.spaces["image"].vid_key[vid])
    # Items were written in order into a fresh catalog, so key k is item k - 1.
    return key - 1


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="vectors in the collection")
    parser.add_argument("--queries", type=int, default=1000,
                        help="timed similar-by-id queries per index kind")
    parser.add_argument("--warmup", type=int, default=100, help="untimed queries first")
    parser.add_argument("--kinds", default=",".join(KINDS),
                        help="comma-separated index kinds to measure")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", choices=("random", "clustered"), default="random",
                        help="how the vectors are spread (see random_vectors)")
    parser.add_argument("--batch", type=int, default=2000, help="items per commit when building")
    parser.add_argument("--reuse", action="store_true",
                        help="keep a collection built earlier with the same --n and --seed")
    args = parser.parse_args(argv)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]

    info = machine()
    print(f"machine: {machine_line(info)}")
    load_before = load_average()
    x = random_vectors(args.n, args.seed, args.data)
    directory = DATA_DIR / f"search-{args.data}-{args.n}-s{args.seed}"
    stamp = directory / ".complete"
    if args.reuse and stamp.exists():
        catalog_s = float(stamp.read_text())
        print(f"collection: reusing {directory} (built in {catalog_s:.1f} s)")
    else:
        catalog_s = build_collection(x, directory, args.batch)
        stamp.write_text(f"{catalog_s}")
        print(f"collection: {args.n:,} items written through Engine.commit in {catalog_s:.1f} s "
              f"({args.n / catalog_s:,.0f} items/s) into {directory}")

    rng = np.random.default_rng(args.seed + 1)
    picked = rng.choice(args.n, size=min(args.n, args.queries + args.warmup), replace=False)
    warmup, queries = picked[:args.warmup], picked[args.warmup:]
    truth = exact_neighbours(x, queries, LIMIT)

    results: dict[str, Any] = {
        "benchmark": "search", "command": command_line(), "date": now(), "machine": info,
        "data": args.data, "n": args.n, "dim": DIM, "queries": len(queries), "warmup": len(warmup),
        "limit": LIMIT, "catalog_build_s": catalog_s, "faiss_threads": faiss.omp_get_max_threads(),
        "kinds": {},
    }
    for kind in kinds:
        print(f"{kind}: building and querying ...", flush=True)
        results["kinds"][kind] = measure_kind(kind, directory, x, queries, warmup, truth)

    rows = []
    for kind, r in results["kinds"].items():
        for name, m in r["methods"].items():
            ratio = r["ratios"].get(f"engine / {name}", 1.0 if name == "engine.similar" else None)
            rows.append([kind, name, m["p50_ms"], m["p99_ms"], m[f"recall@{LIMIT}"],
                         "" if ratio is None else f"{ratio:.2f}×"])
    print()
    print(f"Similar-by-id, {args.n:,} × {DIM}-d {args.data} unit vectors, limit {LIMIT}, "
          f"{len(queries)} queries after {len(warmup)} warm-up; engine ÷ peer = median of "
          f"per-query ratios")
    print(table(["index", "method", "p50 ms", "p99 ms", f"recall@{LIMIT}", "engine ÷ it"], rows))
    print()
    print(table(["index", "build s", "index file MB", "params"],
                [[kind, r["build_s"], r["index_file_bytes"] / 1e6,
                  ", ".join(f"{k}={v}" for k, v in r["params"].items() if v is not None)]
                 for kind, r in results["kinds"].items()]))
    results["load_average"] = {"before": load_before, "after": load_average()}
    print(f"load average (1, 5, 15 min) before: {load_before}, after: {load_average()}")
    name = "search" if args.data == "random" else f"search-{args.data}"
    path = write_results(name, results)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
