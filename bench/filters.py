"""Filtered vector search at 50 / 10 / 1 / 0.1 % selectivity: recall, latency and plan.

Data: ``--n`` clustered 512-d unit vectors from ``bench/vectors.py``
``load_dataset("clustered", n, queries, seed)`` (see there how they are generated; the
fallback when it is missing is ``search.random_vectors(..., data="clustered")``, groups of
about 50 points around random centres), plus held-out query vectors drawn around the same
clusters and never written to the collection. Every item gets a price that is a seeded random
permutation of ``0 .. n-1`` scaled into [0, 1000): ``Filters(price_max=...)`` half-way
between two prices then passes *exactly* the wanted number of items, and which items pass
is independent of where they lie in vector space.

The collection is written through the public engine (``Engine.commit`` of prepared items,
the bench-only ``bench512`` encoder of ``bench/search.py``) and indexed with HNSW. For each
selectivity, the methods take turns in a fresh random order (so that load from other
processes weighs on each alike), never on a query another method has just answered (the
second answer would find the graph in the CPU caches, ``common.take_turns``):

- ``engine filtered``: ``engine.search(Query(vector=q, filters=price_max..., limit=10))``
  end to end (filter SQL, the planner's choice, ANN, metadata join); its plan is recorded;
- ``engine filtered, new filter``: the same, with a filter the catalog has not seen (the
  price bound nudged by a hair per query, passing the same items), so the catalog's
  filter cache cannot answer: what the first query of each new filter costs;
- ``engine unfiltered``: the same query without filters, the reference for the ratio;
- ``faiss sel ef=E``: the bare HNSW index under the engine, ``IDSelectorBatch`` of the
  passing items (built once per selectivity) and ``SearchParametersHNSW(efSearch=E)`` with
  the engine's default efSearch;

then, in a pass of its own (BLAS threads left spinning would slow what runs next):

- ``numpy exact``: ``X_subset @ q`` + ``argpartition`` on the passing items' vectors,
  gathered once per selectivity (the best case for brute force).

Ground truth is the exact top-10 among the passing items. A diagnostic sweep then runs the
bare index with the selector at larger efSearch values, to show what a filtered HNSW walk
needs to reach the recall target at each selectivity.

Prints Markdown tables, writes ``bench/results/filters-<n>.json`` and a plot
``bench/results/filters-<n>.png`` (recall@10 and p50 per selectivity and method).
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import faiss as _faiss
import matplotlib
import numpy as np
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits

from common import (
    DATA_DIR,
    RESULTS_DIR,
    command_line,
    load_average,
    machine,
    machine_line,
    median,
    now,
    percentile,
    table,
    take_turns,
    write_results,
)
from imgsearch import Engine, Item, Settings
from imgsearch.engine.pipeline import Prepared
from imgsearch.search.executor import Signal, candidates, fetch_size
from imgsearch.search.space import exact_cutoff
from imgsearch.store.filters import filter_sql
from imgsearch.types import Filters, Query
from search import item_id, random_vectors, tiny_thumbnail  # also registers "bench512"

matplotlib.use("Agg")
import matplotlib.pyplot as plt

# faiss's type stubs miss its search-parameter classes, so it is used untyped here.
faiss: Any = _faiss

LIMIT = 10
SELECTIVITIES = (0.5, 0.1, 0.01, 0.001)
PRICE_RANGE = 1000.0
RECALL_TARGET = 0.95
RATIO_TARGET = 5.0
SWEEP_EF = (96, 256, 1024, 4096)
SWEEP_QUERIES = 100
BREAKDOWN_QUERIES = 50
STORAGE_EXACT_MAX = 100_000  # passing items up to which scoring them all is also timed
POSTFILTER_MAX = 20_000  # over-fetch up to which the postfilter alternative is timed
INDEX_METHODS = ("engine filtered", "engine unfiltered", "faiss sel")


def load_vectors(n: int, queries: int, seed: int
                 ) -> tuple[NDArray[np.float32], NDArray[np.float32], str]:
    """Base and held-out query vectors, from the shared dataset builder when present."""
    try:
        import vectors
    except ImportError:
        x = random_vectors(n + queries, seed, "clustered")
        return (np.ascontiguousarray(x[:n]), np.ascontiguousarray(x[n:]),
                f"search.random_vectors clustered (groups of about 50), seed {seed}")
    data = vectors.load_dataset("clustered", n, queries, seed)
    return (np.ascontiguousarray(data.base, np.float32),
            np.ascontiguousarray(data.queries, np.float32), data.description)


def prices_for(n: int, seed: int) -> NDArray[np.float64]:
    """Distinct prices in [0, 1000), in a random order unrelated to the vectors."""
    ranks = np.random.default_rng(seed + 7).permutation(n)
    return ranks.astype(np.float64) * (PRICE_RANGE / n)


def price_max_for(count: int, n: int) -> float:
    """A price bound passing exactly the ``count`` cheapest items (prices are distinct and
    ``PRICE_RANGE / n`` apart, so a bound half-way between two is safe from rounding)."""
    return (count - 0.5) * (PRICE_RANGE / n)


def settings_for(kind: str) -> Settings:
    # The same query vectors come back at every selectivity: a result cache would answer
    # the unfiltered reference from memory. The search log is a per-query write that
    # both sides would pay alike; off, so the ratio compares the search paths alone.
    return Settings(index_type=kind, image_encoder="bench512", text_encoder="none",
                    result_cache_size=0, log_searches=False)


def build_collection(x: NDArray[np.float32], prices: NDArray[np.float64], directory: Path,
                     batch: int) -> float:
    """Write every vector with its price through ``Engine.commit``; returns seconds."""
    shutil.rmtree(directory, ignore_errors=True)
    thumb = tiny_thumbnail()
    started = time.perf_counter()
    with Engine.open(directory, settings_for("flat")) as engine:
        for start in range(0, len(x), batch):
            prepared = []
            for i in range(start, min(len(x), start + batch)):
                ident = item_id(i)
                item = Item(id=ident, title=f"vector {i}", price=float(prices[i]),
                            content_hash=hashlib.sha256(ident.encode()).hexdigest())
                prepared.append(Prepared(item, {"image": x[i]}, thumb))
            engine.commit(prepared)
    return time.perf_counter() - started


def exact_top(x: NDArray[np.float32], q: NDArray[np.float32], k: int) -> NDArray[np.int64]:
    """Exact top-k rows of ``x`` for each query row, best first."""
    out = np.empty((len(q), min(k, len(x))), np.int64)
    block = max(1, min(256, 2**25 // max(1, len(x))))  # keeps the similarity block ~128 MB
    for start in range(0, len(q), block):
        sims = q[start:start + block] @ x.T
        if x.shape[0] > k:
            top = np.argpartition(-sims, k, axis=1)[:, :k]
        else:
            top = np.broadcast_to(np.arange(len(x)), sims.shape)
        order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1)
        out[start:start + block] = np.take_along_axis(top, order, axis=1)
    return out


def recall(found: Sequence[int], truth: NDArray[np.int64]) -> float:
    return len(set(found) & set(truth.tolist())) / len(truth)


def hit_items(result: Any) -> list[int]:
    return [int(h.id[1:]) for h in result.hits]


def summary(ms: Sequence[float], recalls: Sequence[float]) -> dict[str, float]:
    return {"p50_ms": median(ms), "p99_ms": percentile(ms, 99), "mean_ms": float(np.mean(ms)),
            f"recall@{LIMIT}": float(np.mean(recalls))}


def engine_ef(settings: Settings, n: int, count: int) -> int | None:
    """The efSearch of the engine's filtered HNSW walk for a 10-result page, as
    ``HNSWIndex.search`` computes it; None where the planner scores the passing items
    exactly instead of walking (``space.exact_cutoff``, at most ``exact_filter_max``)."""
    fetch = fetch_size(0, LIMIT)
    if count <= min(settings.exact_filter_max, exact_cutoff(fetch, n)):
        return None
    ef = max(settings.hnsw_ef_search, fetch)
    if count < n:
        ef = max(ef, min(n, -(-fetch * n // max(1, 2 * count))))
    return ef


def measure_selectivity(engine: Engine, bare: Any, item_to_internal: NDArray[np.int64],
                        internal_to_item: NDArray[np.int64], x: NDArray[np.float32],
                        prices: NDArray[np.float64], queries: NDArray[np.float32],
                        warmup: NDArray[np.float32], truth_all: NDArray[np.int64],
                        fraction: float, seed: int) -> dict[str, Any]:
    n = len(x)
    count = max(1, round(fraction * n))
    price_max = price_max_for(count, n)
    filters = Filters(price_max=price_max)
    passing = np.flatnonzero(prices <= price_max)
    if len(passing) != count:
        sys.exit(f"price filter passes {len(passing)} items, expected {count}")
    passing_set = set(passing.tolist())
    subset = np.ascontiguousarray(x[passing])
    truth = passing[exact_top(subset, queries, LIMIT)]
    settings = engine.settings
    ef = settings.hnsw_ef_search
    selector = faiss.IDSelectorBatch(np.sort(item_to_internal[passing]))
    params = faiss.SearchParametersHNSW(sel=selector, efSearch=ef)
    faiss_name = f"faiss sel ef={ef}"
    plans: dict[str, int] = {}
    stages: dict[str, list[float]] = {}
    violations = 0

    def engine_filtered(q: NDArray[np.float32]) -> list[int]:
        nonlocal violations
        result = engine.search(Query(vector=q, vector_space="image", filters=filters,
                                     limit=LIMIT))
        plans[result.plan] = plans.get(result.plan, 0) + 1
        for stage, stage_ms in result.stage_ms.items():
            stages.setdefault(stage, []).append(stage_ms)
        found = hit_items(result)
        violations += sum(1 for i in found if i not in passing_set)
        return found

    fresh = iter(range(1, 1 << 30))
    nudge = 1e-5 * 1000.0 / n  # far under half a price step: the same items pass

    def engine_cold(q: NDArray[np.float32]) -> list[int]:
        # A filter the catalog has not seen before (its filter cache cannot answer): what
        # the first query of a new filter costs.
        cold = Filters(price_max=price_max + nudge * next(fresh))
        return hit_items(engine.search(Query(vector=q, vector_space="image", filters=cold,
                                             limit=LIMIT)))

    def engine_unfiltered(q: NDArray[np.float32]) -> list[int]:
        return hit_items(engine.search(Query(vector=q, vector_space="image", limit=LIMIT)))

    def faiss_filtered(q: NDArray[np.float32]) -> list[int]:
        _, found = bare.search(q[None, :], LIMIT, params=params)
        return [int(internal_to_item[v]) for v in found[0] if v >= 0]

    def numpy_filtered(q: NDArray[np.float32]) -> list[int]:
        sims = subset @ q
        top = np.argpartition(-sims, LIMIT)[:LIMIT] if len(sims) > LIMIT \
            else np.arange(len(sims))
        return passing[top[np.argsort(-sims[top])]].tolist()

    methods: dict[str, Callable[[NDArray[np.float32]], list[int]]] = {
        "engine filtered": engine_filtered, "engine filtered, new filter": engine_cold,
        "engine unfiltered": engine_unfiltered,
        faiss_name: faiss_filtered, "numpy exact": numpy_filtered}
    for q in warmup:
        for fn in methods.values():
            fn(q)
    plans.clear()
    stages.clear()
    violations = 0
    order_rng = np.random.default_rng(seed + 11)
    # the index methods take turns (never on a query another has just run, see
    # common.take_turns); numpy in a pass of its own
    latencies, answers = take_turns(
        {name: (lambda i, fn=fn: fn(queries[i])) for name, fn in methods.items()
         if name != "numpy exact"}, len(queries), order_rng)
    scan = take_turns({"numpy exact": lambda i: numpy_filtered(queries[i])}, len(queries),
                      order_rng)
    latencies.update(scan[0])
    answers.update(scan[1])
    recalls = {name: [recall(found[:LIMIT], truth_all[row] if name == "engine unfiltered"
                             else truth[row]) for row, found in enumerate(found_all)]
               for name, found_all in answers.items()}
    stats = {name: summary(ms, recalls[name]) for name, ms in latencies.items()}
    filtered = np.asarray(latencies["engine filtered"])
    cold = np.asarray(latencies["engine filtered, new filter"])
    unfiltered = np.asarray(latencies["engine unfiltered"])
    return {"fraction": fraction, "passing": count, "price_max": price_max,
            "plans": plans, "engine_ef_search": engine_ef(settings, n, count),
            "filter_violations": violations,
            "stage_p50_ms": {s: median(v) for s, v in stages.items()},
            "methods": stats,
            "ratio_filtered_over_unfiltered": float(np.median(filtered / unfiltered)),
            "ratio_new_filter_over_unfiltered": float(np.median(cold / unfiltered)),
            "sweep": ef_sweep(bare, selector, internal_to_item, queries[:SWEEP_QUERIES],
                              truth[:SWEEP_QUERIES]),
            "breakdown": breakdown(engine, bare, item_to_internal[passing], internal_to_item,
                                   filters, queries[:BREAKDOWN_QUERIES],
                                   truth[:BREAKDOWN_QUERIES])}


def ef_sweep(bare: Any, selector: Any, internal_to_item: NDArray[np.int64],
             queries: NDArray[np.float32], truth: NDArray[np.int64]) -> list[dict[str, Any]]:
    """Recall and p50 of the bare index with the selector at several efSearch values."""
    out = []
    for ef in SWEEP_EF:
        params = faiss.SearchParametersHNSW(sel=selector, efSearch=ef)
        ms, recalls = [], []
        for row, q in enumerate(queries):
            t0 = time.perf_counter_ns()
            _, found = bare.search(q[None, :], LIMIT, params=params)
            ms.append((time.perf_counter_ns() - t0) / 1e6)
            items = [int(internal_to_item[v]) for v in found[0] if v >= 0]
            recalls.append(recall(items, truth[row]))
        out.append({"ef_search": ef, **summary(ms, recalls)})
    return out


def breakdown(engine: Engine, bare: Any, internal: NDArray[np.int64],
              internal_to_item: NDArray[np.int64], filters: Filters,
              queries: NDArray[np.float32], truth: NDArray[np.int64]) -> dict[str, float]:
    """p50 ms of the pieces of a filtered query, and of the alternatives to them.

    ``filter_keys``: the catalog's filter query as the engine runs it; ``filter SQL via
    index``: the same WHERE clause without ``ORDER BY key`` (which makes SQLite scan the
    table instead of using the column's index), keys sorted by numpy afterwards;
    ``candidates``: the executor's ANN stage for a 10-result page (its plan included);
    ``exact from catalog``: scoring the passing items from vectors read out of SQLite,
    as the executor's exact-subset plan does; ``exact from index``: scoring them from the
    HNSW index's own in-memory storage (``reconstruct_batch``); ``postfilter + SQL
    check``: an unfiltered walk for the executor's over-fetch (k·n/passing·1.5), then the
    WHERE clause asked of those candidates only (``key IN (...)``), so no per-query work
    grows with the number of passing items (its recall@10 is reported beside it)."""
    space = engine.spaces["image"]
    where, params = filter_sql(filters)
    reader = sqlite3.connect(f"file:{engine.directory / 'catalog.sqlite3'}?mode=ro", uri=True)
    keys = engine.catalog.filter_keys(filters)
    k = fetch_size(0, LIMIT)
    internal = np.sort(internal)
    over = int(np.ceil(k * len(space) / max(1, len(keys)) * 1.5))
    walk = faiss.SearchParametersHNSW(efSearch=max(engine.settings.hnsw_ef_search, over))
    post_recalls: list[float] = []

    def top(sims: NDArray[np.float32]) -> NDArray[np.int64]:
        return np.argpartition(-sims, k)[:k] if len(sims) > k else np.arange(len(sims))

    def from_catalog(q: NDArray[np.float32]) -> NDArray[np.int64]:
        _, vectors = space.vectors_of_keys(keys)
        return top(vectors @ q)

    def from_index(q: NDArray[np.float32]) -> NDArray[np.int64]:
        return top(bare.storage.reconstruct_batch(internal) @ q)

    def postfilter(q: NDArray[np.float32]) -> list[int]:
        _, found = bare.search(q[None, :], over, params=walk)
        # Items were written in order into a fresh catalog, so item i has key i + 1.
        ranked = (internal_to_item[found[0][found[0] >= 0]] + 1).tolist()
        passing = {r[0] for r in reader.execute(
            f"SELECT key FROM items WHERE key IN ({', '.join('?' * len(ranked))}) "
            f"AND {where}", [*ranked, *params])}
        return [key - 1 for key in ranked if key in passing][:LIMIT]

    pieces: dict[str, Callable[[NDArray[np.float32]], object]] = {
        "filter_keys": lambda q: engine.catalog.filter_keys(filters),
        "filter SQL via index": lambda q: np.sort(np.fromiter(
            (r[0] for r in reader.execute(f"SELECT key FROM items WHERE {where}", params)),
            np.int64)),
        "candidates": lambda q: candidates(Signal("image", space, q), k, keys, None),
    }
    if len(keys) <= STORAGE_EXACT_MAX:
        pieces["exact from catalog"] = from_catalog
        pieces["exact from index"] = from_index
    if over <= POSTFILTER_MAX:
        pieces["postfilter + SQL check"] = postfilter
    times: dict[str, list[float]] = {name: [] for name in pieces}
    order_rng = np.random.default_rng(len(keys))
    try:
        for row, q in enumerate(queries):
            for name in order_rng.permutation(list(pieces)).tolist():
                t0 = time.perf_counter_ns()
                found = pieces[name](q)
                times[name].append((time.perf_counter_ns() - t0) / 1e6)
                if name == "postfilter + SQL check":
                    post_recalls.append(recall(cast(list[int], found), truth[row]))
    finally:
        reader.close()
    out = {name: median(ms) for name, ms in times.items()}
    if post_recalls:
        out[f"postfilter recall@{LIMIT}"] = float(np.mean(post_recalls))
    return out


def internal_mapping(engine: Engine, n: int) -> tuple[Any, NDArray[np.int64], NDArray[np.int64]]:
    """The bare HNSW index and its internal ids <-> item indices, both ways."""
    space = engine.spaces["image"]
    wrapper: Any = space.index
    bare = getattr(wrapper, "index", None)
    id_to_label = getattr(wrapper, "_id_to_label", None)
    if bare is None or id_to_label is None:
        sys.exit(f"expected the engine's HNSW wrapper, got {type(wrapper).__name__}")
    # Items were written in order into a fresh catalog, so key k is item k - 1.
    internal_to_item = space.vid_key[np.asarray(id_to_label, np.int64)] - 1
    item_to_internal = np.full(n, -1, np.int64)
    item_to_internal[internal_to_item] = np.arange(len(internal_to_item))
    if (item_to_internal < 0).any() or engine.catalog.key_of(item_id(n - 1)) != n:
        sys.exit("collection does not hold items 0..n-1 in order; rebuild without --reuse")
    return bare, item_to_internal, internal_to_item


def plot(results: dict[str, Any], path: Path) -> None:
    rows = results["selectivities"]
    fractions = [100 * r["fraction"] for r in rows]
    names = list(rows[0]["methods"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name in names:
        left.plot(fractions, [r["methods"][name][f"recall@{LIMIT}"] for r in rows], "o-",
                  label=name)
        right.plot(fractions, [r["methods"][name]["p50_ms"] for r in rows], "o-", label=name)
    left.axhline(RECALL_TARGET, color="grey", linestyle="--", linewidth=1, label="target")
    left.set_ylabel(f"recall@{LIMIT}")
    right.set_ylabel("p50 latency (ms)")
    right.set_yscale("log")
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xticks(fractions, [f"{f:g}" for f in fractions])
        ax.minorticks_off()
        ax.set_xlabel("items passing the filter (%)")
        ax.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=8)
    fig.suptitle(f"Filtered search, {results['n']:,} × 512-d clustered, "
                 f"{results['queries']} held-out queries")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(results: dict[str, Any]) -> None:
    rows = []
    for r in results["selectivities"]:
        for name, m in r["methods"].items():
            plan = ", ".join(r["plans"]) if name == "engine filtered" else ""
            rows.append([f"{100 * r['fraction']:g} %", r["passing"], name, m["p50_ms"],
                         m["p99_ms"], m[f"recall@{LIMIT}"], plan])
    print(table(["selectivity", "items", "method", "p50 ms", "p99 ms", f"recall@{LIMIT}",
                 "plan"], rows))
    print()
    targets = []
    for r in results["selectivities"]:
        rec = r["methods"]["engine filtered"][f"recall@{LIMIT}"]
        ratio = r["ratio_filtered_over_unfiltered"]
        cold = r["ratio_new_filter_over_unfiltered"]
        targets.append([f"{100 * r['fraction']:g} %", rec,
                        "met" if rec >= RECALL_TARGET else "MISSED", f"{ratio:.2f}×",
                        "met" if ratio <= RATIO_TARGET else "MISSED", f"{cold:.2f}×",
                        "met" if cold <= RATIO_TARGET else "MISSED",
                        r["engine_ef_search"] or "exact", r["filter_violations"],
                        ", ".join(f"{s} {v:.2f}" for s, v in r["stage_p50_ms"].items())])
    print(f"Targets: engine filtered recall@{LIMIT} ≥ {RECALL_TARGET}; filtered ÷ unfiltered "
          f"≤ {RATIO_TARGET:g}× (median of per-query ratios)")
    print(table(["selectivity", "recall", "recall target", "filtered ÷ unfiltered",
                 "latency target", "new filter ÷ unfiltered", "latency target", "engine ef",
                 "hits failing filter", "stage p50 ms"],
                targets))
    print()
    sweep_rows = [[f"{100 * r['fraction']:g} %", s["ef_search"], s["p50_ms"], s["p99_ms"],
                   s[f"recall@{LIMIT}"]]
                  for r in results["selectivities"] for s in r["sweep"]]
    names = list(dict.fromkeys(n for r in results["selectivities"] for n in r["breakdown"]))
    print(f"Where a filtered query's time goes, p50 ms ({BREAKDOWN_QUERIES} queries; see "
          f"breakdown() for what each piece is)")
    print(table(["selectivity", *names],
                [[f"{100 * r['fraction']:g} %", *(r["breakdown"].get(n, float("nan"))
                                                   for n in names)]
                 for r in results["selectivities"]]))
    print()
    print(f"Bare HNSW + IDSelectorBatch by efSearch ({SWEEP_QUERIES} queries)")
    print(table(["selectivity", "efSearch", "p50 ms", "p99 ms", f"recall@{LIMIT}"],
                sweep_rows))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="vectors in the collection")
    parser.add_argument("--queries", type=int, default=300,
                        help="timed held-out queries per selectivity")
    parser.add_argument("--warmup", type=int, default=30,
                        help="untimed held-out queries per selectivity, run first")
    parser.add_argument("--seed", type=int, default=0,
                        help="seeds the vectors, the prices and the method order")
    parser.add_argument("--batch", type=int, default=2000, help="items per commit when building")
    parser.add_argument("--blas-threads", type=int, default=1,
                        help="BLAS threads for numpy (the engine's exact scoring and the "
                             "numpy peer); 0 leaves the library default. One matches the "
                             "engine's one FAISS thread per query and keeps a shared "
                             "machine's noise out of small matrix products")
    parser.add_argument("--reuse", action="store_true",
                        help="keep a collection built earlier with the same --n and --seed")
    args = parser.parse_args(argv)
    if args.blas_threads > 0:
        threadpool_limits(limits=args.blas_threads, user_api="blas")

    info = machine()
    print(f"machine: {machine_line(info)}")
    load_before = load_average()
    x, held_out, source = load_vectors(args.n, args.queries + args.warmup, args.seed)
    warmup, queries = held_out[:args.warmup], held_out[args.warmup:]
    prices = prices_for(args.n, args.seed)
    directory = DATA_DIR / f"filters-{args.n}-s{args.seed}"
    stamp = directory / ".complete"
    index_s = None
    if args.reuse and stamp.exists():
        catalog_s = float(stamp.read_text())
        print(f"collection: reusing {directory} (written in {catalog_s:.1f} s)")
    else:
        catalog_s = build_collection(x, prices, directory, args.batch)
        # written with a flat index (fast appends); the next open builds HNSW from the catalog
        (directory / "indexes" / "image.faiss").unlink(missing_ok=True)
        print(f"collection: {args.n:,} items written through Engine.commit in {catalog_s:.1f} s "
              f"into {directory}", flush=True)
    started = time.perf_counter()
    engine = Engine.open(directory, settings_for("hnsw"))
    if not stamp.exists():
        index_s = time.perf_counter() - started
        print(f"HNSW index built in {index_s:.1f} s", flush=True)
    try:
        if engine.spaces["image"].index.kind != "hnsw":
            sys.exit(f"expected an hnsw index, the engine has {engine.spaces['image'].index.kind}")
        engine.warm()  # result-page fields and filter columns in memory before any timing
        bare, item_to_internal, internal_to_item = internal_mapping(engine, args.n)
        stamp.write_text(f"{catalog_s}")
        truth_all = exact_top(x, queries, LIMIT)
        results: dict[str, Any] = {
            "benchmark": "filters", "command": command_line(), "date": now(), "machine": info,
            "vectors": source, "n": args.n, "dim": int(x.shape[1]), "queries": len(queries),
            "warmup": len(warmup), "limit": LIMIT, "catalog_build_s": catalog_s,
            "index_build_s": index_s, "hnsw_m": engine.settings.hnsw_m,
            "hnsw_ef_search": engine.settings.hnsw_ef_search,
            "faiss_threads": faiss.omp_get_max_threads(), "blas_threads": args.blas_threads,
            "settings": {"result_cache_size": 0, "log_searches": False},
            "selectivities": []}
        for fraction in SELECTIVITIES:
            print(f"{100 * fraction:g} %: querying ...", flush=True)
            results["selectivities"].append(measure_selectivity(
                engine, bare, item_to_internal, internal_to_item, x, prices, queries, warmup,
                truth_all, fraction, args.seed))
    finally:
        engine.close()

    print()
    print(f"Filtered similar-by-vector, {args.n:,} × {x.shape[1]}-d clustered unit vectors, "
          f"limit {LIMIT}, {len(queries)} held-out queries after {len(warmup)} warm-up, "
          f"HNSW M={results['hnsw_m']} efSearch={results['hnsw_ef_search']}")
    report(results)
    load_after = load_average()
    results["load_average"] = {"before": load_before, "after": load_after}
    print(f"load average (1, 5, 15 min) before: {load_before}, after: {load_after}")
    path = write_results(f"filters-{args.n}", results)
    picture = RESULTS_DIR / f"filters-{args.n}.png"
    plot(results, picture)
    print(f"\nwrote {path} and {picture}")


if __name__ == "__main__":
    main()
