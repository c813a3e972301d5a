"""Where the time of one watched file goes: each sync after the file is closed, timed.

Copies ``--watched`` web-size JPEGs of ``bench/data/ingest-500-s0/`` into a folder, runs
a ``FolderWatcher`` over it in-process (product defaults, text encoder ``--text-encoder``)
until all are in, then writes ``--singles`` files one at a time (each a copy of one of
them, closed at once) and prints, per file, the seconds from its close until it is in
the collection and the syncs that ran meanwhile (started how long after the close, how
long they took, how many files they held back). Prints the median and the maximum.
Run it with another tree first on ``PYTHONPATH`` to compare versions of the watcher.
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from common import DATA_DIR, median, now
from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.engine.watch import FolderWatcher
from imgsearch.types import IngestReport


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--watched", type=int, default=300)
    parser.add_argument("--singles", type=int, default=25)
    parser.add_argument("--text-encoder", default="minilm")
    args = parser.parse_args()
    photos = sorted((DATA_DIR / "ingest-500-s0").rglob("*.jpg"))
    if len(photos) < args.watched:
        raise SystemExit("run bench/ingest.py --images 500 first (it builds the photos)")
    syncs: list[tuple[float, float, int]] = []
    plain_sync = FolderWatcher.sync

    def timed_sync(self: FolderWatcher, **kwargs: Any) -> IngestReport:
        started = time.perf_counter()
        report = plain_sync(self, **kwargs)
        syncs.append((started, time.perf_counter() - started, self.stats.held))
        return report

    FolderWatcher.sync = timed_sync  # type: ignore[method-assign]
    rng = random.Random(0)
    print(f"# One watched file, sync by sync ({now()})\n")
    with tempfile.TemporaryDirectory(prefix="imgsearch-watch-trace-") as tmp:
        watched = Path(tmp) / "photos"
        (watched / "singles").mkdir(parents=True)
        for path in photos[:args.watched]:
            shutil.copyfile(path, watched / path.name)
        with Engine.open(Path(tmp) / "collection",
                         Settings(text_encoder=args.text_encoder)) as engine:
            watcher = FolderWatcher(engine, watched).start()
            while engine.catalog.count() < args.watched:
                time.sleep(0.05)
            time.sleep(1.0)
            latencies = []
            for i in range(args.singles):
                data = photos[rng.randrange(args.watched)].read_bytes()
                first = len(syncs)
                with open(watched / "singles" / f"single-{i:03d}.jpg", "wb") as handle:
                    handle.write(data)
                closed = time.perf_counter()
                while f"singles/single-{i:03d}.jpg" not in engine:
                    time.sleep(0.01)
                latencies.append(time.perf_counter() - closed)
                seen = [f"{start - closed:.2f}s+{took:.3f}s held {held}"
                        for start, took, held in syncs[first:]]
                print(f"file {i}: {latencies[-1]:.3f} s; syncs before it was in: "
                      f"{', '.join(seen) or 'none'}")
                time.sleep(0.3)
            watcher.stop(30)
    print(f"\nclosed -> searchable: median {median(latencies):.3f} s, "
          f"max {max(latencies):.3f} s (n={len(latencies)})")


if __name__ == "__main__":
    main()
