"""A watched folder: how long until copied-in photos are searchable, and moves/deletes seen.

Uses the 1,000 web-size JPEGs of ``bench/ingest.py`` (built once from the GNOME
wallpapers, ``bench/data/ingest-1000-s0/``). Each repeat, in a fresh temporary folder
and collection, with ``FolderWatcher`` running in this process:

1. copy: the photos are copied (new files, fresh mtimes) into the watched folder; the
   clock runs from the first copy to the moment every one of them is in the collection
   (polled every 20 ms); the lag from the end of the copy is reported too;
2. peer: ``Engine.ingest`` of the same folder into another fresh collection (what
   ``imgsearch index`` does), timed in the same repeat;
3. single files: ``--singles`` files written one at a time, each timed from the moment
   its writer closes it until it is in the collection;
4. moves: 100 files renamed into another folder, until the old ids are gone and the new
   ones present; deletes: 100 files removed, until their ids are gone;
5. a rescan with nothing to do (what a sync costs when it falls back to scanning the
   whole folder), over the 1,000 files.

In each repeat, a spot check: 20 copied photos searched by their own pixels must
come back at rank 1 (near-duplicates not folded), and the watched ids must be those a
scan of the folder gives. ``--scan-files`` also times the folder scan alone over that
many empty ``.jpg`` files (no catalog), to show how a rescan grows with the folder.
Prints Markdown tables and writes ``bench/results/watch.json``.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import tempfile
import time
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
    table,
    write_results,
)
from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.engine.watch import FolderWatcher
from imgsearch.ingest.sources import scan_folder
from imgsearch.types import Query
from ingest import build_wallpapers

POLL_S = 0.02


def wait_until(condition: Callable[[], bool], limit_s: float = 600.0) -> float:
    """Seconds until ``condition`` holds (polled), from now."""
    start = time.perf_counter()
    while not condition():
        if time.perf_counter() - start > limit_s:
            raise RuntimeError("gave up waiting")
        time.sleep(POLL_S)
    return time.perf_counter() - start


def one_repeat(photos: list[Path], source: Path, settings: Settings, singles: int,
               rng: random.Random) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="imgsearch-watch-") as tmp:
        root = Path(tmp)
        watched = root / "photos"
        watched.mkdir()
        out: dict[str, Any] = {}
        with Engine.open(root / "watched", settings) as engine:
            watcher = FolderWatcher(engine, watched).start()
            try:
                names = [str(p.relative_to(source)) for p in photos]
                started = time.perf_counter()
                for path, name in zip(photos, names, strict=True):
                    target = watched / name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(path, target)
                copied = time.perf_counter()
                wait_until(lambda: engine.catalog.count() == len(photos))
                done = time.perf_counter()
                out["copy_s"] = copied - started
                out["all_searchable_s"] = done - started
                out["lag_after_copy_s"] = done - copied
                out["syncs_for_copy"] = watcher.stats.syncs - 1
                out["failed"] = watcher.stats.failed

                latencies = []
                for i in range(singles):
                    data = photos[rng.randrange(len(photos))].read_bytes()
                    target = watched / "singles" / f"single-{i:03d}.jpg"
                    target.parent.mkdir(exist_ok=True)
                    with open(target, "wb") as handle:
                        handle.write(data)
                    closed = time.perf_counter()
                    wait_until(lambda t=f"singles/single-{i:03d}.jpg": t in engine)
                    latencies.append(time.perf_counter() - closed)
                out["single_latency_s"] = latencies

                moved = rng.sample(names, 100)
                (watched / "moved").mkdir()
                t0 = time.perf_counter()
                for name in moved:
                    os.rename(watched / name, watched / "moved" / name.replace("/", "-"))
                wait_until(lambda: all(
                    n not in engine and f"moved/{n.replace('/', '-')}" in engine
                    for n in moved))
                out["move_100_s"] = time.perf_counter() - t0
                kept = [n for n in names if n not in set(moved)]
                deleted = rng.sample(kept, 100)
                t0 = time.perf_counter()
                for name in deleted:
                    (watched / name).unlink()
                wait_until(lambda: all(n not in engine for n in deleted))
                out["delete_100_s"] = time.perf_counter() - t0
                wait_until(watcher.synced.is_set)
                t0 = time.perf_counter()
                watcher.sync(full=True)
                out["noop_sync_s"] = time.perf_counter() - t0
                out["rescans"] = watcher.stats.rescans
                out["items_after"] = engine.catalog.count()
                # the ids `index` would give this folder as it is now, and no other
                listed = {entry.id for entry in scan_folder(watched)[0]}
                out["ids_agree_with_a_scan"] = listed == set(engine.catalog.ids_of_source(
                    str(watched.resolve())))
                out["spot_check_rank1"] = spot_check(engine, watched, rng)
            finally:
                watcher.stop(60)
        t0 = time.perf_counter()
        with Engine.open(root / "indexed", settings) as peer:
            report = peer.ingest(source)
        out["peer_index_s"] = time.perf_counter() - t0
        out["peer_added"] = report.added
    return out


def spot_check(engine: Engine, watched: Path, rng: random.Random) -> float:
    """Share of 20 watched photos found at rank 1 by their own pixels, near-duplicates
    not folded (crops of one wallpaper can be near-duplicates; the single files are
    copies of others, so they are left out)."""
    files = sorted(p for p in watched.rglob("*.jpg") if p.parent.name != "singles")
    picked = rng.sample(files, 20)
    found = 0
    for path in picked:
        hits = engine.search(Query(images=[path], limit=1, collapse_duplicates=False)).hits
        found += bool(hits) and hits[0].id == str(path.relative_to(watched))
    return found / len(picked)


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def burst(photos: list[Path], count: int, settings: Settings) -> dict[str, Any]:
    """``count`` small JPEGs (320x240 crops of the photos, built in a staging folder)
    moved into a watched folder as fast as possible; resident memory sampled meanwhile."""
    from PIL import Image

    with tempfile.TemporaryDirectory(prefix="imgsearch-burst-") as tmp:
        root = Path(tmp)
        staging, watched = root / "staging", root / "photos"
        staging.mkdir()
        watched.mkdir()
        for i in range(count):
            with Image.open(photos[i % len(photos)]) as im:
                im.draft("RGB", (320, 240))
                left = (i // len(photos)) * 7
                small = im.convert("RGB").crop((left, 0, im.width, im.height))
                small.resize((320, 240)).save(staging / f"b{i:05d}.jpg", quality=85)
        with Engine.open(root / "collection", settings) as engine:
            watcher = FolderWatcher(engine, watched).start()
            peak = [rss_mib()]
            before = peak[0]
            sampling = [True]

            def sample() -> None:
                while sampling[0]:
                    peak[0] = max(peak[0], rss_mib())
                    time.sleep(0.1)

            import threading

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            try:
                t0 = time.perf_counter()
                for i in range(count):
                    os.rename(staging / f"b{i:05d}.jpg", watched / f"b{i:05d}.jpg")
                moved = time.perf_counter()
                wait_until(lambda: engine.catalog.count() == count, 3600)
                done = time.perf_counter()
            finally:
                sampling[0] = False
                sampler.join()
                watcher.stop(60)
            return {"files": count, "move_in_s": moved - t0, "all_searchable_s": done - t0,
                    "syncs": watcher.stats.syncs - 1, "failed": watcher.stats.failed,
                    "rss_before_mib": before, "rss_peak_mib": peak[0]}


def scan_cost(count: int) -> float:
    """Seconds to scan a folder of ``count`` empty .jpg files (100 per subfolder)."""
    with tempfile.TemporaryDirectory(prefix="imgsearch-scan-") as tmp:
        root = Path(tmp)
        for i in range(count):
            folder = root / f"d{i // 100:05d}"
            if i % 100 == 0:
                folder.mkdir()
            (folder / f"f{i:07d}.jpg").touch()
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            scan_folder(root)
            times.append(time.perf_counter() - t0)
        return median(times)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--singles", type=int, default=20)
    parser.add_argument("--text-encoder", default="minilm")
    parser.add_argument("--scan-files", type=int, nargs="*", default=[1000, 10000, 100000])
    parser.add_argument("--burst", type=int, default=0,
                        help="Only this: move this many small JPEGs into a watched folder "
                             "at once; time and resident memory (writes watch-burst.json).")
    args = parser.parse_args(argv)

    source, described = build_wallpapers(args.images, 0)
    photos = sorted(p for p in source.rglob("*.jpg"))
    settings = Settings(image_encoder="descriptor", text_encoder=args.text_encoder)
    info = machine()
    load_before = load_average()
    print(f"{now()}; {machine_line(info)}; load {load_before}")
    print(f"data: {len(photos)} JPEGs from {described}")
    if args.burst:
        result = burst(photos, args.burst, settings)
        print(table(["files", "moved in (s)", "all searchable (s)", "syncs", "failed",
                     "RSS before (MiB)", "RSS peak (MiB)"],
                    [[result["files"], result["move_in_s"], result["all_searchable_s"],
                      result["syncs"], result["failed"], result["rss_before_mib"],
                      result["rss_peak_mib"]]]))
        print(f"load {load_before} before, {load_average()} after")
        written = write_results("watch-burst", {
            "command": command_line(), "date": now(), "machine": info, "result": result,
            "load_average": {"before": load_before, "after": load_average()}})
        print(f"\nwrote {written}")
        return
    rng = random.Random(0)
    runs = [one_repeat(photos, source, settings, args.singles, rng)
            for _ in range(args.repeats)]
    load_after = load_average()

    def col(key: str) -> list[float]:
        return [float(r[key]) for r in runs]

    singles = [s for r in runs for s in r["single_latency_s"]]
    rows = [
        ["copy 1,000 in → all searchable (s)", median(col("all_searchable_s")),
         ", ".join(f"{v:.1f}" for v in col("all_searchable_s"))],
        ["  of which after the copy ended (s)", median(col("lag_after_copy_s")),
         ", ".join(f"{v:.1f}" for v in col("lag_after_copy_s"))],
        ["peer: Engine.ingest of the same folder (s)", median(col("peer_index_s")),
         ", ".join(f"{v:.1f}" for v in col("peer_index_s"))],
        ["watch ÷ peer", median([a / b for a, b in zip(col("all_searchable_s"),
                                                       col("peer_index_s"), strict=True)]),
         ""],
        ["syncs during the copy", median(col("syncs_for_copy")),
         ", ".join(str(int(v)) for v in col("syncs_for_copy"))],
        ["rescans of the whole folder, whole run", median(col("rescans")),
         ", ".join(str(int(v)) for v in col("rescans"))],
        [f"one file: closed → searchable, median (s, n={len(singles)})", median(singles), ""],
        ["one file: closed → searchable, max (s)", max(singles), ""],
        ["100 files moved → reflected (s)", median(col("move_100_s")),
         ", ".join(f"{v:.2f}" for v in col("move_100_s"))],
        ["100 files deleted → reflected (s)", median(col("delete_100_s")),
         ", ".join(f"{v:.2f}" for v in col("delete_100_s"))],
        ["rescan with nothing to do, 1,000 files (s)", median(col("noop_sync_s")),
         ", ".join(f"{v:.3f}" for v in col("noop_sync_s"))],
        ["items at the end (1,000 + singles − 100 deleted)", median(col("items_after")), ""],
        ["spot check: found at rank 1 by own pixels", median(col("spot_check_rank1")),
         ", ".join(f"{v:.2f}" for v in col("spot_check_rank1"))],
        ["ids = the ids a scan of the folder gives", all(r["ids_agree_with_a_scan"]
                                                         for r in runs), ""],
        ["failed files", sum(col("failed")), ""],
    ]
    print(table(["measure", "median", "runs"], rows))
    scans = {n: scan_cost(n) for n in args.scan_files}
    if scans:
        print("\nThe folder scan alone (folders of empty .jpg files, 100 a subfolder, no "
              "catalog):\n")
        print(table(["files in the folder", "scan_folder (s)", "per 1,000 files (ms)"],
                    [[f"{n:,}", s, s / n * 1e6] for n, s in scans.items()]))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS {peak:.0f} MiB; load {load_before} before, {load_after} after")
    path = write_results("watch", {"command": command_line(), "date": now(), "machine": info,
                                   "load_average": {"before": load_before,
                                                    "after": load_after},
                                   "runs": runs, "scan_seconds": scans,
                                   "peak_rss_mib": peak})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
