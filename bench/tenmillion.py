"""10M vectors on one box: the engine (catalog + vector files + compressed index) at scale.

``make bench-10m`` runs ``--n 10000000``; ``--n 1000000`` is the same run at 1M. Three
phases, each in a process of its own (this script re-invoked with ``--phase``), each
resumable: a killed run started again goes on where it stopped.

1. ``write``: ``--n`` clustered 512-d vectors (``bench/vectors.py``'s generator, chunk by
   chunk from their seeded streams, the next chunk made on a thread while this one is
   written: the base is never held whole, nor saved) written as items through
   ``Catalog.upsert_many`` in one transaction per 50,000 items: the catalog writes of
   ``Engine.commit`` without applying each batch to an index (the index is built once,
   in phase 2). Vectors go to the space's vector file in float16 (``vector_dtype``),
   1 KB per vector. Resumes at the catalog's item count.
2. ``index``: ``Engine.open`` with ``IMGSEARCH_MEMORY_BUDGET_MB``-style settings
   (``memory_budget_mb``, default 4096, ``hnsw_max`` 2M): ``auto`` picks the kind, the
   engine trains it on a random sample (IVF k-means, progress in the log) and adds every
   vector from the vector file; the index file is saved. Skipped when a valid one exists.
3. ``serve``: a fresh process opens the collection (time reported), then measures with
   one FAISS thread: ``engine.search(Query(vector=q, vector_space="image", limit=10))``
   (by vector: held-out queries) and ``engine.similar(id, limit=10)`` (by id: random base
   items), and the bare FAISS index inside the engine with the engine's nprobe/efSearch,
   k = 10, no re-scoring — the methods take turns per query. Recall@10 against exact
   ground truth from one chunked exact scan of the regenerated float32 base for both
   query sets (cached in the work folder: a scan made ahead of the phase is used);
   numpy exact (``X @ q`` + ``argpartition``) on the first 1M rows (float32, generated
   in memory). Resident memory: ``VmRSS`` after open and ``Engine.warm`` (which reads the
   vector file into the page cache when it fits in half the available memory) and after
   the queries, and the peak
   counted from the end of the open (``clear_refs``), split into the process's own pages
   (``RssAnon``) and mapped file pages (``RssFile``: the vector file is read by row with
   ``pread``, so its pages stay in the page cache, out of the RSS).

``--nlist L`` builds the index with ``L`` lists in place of ``index/auto.ivf_lists``'s
count (``--n 2000000 --nlist 400 --index-type ivfpq``: the 5,000 vectors a list of 10M's
2,000 lists), in a work folder of its own. ``--again serve`` measures a finished build
again (a fresh serving process; the catalog, vector file, index and ground truth kept).

``--render RESULTS`` prints the report of a finished run from its results file (what
BENCHMARKS.md shows).

Writes ``bench/results/tenmillion-<n>.json``. Work files: ``bench/data/tenmillion-<n>/``
(about 1.6 KB per vector: catalog, vector file, index).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

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
from peers import _engine_settings, item_id, log, peak_mb, reset_peak, rss_mb
from vectors import CHUNK, DIM, _clustered_points, _clusters, _generate_queries

SEED = 7
WRITE_BATCH = 50_000


def base_chunks(n: int, first_row: int = 0) -> Any:
    """(start row, float32 block) of the base, regenerated chunk by chunk; the next chunk
    is made on a thread while the caller works on this one (numpy lets go of the GIL)."""
    clusters = _clusters(n, SEED)

    def make(chunk: int, start: int) -> NDArray[np.float32]:
        rows = min(CHUNK, n - start)
        return _clustered_points(clusters, np.random.default_rng([SEED, 1, chunk]), rows)

    todo = [(chunk, start) for chunk, start in enumerate(range(0, n, CHUNK))
            if start + CHUNK > first_row]
    with ThreadPoolExecutor(1) as pool:
        ahead = pool.submit(make, *todo[0]) if todo else None
        for at, (_chunk, start) in enumerate(todo):
            assert ahead is not None
            block = ahead.result()
            ahead = pool.submit(make, *todo[at + 1]) if at + 1 < len(todo) else None
            yield start, block


def base_rows(n: int, rows: NDArray[np.int64]) -> NDArray[np.float32]:
    """The base vectors at ``rows`` (sorted), without making the rest: each chunk's
    random draws are repeated (cheap), the products made for the rows wanted alone (the
    same numbers as ``base_chunks`` but for the last bits of a sum's rounding)."""
    clusters = _clusters(n, SEED)
    out = np.empty((len(rows), DIM), np.float32)
    for chunk, start in enumerate(range(0, n, CHUNK)):
        inside = np.flatnonzero((rows >= start) & (rows < start + CHUNK))
        if not len(inside):
            continue
        size = min(CHUNK, n - start)
        rng = np.random.default_rng([SEED, 1, chunk])  # as _clustered_points draws
        labels = rng.choice(len(clusters.weights), size=size, p=clusters.weights)
        noise = rng.standard_normal((size, DIM), dtype=np.float32) * clusters.noise_scale
        at = rows[inside] - start
        x = clusters.centres[labels[at]] + clusters.spreads[labels[at], None] * noise[at]
        x = x @ clusters.rotation.T + clusters.mean
        out[inside] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def settings(args: argparse.Namespace) -> Any:
    return _engine_settings(DIM).replace(
        index_type=args.index_type, memory_budget_mb=args.memory_budget_mb, hnsw_max=2_000_000,
        vector_dtype="float16", row_cache_size=0, hit_cache_mb=64, log_searches=False,
        search_threads=1)


# -- phase 1 --------------------------------------------------------------------------------
def phase_write(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from imgsearch import Engine, Item
    from imgsearch.store.catalog import Catalog

    collection = work / "collection"
    if not (collection / "catalog.sqlite3").exists():  # the manifest names the space
        Engine.open(collection, settings(args).replace(index_type="flat")).close()
    # no index while writing (an index of the first items would take every later one)
    (collection / "indexes" / "image.faiss").unlink(missing_ok=True)
    catalog = Catalog(collection / "catalog.sqlite3", vector_dtype="float16")
    try:
        done = catalog.count()
        log(f"write: {done:,} of {args.n:,} items already written")
        started, written = time.perf_counter(), 0
        for start, block in base_chunks(args.n, done):
            for sub in range(0, len(block), WRITE_BATCH):
                first = start + sub
                part = block[sub:sub + WRITE_BATCH]
                if first + len(part) <= done:
                    continue
                skip = max(0, done - first)
                with catalog.transaction() as conn:
                    catalog.upsert_many(conn, [
                        (Item(id=item_id(row), title=f"vector {row}"),
                         {"image": part[row - first]})
                        for row in range(first + skip, first + len(part))])
                written += len(part) - skip
                rate = written / (time.perf_counter() - started)
                left = args.n - first - len(part)
                log(f"write: {first + len(part):,} items, {rate:,.0f}/s, "
                    f"{left / rate / 60:.0f} min left")
    finally:
        catalog.close()
    return {"write_s": time.perf_counter() - started, "written": written}


# -- phase 2 --------------------------------------------------------------------------------
def phase_index(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import logging

    from imgsearch import Engine

    logging.basicConfig(level=logging.INFO, format="  %(asctime)s %(message)s")
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    marks: dict[str, float] = {}

    class Marks(logging.Handler):  # when the build said it had trained, and had added all
        def emit(self, record: logging.LogRecord) -> None:
            text = record.getMessage()
            if "index trained in" in text:
                marks["trained"] = time.time()

    logging.getLogger("imgsearch").addHandler(Marks())
    if args.nlist:  # the list count of another size: index/auto.ivf_lists gives it
        import imgsearch.search.space as space_module

        space_module.ivf_lists = lambda n: args.nlist
    started, wall = time.perf_counter(), time.time()
    with Engine.open(work / "collection", settings(args)) as engine:
        kind = engine.spaces["image"].index.kind
        built_s = time.perf_counter() - started
        ready = time.time()
        log(f"index: {kind} ready in {built_s:.0f} s")
    result: dict[str, Any] = {"index_s": time.perf_counter() - started, "kind": kind,
                              "nlist": args.nlist or None}
    if "trained" in marks:
        result["train_s"] = marks["trained"] - wall
        result["add_s"] = ready - marks["trained"]  # and saving the index file
    return result


# -- phase 3 --------------------------------------------------------------------------------
def merge_top10(best_s: NDArray[np.float32], best_i: NDArray[np.int64],
                sims: NDArray[np.float32], start: int
                ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """The 10 best scores and rows of each query so far, with a chunk's scores (``sims``,
    its rows numbered from ``start``) merged in."""
    top = np.argpartition(-sims, 9, axis=1)[:, :10]
    all_s = np.concatenate([best_s, np.take_along_axis(sims, top, axis=1)], axis=1)
    all_i = np.concatenate([best_i, top + start], axis=1)
    keep = np.argsort(-all_s, axis=1, kind="stable")[:, :10]
    return np.take_along_axis(all_s, keep, axis=1), np.take_along_axis(all_i, keep, axis=1)


def ground_truth(args: argparse.Namespace, work: Path, sets: dict[str, NDArray[np.float32]],
                 exclude: dict[str, NDArray[np.int64]]) -> dict[str, NDArray[np.int64]]:
    """Exact top-10 row numbers of each set of queries (a set in ``exclude`` leaves out
    its query's own row), from one chunked scan of the regenerated base; cached."""
    paths = {name: work / f"truth-{name}-{len(q)}.npy" for name, q in sets.items()}
    if all(p.exists() for p in paths.values()):
        return {name: np.load(p) for name, p in paths.items()}
    queries = np.concatenate(list(sets.values()))
    own = np.full(len(queries), -1, np.int64)
    first = 0
    for name, q in sets.items():
        if name in exclude:
            own[first:first + len(q)] = exclude[name]
        first += len(q)
    best_s = np.full((len(queries), 10), -np.inf, np.float32)
    best_i = np.full((len(queries), 10), -1, np.int64)
    started = time.perf_counter()
    for start, block in base_chunks(args.n):
        sims = queries @ block.T
        inside = (own >= start) & (own < start + len(block))
        sims[np.flatnonzero(inside), own[inside] - start] = -np.inf
        best_s, best_i = merge_top10(best_s, best_i, sims, start)
        if start % (20 * CHUNK) == 0:
            done = start + len(block)
            spent = time.perf_counter() - started
            log(f"truth: {done:,} of {args.n:,} rows scanned, "
                f"{(args.n - done) * spent / done / 60:.0f} min left")
    found, first = {}, 0
    for name, q in sets.items():
        found[name] = best_i[first:first + len(q)]
        np.save(paths[name], found[name])
        first += len(q)
    return found


def recall(found: list[list[int]], truth: NDArray[np.int64]) -> float:
    hits = sum(len(set(f) & set(t.tolist())) for f, t in zip(found, truth, strict=True))
    return hits / truth.size


def phase_serve(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import faiss

    from imgsearch import Engine, Query
    from imgsearch.index.auto import rescore_depth
    from imgsearch.store.vectors import StoreFile

    faiss.omp_set_num_threads(1)
    rng = np.random.default_rng(11)
    queries = _generate_queries("clustered", args.n, args.queries, SEED)
    id_rows = np.sort(rng.choice(args.n, size=args.queries, replace=False))
    id_vectors = base_rows(args.n, id_rows)
    truths = ground_truth(args, work, {"vector": queries, "id": id_vectors}, {"id": id_rows})
    truth_vec, truth_id = truths["vector"], truths["id"]

    baseline = rss_mb()
    reset_peak()
    t0 = time.perf_counter()
    engine = Engine.open(work / "collection", settings(args), readonly=True)
    open_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    engine.warm()  # result-page fields, and the vector file into the page cache
    warm_s = time.perf_counter() - t0
    rss_open = rss_mb()
    reset_peak()
    space = engine.spaces["image"]
    wrapper = space.index
    bare = wrapper.index  # type: ignore[attr-defined]
    params: Any
    if wrapper.kind == "ivfpq":
        params = faiss.SearchParametersIVF(nprobe=engine.settings.ivf_nprobe)
    else:
        params = faiss.SearchParametersHNSW(efSearch=engine.settings.hnsw_ef_search)
    id_to_label = getattr(wrapper, "_id_to_label", None)

    def row_of_vid(vids: NDArray[np.int64]) -> list[int]:
        return [int(k) - 1 for k in space.keys_of(vids) if k >= 0]  # key k: row k-1

    def by_vector(i: int) -> list[int]:
        hits = engine.search(Query(vector=queries[i], vector_space="image", limit=10,
                                   min_confidence=0, collapse_duplicates=False)).hits
        return [int(h.id[1:]) for h in hits]

    def by_id(i: int) -> list[int]:
        hits = engine.similar(item_id(int(id_rows[i])), limit=10, min_confidence=0,
                              collapse_duplicates=False).hits
        return [int(h.id[1:]) for h in hits]

    def bare_faiss(i: int) -> list[int]:
        _scores, ids = bare.search(queries[i:i + 1], 10, params=params)
        found = ids[0][ids[0] >= 0]
        if id_to_label is not None:
            found = id_to_label[found]
        return row_of_vid(found)

    # the bare work the engine's answer needs: the same index asked for as many
    # candidates as the engine asks (index/auto.rescore_depth of a 64-result page), their
    # float16 rows read from the same vector file and scored exactly (numpy)
    fetch = rescore_depth(64, engine.settings.pq_rescore_factor, len(space),
                          wrapper.params.nlist, engine.settings.ivf_nprobe)
    # the engine's own reader of the file
    stored = engine.catalog.vector_files
    mapped = next(stored.file("image", spec) for spec in [StoreFile.from_json(
        engine.catalog.get_meta("vectors.image") or "")])

    def bare_rescored(i: int) -> list[int]:
        _scores, ids = bare.search(queries[i:i + 1], fetch, params=params)
        found = ids[0][ids[0] >= 0]
        if id_to_label is not None:
            found = id_to_label[found]
        picked = np.asarray(row_of_vid(found), np.int64)  # row r: slot r (written in order)
        exact = mapped.read(picked) @ queries[i]
        return picked[np.argsort(-exact)[:10]].tolist()

    methods = {"engine by vector": by_vector, "faiss (same index, k=10, no re-score)":
               bare_faiss, f"faiss k={fetch} + exact re-score (same index, same file)":
               bare_rescored, "engine similar-by-id": by_id}
    for i in range(min(20, args.queries)):  # warm-up: the first pages of the map
        for fn in methods.values():
            fn(i)
    times: dict[str, list[float]] = {m: [] for m in methods}
    found: dict[str, list[list[int]]] = {m: [] for m in methods}
    order = np.random.default_rng(3)
    for i in range(args.queries):
        for name in order.permutation(list(methods)):
            t = time.perf_counter_ns()
            answer = methods[str(name)](i)
            times[str(name)].append((time.perf_counter_ns() - t) / 1e6)
            found[str(name)].append(answer)
    rss_serve = rss_mb()
    serve_peak = peak_mb()
    rss_split = rss_parts_mb()
    info = engine.info()
    engine.close()
    truths = {name: truth_id if "by-id" in name else truth_vec for name in methods}
    table_rows = {m: {"p50_ms": median(times[m]), "p99_ms": percentile(times[m], 99),
                      "recall_at_10": recall(found[m], truths[m])} for m in methods}
    ratio = median([e / f for e, f in zip(times["engine by vector"],
                                          times["faiss (same index, k=10, no re-score)"],
                                          strict=True)])
    ratio_rescored = median([e / f for e, f in zip(
        times["engine by vector"], times[next(m for m in methods if "re-score (" in m)],
        strict=True)])
    table_rows["numpy exact (1M subset, float32)"] = numpy_subset(args, queries)
    return {"kind": wrapper.kind, "open_s": open_s, "warm_s": warm_s, "baseline_mb": baseline,
            "rss_after_open_mb": rss_open, "rss_after_queries_mb": rss_serve,
            "serve_peak_mb": serve_peak, "rss_parts_after_queries_mb": rss_split,
            "methods": table_rows, "engine_over_faiss": ratio,
            "engine_over_faiss_rescored": ratio_rescored,
            "info_image": info["spaces"]["image"]}


def rss_parts_mb() -> dict[str, float]:
    """This process's resident memory by kind (``/proc/self/status``): its own pages
    (anonymous) and the pages of files it maps (the vector file: clean page cache that
    the kernel can take back and read again)."""
    parts = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("RssAnon", "RssFile", "RssShmem"):
            parts[name] = int(value.split()[0]) / 1024
    return parts


def numpy_subset(args: argparse.Namespace, queries: NDArray[np.float32]) -> dict[str, Any]:
    from threadpoolctl import threadpool_limits

    subset = min(args.n, 1_000_000)
    base = np.empty((subset, DIM), np.float32)
    for start, block in base_chunks(args.n):
        if start >= subset:
            break
        base[start:start + len(block)] = block[:subset - start]
    times = []
    with threadpool_limits(1):
        for q in queries[:min(50, len(queries))]:
            t = time.perf_counter_ns()
            sims = base @ q
            np.argpartition(-sims, 9)[:10]
            times.append((time.perf_counter_ns() - t) / 1e6)
    return {"p50_ms": median(times), "p99_ms": percentile(times, 99), "recall_at_10": 1.0,
            "rows": subset}


def serve_parts(serve: dict[str, Any]) -> str:
    parts = serve.get("rss_parts_after_queries_mb", {})
    return (f"{parts.get('RssAnon', 0):,.0f} MB the process's own, "
            f"{parts.get('RssFile', 0):,.0f} MB mapped file pages (page cache)")


# -- driver ---------------------------------------------------------------------------------
def disk_mb(path: Path) -> dict[str, float]:
    parts = {"catalog": sum(p.stat().st_size for p in path.glob("catalog.sqlite3*")),
             "vector files": sum(p.stat().st_size for p in (path / "vectors").glob("*")),
             "indexes": sum(p.stat().st_size for p in (path / "indexes").glob("*"))}
    return {k: v / 1e6 for k, v in parts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--memory-budget-mb", type=int, default=4096)
    parser.add_argument("--index-type", default="auto",
                        help="auto (chosen by size and budget) or a kind, as index_type")
    parser.add_argument("--nlist", type=int, default=0,
                        help="IVF lists of the index (0: index/auto.ivf_lists by size); "
                             "--n 2000000 --nlist 400 has 10M's 5,000 vectors a list")
    parser.add_argument("--fresh", action="store_true", help="start over")
    parser.add_argument("--again", action="append", default=[],
                        choices=("index", "serve"), help="run a finished phase again")
    parser.add_argument("--phase", choices=("write", "index", "serve"), help=argparse.SUPPRESS)
    parser.add_argument("--render", type=Path, metavar="RESULTS",
                        help="print the report of a finished run from its results file")
    args = parser.parse_args()
    if args.render:
        print(render(json.loads(args.render.read_text())))
        return
    name = f"tenmillion-{args.n}" + (f"-nlist{args.nlist}" if args.nlist else "")
    work = DATA_DIR / name
    if args.phase:
        result = {"write": phase_write, "index": phase_index, "serve": phase_serve}[
            args.phase](args, work)
        (work / f"{args.phase}.json").write_text(json.dumps(result, default=float))
        return
    if args.fresh:
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    state: dict[str, Any] = {}
    load_before = load_average()
    for phase in ("write", "index", "serve"):
        done = work / f"{phase}.json"
        previous = json.loads(done.read_text()) if done.exists() else None
        if previous and previous.get("complete") and phase not in args.again:
            state[phase] = previous
            continue
        if phase == "index" and "index" in args.again:
            (work / "collection" / "indexes" / "image.faiss").unlink(missing_ok=True)
        print(f"{phase} ...", flush=True)
        started = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--phase", phase, "--n", str(args.n),
                        "--queries", str(args.queries), "--memory-budget-mb",
                        str(args.memory_budget_mb), "--index-type", args.index_type,
                        "--nlist", str(args.nlist)],
                       check=True)
        state[phase] = json.loads(done.read_text())
        state[phase]["wall_s"] = time.perf_counter() - started
        state[phase]["complete"] = True
        if phase == "write" and previous:  # resumed: count the earlier part's time too
            state[phase]["write_s"] += previous.get("write_s", 0.0)
        done.write_text(json.dumps(state[phase]))
    results = {
        "n": args.n, "nlist": args.nlist or None, "memory_budget_mb": args.memory_budget_mb,
        "state": state,
        "disk_mb": disk_mb(work / "collection"), "machine": machine(),
        "command": command_line(), "date": now(),
        "load_average": {"before": load_before, "after": load_average()}}
    print(render(results))
    write_results(name, results)


def render(results: dict[str, Any]) -> str:
    """The report of a run (what BENCHMARKS.md shows) from its results file."""
    state, disk = results["state"], results["disk_mb"]
    serve = state["serve"]
    lines = [f"{results['n']:,} × {DIM}-d clustered vectors, {serve['kind']} index "
             f"(memory budget {results.get('memory_budget_mb', 4096)} MB), float16 vector "
             f"file; {results['date']}", machine_line(results["machine"]),
             f"load average before {results['load_average']['before']}, after "
             f"{results['load_average']['after']}", "",
             table(["method", "p50 ms", "p99 ms", "recall@10"],
                   [[m, f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}", f"{r['recall_at_10']:.3f}"]
                    for m, r in serve["methods"].items()]), "",
             f"engine by vector ÷ bare faiss (median of per-query ratios): "
             f"{serve['engine_over_faiss']:.2f}× against k=10 without re-scoring, "
             f"{serve['engine_over_faiss_rescored']:.2f}× against the same candidates "
             f"re-scored from the same file"]
    split = ""
    if "train_s" in state["index"]:
        split = (f" (sample and training {state['index']['train_s'] / 60:.1f} min, adding "
                 f"{state['index']['add_s'] / 60:.1f} min)")
    lines += [
        f"build: write {state['write']['write_s'] / 60:.1f} min, index "
        f"{state['index']['index_s'] / 60:.1f} min{split}; open {serve['open_s']:.1f} s"
        + (f", Engine.warm {serve['warm_s']:.1f} s" if "warm_s" in serve else ""),
        "disk MB: " + ", ".join(f"{k} {v:,.0f}" for k, v in disk.items()),
        f"serving RSS: {serve['rss_after_open_mb']:,.0f} MB after open"
        + (" and warm, " if "warm_s" in serve else ", ") +
        f"{serve['rss_after_queries_mb']:,.0f} MB after the queries (peak "
        f"{serve['serve_peak_mb']:,.0f} MB; the bare interpreter and the ground truth "
        f"before the open {serve['baseline_mb']:,.0f} MB); index "
        f"{serve['info_image']['index_resident_bytes'] / 1e6:,.0f} MB by its own count, "
        f"vector file {serve['info_image']['vector_file']['resident_bytes'] / 1e6:,.0f} "
        f"MB mapped in; after the queries {serve_parts(serve)}",
        f"command: {results['command']}"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
