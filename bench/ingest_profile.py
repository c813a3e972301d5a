"""Where ingest spends its CPU: cProfile of the decode workers' job and of the caller.

Two profiles on the same folder (``bench/ingest.py``'s data, built by it first):

- worker: ``pipeline.derive_job`` on every file, one after the other in this process
  with numpy on one thread, as a decode worker runs it (decode with the pipeline's draft
  reduction, thumbnail shrink and JPEG, pHash, colours, the descriptor). The first file
  is run once before profiling, so imports and caches are not counted;
- main: ``Engine.ingest(folder)`` into a fresh collection with the default 2 decode
  worker processes, profiling this process only (what it does beside the workers: the
  text encoder, the catalog, vector and index writes, fsyncs, the calibration).

Prints CPU ms per image of each stage (cumulative time of the functions that make it)
and the functions with the most own time. Profiling slows Python code (not C code) by
a few tens of per cent: the shares matter more than the absolute figures.

    PYTHONPATH=src HF_HUB_OFFLINE=1 .venv/bin/python bench/ingest_profile.py --images 500
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from common import DATA_DIR, load_average
from imgsearch import Engine, Settings
from imgsearch.encode.blas import one_blas_thread
from imgsearch.encode.registry import get_encoder
from imgsearch.engine.pipeline import DecodeRequest, decode_target, derive_job

# stage name: (file suffix, function name) whose cumulative time makes it
WORKER_STAGES = {
    "read + decode (draft)": ("ingest/decode.py", "decode_file"),
    "thumbnail shrink": ("enrich/thumbnails.py", "shrink_for_thumbnail"),
    "thumbnail JPEG": ("enrich/thumbnails.py", "thumbnail_bytes"),
    "pHash": ("enrich/phash.py", "perceptual_hash"),
    "colours": ("enrich/colors.py", "dominant_colors"),
    "descriptor": ("encode/descriptor.py", "describe_image"),
}
MAIN_STAGES = {
    "waiting for the workers": ("concurrent/futures/_base.py", "result"),
    "text encoder (minilm, incl. load)": ("encode/base.py", "embed_texts"),
    "text model load": ("encode/minilm.py", "_open"),
    "catalog + vectors + index (commit)": ("engine/writer.py", "commit"),
    "thumbnail files": ("engine/writer.py", "_write_files"),
    "SQLite upserts": ("store/catalog.py", "upsert_many"),
    "fsync": ("~", "<built-in method posix.fsync>"),
    "save indexes + calibration": ("engine/indexes.py", "save"),
}


def stage_ms(stats: pstats.Stats, stages: dict[str, tuple[str, str]], n: int
             ) -> dict[str, float]:
    """CPU ms per image of each stage: the cumulative time of its function."""
    out = dict.fromkeys(stages, 0.0)
    for (path, _, name), row in stats.stats.items():  # type: ignore[attr-defined]
        for stage, (suffix, wanted) in stages.items():
            if name == wanted and path.endswith(suffix):
                out[stage] += 1000 * row[3] / n
    return out


def top(stats: pstats.Stats, count: int) -> str:
    buffer = io.StringIO()
    stats.stream = buffer  # type: ignore[attr-defined]
    stats.sort_stats("tottime").print_stats(count)
    return buffer.getvalue()


def profile_worker(paths: Sequence[Path], settings: Settings) -> tuple[pstats.Stats, float]:
    encoder = get_encoder(settings.image_encoder, settings)
    shorter, longer = decode_target(encoder.image_side, settings.thumbnail_size, ocr=False)
    s = settings
    requests = [DecodeRequest(str(p), str(p), s.max_file_bytes, s.max_pixels, s.min_side,
                              shorter, longer, image_vector=encoder.image_vector_job(),
                              keep_pixels=False) for p in paths]
    profiler = cProfile.Profile()
    with one_blas_thread():
        derive_job(requests[0], s.thumbnail_size)  # imports and caches, not profiled
        started = time.process_time()
        profiler.enable()
        for request in requests:
            derive_job(request, s.thumbnail_size)
        profiler.disable()
    return pstats.Stats(profiler), time.process_time() - started


def profile_main(folder: Path, settings: Settings) -> tuple[pstats.Stats, float, int]:
    target = Path(tempfile.mkdtemp(prefix="ingest-profile-")) / "collection"
    engine = Engine.open(target, settings)
    profiler = cProfile.Profile()
    try:
        started = time.process_time()
        profiler.enable()
        report = engine.ingest(folder)
        profiler.disable()
        cpu = time.process_time() - started
    finally:
        engine.close()
        shutil.rmtree(target.parent, ignore_errors=True)
    return pstats.Stats(profiler), cpu, report.added


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=500,
                        help="which bench/ingest.py folder (build it with that script)")
    parser.add_argument("--text-encoder", default="minilm")
    parser.add_argument("--top", type=int, default=15, help="functions listed per profile")
    args = parser.parse_args(argv)
    folder = DATA_DIR / f"ingest-{args.images}-s0"
    if not folder.is_dir():
        raise SystemExit(f"{folder} is missing: run bench/ingest.py --images {args.images}")
    paths = sorted(p for p in folder.rglob("*.jpg"))
    settings = Settings(text_encoder=args.text_encoder)
    print(f"load average before: {load_average()}")
    worker, worker_cpu = profile_worker(paths, settings)
    print(f"\nworker job, {len(paths)} images, one process: "
          f"{1000 * worker_cpu / len(paths):.2f} ms CPU per image (profiled)")
    for stage, ms in stage_ms(worker, WORKER_STAGES, len(paths)).items():
        print(f"  {stage:40s} {ms:6.2f} ms/image")
    print(top(worker, args.top))
    main_stats, main_cpu, added = profile_main(folder, settings)
    print(f"\nmain process, Engine.ingest of {added} images (text encoder "
          f"{args.text_encoder}): {1000 * main_cpu / added:.2f} ms CPU per image (profiled)")
    for stage, ms in stage_ms(main_stats, MAIN_STAGES, added).items():
        print(f"  {stage:40s} {ms:6.2f} ms/image (wall inside this process)")
    print(top(main_stats, args.top))
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
