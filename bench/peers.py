"""Vector search side by side: imgsearch against FAISS, hnswlib, numpy and Milvus Lite.

Every method searches the same base vectors with the same held-out query vectors
(``bench/vectors.py``: clustered synthetic embeddings by default), k = 10, inner product
on unit vectors; recall@10 is measured against exact search (``vectors.exact_topk``): a
returned row counts if it is in the exact top 10 or ties with the 10th (similarity within
1e-5, ``vectors.with_ties``: real image sets hold identical pictures).

- ``imgsearch similar-by-vector``: ``engine.search(Query(vector=q, vector_space="image",
  limit=10))`` on a collection written through ``Engine.commit`` (a bench-only encoder
  gives the image space the data's dimension; the vectors are written directly). The
  index is the engine's HNSW (``Settings(index_type="hnsw")``, default M, efConstruction,
  efSearch); the call includes everything the engine does: result-cache key, ANN with
  its 64-candidate page block, confidence, metadata join and the search log.
- ``imgsearch similar-by-id``: ``engine.similar(item_id, limit=10)`` for base items (a
  separate set of rows; ground truth excludes the item itself), against
  ``faiss k=11 (same index)``: the bare FAISS index searching that item's vector.
- ``faiss (same index)``: the bare ``IndexHNSWFlat`` inside the engine, k = 10, with the
  engine's efSearch.
- ``hnswlib``: ``hnswlib.Index(space="ip")`` with the engine's M, efConstruction and ef.
- ``numpy exact``: ``base @ q`` + ``argpartition`` one query at a time on one BLAS thread
  (``--exact-queries`` of them), and batched (blocks of queries, every core).
- ``milvus-lite``: ``pymilvus.MilvusClient`` on a local file, HNSW / IP with the same M,
  efConstruction and ef, ids only in the answers (``output_fields=["id"]``), inserted in
  batches of 5,000 rows, flushed, index awaited, loaded (all of it "build s"). Milvus Lite
  runs inside this process (its memory counts in the worker's). The recall at ef = 10 is
  reported to show that the HNSW parameters take effect. Its single-query latency grows
  about linearly with n on this machine (0.14 s at 100k, 0.33 s at 200k) and its peak
  memory by ~0.55 GB per 100k vectors, so it is skipped above ``--milvus-max-n``
  (200k by default; about 15 minutes and 7 GB at 1M).
- ``faiss IVF-PQ + refine`` (``--ivf``): the engine's IVF-PQ recipe (nlist ≈ 4·√n,
  d/4 fast-scan sub-quantisers of 4 bits), candidates re-scored exactly
  (``IndexRefineFlat``, k_factor = ``pq_rescore_factor``).

Process layout and timing protocol. Each method family runs in a fresh worker process
(this script re-invoked with a hidden ``--worker``), one after the other: the collection
writer, the engine (engine by vector and by id, and the bare FAISS index inside it),
hnswlib, numpy, Milvus Lite, IVF-PQ. Inside the engine worker the four single-query
methods take turns in a fresh random order every round, so machine noise weighs on
each alike; no method is given a query another has just answered (the second answer
would find its graph nodes in the CPU caches and run ~2x faster, see ``take_turns``),
and "engine ÷ faiss" is the median over queries of each query's two cold timings. The other workers
cannot be interleaved with the engine; each runs ``--warmup`` untimed queries, then its
timed queries one at a time (latency: ``time.perf_counter_ns`` around the search call
only; p50/p99 over queries). Single-query timings use one thread where the library lets
it be set (FAISS ``omp_set_num_threads(1)``, hnswlib ``set_num_threads(1)``, numpy via
threadpoolctl); Milvus Lite runs its own threads. Batch throughput is one call with every
query and every core, the median of ``--repeats`` runs; the engine has no batch call, so
its figure is sequential single queries per second.

Memory, from the kernel's peak resident set (``VmHWM`` in ``/proc``, summed over the
worker and any child processes). "peak MB": the whole worker, build and queries: index,
library working memory and interpreter (a bare worker with its imports is 40–90 MB,
reported as ``baseline_mb``). "serve MB": the same peak counted from the end of the build
(the counter is restarted through ``/proc/self/clear_refs``): the index as held for
serving plus the queries. Base vectors are memory-mapped from the ``.npy`` and read in
chunks whose pages are released after each chunk, so the input array does not count —
except for numpy exact, which needs the whole base in memory and copies it. The engine's
worker builds its HNSW index from the catalog, closes, and reopens: its "serve MB" is
that of ``Engine.open`` (time reported) and the queries. The index's own size is in the
notes: the engine's index file, FAISS' serialised size, hnswlib's file, Milvus' folder.

With ``--reuse`` the collection and the indexes saved by an earlier run with the same
data, n and seed are loaded instead of built, and the build times recorded then are
reported (the peak memory is then that of loading). Writes
``bench/results/peers-<data>-<n>.json`` and the plots ``peers-<data>-<n>.png`` (p50 and
batch throughput) and ``peers-<data>-<n>-curves.png`` (recall@10 against p50 latency
while efSearch / nprobe vary).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import io
import json
import mmap
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

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
    timed,
    write_results,
)
from vectors import NAMES, exact_topk, load_dataset, recall_at, with_ties

K = 10
WORKERS = ("engine", "hnswlib", "numpy", "milvus")
EF_CURVE = (16, 32, 48, 64, 96, 128, 192, 256)
ENGINE_EF_CURVE = (64, 96, 128, 192, 256)  # the engine never walks with ef under its 64-block
NPROBE_CURVE = (4, 8, 16, 32, 64, 128)
BUILD_CHUNK = 50_000
SCAN_WARMUP = 10
MILVUS_BATCH = 5_000
COLLECTION = "vectors"

ENGINE_VEC = "imgsearch similar-by-vector"
FAISS_VEC = "faiss (same index)"
ENGINE_ID = "imgsearch similar-by-id"
FAISS_ID = "faiss k=11 (same index)"
HNSWLIB = "hnswlib"
NUMPY = "numpy exact"
MILVUS = "milvus-lite"
IVFPQ = "faiss IVF-PQ + refine"


# -- process memory -----------------------------------------------------------------------
_T0 = time.perf_counter()


def log(message: str) -> None:
    """Progress of a worker, on stderr, with seconds since the process started."""
    print(f"  [{time.perf_counter() - _T0:7.1f} s] {message}", file=sys.stderr, flush=True)


def _status_kb(pid: int | str, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            found.append(int(child))
            found.extend(_descendants(int(child)))
    return found


def peak_mb() -> float:
    """Peak resident set of this process plus its children (a local server, say)."""
    me = os.getpid()
    return sum(_status_kb(p, "VmHWM") for p in [me, *_descendants(me)]) / 1024


def rss_mb() -> float:
    return _status_kb("self", "VmRSS") / 1024


def reset_peak() -> bool:
    """Restart the kernel's peak-RSS counter of this process (Linux ``clear_refs`` 5)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class Memory:
    """A worker's peak resident memory, split where its build ends and serving begins."""

    def __init__(self) -> None:
        self.baseline_mb = rss_mb()
        self.build_peak_mb = float("nan")
        self.rss_after_build_mb = float("nan")
        self.reset = False

    def built(self) -> None:
        self.build_peak_mb = peak_mb()
        self.rss_after_build_mb = rss_mb()
        self.reset = reset_peak()

    def report(self) -> dict[str, Any]:
        serve = peak_mb()
        return {"baseline_mb": self.baseline_mb, "build_peak_mb": self.build_peak_mb,
                "rss_after_build_mb": self.rss_after_build_mb, "serve_peak_mb": serve,
                "peak_mb": max(serve, self.build_peak_mb), "peak_reset": self.reset}


def release(array: NDArray[Any]) -> None:
    """Drop the resident pages of a memory-mapped array, so they do not count as ours."""
    handle = getattr(array, "_mmap", None)
    if isinstance(handle, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED"):
        handle.madvise(mmap.MADV_DONTNEED)


def chunks(base: NDArray[np.float32]) -> Any:
    for start in range(0, len(base), BUILD_CHUNK):
        block = np.ascontiguousarray(base[start:start + BUILD_CHUNK], dtype=np.float32)
        yield start, block
        release(base)


# -- shared measurement helpers -----------------------------------------------------------
def curve_point(plan: Plan, param: int, search: Callable[[NDArray[np.float32]], Any]
                ) -> dict[str, float]:
    """Recall@k and p50 of the curve queries, one at a time, at one search parameter."""
    q = plan.queries[:plan.curve_queries]
    ms: list[float] = []
    found: list[Sequence[int]] = []
    for vector in q:
        took, got = timed(search, vector)
        ms.append(took)
        found.append(got)
    return {"param": param, "recall": recall_at(found, plan.truth[:len(q)], K),
            "p50_ms": median(ms)}


def stats(ms: Sequence[float], found: Sequence[Sequence[int]], truth: NDArray[np.int64]
          ) -> dict[str, Any]:
    return {"recall": recall_at(found, truth[:len(found)], K), "p50_ms": median(ms),
            "p99_ms": percentile(ms, 99), "mean_ms": float(np.mean(ms)), "queries": len(ms)}


def batch_qps(fn: Callable[[], Any], count: int, repeats: int) -> tuple[float, Any]:
    """Queries per second of one batch call: the median of ``repeats`` runs."""
    runs = [timed(fn) for _ in range(max(1, repeats))]
    return count / (median([ms for ms, _ in runs]) / 1000), runs[-1][1]


def _faiss() -> Any:
    """faiss, untyped: its stubs miss the search-parameter classes."""
    import faiss

    return faiss


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        (os.cpu_count() or 1)


def serialized_mb(index: Any) -> float:
    """Size of a FAISS index written out, streamed to a file so no copy sits in memory."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "index.faiss"
        _faiss().write_index(index, str(path))
        return path.stat().st_size / 1e6


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


class Plan:
    """What a worker needs, read from the JSON file the parent wrote."""

    def __init__(self, path: Path) -> None:
        self.raw: dict[str, Any] = json.loads(path.read_text())
        r = self.raw
        self.n: int = r["n"]
        self.dim: int = r["dim"]
        self.seed: int = r["seed"]
        self.workdir = Path(r["workdir"])
        self.reuse: bool = r["reuse"]
        self.curves: bool = r["curves"]
        self.repeats: int = r["repeats"]
        self.base: NDArray[np.float32] = np.load(r["base_path"], mmap_mode="r")
        all_queries = np.load(r["queries_path"])
        warm = r["warmup"]
        self.warm_queries: NDArray[np.float32] = all_queries[:warm]
        self.queries: NDArray[np.float32] = np.ascontiguousarray(all_queries[warm:])
        id_rows = np.load(r["id_rows_path"])
        self.warm_rows: NDArray[np.int64] = id_rows[:warm]
        self.id_rows: NDArray[np.int64] = id_rows[warm:]
        self.truth: NDArray[np.int64] = np.load(r["truth_path"])
        self.truth_id: NDArray[np.int64] = np.load(r["truth_id_path"])
        self.curve_queries: int = min(r["curve_queries"], len(self.queries))
        self.settings: dict[str, int] = r["settings"]

    def state(self, name: str) -> dict[str, Any] | None:
        path = self.workdir / f"{name}.json"
        if self.reuse and path.exists():
            loaded: dict[str, Any] = json.loads(path.read_text())
            return loaded
        return None

    def save_state(self, name: str, state: dict[str, Any]) -> None:
        (self.workdir / f"{name}.json").write_text(json.dumps(state))


def settings_dict() -> dict[str, int]:
    from imgsearch import Settings

    s = Settings()
    return {"hnsw_m": s.hnsw_m, "hnsw_ef_construction": s.hnsw_ef_construction,
            "hnsw_ef_search": s.hnsw_ef_search, "ivf_nprobe": s.ivf_nprobe,
            "pq_rescore_factor": s.pq_rescore_factor}


# -- the engine ---------------------------------------------------------------------------
def _engine_settings(dim: int) -> Any:
    from imgsearch import Settings
    from imgsearch.encode.fake import FakeEncoder
    from imgsearch.encode.registry import register_encoder

    name = f"bench{dim}"

    class BenchEncoder(FakeEncoder):
        """A space of the data's dimension: vectors are written directly, never encoded."""

        model_id = f"bench{dim}-vectors"

        def __init__(self) -> None:
            super().__init__(dim=dim)

    BenchEncoder.name = name
    register_encoder(name, lambda settings: BenchEncoder())
    # No result cache: the batch pass and the curves ask the same queries again, and a
    # cached answer would time the cache, not the search.
    return Settings(index_type="hnsw", image_encoder=name, text_encoder="none",
                    result_cache_size=0)


def item_id(row: int) -> str:
    return f"v{row:07d}"


def worker_collection(plan: Plan) -> dict[str, Any]:
    """Write every base vector as an item through ``Engine.commit``."""
    from PIL import Image

    from imgsearch import Engine, Item
    from imgsearch.engine.pipeline import Prepared

    directory = plan.workdir / "collection"
    state = plan.state("collection")
    if state is not None and (directory / "catalog.sqlite3").exists():
        return {"catalog_s": state["catalog_s"], "reused": True}
    log("collection: removing an earlier one")
    shutil.rmtree(directory, ignore_errors=True)
    (plan.workdir / "engine.json").unlink(missing_ok=True)
    log("collection: writing")
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (128, 128, 128)).save(buffer, "JPEG", quality=85)
    thumb = buffer.getvalue()
    settings = _engine_settings(plan.dim).replace(index_type="flat")
    started = time.perf_counter()
    with Engine.open(directory, settings) as engine:
        for start, block in chunks(plan.base):
            for sub in range(0, len(block), 2000):
                prepared = []
                for offset, vector in enumerate(block[sub:sub + 2000]):
                    ident = item_id(start + sub + offset)
                    item = Item(id=ident, title=f"vector {start + sub + offset}",
                                content_hash=hashlib.sha256(ident.encode()).hexdigest())
                    prepared.append(Prepared(item, {"image": vector}, thumb))
                engine.commit(prepared)
    catalog_s = time.perf_counter() - started
    log(f"collection: written in {catalog_s:.1f} s")
    (directory / "indexes" / "image.faiss").unlink(missing_ok=True)  # a flat index: unused
    plan.save_state("collection", {"catalog_s": catalog_s})
    return {"catalog_s": catalog_s, "reused": False}


def _row_map(engine: Any) -> tuple[Any, NDArray[np.int64]]:
    """The bare FAISS index and, for each of its internal ids, the base row it holds."""
    space = engine.spaces["image"]
    wrapper = space.index
    if wrapper.kind != "hnsw":
        raise RuntimeError(f"asked the engine for an hnsw index, it built {wrapper.kind}")
    keys = space.keys_of(np.asarray(wrapper._id_to_label, dtype=np.int64))
    rows = keys - 1  # items were written in order into a fresh catalog: key k is row k-1
    sample = np.random.default_rng(0).choice(len(keys), size=min(50, len(keys)), replace=False)
    items = engine.catalog.items_by_key([int(keys[i]) for i in sample])
    for i in sample:
        if int(items[int(keys[i])].id[1:]) != rows[i]:
            raise RuntimeError("catalog keys do not follow the write order; rebuild the "
                               "collection without --reuse")
    return wrapper.index, rows


def worker_engine(plan: Plan) -> dict[str, Any]:
    faiss = _faiss()

    from imgsearch import Engine
    from imgsearch.types import Query

    settings = _engine_settings(plan.dim)
    directory = plan.workdir / "collection"
    index_file = directory / "indexes" / "image.faiss"
    memory = Memory()
    state = plan.state("engine")
    reused = state is not None and index_file.exists()
    if not reused:
        index_file.unlink(missing_ok=True)
        state = None
    build_s, engine = timed(lambda: Engine.open(directory, settings))
    build_s /= 1000
    engine.close()
    del engine
    gc.collect()
    memory.built()
    if state is None:
        state = {"build_s": build_s}
        plan.save_state("engine", state)
    open_ms, engine = timed(lambda: Engine.open(directory, settings))
    try:
        warm_ms, _ = timed(engine.warm)  # result-page fields in memory before any timing
        bare, rows = _row_map(engine)
        ef = plan.settings["hnsw_ef_search"]
        params = faiss.SearchParametersHNSW(efSearch=ef)
        q, base = plan.queries, plan.base

        def by_vector(vectors: NDArray[np.float32], i: int, ef_search: int | None = None
                      ) -> list[int]:
            hints = {} if ef_search is None else {"ef_search": ef_search}
            hits = engine.search(Query(vector=vectors[i], vector_space="image", limit=K,
                                       search_params=hints)).hits
            return [int(h.id[1:]) for h in hits]

        def by_id(row: int) -> list[int]:
            return [int(h.id[1:]) for h in engine.similar(item_id(row), limit=K).hits]

        def bare_search(vector: NDArray[np.float32], k: int, p: Any) -> NDArray[np.int64]:
            _, found = bare.search(vector[None, :], k, params=p)
            return np.asarray(found[0])

        id_vectors = np.ascontiguousarray(base[plan.id_rows], dtype=np.float32)
        warm_id_vectors = np.ascontiguousarray(base[plan.warm_rows], dtype=np.float32)
        for i in range(len(plan.warm_queries)):
            by_vector(plan.warm_queries, i)
            bare_search(plan.warm_queries[i], K, params)
            by_id(int(plan.warm_rows[i]))
            bare_search(warm_id_vectors[i], K + 1, params)

        def faiss_id(i: int) -> list[int]:
            found = rows[bare_search(id_vectors[i], K + 1, params)]
            return [r for r in found.tolist() if r != plan.id_rows[i]][:K]

        calls: dict[str, Callable[[int], list[int]]] = {
            ENGINE_VEC: lambda i: by_vector(q, i),
            FAISS_VEC: lambda i: rows[bare_search(q[i], K, params)].tolist(),
            ENGINE_ID: lambda i: by_id(int(plan.id_rows[i])),
            FAISS_ID: faiss_id,
        }
        order = np.random.default_rng(plan.seed + 7)
        ms, found = take_turns(calls, len(q), order)
        methods = {m: stats(ms[m], found[m], plan.truth_id if m in (ENGINE_ID, FAISS_ID)
                            else plan.truth) for m in calls}
        ratios = {
            "engine ÷ faiss (by vector)": float(np.median(np.divide(ms[ENGINE_VEC],
                                                                    ms[FAISS_VEC]))),
            "engine ÷ faiss k=11 (by id)": float(np.median(np.divide(ms[ENGINE_ID],
                                                                     ms[FAISS_ID]))),
        }
        faiss.omp_set_num_threads(cores())
        try:
            qps, (_, batch_found) = batch_qps(lambda: bare.search(q, K, params=params), len(q),
                                              plan.repeats)
        finally:
            faiss.omp_set_num_threads(1)
        methods[FAISS_VEC]["batch_qps"] = qps
        methods[FAISS_VEC]["batch_recall"] = recall_at(rows[batch_found].tolist(), plan.truth, K)
        methods[ENGINE_VEC]["batch_qps"] = 1000 / methods[ENGINE_VEC]["mean_ms"]
        methods[ENGINE_ID]["batch_qps"] = 1000 / methods[ENGINE_ID]["mean_ms"]
        curves: dict[str, list[dict[str, float]]] = {}
        if plan.curves:
            curves = _engine_curves(plan, by_vector, bare_search, rows, order)
        index_mb = serialized_mb(bare)
    finally:
        engine.close()
    note = (f"index file {index_file.stat().st_size / 1e6:,.0f} MB; Engine.open "
            f"{open_ms / 1000:.2f} s; Engine.warm {warm_ms / 1000:.2f} s")
    mem = memory.report()
    for m in methods.values():
        m.update(build_s=state["build_s"], peak_mb=mem["peak_mb"], serve_mb=mem["serve_peak_mb"])
    methods[ENGINE_VEC]["notes"] = note + "; batch = sequential singles"
    methods[ENGINE_ID]["notes"] = "batch = sequential singles"
    methods[FAISS_VEC]["notes"] = f"serialised {index_mb:,.0f} MB; same process as engine"
    methods[FAISS_ID]["notes"] = "its own vector, k=11, itself dropped"
    return {"methods": methods, "ratios": ratios, "curves": curves,
            "memory": mem,
            "engine_open_s": open_ms / 1000, "engine_warm_s": warm_ms / 1000,
            "index_file_mb": index_file.stat().st_size / 1e6,
            "faiss_serialized_mb": index_mb, "reused": reused}


def _engine_curves(plan: Plan, by_vector: Callable[..., list[int]],
                   bare_search: Callable[..., NDArray[np.int64]], rows: NDArray[np.int64],
                   order: np.random.Generator) -> dict[str, list[dict[str, float]]]:
    faiss = _faiss()

    q = plan.queries[:plan.curve_queries]
    truth = plan.truth[:len(q)]
    curves: dict[str, list[dict[str, float]]] = {"faiss HNSW (engine index)": [],
                                                 ENGINE_VEC: []}

    def faiss_rows(params: Any, i: int) -> list[int]:
        return rows[bare_search(q[i], K, params)].tolist()
    for ef in EF_CURVE:
        params = faiss.SearchParametersHNSW(efSearch=ef)
        calls: dict[str, Callable[[int], list[int]]] = {
            "faiss HNSW (engine index)": partial(faiss_rows, params)}
        if ef in ENGINE_EF_CURVE:
            calls[ENGINE_VEC] = partial(by_vector, q, ef_search=ef)
        ms, found = take_turns(calls, len(q), order)
        for name in calls:
            curves[name].append({"param": ef, "recall": recall_at(found[name], truth, K),
                                 "p50_ms": median(ms[name])})
    return curves


# -- peers --------------------------------------------------------------------------------
def _single(plan: Plan, search: Callable[[NDArray[np.float32]], Sequence[int]],
            queries: NDArray[np.float32] | None = None) -> tuple[list[float], list[list[int]]]:
    """Warm-up, then each query alone and timed. A subset of the queries (``queries``)
    marks a method that scans the whole base: a few warm-up queries are enough for it."""
    warm = plan.warm_queries if queries is None else plan.warm_queries[:SCAN_WARMUP]
    for vector in warm:
        search(vector)
    ms: list[float] = []
    found: list[list[int]] = []
    for vector in plan.queries if queries is None else queries:
        took, got = timed(search, vector)
        ms.append(took)
        found.append([int(r) for r in got])
    return ms, found


def worker_hnswlib(plan: Plan) -> dict[str, Any]:
    import hnswlib

    s = plan.settings
    path = plan.workdir / "hnswlib.bin"
    memory = Memory()
    index = hnswlib.Index(space="ip", dim=plan.dim)
    state = plan.state("hnswlib")
    if state is not None and path.exists():
        index.load_index(str(path), max_elements=plan.n)
    else:
        index.init_index(max_elements=plan.n, M=s["hnsw_m"],
                         ef_construction=s["hnsw_ef_construction"], random_seed=plan.seed)
        index.set_num_threads(cores())
        started = time.perf_counter()
        for start, block in chunks(plan.base):
            index.add_items(block, np.arange(start, start + len(block)))
        state = {"build_s": time.perf_counter() - started}
        index.save_index(str(path))
        plan.save_state("hnswlib", state)
    memory.built()
    index.set_ef(s["hnsw_ef_search"])
    index.set_num_threads(1)

    def search(vector: NDArray[np.float32]) -> Sequence[int]:
        labels, _ = index.knn_query(vector[None, :], k=K)
        return [int(v) for v in labels[0]]

    ms, found = _single(plan, search)
    row = stats(ms, found, plan.truth)
    index.set_num_threads(cores())
    row["batch_qps"], (labels, _) = batch_qps(lambda: index.knn_query(plan.queries, k=K),
                                              len(plan.queries), plan.repeats)
    row["batch_recall"] = recall_at(labels.tolist(), plan.truth, K)
    index.set_num_threads(1)
    curve = []
    if plan.curves:
        for ef in EF_CURVE:
            index.set_ef(ef)
            curve.append(curve_point(plan, ef, search))
    mem = memory.report()
    row.update(build_s=state["build_s"], peak_mb=mem["peak_mb"], serve_mb=mem["serve_peak_mb"],
               notes=f"index file {path.stat().st_size / 1e6:,.0f} MB")
    return {"methods": {HNSWLIB: row}, "curves": {HNSWLIB: curve} if curve else {},
            "memory": mem}


def worker_numpy(plan: Plan) -> dict[str, Any]:
    from threadpoolctl import threadpool_limits

    memory = Memory()
    load_ms, base = timed(lambda: np.array(plan.base, dtype=np.float32))
    release(plan.base)
    memory.built()
    count = min(plan.raw["scan_queries"], len(plan.queries))

    def search(vector: NDArray[np.float32]) -> Sequence[int]:
        sims = base @ vector
        top = np.argpartition(-sims, K)[:K]
        return [int(r) for r in top[np.argsort(-sims[top])]]

    with threadpool_limits(1):
        ms, found = _single(plan, search, plan.queries[:count])
    row = stats(ms, found, plan.truth)
    block = max(1, min(len(plan.queries), (64 << 20) // (4 * len(base))))

    def batch() -> NDArray[np.int64]:
        out = np.empty((len(plan.queries), K), np.int64)
        for start in range(0, len(plan.queries), block):
            sims = plan.queries[start:start + block] @ base.T
            top = np.argpartition(-sims, K, axis=1)[:, :K]
            order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1)
            out[start:start + block] = np.take_along_axis(top, order, axis=1)
        return out

    repeats = plan.repeats if len(base) * len(plan.queries) <= 2e8 else 1
    row["batch_qps"], got = batch_qps(batch, len(plan.queries), repeats)
    row["batch_recall"] = recall_at(got.tolist(), plan.truth, K)
    mem = memory.report()
    row.update(build_s=load_ms / 1000, peak_mb=mem["peak_mb"], serve_mb=mem["serve_peak_mb"],
               notes=f"{count} single queries, 1 BLAS thread; base in RAM "
                     f"{base.nbytes / 1e6:,.0f} MB; build = load")
    return {"methods": {NUMPY: row}, "curves": {}, "memory": mem}


def worker_milvus(plan: Plan) -> dict[str, Any]:
    from pymilvus import DataType, MilvusClient

    s = plan.settings
    folder = plan.workdir / "milvus"
    memory = Memory()
    stages: dict[str, float] = {}
    state = plan.state("milvus")
    if state is None or not folder.exists():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        state = None
    client = MilvusClient(str(folder / "milvus.db"))
    try:
        if state is None:
            started = time.perf_counter()
            schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field("vec", DataType.FLOAT_VECTOR, dim=plan.dim)
            index_params = client.prepare_index_params()
            index_params.add_index(field_name="vec", index_type="HNSW", metric_type="IP",
                                   params={"M": s["hnsw_m"],
                                           "efConstruction": s["hnsw_ef_construction"]})
            client.create_collection(COLLECTION, schema=schema, index_params=index_params)
            for start, block in chunks(plan.base):
                for sub in range(0, len(block), MILVUS_BATCH):
                    part = block[sub:sub + MILVUS_BATCH].tolist()
                    first = start + sub
                    client.insert(COLLECTION, [{"id": first + j, "vec": v}
                                               for j, v in enumerate(part)])
            insert_s = time.perf_counter() - started
            stages["after_insert_rss_mb"] = rss_mb()
            client.flush(COLLECTION)
            while True:
                described = client.describe_index(COLLECTION, "vec")
                if described.get("state") == "Finished" and \
                        int(described.get("indexed_rows", 0)) >= plan.n:
                    break
                time.sleep(0.2)
            stages["after_index_rss_mb"] = rss_mb()
            client.load_collection(COLLECTION)
            state = {"build_s": time.perf_counter() - started, "insert_s": insert_s}
            plan.save_state("milvus", state)
        else:
            client.load_collection(COLLECTION)
        stages["after_load_rss_mb"] = rss_mb()
        memory.built()
        search_params = {"metric_type": "IP", "params": {"ef": s["hnsw_ef_search"]}}
        probe = client.search(COLLECTION, data=[plan.queries[0].tolist()], limit=K,
                              search_params=search_params, output_fields=["id"],
                              anns_field="vec")
        returns_vectors = any("vec" in hit.get("entity", {}) for hit in probe[0])

        def search(vector: NDArray[np.float32], params: dict[str, Any] = search_params
                   ) -> Sequence[int]:
            answer = client.search(COLLECTION, data=[vector.tolist()], limit=K,
                                   search_params=params, output_fields=["id"],
                                   anns_field="vec")
            return [int(hit["id"]) for hit in answer[0]]

        count = min(plan.raw["scan_queries"], len(plan.queries))
        ms, found = _single(plan, search, plan.queries[:count])
        row = stats(ms, found, plan.truth)
        # Whether the HNSW parameters take effect: a small ef should cost some recall.
        low_ef = {"metric_type": "IP", "params": {"ef": K}}
        low_ef_recall = recall_at([search(v, low_ef) for v in plan.queries[:100]],
                                  plan.truth[:100], K)
        data = plan.queries.tolist()
        row["batch_qps"], answer = batch_qps(
            lambda: client.search(COLLECTION, data=data, limit=K, search_params=search_params,
                                  output_fields=["id"], anns_field="vec"),
            len(plan.queries), plan.repeats)
        row["batch_recall"] = recall_at([[int(h["id"]) for h in hits] for hits in answer],
                                        plan.truth, K)
    finally:
        client.close()
    mem = memory.report()
    row.update(build_s=state["build_s"], peak_mb=mem["peak_mb"], serve_mb=mem["serve_peak_mb"],
               notes=f"{count} single queries; insert {state['insert_s']:.0f} s of build; "
                     f"data folder {folder_mb(folder):,.0f} MB; recall at ef={K}: "
                     f"{low_ef_recall:.2f}; own threads"
                     + ("; RETURNS VECTORS" if returns_vectors else ""))
    return {"methods": {MILVUS: row}, "curves": {}, "returns_vectors": returns_vectors,
            "low_ef_recall": low_ef_recall, "memory": {**mem, **stages}}


def worker_ivfpq(plan: Plan) -> dict[str, Any]:
    faiss = _faiss()

    s = plan.settings
    n, dim = plan.n, plan.dim
    memory = Memory()
    nlist = max(1, min(int(4 * n ** 0.5), n // 39))
    pq_m = max(m for m in range(1, max(1, dim // 4) + 1) if dim % m == 0)
    nbits = 4
    faiss.omp_set_num_threads(cores())
    started = time.perf_counter()
    sample = np.sort(np.random.default_rng(plan.seed).choice(
        n, size=min(n, max(100_000, 40 * nlist)), replace=False))
    training = np.ascontiguousarray(plan.base[sample], dtype=np.float32)
    release(plan.base)
    ivf = faiss.IndexIVFPQFastScan(faiss.IndexFlatIP(dim), dim, nlist, pq_m, nbits,
                                   faiss.METRIC_INNER_PRODUCT)
    ivf.train(training)
    del training
    index = faiss.IndexRefineFlat(ivf)
    index.k_factor = s["pq_rescore_factor"]
    for _, block in chunks(plan.base):
        index.add(block)
    build_s = time.perf_counter() - started
    memory.built()
    faiss.omp_set_num_threads(1)
    ivf.nprobe = s["ivf_nprobe"]

    def search(vector: NDArray[np.float32]) -> Sequence[int]:
        _, found = index.search(vector[None, :], K)
        return [int(r) for r in found[0]]

    ms, found = _single(plan, search)
    row = stats(ms, found, plan.truth)
    faiss.omp_set_num_threads(cores())
    row["batch_qps"], (_, got) = batch_qps(lambda: index.search(plan.queries, K),
                                           len(plan.queries), plan.repeats)
    faiss.omp_set_num_threads(1)
    row["batch_recall"] = recall_at(got.tolist(), plan.truth, K)
    curve = []
    if plan.curves:
        for nprobe in NPROBE_CURVE:
            ivf.nprobe = min(nprobe, nlist)
            curve.append(curve_point(plan, nprobe, search))
    mem = memory.report()
    row.update(build_s=build_s, peak_mb=mem["peak_mb"], serve_mb=mem["serve_peak_mb"],
               notes=f"nlist {nlist}, {pq_m}×{nbits} bit, nprobe {s['ivf_nprobe']}, "
                     f"k_factor {s['pq_rescore_factor']}; refine keeps full vectors")
    return {"methods": {IVFPQ: row}, "curves": {IVFPQ: curve} if curve else {},
            "memory": mem}


WORKER_FUNCTIONS: dict[str, Callable[[Plan], dict[str, Any]]] = {
    "collection": worker_collection, "engine": worker_engine, "hnswlib": worker_hnswlib,
    "numpy": worker_numpy, "milvus": worker_milvus, "ivfpq": worker_ivfpq,
}


def run_worker(method: str, plan_path: Path) -> dict[str, Any]:
    """Run one worker in a fresh process; its result, or why it failed."""
    out = plan_path.with_name(f"{method}.json")
    out.unlink(missing_ok=True)
    before = load_average()
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", method,
                           "--plan", str(plan_path)], check=False)
    if proc.returncode != 0 or not out.exists():
        return {"error": f"worker {method} exited with status {proc.returncode}"}
    result: dict[str, Any] = json.loads(out.read_text())
    result["wall_s"] = time.perf_counter() - started
    result["load_average"] = {"before": before, "after": load_average()}
    return result


# -- output -------------------------------------------------------------------------------
def plot(results: dict[str, Any], stem: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    methods: dict[str, dict[str, Any]] = results["methods"]
    title = f"{results['data']}, n={results['n']:,}, {results['dim']}-d, k={K}"
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
    names = list(methods)
    left.barh(names, [methods[m]["p50_ms"] for m in names], color="tab:blue")
    left.invert_yaxis()  # methods read top to bottom in table order
    left.set_xscale("log")
    left.set_xlabel("single-query p50 (ms, log)")
    right.barh(names, [methods[m].get("batch_qps", np.nan) for m in names], color="tab:green")
    right.set_xscale("log")
    right.set_xlabel("batch throughput (queries/s, log; engine: sequential)")
    right.set_yticklabels([])
    fig.suptitle(title)
    fig.tight_layout()
    paths.append(RESULTS_DIR / f"{stem}.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    if results["curves"]:
        fig, ax = plt.subplots(figsize=(8, 6))
        for name, points in results["curves"].items():
            xs = [p["p50_ms"] for p in points]
            ax.plot(xs, [p["recall"] for p in points], marker="o", label=name)
            for p in points:
                ax.annotate(str(p["param"]), (p["p50_ms"], p["recall"]), fontsize=7,
                            textcoords="offset points", xytext=(3, -8))
        for name in (NUMPY, MILVUS):
            if name in methods:
                ax.scatter([methods[name]["p50_ms"]], [methods[name]["recall"]], marker="*",
                           s=120, label=name)
        ax.set_xscale("log")
        ax.set_xlabel("single-query p50 (ms, log)")
        ax.set_ylabel(f"recall@{K}")
        ax.set_title(f"recall vs latency (labels: efSearch / nprobe) — {title}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        paths.append(RESULTS_DIR / f"{stem}-curves.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    return paths


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data", choices=NAMES, default="clustered",
                        help="data set (see bench/vectors.py)")
    parser.add_argument("--n", type=int, default=100_000, help="base vectors")
    parser.add_argument("--queries", type=int, default=1000, help="timed queries per method")
    parser.add_argument("--warmup", type=int, default=100, help="untimed queries first")
    parser.add_argument("--methods", default=",".join(WORKERS),
                        help=f"comma list of {', '.join(WORKERS)} (engine includes the bare "
                             f"FAISS index inside it)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reuse", action="store_true",
                        help="load the collection and indexes an earlier run built")
    parser.add_argument("--curves", action=argparse.BooleanOptionalAction, default=True,
                        help="recall-latency curves over efSearch / nprobe")
    parser.add_argument("--curve-queries", type=int, default=500,
                        help="queries per point of a curve")
    parser.add_argument("--scan-queries", type=int, default=200,
                        help="timed single queries for the methods whose latency grows with "
                             "n (numpy exact, Milvus Lite)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs of each batch call (median taken)")
    parser.add_argument("--ivf", action="store_true", help="add FAISS IVF-PQ + refine")
    parser.add_argument("--milvus-max-n", type=int, default=200_000,
                        help="skip Milvus Lite above this many vectors (its latency and "
                             "memory grow about linearly with n; see the module docstring)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--plan", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        plan_path = Path(args.plan)
        result = WORKER_FUNCTIONS[args.worker](Plan(plan_path))
        plan_path.with_name(f"{args.worker}.json").write_text(json.dumps(result))
        return

    info = machine()
    print(f"machine: {machine_line(info)}")
    load_before = load_average()
    wanted = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = set(wanted) - set(WORKERS)
    if unknown:
        parser.error(f"unknown methods {sorted(unknown)}; choose from {', '.join(WORKERS)}")
    if args.ivf:
        wanted.append("ivfpq")
    skipped: dict[str, str] = {}
    if "milvus" in wanted and args.n > args.milvus_max_n:
        wanted.remove("milvus")
        skipped["milvus"] = f"n={args.n:,} > --milvus-max-n {args.milvus_max_n:,}"

    started = time.perf_counter()
    data = load_dataset(args.data, args.n, args.queries + args.warmup, args.seed)
    n, dim = len(data.base), data.dim
    warmup = min(args.warmup, len(data.queries) // 2)
    print(f"data: {data.description}; loaded/generated in {time.perf_counter() - started:.1f} s")
    workdir = DATA_DIR / f"peers-{data.base_path.stem}"
    workdir.mkdir(parents=True, exist_ok=True)
    picked = np.random.default_rng([args.seed, 3]).choice(n, size=min(n, len(data.queries)),
                                                          replace=False).astype(np.int64)
    id_rows_path = workdir / f"id-rows-{len(picked)}.npy"
    np.save(id_rows_path, picked)
    started = time.perf_counter()
    truth = exact_topk(data.base, data.queries[warmup:], K,
                       cache=workdir / f"truth-{data.queries_path.stem}-w{warmup}.npy")
    truth_id = exact_topk(data.base, np.asarray(data.base[picked[warmup:]]), K,
                          exclude=picked[warmup:],
                          cache=workdir / f"truth-ids-{len(picked)}-w{warmup}.npy")
    truth = with_ties(data.base, data.queries[warmup:], truth,
                      cache=workdir / f"ties-{data.queries_path.stem}-w{warmup}.npy")
    truth_id = with_ties(data.base, np.asarray(data.base[picked[warmup:]]), truth_id,
                         exclude=picked[warmup:],
                         cache=workdir / f"ties-ids-{len(picked)}-w{warmup}.npy")
    print(f"ground truth: {time.perf_counter() - started:.1f} s (rows tied with the "
          f"{K}th: {int((truth[:, K:] >= 0).sum()):,} by vector, "
          f"{int((truth_id[:, K:] >= 0).sum()):,} by id)")

    s = settings_dict()
    with tempfile.TemporaryDirectory(prefix="peers-") as tmp:
        plan_path = Path(tmp) / "plan.json"
        truth_path, truth_id_path = Path(tmp) / "truth.npy", Path(tmp) / "truth-id.npy"
        np.save(truth_path, truth)
        np.save(truth_id_path, truth_id)
        plan_path.write_text(json.dumps({
            "n": n, "dim": dim, "seed": args.seed, "workdir": str(workdir),
            "reuse": args.reuse, "curves": args.curves, "repeats": args.repeats,
            "base_path": str(data.base_path), "queries_path": str(data.queries_path),
            "warmup": warmup, "id_rows_path": str(id_rows_path), "truth_path": str(truth_path),
            "truth_id_path": str(truth_id_path), "curve_queries": args.curve_queries,
            "scan_queries": args.scan_queries, "settings": s}))
        workers: dict[str, Any] = {}
        if "engine" in wanted:
            print("collection: writing through Engine.commit ...", flush=True)
            workers["collection"] = run_worker("collection", plan_path)
            print(f"collection: {workers['collection']}", flush=True)
        for method in wanted:
            print(f"{method}: building and querying ...", flush=True)
            workers[method] = run_worker(method, plan_path)
            if "error" in workers[method]:
                print(f"{method}: {workers[method]['error']}", flush=True)
            else:
                print(f"{method}: done in {workers[method]['wall_s']:.0f} s", flush=True)

    methods: dict[str, dict[str, Any]] = {}
    curves: dict[str, list[dict[str, float]]] = {}
    ratios: dict[str, float] = {}
    for name in ("engine", "hnswlib", "numpy", "milvus", "ivfpq"):
        w = workers.get(name, {})
        methods.update(w.get("methods", {}))
        curves.update(w.get("curves", {}))
        ratios.update(w.get("ratios", {}))
    for name in (ENGINE_VEC, FAISS_VEC, HNSWLIB, MILVUS, IVFPQ):
        if name in methods and NUMPY in methods:
            ratios[f"numpy ÷ {name} (p50)"] = methods[NUMPY]["p50_ms"] / methods[name]["p50_ms"]
    results: dict[str, Any] = {
        "benchmark": "peers", "command": command_line(), "date": now(), "machine": info,
        "data": args.data, "description": data.description, "n": n, "dim": dim, "k": K,
        "queries": len(truth), "warmup": warmup, "settings": s, "skipped": skipped,
        "catalog_write_s": workers.get("collection", {}).get("catalog_s"),
        "methods": methods, "ratios": ratios, "curves": curves, "workers": workers,
        "load_average": {"before": load_before, "after": load_average()},
    }
    print()
    print(f"Vector search, {data.description}; {len(truth)} held-out queries after {warmup} "
          f"warm-up, k={K}, efSearch {s['hnsw_ef_search']}, M {s['hnsw_m']}, efConstruction "
          f"{s['hnsw_ef_construction']}. peak MB = peak resident set (VmHWM) of the process "
          f"that built the index and ran the queries; serve MB = its peak after the build "
          f"(base vectors memory-mapped, not counted unless copied).")
    rows = [[name, m["recall"], m["p50_ms"], m["p99_ms"], m.get("batch_qps", float("nan")),
             m["build_s"], m["peak_mb"], m["serve_mb"], m.get("notes", "")]
            for name, m in methods.items()]
    print(table(["method", f"recall@{K}", "p50 ms", "p99 ms", "batch q/s", "build s",
                 "peak MB", "serve MB", "notes"], rows))
    print()
    print(table(["ratio", "value"], [[k, f"{v:.2f}×"] for k, v in ratios.items()]))
    print("engine ÷ faiss: median of per-query ratios, interleaved in one process; "
          "numpy ÷ X: ratio of p50s from separate processes (the speed-up over exact).")
    if results["catalog_write_s"]:
        print(f"catalog write through Engine.commit: {results['catalog_write_s']:.1f} s "
              f"({n / results['catalog_write_s']:,.0f} items/s)")
    if "engine" in workers and "engine_open_s" in workers["engine"]:
        print(f"Engine.open on the built collection: {workers['engine']['engine_open_s']:.2f} s"
              + (f"; Engine.warm (result-page fields and perceptual hashes read into memory): "
                 f"{workers['engine']['engine_warm_s']:.2f} s"
                 if "engine_warm_s" in workers["engine"] else ""))
    for name, why in skipped.items():
        print(f"skipped {name}: {why}")
    for name, w in workers.items():
        if "error" in w:
            print(f"FAILED {name}: {w['error']}")
    if curves:
        print()
        print(table(["method", "param", f"recall@{K}", "p50 ms"],
                    [[name, p["param"], p["recall"], p["p50_ms"]]
                     for name, points in curves.items() for p in points]))
    print(f"load average (1, 5, 15 min) before: {load_before}, after: {load_average()}")
    stem = f"peers-{args.data}-{n}"
    path = write_results(stem, results)
    for written in (path, *plot(results, stem)):
        print(f"wrote {written}")


if __name__ == "__main__":
    main()
