"""Browsing a milvus collection newest first: the page read from a window of the newest
rows (``milvus_positions.browse_page``) against the whole scan of the passing rows
(what it does up to SCAN_ALL passing rows), on the same collection in the same run.

    .venv/bin/python bench/milvus_browse.py --n 40000 --rounds 3 --stamps spread
    .venv/bin/python bench/milvus_browse.py --n 40000 --rounds 3 --stamps bulk
    (--server: the standalone Milvus 2.3.5 server instead of Milvus Lite)

Rows are written in batches of 2,000, stamped as the node stamps them (``--stamps bulk``:
all within the seconds of the run, one import) or as if added evenly over the last year
(``--stamps spread``: a catalog grown over time); each round asks
for the first page (10 items) and a deeper one (offset 200), unfiltered and with a
category filter passing a quarter of the rows, each way, in a random order. Medians
over the rounds, and whole scan ÷ window.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import common
from imgsearch.engine.backends import milvus_positions
from imgsearch.engine.backends.base import Row
from imgsearch.engine.backends.milvus import MilvusBackend
from imgsearch.types import Filters, Item

DIM = 32
CATEGORIES = ("shoes", "hats", "bags", "coats")


@contextmanager
def address(server: bool, directory: Path) -> Iterator[str]:
    if server:
        import milvusserver

        with milvusserver.milvus_server(directory / "server") as (found, _pid):
            yield found
    else:
        import milvuskit

        yield from milvuskit.milvus_lite(directory)


class YearOfStamps:
    """``Stamps`` as if the ``n`` items had come evenly over the last year."""

    def __init__(self, n: int) -> None:
        self.step = 365 * 24 * 3600 * 1_000_000 // n
        self.next = time.time_ns() // 1000 - 365 * 24 * 3600 * 1_000_000

    def take(self, k: int) -> list[int]:
        taken = [self.next + i * self.step for i in range(k)]
        self.next += k * self.step
        return taken


def fill(backend: MilvusBackend, n: int, spread: bool) -> None:
    if spread:
        backend._stamps = YearOfStamps(n)  # type: ignore[assignment]
    rng = np.random.default_rng(0)
    for start in range(0, n, 2000):
        vectors = rng.standard_normal((min(2000, n - start), DIM)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        backend.upsert([Row(Item(id=f"i{start + j:07d}",
                                 category=CATEGORIES[(start + j) % 4]), {"image": v})
                        for j, v in enumerate(vectors)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--stamps", choices=["bulk", "spread"], default="spread")
    parser.add_argument("--server", action="store_true",
                        help="the standalone Milvus 2.3.5 server (else Milvus Lite)")
    args = parser.parse_args()
    label = "milvus 2.3.5 server" if args.server else "milvus lite"
    with tempfile.TemporaryDirectory() as scratch, address(args.server, Path(scratch)) as at:
        backend = MilvusBackend.open(f"milvus://{at}/browse_bench", {"image": DIM})
        fill(backend, args.n, args.stamps == "spread")
        cases = {"first page": (None, 0), "offset 200": (None, 200),
                 "1/4 pass, first page": (Filters(categories=("hats",)), 0)}
        ms: dict[tuple[str, str], list[float]] = {}
        answers: dict[tuple[str, str], list[str]] = {}
        whole = 10**12
        order = random.Random(1)
        for _ in range(args.rounds):
            runs = [(case, way) for case in cases for way in ("window", "whole scan")]
            order.shuffle(runs)
            for case, way in runs:
                filters, offset = cases[case]
                milvus_positions.SCAN_ALL = 20_000 if way == "window" else whole
                took, (_n, page) = common.timed(backend.newest, filters, offset, 10)
                ms.setdefault((case, way), []).append(took)
                answers[(case, way)] = page
        backend.close()
    rows = []
    for case in cases:
        window, scan = (common.median(ms[(case, w)]) for w in ("window", "whole scan"))
        same = answers[(case, "window")] == answers[(case, "whole scan")]
        rows.append([case, round(window, 1), round(scan, 1), f"{scan / window:.1f}x", same])
    print(f"{label}, {args.n:,} rows stamped {args.stamps}, medians of {args.rounds} rounds, "
          f"load {common.load_average()}")
    print(common.table(["page", "window ms", "whole scan ms", "whole ÷ window",
                        "same page"], rows))
    common.write_results(f"milvus_browse_{'server' if args.server else 'lite'}_{args.stamps}",
                         {"command": common.command_line(), "machine": common.machine(),
                          "n": args.n, "rounds": args.rounds, "ms": {
                              f"{c} / {w}": v for (c, w), v in ms.items()}})


if __name__ == "__main__":
    main()
