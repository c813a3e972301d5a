"""Batch encoding throughput of ``imgsearch encode``: the Ray runner at 1 and 2 workers
against the local (sequential) runner, on the same folder of web-size JPEGs.

Data: the wallpaper JPEGs of ``bench/ingest.py`` (built once under ``bench/data/``).
Encoders: ``descriptor`` (the offline default) and a tiny randomly initialised CLIP
(``tests/tiny_clip.py``: 2 layers, 32-px input; its cost is mostly decoding, so it
stands for "a cheap model", not for ViT-B/32). The text encoder is ``none``, so the
runs measure the image path only.

Each repeat runs every variant once, in turn, into a fresh output folder, end to end
(listing, decoding with the ingest limits, enrichment, encoding, writing the Parquet
shards). Ray is started once (``ray.init(num_cpus=2)``) before the timed runs, so a Ray
run includes creating its actors (each loads its encoder) but not the cluster start-up,
which is reported apart. Prints a Markdown table and writes ``bench/results/encode.json``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common import (
    DATA_DIR,
    command_line,
    load_average,
    machine,
    machine_line,
    median,
    now,
    table,
    write_results,
)
from ingest import build_wallpapers

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from imgsearch.config import Settings  # noqa: E402
from imgsearch.engine.batch_encode import run_encode  # noqa: E402


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--shard-size", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs per variant; medians are reported")
    parser.add_argument("--encoders", default="descriptor,tiny-clip")
    args = parser.parse_args(argv)
    import ray

    from tiny_clip import make_tiny_clip

    info = machine()
    load_before = load_average()
    print(f"machine: {machine_line(info)}")
    folder, source = build_wallpapers(args.images, 0)
    print(f"data: {args.images} JPEGs in {folder}, source: {source}")
    workdir = Path(tempfile.mkdtemp(prefix="encode-", dir=DATA_DIR))
    started = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False, object_store_memory=300 << 20)
    ray_start_s = time.perf_counter() - started
    results: dict[str, Any] = {"benchmark": "encode", "command": command_line(), "date": now(),
                               "machine": info, "ray_version": ray.__version__,
                               "ray_start_s": ray_start_s, "images": args.images,
                               "shard_size": args.shard_size, "runs": {}}
    rows = []
    try:
        clip_dir = make_tiny_clip(workdir / "tiny-clip")
        variants: dict[str, tuple[str, int]] = {
            "local (sequential)": ("local", 1), "ray, 1 worker": ("ray", 1),
            "ray, 2 workers": ("ray", 2)}
        for encoder in [e.strip() for e in args.encoders.split(",") if e.strip()]:
            settings = Settings(image_encoder="clip" if encoder == "tiny-clip" else encoder,
                                text_encoder="none", clip_model=str(clip_dir))
            run_encode(folder, workdir / f"warm-{encoder}", settings,  # imports, first calls
                       shard_size=args.shard_size)
            seconds: dict[str, list[float]] = {name: [] for name in variants}
            for r in range(args.repeats):
                for name, (runner, workers) in variants.items():
                    out = workdir / f"{encoder}-{runner}-{workers}-{r}"
                    t0 = time.perf_counter()
                    report = run_encode(folder, out, settings, runner=runner,  # type: ignore[arg-type]
                                        workers=workers, shard_size=args.shard_size)
                    seconds[name].append(time.perf_counter() - t0)
                    assert report.items + len(report.failed) == args.images
                    shutil.rmtree(out, ignore_errors=True)
            base = args.images / median(seconds["local (sequential)"])
            for name, runs in seconds.items():
                rate = args.images / median(runs)
                rows.append([encoder, name, f"{rate:.1f}",
                             ", ".join(f"{args.images / s:.1f}" for s in runs),
                             f"{rate / base:.2f}"])
            results["runs"][encoder] = seconds
    finally:
        ray.shutdown()
        shutil.rmtree(workdir, ignore_errors=True)
    results["load_average"] = {"before": load_before, "after": load_average()}
    print(f"\nRay start-up (once, not in the runs): {ray_start_s:.1f}s\n")
    print(table(["encoder", "runner", "images/s (median)", "runs", "÷ local"], rows))
    print(f"\nload average before {load_before}, after {results['load_average']['after']}")
    write_results("encode", results)


if __name__ == "__main__":
    main()
