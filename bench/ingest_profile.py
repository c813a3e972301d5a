"""Where ingest spends its CPU: cProfile of the decode workers' job and of the caller.

Two profiles on the same folder (``bench/ingest.py``'s data, built by it first):

- worker: ``pipeline.derive_job`` on every file, one after the other in this process
  with numpy on one thread, as a decode worker runs it (decode with the pipeline's draft
  reduction, thumbnail shrink and JPEG, pHash, colours, the descriptor). The first file
  is run once before profiling, so imports and caches are not counted;
- main: ``Engine.ingest(folder)`` into a fresh collection with the default 2 decode
  worker processes, profiling this process only (what it does beside the workers: the
  text encoder, the catalog, vector and index writes, fsyncs, the calibration).

- text: the metadata texts of the folder's items, encoded in the ingest's batches as
  the pipeline did before (each batch's distinct texts, in their order) and as it does
  now (``engine.text_vectors``: a text met before is not encoded again, the others go
  shortest first), taking turns, median CPU of ``--repeats`` passes each.

Prints CPU ms per image of each stage (cumulative time of the functions that make it)
and the functions with the most own time. The profiler's clock is the CPU time of the
profiled thread (``time.thread_time``), so a busy machine does not inflate the stages
and, in the main process, waiting for the workers costs nothing; the text model runs on
one thread (the default on 2 cores), the calling one. Profiling slows Python code (not
C code) by a few tens of per cent: the shares matter more than the absolute figures.

    PYTHONPATH=src HF_HUB_OFFLINE=1 .venv/bin/python bench/ingest_profile.py --images 500
    (--names camera: the folder bench/ingest.py --names camera built)
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
from imgsearch.engine.ingest import folder_item
from imgsearch.engine.pipeline import DecodeRequest, batched, decode_target, derive_job
from imgsearch.engine.text_vectors import TextVectors
from imgsearch.ingest.sources import scan_folder

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
    profiler = cProfile.Profile(time.thread_time)
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
    profiler = cProfile.Profile(time.thread_time)
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


def text_passes(folder: Path, settings: Settings, repeats: int) -> dict[str, float]:
    """CPU ms per item of encoding the items' texts in ingest batches, before and now."""
    entries, _ = scan_folder(folder)
    texts = [folder_item(e).metadata_text() for e in entries]
    encoder = get_encoder(settings.text_encoder, settings)
    encoder.embed_texts(texts[:1])  # the model load is not what is compared
    batches = list(batched(texts, settings.ingest_batch_size))

    def before() -> None:
        for batch in batches:
            encoder.embed_texts(list(dict.fromkeys(t for t in batch if t)))

    def now() -> None:
        vectors = TextVectors()
        for batch in batches:
            vectors.embed(encoder, [t for t in batch if t])

    times: dict[str, list[float]] = {"before": [], "now": []}
    for _ in range(repeats):
        for name, fn in (("before", before), ("now", now)):
            started = time.process_time()
            fn()
            times[name].append(time.process_time() - started)
    distinct = len({t for t in texts if t})
    print(f"\ntext: {len(texts)} items, {distinct} distinct non-empty texts, batches of "
          f"{settings.ingest_batch_size}, model batches of {encoder.batch_size}")
    out = {}
    for name, values in times.items():
        out[name] = 1000 * sorted(values)[len(values) // 2] / len(texts)
        print(f"  {name:7s} {out[name]:6.3f} ms CPU per item (median of {repeats}: "
              + ", ".join(f"{1000 * v / len(texts):.3f}" for v in values) + ")")
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=500,
                        help="which bench/ingest.py folder (build it with that script)")
    parser.add_argument("--text-encoder", default="minilm")
    parser.add_argument("--names", choices=("subject", "camera"), default="subject")
    parser.add_argument("--top", type=int, default=15, help="functions listed per profile")
    parser.add_argument("--repeats", type=int, default=5, help="passes of the text comparison")
    parser.add_argument("--only", choices=("all", "text"), default="all")
    args = parser.parse_args(argv)
    folder = DATA_DIR / f"ingest-{args.images}-s0"
    if args.names == "camera":
        folder = folder.with_name(folder.name + "-camera")
    if not folder.is_dir():
        raise SystemExit(f"{folder} is missing: run bench/ingest.py --images {args.images}")
    paths = sorted(p for p in folder.rglob("*.jpg"))
    settings = Settings(text_encoder=args.text_encoder)
    print(f"load average before: {load_average()}")
    if settings.text_encoder != "none":
        text_passes(folder, settings, args.repeats)
    if args.only == "text":
        print(f"load average after: {load_average()}")
        return
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
        print(f"  {stage:40s} {ms:6.2f} ms/image (CPU of the calling thread)")
    print(top(main_stats, args.top))
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
