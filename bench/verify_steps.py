"""Where an image query with nothing to find spends its time, step by step, and how its
latency compares with another checkout's code in the same minutes.

An unrelated photo (``bench/copydetect.py``'s held-out photos, never indexed) has no
copy to find, so its query pays every step of verification: ORB features of the query
and of each of its candidates' stored thumbnails, matching and RANSAC (plain and
mirrored), the candidates of its central part, a closer look at the first candidate and
a dense alignment of the first two. Each step is timed by wrapping the functions that do
it (the wall time inside them, summed per query; steps that run on worker threads
overlap, so the sum can exceed the query's own time). Copy queries (80 seeded ones) are
timed alongside: a change must not make them slower.

With ``--baseline-src`` the same queries run alternately on this checkout's ``src`` and
on the other one, each in a fresh process, ``--rounds`` times; medians of the rounds.
With ``--interleave``, the other checkout's verification (its ``search/verify.py``,
``search/aligned.py`` and ``search/matching.py``, loaded beside this code's) and this
code's answer each query in turn in one process, ABBA, every feature cache emptied
before each query: a machine whose load swings between rounds affects both alike.
The collection is ``bench/copydetect.py``'s full one (run it once to build it).

    python bench/verify_steps.py [--rounds 5] [--baseline-src /path/to/other/src]
    python bench/verify_steps.py --interleave --baseline-src /path/to/other/src
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from common import (
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

SRC = Path(__file__).resolve().parent.parent / "src"
# (module, attribute, step): what each wrapped function does for a query
STEPS = (
    ("imgsearch.search.matching", "features", "ORB features of the query"),
    ("imgsearch.search.verify", "features", "ORB features of candidates"),
    ("imgsearch.search.searcher", "_stored_image", "read candidates' thumbnails"),
    ("imgsearch.search.matching", "verify", "match + RANSAC"),
    ("imgsearch.search.searcher", "_crop_keys", "central-part candidates (encode + search)"),
    ("imgsearch.search.matching", "align", "dense alignment (one view)"),
)
_lock = threading.Lock()
_spent: dict[str, float] = defaultdict(float)


def _timed(step: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            with _lock:
                _spent[step] += (time.perf_counter() - started) * 1000
    return wrapper


def _wrap_steps() -> None:
    import importlib

    for module_name, attribute, step in STEPS:
        module = importlib.import_module(module_name)
        if hasattr(module, attribute):
            setattr(module, attribute, _timed(step, getattr(module, attribute)))
    from imgsearch.search import matching

    examine = matching._examine

    @functools.wraps(examine)
    def closer_timed(*args: Any, **kwargs: Any) -> Any:
        if not kwargs.get("closer"):
            return examine(*args, **kwargs)
        return _timed("closer look (all of it)", examine)(*args, **kwargs)

    matching._examine = closer_timed  # type: ignore[assignment]


def measure() -> dict[str, Any]:
    """One process's run: the unrelated photos and 80 seeded copies, timed."""
    from copydetect import HERE
    from imgsearch import Engine, Query, Settings

    _wrap_steps()
    data = json.loads((HERE / "set.json").read_text())
    settings = Settings(result_cache_size=0, embedding_cache_size=0, log_searches=False)
    engine = Engine.open(HERE / "collection-full", settings, create=False)
    copies = [q["path"] for q in random.Random(1).sample(data["copies"], 80)]
    for path in copies[:5]:  # code paths warmed, not answers (caches are off)
        engine.search(Query(images=[path]))
    engine.searcher.feature_cache.clear()
    out: dict[str, Any] = {"copies": [], "unrelated": [], "steps": [], "stages": []}
    for kind, paths in (("unrelated", data["unrelated"]), ("copies", copies)):
        for path in paths:
            _spent.clear()
            started = time.perf_counter()
            result = engine.search(Query(images=[path], limit=10))
            out[kind].append((time.perf_counter() - started) * 1000)
            if kind == "unrelated":
                with _lock:
                    out["steps"].append(dict(_spent))
                out["stages"].append(dict(result.stage_ms))
    engine.close()
    return out


def _baseline_verification(src: Path) -> Callable[..., Any]:
    """``match_kinds`` of the checkout at ``src``, with its own verify and aligned."""
    import types

    parts = ("verify", "aligned", "matching")
    for part in parts:
        path = src / "imgsearch" / "search" / f"{part}.py"
        text = path.read_text()
        for other in parts:
            text = text.replace(f"from imgsearch.search.{other} import",
                                f"from _baseline_{other} import")
        module = types.ModuleType(f"_baseline_{part}")
        sys.modules[module.__name__] = module
        exec(compile(text, str(path), "exec"), module.__dict__)
    baseline = sys.modules["_baseline_matching"]

    def match_kinds(looks: Any, *args: Any, **kwargs: Any) -> Any:
        # the query images as the other checkout's own (its alignment views)
        def own(look: Any) -> Any:
            return baseline.QueryImage(look.vector, look.content_hash, look.image)
        negatives = kwargs.pop("negatives", args[2] if len(args) > 2 else ())
        return baseline.match_kinds([own(look) for look in looks], args[0], args[1],
                                    [own(n) for n in negatives], *args[3:], **kwargs)
    return match_kinds


def interleave(src: Path) -> None:
    """Both verifications, query by query, in this process (ABBA)."""
    from copydetect import HERE
    from imgsearch import Engine, Query, Settings
    from imgsearch.search import searcher as answering

    codes = {"this": answering.match_kinds, "baseline": _baseline_verification(src)}
    data = json.loads((HERE / "set.json").read_text())
    settings = Settings(result_cache_size=0, embedding_cache_size=0, log_searches=False)
    engine = Engine.open(HERE / "collection-full", settings, create=False)
    copies = [q["path"] for q in random.Random(1).sample(data["copies"], 80)]
    started_at = now()
    print(f"# verify_steps --interleave — {started_at}\n\n{machine_line(machine())}\n\n"
          f"`{command_line()}`\n")
    loads = [load_average()]
    timings: dict[tuple[str, str], list[float]] = defaultdict(list)
    turn = 0
    for kind, paths in (("unrelated", data["unrelated"] * 2), ("copies", copies)):
        for path in paths[:5]:  # code paths warmed
            for code in codes.values():
                answering.match_kinds = code
                engine.search(Query(images=[path]))
        for path in paths:
            for name in (("this", "baseline") if turn % 2 == 0 else ("baseline", "this")):
                answering.match_kinds = codes[name]
                engine.searcher.feature_cache.clear()
                started = time.perf_counter()
                engine.search(Query(images=[path], limit=10))
                timings[(kind, name)].append((time.perf_counter() - started) * 1000)
            turn += 1
    loads.append(load_average())
    answering.match_kinds = codes["this"]
    engine.close()
    print(f"Image queries at 10k items, each asked of both codes in turn (ABBA; the "
          f"unrelated photos twice each, 80 seeded copies once); load average "
          f"{loads[0]} before, {loads[-1]} after:\n")
    rows = []
    for kind in ("unrelated", "copies"):
        this, base = timings[(kind, "this")], timings[(kind, "baseline")]
        ratios = [t / b for t, b in zip(this, base, strict=True)]
        rows.append([kind, len(this), percentile(base, 50), percentile(this, 50),
                     percentile(base, 99), percentile(this, 99), median(ratios)])
    print(table(["queries", "n", "baseline p50 ms", "this p50 ms", "baseline p99 ms",
                 "this p99 ms", "median ratio this / baseline, per query"], rows) + "\n")
    write_results("verify_steps-interleaved",
                  {"rows": rows, "loads": loads, "baseline": str(src),
                   "command": command_line(), "date": started_at,
                   "load_average": {"before": loads[0], "after": loads[-1]},
                   "timings": {f"{k}/{n}": v for (k, n), v in timings.items()}})


def _run(src: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run([sys.executable, __file__, "--child"], env=env, check=True,
                          capture_output=True, text=True)
    return dict(json.loads(done.stdout.splitlines()[-1]))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--baseline-src", type=Path, default=None,
                        help="another checkout's src, run alternately in the same minutes")
    parser.add_argument("--interleave", action="store_true",
                        help="both codes query by query in one process (needs "
                             "--baseline-src)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.interleave:
        if args.baseline_src is None:
            parser.error("--interleave needs --baseline-src")
        interleave(args.baseline_src.resolve())
        return
    if args.child:
        print(json.dumps(measure()))
        return
    trees = {"this": SRC.resolve()}
    if args.baseline_src is not None:
        trees["baseline"] = args.baseline_src.resolve()
    started_at = now()
    print(f"# verify_steps — {started_at}\n\n{machine_line(machine())}\n\n`{command_line()}`\n")
    loads = [load_average()]
    runs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for n in range(args.rounds):
        for name in (list(trees) if n % 2 == 0 else list(trees)[::-1]):
            runs[name].append(_run(trees[name]))
        loads.append(load_average())
    rows = []
    for name, done in runs.items():
        rows.append([name, *(median([percentile(r[kind], q) for r in done])
                              for kind in ("unrelated", "copies") for q in (50, 99))])
    print(f"Image queries at 10k items, one at a time, {args.rounds} alternating rounds "
          f"(median of the rounds' percentiles); load averages "
          f"{[x[0] for x in loads]} (1 min, before and after each round):\n")
    print(table(["code", "unrelated p50 ms", "unrelated p99 ms", "copies p50 ms",
                 "copies p99 ms"], rows) + "\n")
    if "baseline" in runs:
        pairs = [(percentile(b["unrelated"], 50), percentile(t["unrelated"], 50))
                 for b, t in zip(runs["baseline"], runs["this"], strict=True)]
        ratios = sorted(t / b for b, t in pairs)
        print("unrelated p50 by round, baseline → this: "
              + ", ".join(f"{b:.0f} → {t:.0f} ms" for b, t in pairs)
              + f" (this / baseline: median ×{median(ratios):.2f}, "
              f"{ratios[0]:.2f}–{ratios[-1]:.2f}); copies p50 this / baseline "
              f"×{rows[0][3] / rows[1][3]:.2f}\n")
    for name, done in runs.items():
        steps = sorted({s for r in done for q in r["steps"] for s in q})
        stages = sorted({s for r in done for q in r["stages"] for s in q})
        print(f"Steps of an unrelated query ({name}), ms per query, median over queries "
              f"and rounds (steps on worker threads overlap):\n")
        print(table(["step", "p50 ms", "p99 ms"],
                    [[s, median([percentile([q.get(s, 0.0) for q in r["steps"]], 50)
                                 for r in done]),
                      median([percentile([q.get(s, 0.0) for q in r["steps"]], 99)
                              for r in done])]
                     for s in steps]
                    + [[f"stage: {s}",
                        median([percentile([q.get(s, 0.0) for q in r["stages"]], 50)
                                for r in done]),
                        median([percentile([q.get(s, 0.0) for q in r["stages"]], 99)
                                for r in done])]
                       for s in stages]) + "\n")
    write_results("verify_steps", {"rows": rows, "loads": loads,
                                   "command": command_line(), "date": started_at,
                                   "load_average": {"before": loads[0],
                                                    "after": loads[-1]},
                                   "trees": {k: "src" if v == SRC.resolve() else str(v)
                                             for k, v in trees.items()},
                                   "runs": runs})


if __name__ == "__main__":
    main()
