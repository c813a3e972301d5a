"""Where an image query's time goes: decode, descriptor, ANN, re-rank, fetch, at 100k and 1M.

A collection of ``--n`` items in the image space of the offline default encoder
(``descriptor``) is written through ``Catalog.upsert`` (the catalog writes of
``Engine.commit``, in batches of 20,000; the index is built once, afterwards, by
``Engine.open``). Its vectors look like the descriptor's: the descriptors of the real
photos under ``/usr/share/backgrounds`` (gnome-backgrounds and the other APT_BENCH
wallpaper packages) are the cluster centres, each item one of them plus Gaussian noise
(σ = 0.02 per dimension, cosine ~0.65 to its centre), normalised. The index is what
``auto`` picks under ``--memory-budget-mb`` (default 2048).

Queries are uploads: each photo scaled to 1024 px on its long side and saved as JPEG
(quality 90), given as bytes to ``engine.search(Query(images=[...], limit=10))`` with the
default settings except the result and query-embedding caches (off, so that every query
is decoded, described and answered). The engine's own per-stage timings
(``SearchResult.stage_ms``, ``engine/timing.py``: ``decode`` is the safe decode with the
query's derived fields, ``encode`` the descriptor, ``ann`` the index, ``rerank`` exact
re-scoring and ranking, ``verify`` the copy check of the top hits against their
thumbnails, ``fetch`` the result rows) are collected for each query after two warm-up
passes; "other" is the rest of the call (confidence, the query's bookkeeping). The table
gives each stage's p50 and its share of the summed medians, and the p50 of the whole
call.

Writes ``bench/results/stages-<n>.json``; work files under ``bench/data/stages-<n>/``.
"""

from __future__ import annotations

import argparse
import io
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

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

PHOTOS = [Path("/usr/share/backgrounds"), Path("/usr/share/wallpapers")]
BATCH = 20_000


def uploads(limit: int) -> list[bytes]:
    files = sorted(p for root in PHOTOS if root.is_dir() for p in root.rglob("*")
                   if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:limit]
    out = []
    for path in files:
        with Image.open(path) as img:
            img = img.convert("RGB")
            img.thumbnail((1024, 1024))
            buffer = io.BytesIO()
            img.save(buffer, "JPEG", quality=90)
            out.append(buffer.getvalue())
    if not out:
        raise SystemExit("no photos under /usr/share/backgrounds: `make apt-bench` installs them")
    return out


def settings(args: argparse.Namespace) -> Any:
    from imgsearch import Settings

    return Settings(image_encoder="descriptor", text_encoder="none", result_cache_size=0,
                    embedding_cache_size=0, memory_budget_mb=args.memory_budget_mb,
                    log_searches=False)


def build(args: argparse.Namespace, work: Path, photos: list[bytes]) -> dict[str, Any]:
    from imgsearch import Engine, Item
    from imgsearch.store.catalog import Catalog

    collection = work / "collection"
    if (work / "built").exists():
        return {"reused": True}
    with Engine.open(collection, settings(args).replace(index_type="flat")) as engine:
        centres = np.stack([engine.embed_query_image(p) for p in photos])
    (collection / "indexes" / "image.faiss").unlink(missing_ok=True)
    catalog = Catalog(collection / "catalog.sqlite3")
    rng = np.random.default_rng(5)
    started = time.perf_counter()
    try:
        done = catalog.count()
        for first in range(done, args.n, BATCH):
            rows = min(BATCH, args.n - first)
            x = centres[rng.integers(0, len(centres), rows)] + rng.normal(
                0, 0.02, (rows, centres.shape[1])).astype(np.float32)
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            with catalog.transaction() as conn:
                for offset in range(rows):
                    catalog.upsert(conn, Item(id=f"s{first + offset:07d}"),
                                   {"image": x[offset]})
            print(f"  written {first + rows:,} of {args.n:,}", flush=True)
    finally:
        catalog.close()
    write_s = time.perf_counter() - started
    logging.basicConfig(level=logging.INFO, format="  %(asctime)s %(message)s")
    started = time.perf_counter()
    with Engine.open(collection, settings(args)):
        pass
    (work / "built").write_text("1")
    return {"write_s": write_s, "index_s": time.perf_counter() - started}


def measure(args: argparse.Namespace, work: Path, photos: list[bytes]) -> dict[str, Any]:
    from imgsearch import Engine, Query

    engine = Engine.open(work / "collection", settings(args), readonly=True)
    kind = engine.spaces["image"].index.kind
    for _ in range(2):
        for photo in photos:
            engine.search(Query(images=[photo], limit=10))
    stages: dict[str, list[float]] = {}
    totals: list[float] = []
    for _ in range(args.rounds):
        for photo in photos:
            t = time.perf_counter_ns()
            result = engine.search(Query(images=[photo], limit=10))
            totals.append((time.perf_counter_ns() - t) / 1e6)
            for name, ms in result.stage_ms.items():
                stages.setdefault(name, []).append(ms)
            stages.setdefault("other", []).append(totals[-1] - sum(result.stage_ms.values()))
    index_bytes = engine.spaces["image"].index.memory_bytes()
    engine.close()
    return {"kind": kind, "index_bytes": index_bytes, "queries": len(totals),
            "total_p50_ms": median(totals), "total_p99_ms": percentile(totals, 99),
            "stages": {name: {"p50_ms": median(v), "p99_ms": percentile(v, 99),
                              "count": len(v)} for name, v in stages.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--photos", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--memory-budget-mb", type=int, default=2048)
    args = parser.parse_args()
    work = DATA_DIR / f"stages-{args.n}"
    work.mkdir(parents=True, exist_ok=True)
    photos = uploads(args.photos)
    load_before = load_average()
    built = build(args, work, photos)
    result = measure(args, work, photos)
    medians = {name: s["p50_ms"] for name, s in result["stages"].items()}
    summed = sum(medians.values())
    largest = max(medians, key=lambda name: medians[name])
    print(f"\nimage upload queries, {args.n:,} items ({result['kind']} index, "
          f"{result['index_bytes'] / 1e6:,.0f} MB), {result['queries']} queries of "
          f"{len(photos)} photos (1024 px JPEG); {now()}")
    print(machine_line(machine()))
    print(table(["stage", "p50 ms", "p99 ms", "share of summed p50s"],
                [[name, f"{s['p50_ms']:.2f}", f"{s['p99_ms']:.2f}",
                  f"{100 * s['p50_ms'] / summed:.0f} %"]
                 for name, s in sorted(result["stages"].items(),
                                       key=lambda kv: -kv[1]["p50_ms"])]))
    print(f"\nwhole call: p50 {result['total_p50_ms']:.2f} ms, p99 "
          f"{result['total_p99_ms']:.2f} ms; largest stage: {largest}")
    print(f"command: {command_line()}")
    write_results(f"stages-{args.n}", {
        "n": args.n, "build": built, **result, "machine": machine(),
        "command": command_line(), "date": now(),
        "load_average": {"before": load_before, "after": load_average()}})


if __name__ == "__main__":
    main()
