"""The engine's overhead over FAISS, this code against an older commit, on this machine.

``bench/peers.py`` reports engine ÷ bare FAISS on the same index (median of per-query
ratios, in one process). That ratio moves with the machine (its caches, memory and the
load of its neighbours) by more than a change of the search path does, so a figure from
another day or machine says little about a regression. This script runs the older
commit's own ``bench/peers.py`` (engine and FAISS only, ``--reuse``; the older code
builds its own collection on the first run, under its own unpacked tree) and this
tree's, taking turns (the older first in odd turns, this tree first in even ones), and
reports each run's two ratios, their medians per code and, since the machine's load
drifts over the runs, the difference within each turn.

    python bench/against_older.py --rev 95d92fe --n 1000000 --runs 7

The older tree is unpacked with ``git archive`` into ``bench/data/older-REV/`` and kept
there (its collection too, several GB at 1M), so a second invocation starts at once.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

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

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RATIOS = ("engine ÷ faiss (by vector)", "engine ÷ faiss k=11 (by id)")


def unpack(rev: str) -> tuple[Path, str]:
    """The older commit's tree (src and bench), unpacked once; and its full hash."""
    full = subprocess.run(["git", "rev-parse", "--verify", f"{rev}^{{commit}}"], cwd=ROOT,
                          check=True, capture_output=True, text=True).stdout.strip()
    tree = BENCH / "data" / f"older-{full[:12]}"
    if not (tree / "bench" / "peers.py").exists():
        tree.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", full, "src", "bench"], cwd=ROOT,
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree, full


def this_tree() -> str:
    """How this tree is named in the tables: its commit, and whether ``src`` has changes."""
    head = subprocess.run(["git", "rev-parse", "--short=7", "HEAD"], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "src"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.strip()
    return f"this tree {head}{' + changes' if dirty else ''}"


def peers_run(tree: Path, n: int) -> dict[str, Any]:
    """One ``bench/peers.py`` run of the code in ``tree`` (engine and FAISS only)."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(tree / "src"))
    started = time.perf_counter()
    subprocess.run([sys.executable, "bench/peers.py", "--data", "clustered", "--n", str(n),
                    "--methods", "engine", "--no-curves", "--reuse"], cwd=tree, env=env,
                   check=True, stdout=subprocess.DEVNULL)
    result = json.loads((tree / "bench" / "results" / f"peers-clustered-{n}.json").read_text())
    p50 = {name: method["p50_ms"] for name, method in result["methods"].items()}
    return {"wall_s": time.perf_counter() - started, "date": result["date"],
            **{r: result["ratios"][r] for r in RATIOS}, "p50_ms": p50}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rev", default="95d92fe",
                        help="the older commit (default: the 2026-11-21 1M figures' code)")
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7, help="runs of each code, in turns")
    args = parser.parse_args()
    info = machine()
    print(machine_line(info))
    before = load_average()
    older, full = unpack(args.rev)
    codes = {f"older {full[:7]}": older, this_tree(): ROOT}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in codes}
    # this tree's own peers results (the ones BENCHMARKS.md shows) are put back after
    kept = {path: path.read_bytes()
            for path in (BENCH / "results").glob(f"peers-clustered-{args.n}*")}
    try:
        for turn in range(args.runs):
            # the first of a turn meets the machine as the other left it: the order
            # alternates, so that neither code always runs first
            order = list(codes.items()) if turn % 2 == 0 else list(codes.items())[::-1]
            for name, tree in order:
                run = peers_run(tree, args.n)
                runs[name].append(run)
                print(f"  run {turn + 1}/{args.runs}, {name}: "
                      + ", ".join(f"{r} {run[r]:.2f}×" for r in RATIOS), file=sys.stderr)
    finally:
        for path, content in kept.items():
            path.write_bytes(content)
    after = load_average()
    print(f"\nEngine ÷ bare FAISS on the same index, {args.n:,} × 512-d clustered "
          f"(bench/peers.py --methods engine --no-curves --reuse, each code on the "
          f"collection it built); {args.runs} runs of each code, in turns\n")
    rows = []
    for name, done in runs.items():
        for r in RATIOS:
            values = [run[r] for run in done]
            rows.append([name, r.removeprefix("engine ÷ faiss").strip(),
                         f"{median(values):.2f}×", f"{min(values):.2f}–{max(values):.2f}",
                         ", ".join(f"{v:.2f}" for v in values)])
    print(table(["code", "kind", "median of runs", "range", "runs, in order"], rows))
    # the load drifts over the runs: each turn's own pair is the fairer comparison
    older_runs, these_runs = runs.values()
    paired = []
    for r in RATIOS:
        gaps = [mine[r] - theirs[r] for theirs, mine in zip(older_runs, these_runs, strict=True)]
        paired.append([r.removeprefix("engine ÷ faiss").strip(), f"{median(gaps):+.2f}",
                       f"{min(gaps):+.2f} … {max(gaps):+.2f}",
                       ", ".join(f"{g:+.2f}" for g in gaps)])
    print("\nThis tree's ratio minus the older code's, turn by turn:\n")
    print(table(["kind", "median", "range", "turns, in order"], paired))
    print(f"\nload average (1, 5, 15 min) before: {before}, after: {after}")
    path = write_results(f"against-older-{args.n}", {
        "benchmark": "against_older", "command": command_line(), "date": now(),
        "machine": info, "n": args.n, "rev": full, "runs": runs,
        "load_average": {"before": before, "after": after}})
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
