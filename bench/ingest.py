"""Ingest throughput of the offline default pipeline on web-size JPEGs or PNG clip-art.

Builds (once, under ``bench/data/``) a folder of images in one of two data sets:

- ``--data wallpapers`` (default): distinct JPEGs made from real photos, the GNOME
  wallpapers in ``/usr/share/backgrounds`` when installed, else the photos that
  scikit-image ships. Each file is a random crop (and sometimes a mirror) of a source
  photo resized to a typical web size (800x600 .. 1024x768, portrait or landscape) and
  saved at JPEG quality 85, in ``bench/data/ingest-<count>-s<seed>/``.
- ``--data stamps``: the PNG clip-art of the ``tuxpaint-stamps-default`` package in
  ``/usr/share/tuxpaint/stamps`` (about 800 PNGs, mostly with alpha, in nested category
  folders), hard-linked (or copied) into ``bench/data/ingest-stamps/`` under the same
  category folders. Each file is named after the first words of the English description
  beside it (``<name>.txt``, its first line; a ``*_mirror.png`` borrows its original's),
  else keeps its own name. Stamps with a side under ``Settings.min_side`` are left out,
  since ingest rejects them as too small. ``--images`` takes a seeded sample instead
  (``bench/data/ingest-stamps-<count>-s<seed>/``).

Either way each file has a descriptive name in a category folder, so that folder ingest
derives a title and tags for the text encoder to read.

Then, for each text-encoder variant (default: ``minilm``, the product default, and
``none``, which leaves the image path alone), and for ``--thread-variants`` again with
``decode_processes`` off (decoding on threads, as before the worker processes):

- end to end: ``Engine.ingest(folder)`` into a fresh collection, ``--repeats`` times,
  with its CPU time (this process and its decode workers) per image;
- stage split: the stage functions timed one at a time, single-threaded, on the same
  files (decode with the pipeline's draft reduction, thumbnail resize and JPEG, pHash and
  colours of the thumbnail's pixels, descriptor encode, text encode, catalog write through
  ``Engine.commit``);
- ceiling: bare Pillow decode + resize of the same files, in as many worker processes
  as the pipeline has decode workers: open, the pipeline's own JPEG draft reduction
  (the smallest DCT scale keeping the shorter side at least the image encoder's side
  and the longer side at least the thumbnail size, ``pipeline.decode_target``), convert
  RGB, resize to the thumbnail size as thumbnails are resized (longer side, bicubic,
  when larger) -- the pixels every image
  needs, nothing derived from them and nothing written. Each end-to-end run is divided
  by the ceiling of its own repeat (the machine is shared: ratios hold better than
  rates). For reference, the ceiling of earlier runs (draft to 256 px and resize to
  256x256, a quarter of the pixels the 512-px thumbnails need) on the same processes.

Prints Markdown tables and writes ``bench/results/ingest.json`` (wallpapers) or
``bench/results/ingest-stamps.json`` (stamps).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import re
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from common import (
    DATA_DIR,
    command_line,
    load_average,
    machine,
    machine_line,
    median,
    now,
    process_cpu_s,
    table,
    write_results,
)
from imgsearch import Engine, Settings
from imgsearch.encode.blas import one_blas_thread
from imgsearch.encode.registry import get_encoder
from imgsearch.engine.ingest import folder_item
from imgsearch.engine.pipeline import Prepared, decode_target
from imgsearch.enrich.colors import dominant_colors
from imgsearch.enrich.phash import perceptual_hash
from imgsearch.enrich.thumbnails import shrink_for_thumbnail, thumbnail_bytes
from imgsearch.ingest.decode import DecodedImage, decode_file
from imgsearch.ingest.sources import scan_folder

WALLPAPERS = Path("/usr/share/backgrounds")
STAMPS = Path("/usr/share/tuxpaint/stamps")
STAMP_TITLE_WORDS = 8
WEB_SIZES = ((800, 600), (1024, 768), (960, 720), (900, 600), (600, 800), (768, 1024))
JPEG_QUALITY = 85
LEGACY_CEILING_SIDE = 256  # the ceiling BENCHMARKS.md reported before, for comparison
# What every image costs whatever the text encoder: the share column is out of these.
IMAGE_PATH_STAGES = ("decode", "phash", "colours", "thumbnail", "thumbnail JPEG",
                     "descriptor encode", "catalog write")

# scikit-image's real photographs (not its drawings, scans of text or synthetic patterns),
# with the subject and category the generated file names carry.
SKIMAGE_PHOTOS: dict[str, tuple[str, str]] = {
    "astronaut.png": ("astronaut portrait", "people"),
    "camera.png": ("cameraman with tripod", "people"),
    "coffee.png": ("cup of coffee", "food"),
    "chelsea.png": ("tabby cat", "animals"),
    "rocket.jpg": ("rocket on launch pad", "space"),
    "hubble_deep_field.jpg": ("hubble deep field galaxies", "space"),
    "moon.png": ("moon surface craters", "space"),
    "motorcycle_left.png": ("motorcycle in a room", "vehicles"),
    "motorcycle_right.png": ("motorbike parked indoors", "vehicles"),
    "coins.png": ("old coins", "objects"),
    "retina.jpg": ("retina photo", "science"),
    "ihc.png": ("stained tissue microscopy", "science"),
    "brick.png": ("brick wall", "textures"),
    "grass.png": ("grass blades", "textures"),
    "gravel.png": ("gravel stones", "textures"),
}


# -- data -------------------------------------------------------------------------------
def photo_sources() -> tuple[str, list[tuple[Path, str, str]]]:
    """(description, [(photo, subject, category)]) of the real photos to build from."""
    if WALLPAPERS.is_dir():
        found = sorted(p for p in WALLPAPERS.rglob("*")
                       if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"))
        if found:
            return (f"GNOME wallpapers from {WALLPAPERS} ({len(found)} photos)",
                    [(p, p.stem.replace("_", " ").replace("-", " "), "wallpapers")
                     for p in found])
    import skimage.data

    folder = Path(skimage.data.__file__).parent
    found_photos = [(folder / name, subject, category)
                    for name, (subject, category) in SKIMAGE_PHOTOS.items()
                    if (folder / name).is_file()]
    if not found_photos:
        sys.exit("no source photos: install gnome-backgrounds or scikit-image")
    return (f"scikit-image sample photos from {folder} ({len(found_photos)} photos, "
            f"upscaled where smaller than the web size)", found_photos)


def web_jpeg(photo: Image.Image, rng: random.Random) -> Image.Image:
    """A random crop of ``photo`` with the aspect of a web size, maybe mirrored, resized."""
    width, height = rng.choice(WEB_SIZES)
    aspect = width / height
    src_w, src_h = photo.size
    # the largest crop of that aspect, then 60-100% of it, anywhere in the photo
    crop_w = min(src_w, src_h * aspect)
    crop_h = crop_w / aspect
    scale = rng.uniform(0.6, 1.0)
    crop_w, crop_h = crop_w * scale, crop_h * scale
    left = rng.uniform(0, src_w - crop_w)
    top = rng.uniform(0, src_h - crop_h)
    box = (round(left), round(top), round(left + crop_w), round(top + crop_h))
    out = photo.resize((width, height), Image.Resampling.BICUBIC, box=box)
    return ImageOps.mirror(out) if rng.random() < 0.5 else out


def build_wallpapers(count: int, seed: int) -> tuple[Path, str]:
    """The folder of ``count`` JPEGs (built once per count and seed) and its source."""
    source, photos = photo_sources()
    folder = DATA_DIR / f"ingest-{count}-s{seed}"
    stamp = folder / ".complete"
    if stamp.exists() and stamp.read_text() == source:
        return folder, source
    shutil.rmtree(folder, ignore_errors=True)
    rng = random.Random(seed)
    loaded = []
    for path, subject, category in photos:
        with Image.open(path) as im:
            loaded.append((im.convert("RGB"), subject, category))
    for i in range(count):
        photo, subject, category = loaded[i % len(loaded)]
        target = folder / category / f"{subject.replace(' ', '-')}-{i:05d}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        web_jpeg(photo, rng).save(target, "JPEG", quality=JPEG_QUALITY)
    stamp.write_text(source)
    return folder, source


def camera_names(folder: Path, folders: int = 5) -> Path:
    """The files of ``folder`` again (hard links, else copies) under camera names
    (``IMG_0001.jpg``) in ``folders`` dated folders (``2019-06/``, ...): photos with no
    title of their own, whose only text is their folder's name."""
    target = folder.with_name(folder.name + "-camera")
    stamp = target / ".complete"
    if stamp.exists():
        return target
    shutil.rmtree(target, ignore_errors=True)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    for i, path in enumerate(files):
        out = target / f"2019-{1 + i % folders:02d}" / f"IMG_{i:04d}{path.suffix}"
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, out)
        except OSError:  # another file system
            shutil.copyfile(path, out)
    stamp.write_text(str(folder))
    return target


def stamp_title(png: Path) -> str | None:
    """The first words of the stamp's English description, as a file-name stem."""
    for txt in (png.with_suffix(".txt"),
                png.with_name(png.stem.removesuffix("_mirror") + ".txt")):
        if txt.is_file():
            lines = txt.read_text(encoding="utf-8", errors="replace").splitlines()
            words = re.findall(r"\w+", lines[0]) if lines else []
            if words:
                return "-".join(words[:STAMP_TITLE_WORDS])
    return None


def build_stamps(count: int | None, seed: int) -> tuple[Path, str]:
    """The folder of tuxpaint stamps (all, or a seeded sample of ``count``) and its source."""
    if not STAMPS.is_dir():
        sys.exit(f"no stamps in {STAMPS}: install them with "
                 f"`apt-get install tuxpaint-stamps-default`")
    min_side = Settings().min_side
    found, too_small = [], 0
    for png in sorted(STAMPS.rglob("*.png")):
        with Image.open(png) as im:
            if min(im.size) < min_side:
                too_small += 1
            else:
                found.append(png)
    if count is not None and count < len(found):
        found = sorted(random.Random(seed).sample(found, count))
        folder = DATA_DIR / f"ingest-stamps-{count}-s{seed}"
    else:
        folder = DATA_DIR / "ingest-stamps"
    source = (f"tuxpaint-stamps-default PNGs from {STAMPS} ({len(found)} used, {too_small} "
              f"with a side under {min_side} px left out)")
    stamp = folder / ".complete"
    if stamp.exists() and stamp.read_text() == source:
        return folder, source
    shutil.rmtree(folder, ignore_errors=True)
    for png in found:
        parent = folder / png.parent.relative_to(STAMPS)
        parent.mkdir(parents=True, exist_ok=True)
        stem = stamp_title(png) or png.stem
        target, n = parent / f"{stem}.png", 1
        while target.exists():  # two stamps of a folder with the same description
            n += 1
            target = parent / f"{stem}-{n}.png"
        try:
            os.link(png, target)
        except OSError:  # another file system
            shutil.copyfile(png, target)
    stamp.write_text(source)
    return folder, source


# -- measurements ----------------------------------------------------------------------
def ingest_once(folder: Path, settings: Settings, target: Path) -> dict[str, float]:
    """One ``Engine.ingest(folder)`` into a fresh collection at ``target``."""
    shutil.rmtree(target, ignore_errors=True)
    engine = Engine.open(target, settings)
    try:
        cpu, own = process_cpu_s(os.getpid()), own_cpu_s()
        started = time.perf_counter()
        report = engine.ingest(folder)
        seconds = time.perf_counter() - started
        cpu, own = process_cpu_s(os.getpid()) - cpu, own_cpu_s() - own
    finally:
        engine.close()
    shutil.rmtree(target, ignore_errors=True)
    if report.failed:
        sys.exit(f"ingest failed on {len(report.failed)} files: {report.failed[:3]}")
    return {"seconds": seconds, "added": report.added, "images_per_s": report.added / seconds,
            "cpu_ms_per_image": 1000 * cpu / report.added,
            "main_cpu_ms_per_image": 1000 * own / report.added,
            # the two clocks tick apart: with no workers the difference can be -0.0
            "worker_cpu_ms_per_image": 1000 * max(0.0, cpu - own) / report.added}


def own_cpu_s() -> float:
    """User + system CPU seconds of this process alone (its threads, not its children)."""
    times = os.times()
    return times.user + times.system


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Median CPU seconds of this process over ``repeats`` calls, and the last call's
    result (CPU, not wall: the stages run on one thread of a shared machine)."""
    times, result = [], None
    for _ in range(repeats):
        started = own_cpu_s()
        result = fn()
        times.append(own_cpu_s() - started)
    return median(times), result


def stage_split(folder: Path, settings: Settings, repeats: int, workdir: Path,
                text_encoders: Sequence[str]) -> dict[str, dict[str, float]]:
    """Seconds per image of each stage, one thread, median over ``repeats`` passes."""
    entries, failures = scan_folder(folder)
    if failures:
        sys.exit(f"cannot scan {folder}: {failures[:3]}")
    paths = [e.path for e in entries]
    image_encoder = get_encoder(settings.image_encoder, settings)
    shorter, longer = decode_target(image_encoder.image_side, settings.thumbnail_size,
                                    ocr=False)
    s = settings
    n = len(paths)

    def decode_all() -> list[DecodedImage]:
        return [decode_file(p, max_pixels=s.max_pixels, min_side=s.min_side,
                            max_bytes=s.max_file_bytes, reduce_to=shorter,
                            longer_at_least=longer) for p in paths]

    stages: dict[str, float] = {}
    stages["decode"], decoded = timed(decode_all, repeats)
    images = [d.image for d in decoded]
    # one resize chain, as in the workers: pHash and colours read the thumbnail's pixels
    stages["thumbnail"], small = timed(
        lambda: [shrink_for_thumbnail(im, s.thumbnail_size) for im in images], repeats)
    stages["thumbnail JPEG"], thumbs = timed(
        lambda: [thumbnail_bytes(im) for im in small], repeats)
    stages["phash"], _ = timed(lambda: [perceptual_hash(im) for im in small], repeats)
    stages["colours"], _ = timed(lambda: [dominant_colors(im) for im in small], repeats)
    # as the decode workers encode: one image at a time, numpy on one thread
    one = image_encoder.image_vector_job()
    # the thumbnail's pixels, where its shorter side is what the encoder reads
    sources = [sm if min(sm.size) >= shorter else im
               for sm, im in zip(small, images, strict=True)]

    def encode_images() -> np.ndarray:
        if one is None:
            return image_encoder.embed_images(sources)
        with one_blas_thread():
            return np.stack([one(im) for im in sources])

    stages["descriptor encode"], image_vectors = timed(encode_images, repeats)

    items = [replace(folder_item(e), width=d.width, height=d.height,
                     content_hash=d.content_hash, phash=perceptual_hash(d.image))
             for e, d in zip(entries, decoded, strict=True)]
    texts = [item.metadata_text() for item in items]
    text_vectors: dict[str, np.ndarray] = {}
    for name in text_encoders:
        if name == "none":
            continue
        encoder = get_encoder(name, s)
        load_started = time.perf_counter()
        encoder.embed_texts(texts[:1])  # loads the model
        stages[f"{name} model load (once)"] = time.perf_counter() - load_started
        stages[f"{name} text encode"], text_vectors[name] = timed(
            partial(encoder.embed_texts, texts), repeats)

    for name in text_encoders:
        write_settings = settings.replace(text_encoder=name)

        def write_all(name: str = name, write_settings: Settings = write_settings) -> None:
            target = workdir / f"commit-{name}"
            shutil.rmtree(target, ignore_errors=True)
            with Engine.open(target, write_settings) as engine:
                batch = write_settings.ingest_batch_size
                for start in range(0, n, batch):
                    prepared = []
                    for i in range(start, min(n, start + batch)):
                        vectors = {"image": image_vectors[i]}
                        if name in text_vectors:
                            vectors["text"] = text_vectors[name][i]
                        prepared.append(Prepared(replace(items[i]), vectors, thumbs[i]))
                    engine.commit(prepared)
                engine.save()
            shutil.rmtree(target, ignore_errors=True)

        label = "catalog write" if name == "none" else f"catalog write (with {name} vectors)"
        stages[label], _ = timed(write_all, repeats)
    image_path = sum(v for k, v in stages.items() if k in IMAGE_PATH_STAGES)
    return {k: {"seconds": v, "once": "once" in k, "ms_per_image": 1000 * v / n,
                "images_per_s": n / v,
                "share": v / image_path if k in IMAGE_PATH_STAGES else float("nan")}
            for k, v in stages.items()}


def ceiling_one(path: Path, shorter_at_least: int, longer_at_least: int,
                thumbnail_size: int) -> tuple[int, int]:
    """Bare Pillow decode + resize of one file, as the pipeline decodes it and resizes its
    thumbnail (module level: process pools pickle it)."""
    with Image.open(path) as im:
        w, h = im.size
        # the pipeline's draft (ingest.decode): the smallest JPEG scale keeping the
        # shorter side >= the image encoder's and the longer >= the thumbnail's; PNG has none
        scale = max(shorter_at_least / min(w, h), longer_at_least / max(w, h))
        if scale < 1:
            im.draft("RGB", (math.ceil(w * scale), math.ceil(h * scale)))
        rgb = im.convert("RGB")
        scale = min(1.0, thumbnail_size / max(rgb.size))
        target = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
        if target == rgb.size:  # the pipeline does not resize what is small enough
            return rgb.size
        return rgb.resize(target, Image.Resampling.BICUBIC, reducing_gap=2.0).size


def legacy_ceiling_one(path: Path) -> tuple[int, int]:
    """The ceiling of earlier runs: draft to 256 px, resize to 256x256 bilinear."""
    with Image.open(path) as im:
        w, h = im.size
        shorter = min(w, h)
        side = LEGACY_CEILING_SIDE
        im.draft("RGB", (-(-w * side // shorter), -(-h * side // shorter)))
        return im.convert("RGB").resize((side, side), Image.Resampling.BILINEAR).size


def ceiling_pass(paths: Sequence[Path], pool: ProcessPoolExecutor,
                 one: Callable[[Path], tuple[int, int]]) -> tuple[float, float]:
    """Images/s of bare Pillow decode + resize in the pool's processes, nothing else;
    and its CPU ms per image (this process and its children)."""
    cpu = process_cpu_s(os.getpid())
    started = time.perf_counter()
    list(pool.map(one, paths, chunksize=16))
    seconds = time.perf_counter() - started
    return len(paths) / seconds, 1000 * (process_cpu_s(os.getpid()) - cpu) / len(paths)


# -- report ----------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data", choices=("wallpapers", "stamps"), default="wallpapers",
                        help="web-size JPEGs cut from photos, or tuxpaint PNG clip-art")
    parser.add_argument("--images", type=int, default=None,
                        help="how many images to ingest; None: 1000 wallpaper JPEGs, "
                             "or all the stamps")
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs per measurement; medians are reported")
    parser.add_argument("--text-encoders", default="minilm,none",
                        help="comma-separated text-encoder variants (minilm, fake, none)")
    parser.add_argument("--thread-variants", default="minilm",
                        help="comma-separated text-encoder variants also run with "
                             "decode_processes off (decoding on threads, as before)")
    parser.add_argument("--names", choices=("subject", "camera"), default="subject",
                        help="file names: the data set's own (a title for the text "
                             "encoder), or camera names in dated folders (the folder's "
                             "name is the only text)")
    parser.add_argument("--image-encoder", default="descriptor")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the generated dataset or stamp sample")
    parser.add_argument("--skip-stages", action="store_true",
                        help="only the end-to-end runs and the ceiling")
    parser.add_argument("--thumbnail-size", type=int, default=None,
                        help="thumbnail side instead of the default (images are decoded at "
                             "least this large); results go to <name>-thumb<N>.json")
    parser.add_argument("--name", default=None,
                        help="results go to bench/results/<name>.json instead of the "
                             "name the data set and options give")
    args = parser.parse_args(argv)
    # The ceiling's bare convert("RGB") of palette stamps with transparency warns each time;
    # dropping that alpha is what it measures, so the warning says nothing here.
    warnings.filterwarnings("ignore", message="Palette images with Transparency")
    text_variants = [v.strip() for v in args.text_encoders.split(",") if v.strip()]
    # variant label -> (text encoder, decode in worker processes)
    variants = {v: (v, True) for v in text_variants}
    variants.update({f"{v}, threads": (v, False)
                     for v in (t.strip() for t in args.thread_variants.split(",")) if v})

    info = machine()
    load_before = load_average()
    print(f"machine: {machine_line(info)}")
    if args.data == "stamps":
        folder, source = build_stamps(args.images, args.seed)
        kind, name = "PNGs", "ingest-stamps"
    else:
        folder, source = build_wallpapers(args.images or 1000, args.seed)
        kind, name = "JPEGs", "ingest"
    if args.names == "camera":
        folder, name = camera_names(folder), f"{name}-camera"
    entries = scan_folder(folder)[0]
    paths = [e.path for e in entries]
    sizes = [p.stat().st_size for p in paths]
    print(f"data: {len(sizes)} {kind} in {folder} (median {median(sizes) / 1024:.0f} KiB), "
          f"source: {source}")

    base = Settings(image_encoder=args.image_encoder)
    if args.thumbnail_size is not None:
        base = base.replace(thumbnail_size=args.thumbnail_size)
        name = f"{name}-thumb{args.thumbnail_size}"
    name = args.name or name
    workers = base.ingest_workers or (os.cpu_count() or 1)
    shorter, longer = decode_target(get_encoder(base.image_encoder, base).image_side,
                                    base.thumbnail_size, ocr=False)
    ceiling_kinds = {
        "ceiling": (f"ceiling: decode (draft, shorter side >= {shorter}, longer >= "
                    f"{longer}) + RGB + resize to {base.thumbnail_size}, {workers} processes",
                    partial(ceiling_one, shorter_at_least=shorter, longer_at_least=longer,
                            thumbnail_size=base.thumbnail_size)),
        "legacy": (f"earlier ceiling: draft + RGB + resize to {LEGACY_CEILING_SIDE}x"
                   f"{LEGACY_CEILING_SIDE}, {workers} processes", legacy_ceiling_one)}
    results: dict[str, Any] = {
        "benchmark": name, "command": command_line(), "date": now(), "machine": info,
        "data": {"set": args.data, "names": args.names, "folder": str(folder),
                 "images": len(sizes),
                 "source": source, "median_kib": median(sizes) / 1024,
                 **({"web_sizes": WEB_SIZES, "jpeg_quality": JPEG_QUALITY}
                    if args.data == "wallpapers" else {})},
        "variants": {k: {"text_encoder": t, "decode_processes": p}
                     for k, (t, p) in variants.items()},
        "settings": {"image_encoder": base.image_encoder, "ingest_workers": workers,
                     "ingest_batch_size": base.ingest_batch_size,
                     "thumbnail_size": base.thumbnail_size},
    }
    runs: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    ceilings: list[dict[str, float]] = []
    workdir = Path(tempfile.mkdtemp(prefix="ingest-", dir=DATA_DIR))
    try:
        for i, (text, processes) in enumerate(variants.values()):
            # Imports, first-call set-up and the decode workers are paid once per process,
            # not per ingest: a few items first, untimed. Each timed run still loads its
            # own models.
            with Engine.open(workdir / f"warmup-{i}", base.replace(
                    text_encoder=text, decode_processes=processes)) as engine:
                engine.ingest_items([(folder_item(e), str(e.path)) for e in entries[:16]])
        with ProcessPoolExecutor(max_workers=workers) as processes_pool:
            list(processes_pool.map(legacy_ceiling_one, paths[:workers]))  # started
            # Variants and the ceiling take turns within each repeat, so that load from
            # other processes on a shared machine weighs on all of them alike.
            for r in range(args.repeats):
                ceiling: dict[str, float] = {}
                for key, (_label, one) in ceiling_kinds.items():
                    ceiling[key], ceiling[f"{key}_cpu_ms"] = ceiling_pass(
                        paths, processes_pool, one)
                ceilings.append(ceiling)
                for i, (variant, (text, processes)) in enumerate(variants.items()):
                    run = ingest_once(folder, base.replace(text_encoder=text,
                                                           decode_processes=processes),
                                      workdir / f"e2e-{i}-{r}")
                    run["ceiling_ratio"] = run["images_per_s"] / ceiling["ceiling"]
                    runs[variant].append(run)
        if not args.skip_stages:
            results["stages"] = stage_split(folder, base, args.repeats, workdir,
                                            text_variants)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results["ceiling"] = {
        "processes": workers, "decode_at_least": {"shorter": shorter, "longer": longer},
        "thumbnail_size": base.thumbnail_size,
        "runs": ceilings,
        "median_images_per_s": median([c["ceiling"] for c in ceilings]),
        "median_legacy_images_per_s": median([c["legacy"] for c in ceilings])}
    results["end_to_end"] = {
        v: {"runs": rs, "median_images_per_s": median([r["images_per_s"] for r in rs]),
            "median_ceiling_ratio": median([r["ceiling_ratio"] for r in rs]),
            "median_cpu_ms_per_image": median([r["cpu_ms_per_image"] for r in rs])}
        for v, rs in runs.items()}

    rows: list[list[Any]] = []
    for variant, e2e in results["end_to_end"].items():
        rows.append([f"Engine.ingest(folder), text encoder {variant}",
                     e2e["median_images_per_s"],
                     ", ".join(f"{r['images_per_s']:.0f}" for r in e2e["runs"]),
                     e2e["median_ceiling_ratio"],
                     median([r["cpu_ms_per_image"] for r in e2e["runs"]]),
                     median([r["main_cpu_ms_per_image"] for r in e2e["runs"]]),
                     median([r["worker_cpu_ms_per_image"] for r in e2e["runs"]])])
    for key, (label, _one) in ceiling_kinds.items():
        rows.append([label, median([c[key] for c in ceilings]),
                     ", ".join(f"{c[key]:.0f}" for c in ceilings),
                     median([c[key] / c["ceiling"] for c in ceilings]),
                     median([c[f"{key}_cpu_ms"] for c in ceilings]), "-", "-"])
    print()
    print(f"End to end ({len(sizes)} images; median of {args.repeats} runs, each into a fresh "
          f"collection; {workers} decode workers; ÷ ceiling = median of per-run ratios to "
          f"the ceiling of the same repeat)")
    print(table(["pipeline", "images/s", "runs", "÷ ceiling", "CPU ms/image",
                 "of which main process", "decode workers"], rows))
    if "stages" in results:
        print()
        print(f"Stage split (CPU of one thread, same {len(sizes)} files, median of "
              f"{args.repeats} passes)")
        stage_rows = []
        for k, v in results["stages"].items():
            if v["once"]:
                stage_rows.append([k, f"{v['seconds']:.2f} s once", "-", "-"])
            else:
                stage_rows.append([k, v["ms_per_image"], v["images_per_s"], v["share"]])
        print(table(["stage", "CPU ms/image", "images/s", "share of image path"],
                    stage_rows))
    results["load_average"] = {"before": load_before, "after": load_average()}
    print(f"\nload average (1, 5, 15 min) before: {load_before}, after: {load_average()}")
    path = write_results(name, results)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
