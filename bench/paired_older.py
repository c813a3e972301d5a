"""The engine's overhead over FAISS, this code against an older commit, query by query.

``bench/against_older.py`` compares whole ``bench/peers.py`` runs in turns, a minute
apart: the machine's state moves between the two runs of a turn by as much as a change
of the search path does (±0.1× within a turn at 1M items). Here both codes stay open at
once, each in a process of its own over the collection its own ``bench/peers.py``
built, and take turns block by block (``--block`` queries, a few tenths of a second;
the order alternates between blocks). Each query is timed next to a bare FAISS search
of another query on the same index, as ``bench/query_steps.py`` does; a code's ratio is
the median over its queries of engine ÷ FAISS, as in ``bench/peers.py``. The difference
between the codes comes with a 95 % interval: the blocks resampled with replacement,
both codes' halves of a block together (2,000 resamples). Which process starts first
(and loads its index first) moves the by-id ratio by about 0.01: ``--both-orders`` runs
half the rounds each way and pools them.

    python bench/paired_older.py --rev 95d92fe --n 1000000 --rounds 30 --both-orders

Needs this tree's ``bench/peers.py --data clustered --n N`` collection and the older
tree's (``bench/against_older.py`` unpacks and builds it); the queries and the rows
asked by id are this tree's, the same for both codes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray

from against_older import BENCH, ROOT, this_tree, unpack
from common import (
    command_line,
    load_average,
    machine,
    machine_line,
    now,
    table,
    write_results,
)

KINDS = ("by vector", "by id")


class Side:
    """One code's engine in a process of its own (``bench/paired_side.py``)."""

    def __init__(self, tree: Path, n: int, data: dict[str, Path]) -> None:
        env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(tree / "src"))
        self.process = subprocess.Popen(
            [sys.executable, str(BENCH / "paired_side.py"), "--tree", str(tree), "--n", str(n),
             *(f"--{name}={path}" for name, path in data.items())],
            cwd=tree, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.half = int(self._read()["half"])

    def _read(self) -> dict[str, Any]:
        out: IO[str] | None = self.process.stdout
        assert out is not None
        line = out.readline()
        if not line:
            raise RuntimeError(f"a side stopped (exit {self.process.wait()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def run(self, start: int, count: int) -> list[list[int]]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"start": start, "count": count}) + "\n")
        self.process.stdin.flush()
        ns: list[list[int]] = self._read()["ns"]
        return ns

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=120)


def ratios(blocks: list[NDArray[np.float64]]) -> dict[str, float]:
    times = np.concatenate(blocks)  # (queries, 4): faiss, engine by vector; faiss, by id
    return {"by vector": float(np.median(times[:, 1] / times[:, 0])),
            "by id": float(np.median(times[:, 3] / times[:, 2]))}


def _take_turns(older: Path, data: dict[str, Path], n: int, rounds: int, block: int,
                this_first: bool, blocks: list[list[Any]]) -> None:
    """Start both codes' processes (``this_first``: this tree's first: which loads its
    index first, and so where it lies in memory, is a choice), run ``rounds`` passes in
    blocks taken in turns, add each block's times to ``blocks`` (older, this tree)."""
    started: dict[Path, Side] = {}
    try:
        for tree in (ROOT, older) if this_first else (older, ROOT):
            started[tree] = Side(tree, n, data)
        sides = [started[older], started[ROOT]]
        half = min(side.half for side in sides)
        per_round = -(-half // block)
        for turn in range(rounds * per_round):
            start = (turn % per_round) * block
            count = min(block, half - start)
            # the order alternates, so that neither code always meets the machine first
            order = (0, 1) if turn % 2 == 0 else (1, 0)
            for which in order:
                blocks[which].append(np.asarray(sides[which].run(start, count), np.float64))
            print(f"\r  block {turn + 1}/{rounds * per_round}", end="", file=sys.stderr)
        print(file=sys.stderr)
    finally:
        for side in started.values():
            side.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rev", default="95d92fe",
                        help="the older commit (default: the 2026-11-21 1M figures' code)")
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=10,
                        help="passes over the queries (500 of each kind a pass)")
    parser.add_argument("--block", type=int, default=50, help="queries a side runs in a row")
    parser.add_argument("--this-first", action="store_true",
                        help="start this tree's process before the older code's (by "
                             "default the older code's starts first)")
    parser.add_argument("--both-orders", action="store_true",
                        help="half the rounds with each process started first (both "
                             "restarted between the halves), pooled: where each loads "
                             "its index moves a code's ratio by about 0.01")
    parser.add_argument("--name", default=None,
                        help="results file bench/results/NAME.json (default paired-older-N)")
    args = parser.parse_args()
    info = machine()
    print(machine_line(info))
    older, full = unpack(args.rev)
    here = BENCH / "data" / f"peers-clustered-{args.n}-s0"
    data = {"queries": BENCH / "data" / "vectors" / f"clustered-{args.n}-s0-q1100.npy",
            "id-rows": here / "id-rows-1100.npy",
            "base": BENCH / "data" / "vectors" / f"clustered-{args.n}-s0.npy"}
    for path in [*data.values(), older / "bench" / "data" / here.name / "collection",
                 here / "collection"]:
        if not path.exists():
            raise SystemExit(f"{path} is missing: run bench/peers.py --data clustered --n "
                             f"{args.n} here, and bench/against_older.py --rev {args.rev}")
    names = (f"older {full[:7]}", this_tree())
    before = load_average()
    blocks: list[list[Any]] = [[], []]
    phases = [False, True] if args.both_orders else [args.this_first]
    for this_first in phases:
        rounds = args.rounds // len(phases) + (0 if this_first else args.rounds % len(phases))
        _take_turns(older, data, args.n, rounds, args.block, this_first, blocks)
    after = load_average()
    started_first = ("each process started first for half the rounds" if args.both_orders
                     else f"{'this tree' if args.this_first else 'the older code'}'s "
                          f"process started first")
    queries = sum(len(b) for b in blocks[0])
    each = [ratios(b) for b in blocks]
    p50 = [np.median(np.concatenate(b), axis=0) / 1000 for b in blocks]
    rng = np.random.default_rng(0)
    spread: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for _ in range(2000):
        pick = rng.integers(0, len(blocks[0]), len(blocks[0]))
        older_r, this_r = (ratios([b[i] for i in pick]) for b in blocks)
        for kind in KINDS:
            spread[kind].append(this_r[kind] - older_r[kind])
    print(f"\nEngine ÷ bare FAISS on the same index, {args.n:,} × 512-d clustered, "
          f"each code on the collection its own bench/peers.py built; {queries:,} queries "
          f"of each kind per code, in blocks of {args.block} taken in turns; median of "
          f"per-query ratios; {started_first}\n")
    rows = []
    for name, r, p in zip(names, each, p50, strict=True):
        rows.append([name, "by vector", f"{r['by vector']:.3f}×", f"{p[1]:.0f}", f"{p[0]:.0f}"])
        rows.append([name, "by id", f"{r['by id']:.3f}×", f"{p[3]:.0f}", f"{p[2]:.0f}"])
    print(table(["code", "kind", "engine ÷ FAISS", "engine p50 µs", "FAISS p50 µs"], rows))
    diff = []
    for kind in KINDS:
        low, high = np.percentile(spread[kind], [2.5, 97.5])
        diff.append([kind, f"{each[1][kind] - each[0][kind]:+.3f}", f"{low:+.3f} … {high:+.3f}"])
    print("\nThis tree's ratio minus the older code's:\n")
    print(table(["kind", "difference", "95 % interval (blocks resampled)"], diff))
    print(f"\nload average (1, 5, 15 min) before: {before}, after: {after}")
    path = write_results(args.name or f"paired-older-{args.n}", {
        "benchmark": "paired_older", "command": command_line(), "date": now(),
        "machine": info, "n": args.n, "rev": full, "codes": list(names),
        "block": args.block, "queries": queries, "this_first": args.this_first,
        "both_orders": args.both_orders,
        "ratios": dict(zip(names, each, strict=True)),
        "p50_us": {name: {"faiss by vector": p[0], "engine by vector": p[1],
                          "faiss by id": p[2], "engine by id": p[3]}
                   for name, p in zip(names, (q.tolist() for q in p50), strict=True)},
        "difference": {kind: {"value": each[1][kind] - each[0][kind],
                              "interval_95": np.percentile(spread[kind], [2.5, 97.5]).tolist()}
                       for kind in KINDS},
        "load_average": {"before": before, "after": after}})
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
