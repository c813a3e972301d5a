"""Where a single query's time goes, step by step, in place: the engine over a kept
``bench/peers.py`` collection (HNSW), next to the bare FAISS index inside it.

Each step of ``Engine.search`` named below is wrapped by a timer (``perf_counter_ns``
around the call; the wrappers' own cost, well under a microsecond a call, is included).
Every timed query runs right after a bare FAISS search of another query, so that both
meet the CPU caches as ``bench/peers.py``'s turns leave them: a query answered again
at once runs about twice as fast. Per step: the median over queries of the time spent
in it during one query (a step a query does not reach counts 0). Then the same with the
search log off (``log_searches=False``), which is on by default.

Needs the collection of ``bench/peers.py --data clustered --n N``, which it keeps under
``bench/data/peers-clustered-N-s0`` (``make bench-full`` runs this after it at 1M).

    python bench/query_steps.py --n 1000000 --queries 1000
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from common import (
    command_line,
    load_average,
    machine,
    machine_line,
    median,
    now,
    table,
    write_results,
)
from peers import _engine_settings, item_id
from vectors import _generate_queries

DATA = Path(__file__).resolve().parent / "data"


# (module, owner in it or "", attribute, label) of each timed step, outermost first
STEPS = [
    ("imgsearch.search.searcher", "", "signals_for", "query vector (signals_for)"),
    ("imgsearch.store.catalog", "Catalog", "key_of", "  the item's key (similar by id)"),
    ("imgsearch.search.space", "SpaceIndex", "vector_of_key",
     "  the item's vector (similar by id)"),
    ("imgsearch.search.space", "SpaceIndex", "search",
     "index search with its bookkeeping (SpaceIndex.search)"),
    ("imgsearch.index.faiss_index", "HNSWIndex", "search",
     "  HNSW index, FAISS inside (HNSWIndex.search)"),
    ("imgsearch.search.searcher", "", "_confidence", "confidence"),
    ("imgsearch.search.searcher", "", "_collapse", "duplicate folding"),
    ("imgsearch.search.searcher", "", "_rerank", "re-ranking"),
    ("imgsearch.store.catalog", "Catalog", "hits_by_key", "result-page fields"),
    ("imgsearch.search.searcher", "", "_logged", "search log line"),
    ("imgsearch.encode.blas", "_OneThread", "__enter__", "one BLAS thread: set"),
    ("imgsearch.encode.blas", "_OneThread", "__exit__", "one BLAS thread: put back"),
]


def _steps() -> list[tuple[Any, str, str]]:
    """(owner, attribute, label) of each step this version of the code has (an older
    version, on ``PYTHONPATH``, may lack some: they are left out)."""
    import importlib

    found = []
    for module_name, owner_name, name, label in STEPS:
        module = importlib.import_module(module_name)
        owner = getattr(module, owner_name, None) if owner_name else module
        has = owner is not None and (name in owner.__dict__ if isinstance(owner, type)
                                     else hasattr(owner, name))
        if has:
            found.append((owner, name, label))
    return found


class Timers:
    """Wraps each step; ``spent`` holds this query's nanoseconds per label."""

    def __init__(self) -> None:
        self.spent: dict[str, int] = collections.defaultdict(int)
        self._undo: list[tuple[Any, str, Any]] = []

    def wrap(self, owner: Any, name: str, label: str) -> None:
        original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
        spent = self.spent

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter_ns()
            try:
                return original(*args, **kwargs)
            finally:
                spent[label] += time.perf_counter_ns() - started
        setattr(owner, name, timed)
        self._undo.append((owner, name, original))

    def undo(self) -> None:
        for owner, name, original in reversed(self._undo):
            setattr(owner, name, original)
        self._undo.clear()


def measure(directory: Path, dim: int, queries: np.ndarray, warmup: int, log: bool
            ) -> dict[str, Any]:
    import faiss

    from imgsearch import Engine
    from imgsearch.types import Query

    faiss.omp_set_num_threads(1)
    settings = dataclasses.replace(_engine_settings(dim), log_searches=log)
    engine = Engine.open(directory, settings)
    timers = Timers()
    try:
        engine.warm()
        space = engine.spaces["image"]
        bare = space.index.index
        params = faiss.SearchParametersHNSW(efSearch=settings.hnsw_ef_search)
        n = len(space)
        half = (len(queries) - warmup) // 2

        def row(i: int) -> int:
            return (i * 7919) % n

        def stored(i: int) -> np.ndarray:
            vector = space.vector_of_key(engine.catalog.key_of(item_id(row(i))) or -1)
            assert vector is not None, f"item {item_id(row(i))} has no vector"
            return np.asarray(vector, np.float32)

        asks: dict[str, Callable[[int], Any]] = {
            "by vector": lambda i: engine.search(Query(vector=queries[i], vector_space="image",
                                                       limit=10)),
            "by id": lambda i: engine.similar(item_id(row(i)), limit=10),
        }
        # FAISS's turn before each timed query: another query of the same kind (by id:
        # another item's own vector, k=11 as bench/peers.py asks it)
        others = {"by vector": (queries[warmup + half:warmup + 2 * half], 10),
                  "by id": (np.stack([stored(i + half) for i in range(warmup, warmup + half)]),
                            11)}
        for i in range(warmup):
            for ask in asks.values():
                ask(i)
        steps_here = _steps()
        for owner, name, label in steps_here:
            timers.wrap(owner, name, label)
        labels = [label for _owner, _name, label in steps_here]
        out: dict[str, Any] = {}
        for kind, ask in asks.items():
            steps: dict[str, list[int]] = collections.defaultdict(list)
            totals, faiss_ns = [], []
            other, k = others[kind]
            for i in range(warmup, warmup + half):
                started = time.perf_counter_ns()
                bare.search(other[i - warmup][None, :], k, params=params)
                faiss_ns.append(time.perf_counter_ns() - started)
                timers.spent.clear()
                started = time.perf_counter_ns()
                ask(i)
                totals.append(time.perf_counter_ns() - started)
                for label in labels:
                    steps[label].append(timers.spent.get(label, 0))
            out[kind] = {
                "engine_p50_us": median(totals) / 1000,
                "faiss_p50_us": median(faiss_ns) / 1000,
                "ratio": float(np.median(np.divide(totals, faiss_ns))),
                "steps_us": {label: median(v) / 1000 for label, v in steps.items()},
            }
        return out
    finally:
        timers.undo()
        engine.close()


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"  # "-": not in this version's code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=1000,
                        help="timed queries of each kind (and as many bare searches)")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--name", default=None,
                        help="results file bench/results/NAME.json (default query-steps-N); "
                             "to time another version of the code, put its src first on "
                             "PYTHONPATH and give it a name")
    args = parser.parse_args()
    import imgsearch
    directory = DATA / f"peers-clustered-{args.n}-s0" / "collection"
    if not directory.is_dir():
        raise SystemExit(f"no collection at {directory}: run bench/peers.py --data clustered "
                         f"--n {args.n} --reuse first")
    load_before = load_average()
    queries = _generate_queries("clustered", args.n, args.warmup + 2 * args.queries, 1)
    runs = {"log on": measure(directory, args.dim, queries, args.warmup, log=True),
            "log off": measure(directory, args.dim, queries, args.warmup, log=False)}
    on = runs["log on"]
    labels = [label for *_rest, label in STEPS]
    code = Path(imgsearch.__file__).resolve().parent.parent
    with contextlib.suppress(ValueError):  # inside the working directory: say it short
        code = code.relative_to(Path.cwd())
    print(f"code: imgsearch from {code}")
    print(f"Steps of one query, in place ({args.queries} cold queries of each kind after "
          f"{args.warmup} warm-up; medians over queries, µs; {args.n:,} × {args.dim}-d, "
          f"HNSW, search log on)")
    print(table(["step", "by vector µs", "by id µs"],
                [[label, _us(on["by vector"]["steps_us"].get(label)),
                  _us(on["by id"]["steps_us"].get(label))] for label in labels]))
    print()
    print("The whole query, with the search log on and off:")
    print(table(["search log", "kind", "engine p50 µs", "bare FAISS p50 µs",
                 "engine ÷ FAISS (median of per-query ratios)"],
                [[log, kind, round(r["engine_p50_us"], 1), round(r["faiss_p50_us"], 1),
                  f"{r['ratio']:.2f}×"] for log, run in runs.items()
                 for kind, r in run.items()]))
    print()
    print("Bare FAISS: the same index, another query of the same kind (by id: another "
          "item's own vector, k=11; by vector: k=10); the engine asks its index for a block "
          "of 64 (65 by id). Indented steps are inside the step above them.")
    load_after = load_average()
    print(f"load average (1, 5, 15 min) before: {load_before}, after: {load_after}")
    info = machine()
    print(f"machine: {machine_line(info)}")
    path = write_results(args.name or f"query-steps-{args.n}", {
        "benchmark": "query_steps", "command": command_line(), "date": now(),
        "code": str(code),
        "machine": info, "n": args.n, "dim": args.dim, "queries": args.queries,
        "warmup": args.warmup, "runs": runs,
        "load_average": {"before": load_before, "after": load_after}})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
