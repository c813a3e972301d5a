"""Throughput of query encoding with and without micro-batching, at several concurrencies.

Each of C threads asks the engine for the embedding of distinct query texts (minilm) as
fast as it can for a fixed number of requests; the embedding cache is off so every
request reaches the model. Micro-batching gathers concurrent requests into one model
call; without it each request is its own call. Prints a table and writes
bench/results/batching.json.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/batching.py
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

from common import machine, table, write_results
from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.types import Item

WORDS = (
    "red", "blue", "green", "small", "large", "wooden", "metal", "vintage", "modern",
    "soft", "leather", "cotton",
    "chair", "lamp", "table", "shoe", "bag", "watch", "mug", "shirt", "jacket", "bottle", "plate",
)


def queries(n: int, seed: int) -> list[str]:
    out = []
    for i in range(n):
        a = WORDS[(i * 7 + seed) % len(WORDS)]
        b = WORDS[(i * 13 + 3 + seed) % len(WORDS)]
        out.append(f"{a} {b} number {i}")
    return out


def run(engine: Engine, concurrency: int, per_thread: int) -> float:
    texts = queries(concurrency * per_thread, concurrency)
    barrier = threading.Barrier(concurrency + 1)

    def worker(offset: int) -> None:
        barrier.wait()
        for text in texts[offset * per_thread:(offset + 1) * per_thread]:
            engine.embed_query_text("text", text)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return len(texts) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--per-thread", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        base = Settings(text_encoder="minilm", embedding_cache_size=0, result_cache_size=0,
                        log_searches=False)
        with Engine.open(Path(tmp) / "c", base) as engine:
            from PIL import Image

            engine.upsert(Item(id="one", title="a chair"), Image.new("RGB", (64, 64)))
        rows = []
        for batched in (False, True):
            settings = base.replace(micro_batch=batched)
            label = "micro-batched" if batched else "one call per query"
            with Engine.open(Path(tmp) / "c", settings, readonly=True) as engine:
                engine.embed_query_text("text", "warm up")
                for level in levels:
                    rates = [run(engine, level, args.per_thread) for _ in range(args.repeats)]
                    results.setdefault(str(level), {})[label] = statistics.median(rates)
        for level in levels:
            one = results[str(level)]["one call per query"]
            batched_rate = results[str(level)]["micro-batched"]
            rows.append([level, one, batched_rate, f"{batched_rate / one:.2f}x"])
    print(table(["concurrency", "queries/s unbatched", "queries/s micro-batched", "gain"],
                rows))
    write_results("batching", {"benchmark": "batching", "machine": machine(),
                               "per_thread": args.per_thread, "repeats": args.repeats,
                               "queries_per_second": results})


if __name__ == "__main__":
    main()
