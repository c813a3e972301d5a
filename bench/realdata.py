"""Real embeddings for the benchmarks: the product's encoders over real Debian-packaged data.

``load(name)`` returns ``(base, queries, description)``: L2-normalised float32 arrays (the
queries are held out of the base, never in it) and one paragraph saying exactly what the
vectors are. The arrays are built once and cached as ``.npy`` under ``bench/data/real/``,
with the label of every row (package name, image path or crop) in a JSON file beside them.

``real-text`` (384-d): the product's ``minilm`` text encoder, built through the encoder
registry from default ``Settings``, over the Debian package descriptions that
``apt-cache dumpavail`` lists (package ``apt``; the package lists must have been fetched
with ``apt-get update``). The lists on this machine carry only each package's one-line
synopsis (``Description:``); the long descriptions live in the ``Translation-en`` files,
which are not installed, so the synopsis is the text. Packages are taken once each, sorted
by name; a synopsis that an earlier package already has (say "transitional package") is
dropped, so every text is distinct. A seeded random ``TEXT_QUERIES`` of them are held out
as queries: real text, the exact text absent from the base, though often a sibling
package says nearly the same thing ("... (development files)" beside "... (shared
library)").

``real-image`` (576-d): the product's ``descriptor`` image encoder over real images:

- the Tux Paint stamps, every PNG under ``/usr/share/tuxpaint/stamps`` (package
  ``tuxpaint-stamps-default``), decoded by ``imgsearch.ingest.decode.decode_file`` as
  folder ingest does (alpha over white, reduced for the encoder);
- crops of the GNOME wallpapers under ``/usr/share/backgrounds`` (package
  ``gnome-backgrounds``): every raster wallpaper the product's decoder accepts (the SVG
  ones are refused by its format allow-list and left out), decoded once; from each,
  seeded random crops: a box of 12-50 % of the shorter side with an aspect drawn from
  4:3, 3:4, 1:1, 3:2 and 16:9, anywhere in the picture, resized so its longer side is
  320-800 px, saved as JPEG quality 85 and decoded from those bytes by
  ``imgsearch.ingest.decode.decode_image``, as ingest decodes an uploaded file. Enough
  crops are made per wallpaper to bring the total to about ``IMAGE_TOTAL`` images.

A seeded random ``IMAGE_QUERIES`` images are held out as queries. A held-out crop keeps
its sibling crops of the same wallpaper in the base (some overlapping it): a realistic
"find similar" query, though an easier one than a stamp, whose closest kin are only
other drawings of the same kind.

Run as a script, it builds (or reuses) both sets and prints their sizes, build times and
how far each query is from its nearest base vector compared with random pairs; writes
``bench/results/realdata.json`` and a histogram ``bench/results/realdata.png``.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from common import (
    DATA_DIR,
    RESULTS_DIR,
    command_line,
    load_average,
    machine,
    machine_line,
    now,
    table,
    write_results,
)
from imgsearch import Settings
from imgsearch.encode.registry import get_encoder
from imgsearch.errors import ImageError
from imgsearch.ingest.decode import decode_file, decode_image

REAL_DIR = DATA_DIR / "real"
NAMES = ("real-text", "real-image")
SEED = 0
TEXT_QUERIES = 1000
# minilm runs at about 200 short texts/s on one core here, so all ~60k synopses take about
# five minutes; the cap only matters on a slower machine or a bigger package list.
TEXT_CAP = 70_000
IMAGE_QUERIES = 500
IMAGE_TOTAL = 20_000
STAMPS = Path("/usr/share/tuxpaint/stamps")
WALLPAPERS = Path("/usr/share/backgrounds")
CROP_ASPECTS = (4 / 3, 3 / 4, 1.0, 3 / 2, 16 / 9)
JPEG_QUALITY = 85
ENCODE_CHUNK = 256
# Bump when the recipe changes, so that cached arrays built the old way are rebuilt.
RECIPE_VERSION = 1

Vectors = NDArray[np.float32]


def load(name: str, *, rebuild: bool = False) -> tuple[Vectors, Vectors, str]:
    """(base, queries, description) of the real dataset ``name``, built once and cached."""
    builders: dict[str, tuple[dict[str, Any], Callable[[], _Built]]] = {
        "real-text": (_text_recipe(), _build_text),
        "real-image": (_image_recipe(), _build_image),
    }
    if name not in builders:
        raise ValueError(f"no real dataset named {name!r}; known: {', '.join(NAMES)}")
    recipe, build = builders[name]
    paths = _paths(name)
    if not rebuild and paths["meta"].is_file():
        meta = json.loads(paths["meta"].read_text())
        if meta.get("recipe") == recipe and paths["base"].is_file() \
                and paths["queries"].is_file():
            base = np.load(paths["base"])
            queries = np.load(paths["queries"])
            return base, queries, str(meta["description"])
    started = time.perf_counter()
    vectors, labels, description = build()
    base_rows, query_rows = _hold_out(len(vectors), recipe["queries"], recipe["seed"])
    base = np.ascontiguousarray(vectors[base_rows], dtype=np.float32)
    queries = np.ascontiguousarray(vectors[query_rows], dtype=np.float32)
    description = (f"{description} {len(base):,} base vectors and {len(queries):,} held-out "
                   f"queries (seed {recipe['seed']}), {base.shape[1]}-d, L2-normalised float32.")
    REAL_DIR.mkdir(parents=True, exist_ok=True)
    np.save(paths["base"], base)
    np.save(paths["queries"], queries)
    paths["labels"].write_text(json.dumps({"base": [labels[i] for i in base_rows],
                                           "queries": [labels[i] for i in query_rows]}))
    paths["meta"].write_text(json.dumps({"recipe": recipe, "description": description,
                                         "build_s": round(time.perf_counter() - started, 1),
                                         "date": now()}, indent=2))
    return base, queries, description


def build_seconds(name: str) -> float | None:
    """How long the cached arrays of ``name`` took to build, if they are cached."""
    meta = _paths(name)["meta"]
    return float(json.loads(meta.read_text())["build_s"]) if meta.is_file() else None


_Built = tuple[Vectors, list[str], str]


def _paths(name: str) -> dict[str, Path]:
    return {"base": REAL_DIR / f"{name}-base.npy", "queries": REAL_DIR / f"{name}-queries.npy",
            "labels": REAL_DIR / f"{name}-labels.json", "meta": REAL_DIR / f"{name}.json"}


def _hold_out(n: int, count: int, seed: int) -> tuple[list[int], list[int]]:
    rng = np.random.default_rng(seed)
    held = set(rng.choice(n, size=min(count, n // 2), replace=False).tolist())
    return [i for i in range(n) if i not in held], sorted(held)


def _progress(message: str) -> None:
    # stderr, so that a benchmark importing this keeps its tables alone on stdout
    print(message, file=sys.stderr, flush=True)


# -- real-text --------------------------------------------------------------------------
def _text_recipe() -> dict[str, Any]:
    return {"version": RECIPE_VERSION, "seed": SEED, "queries": TEXT_QUERIES, "cap": TEXT_CAP,
            "encoder": "minilm"}


def debian_descriptions() -> list[tuple[str, str]]:
    """(package, synopsis) of every package apt knows, sorted by name, synopses distinct."""
    try:
        listing = subprocess.run(["apt-cache", "dumpavail"], capture_output=True, text=True,
                                 check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise RuntimeError(f"`apt-cache dumpavail` failed ({exc}); real-text needs apt's "
                           "package lists: install the `apt` package and run apt-get update"
                           ) from exc
    synopsis: dict[str, str] = {}
    for record in listing.split("\n\n"):
        package = text = ""
        for line in record.splitlines():
            if line.startswith("Package:"):
                package = line.partition(":")[2].strip()
            elif line.startswith("Description:"):
                text = line.partition(":")[2].strip()
        if package and text:
            synopsis.setdefault(package, text)
    if not synopsis:
        raise RuntimeError("`apt-cache dumpavail` listed no package descriptions; run "
                           "apt-get update to fetch the package lists")
    seen: set[str] = set()
    out = []
    for package in sorted(synopsis):
        if synopsis[package] not in seen:
            seen.add(synopsis[package])
            out.append((package, synopsis[package]))
    return out


def _build_text() -> _Built:
    packages = debian_descriptions()
    total = len(packages)
    packages = packages[:TEXT_CAP]
    encoder = get_encoder("minilm", Settings(encode_batch_size=128))
    texts = [text for _, text in packages]
    _progress(f"real-text: encoding {len(texts):,} package synopses with {encoder.model_id}")
    vectors = _encode_chunks(texts, encoder.embed_texts, "real-text", "texts")
    capped = "" if total == len(texts) else f" (the first {len(texts):,} of {total:,} by name)"
    description = (
        f"Debian package synopses: the one-line `Description:` of each package listed by "
        f"`apt-cache dumpavail`, one per package, sorted by name, repeated synopses dropped"
        f"{capped}; embedded by the product's minilm encoder ({encoder.model_id}). "
        "Queries are synopses held out of the base.")
    return vectors, [name for name, _ in packages], description


# -- real-image -------------------------------------------------------------------------
def _image_recipe() -> dict[str, Any]:
    return {"version": RECIPE_VERSION, "seed": SEED, "queries": IMAGE_QUERIES,
            "total": IMAGE_TOTAL, "encoder": "descriptor", "jpeg_quality": JPEG_QUALITY}


def _decode_limits() -> dict[str, int]:
    settings = Settings()
    encoder = get_encoder("descriptor", settings)
    # the reduction the ingest pipeline asks the decoder for
    return {"max_pixels": settings.max_pixels, "min_side": settings.min_side,
            "reduce_to": max(encoder.image_side, settings.thumbnail_size)}


def stamp_paths() -> list[Path]:
    found = sorted(STAMPS.rglob("*.png")) if STAMPS.is_dir() else []
    if not found:
        raise FileNotFoundError(f"no Tux Paint stamps under {STAMPS}; install them with "
                                "apt-get install tuxpaint-stamps-default")
    return found


def wallpaper_paths() -> list[Path]:
    found = sorted(p for p in WALLPAPERS.rglob("*") if p.is_file()) if WALLPAPERS.is_dir() else []
    if not found:
        raise FileNotFoundError(f"no wallpapers under {WALLPAPERS}; install them with "
                                "apt-get install gnome-backgrounds")
    return found


def crop_boxes(size: tuple[int, int], count: int, seed: int
               ) -> list[tuple[tuple[int, int, int, int], tuple[int, int]]]:
    """``count`` seeded (box, output size) pairs for crops of a picture of ``size``."""
    rng = random.Random(seed)
    width, height = size
    out = []
    for _ in range(count):
        aspect = rng.choice(CROP_ASPECTS)
        side = rng.uniform(0.12, 0.5) * min(width, height)
        crop_w = min(width, side * aspect ** 0.5)
        crop_h = min(height, side / aspect ** 0.5)
        left = rng.uniform(0, width - crop_w)
        top = rng.uniform(0, height - crop_h)
        box = (round(left), round(top), round(left + crop_w), round(top + crop_h))
        longer = rng.randint(320, 800)
        scale = longer / max(crop_w, crop_h)
        out.append((box, (max(1, round(crop_w * scale)), max(1, round(crop_h * scale)))))
    return out


def _crop_jpeg(picture: Image.Image, box: tuple[int, int, int, int], out_size: tuple[int, int]
               ) -> bytes:
    crop = picture.resize(out_size, Image.Resampling.BICUBIC, box=box, reducing_gap=3.0)
    buffer = io.BytesIO()
    crop.save(buffer, "JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def _build_image() -> _Built:
    limits = _decode_limits()
    stamps = stamp_paths()
    encoder = get_encoder("descriptor", Settings())
    labels: list[str] = []
    parts: list[Vectors] = []
    refused: dict[str, int] = {}
    decoded = []
    _progress(f"real-image: decoding and encoding {len(stamps):,} stamps")
    for path in stamps:
        try:
            image = decode_file(path, max_bytes=Settings().max_file_bytes, **limits).image
        except ImageError as exc:
            refused[exc.code] = refused.get(exc.code, 0) + 1
            continue
        decoded.append(image)
        labels.append(f"stamp:{path.relative_to(STAMPS)}")
    parts.append(_encode_chunks(decoded, encoder.embed_images, "stamps", "images"))
    stamp_count = len(decoded)

    def wallpaper(path: Path) -> Image.Image:
        return decode_file(path, max_bytes=Settings().max_file_bytes,
                           max_pixels=limits["max_pixels"], min_side=limits["min_side"]).image

    # Decoded once to learn which the decoder accepts, then again one at a time below:
    # at 4096x4096 they would take about 50 MB each if all were kept.
    accepted: list[Path] = []
    sizes: set[str] = set()
    skipped: list[str] = []
    for path in wallpaper_paths():
        try:
            size = wallpaper(path).size
        except ImageError:
            skipped.append(path.name)
            continue
        accepted.append(path)
        sizes.add(f"{size[0]}x{size[1]}")
    if not accepted:
        raise FileNotFoundError(f"no raster wallpaper under {WALLPAPERS} could be decoded; "
                                "install gnome-backgrounds")
    per_picture = max(1, -(-(IMAGE_TOTAL - stamp_count) // len(accepted)))
    with ThreadPoolExecutor(max_workers=2) as pool:
        for index, path in enumerate(accepted):
            picture = wallpaper(path)
            boxes = crop_boxes(picture.size, per_picture, SEED * 1000 + index)

            def crop(job: tuple[tuple[int, int, int, int], tuple[int, int]],
                     picture: Image.Image = picture) -> Image.Image:
                data = _crop_jpeg(picture, *job)
                return decode_image(data, source="crop", max_bytes=len(data),
                                    max_pixels=limits["max_pixels"],
                                    min_side=limits["min_side"],
                                    reduce_to=limits["reduce_to"]).image

            crops = list(pool.map(crop, boxes))
            parts.append(_encode_chunks(crops, encoder.embed_images,
                                        f"crops of {path.name} ({index + 1}/{len(accepted)})",
                                        "images"))
            labels.extend(f"crop:{path.name}:{k}" for k in range(len(crops)))
    description = (
        f"{stamp_count:,} Tux Paint stamps ({STAMPS}, decoded as folder ingest does"
        f"{_refusals(refused)}) and "
        f"{per_picture * len(accepted):,} crops of {len(accepted)} GNOME wallpapers "
        f"({WALLPAPERS}, sizes {', '.join(sorted(sizes))}; {len(skipped)} refused by the "
        f"decoder and left out: {', '.join(skipped) or 'none'}): "
        f"{per_picture} seeded crops each, boxes of 12-50 % of the shorter side at aspect "
        "4:3/3:4/1:1/3:2/16:9, resized to a longer side of 320-800 px, saved as JPEG "
        f"quality {JPEG_QUALITY} and decoded from those bytes by the product's decoder; "
        f"embedded by the product's descriptor encoder ({encoder.model_id}). Queries are "
        "whole images held out of the base; a held-out crop keeps sibling crops of the same "
        "wallpaper in the base.")
    return np.concatenate(parts), labels, description


def _refusals(refused: dict[str, int]) -> str:
    if not refused:
        return ""
    return "; refused by the decoder: " + ", ".join(f"{n} {code}" for code, n in
                                                    sorted(refused.items()))


def _encode_chunks(inputs: Sequence[Any], embed: Callable[[Sequence[Any]], Vectors],
                   what: str, unit: str) -> Vectors:
    started = time.perf_counter()
    parts = []
    done = 0
    for chunk in _chunks(inputs, ENCODE_CHUNK * 4):
        parts.append(embed(chunk))
        done += len(chunk)
        rate = done / max(time.perf_counter() - started, 1e-9)
        left = (len(inputs) - done) / rate
        _progress(f"  {what}: {done:,}/{len(inputs):,} {unit}, {rate:,.0f} {unit}/s, "
                  f"{left:,.0f} s left")
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


# -- script -----------------------------------------------------------------------------
def neighbour_stats(base: Vectors, queries: Vectors, seed: int) -> dict[str, Any]:
    """Cosine of each query to its nearest base vector, and of random (query, base) pairs."""
    top = np.concatenate([(queries[i:i + 256] @ base.T).max(axis=1)
                          for i in range(0, len(queries), 256)])
    rng = np.random.default_rng(seed)
    pairs = rng.integers(0, len(base), size=len(queries))
    random_cos = np.einsum("ij,ij->i", queries, base[pairs])
    return {"top1_cosine": top, "random_cosine": random_cos}


def _plot(stats: dict[str, dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(stats), figsize=(5.5 * len(stats), 3.8), squeeze=False)
    for ax, (name, s) in zip(axes[0], stats.items(), strict=True):
        bins = np.linspace(-0.2, 1.0, 61)
        ax.hist(s["random_cosine"], bins=bins, alpha=0.6, label="random base vector")
        ax.hist(s["top1_cosine"], bins=bins, alpha=0.6, label="nearest base vector")
        ax.set_title(f"{name}: cosine of each held-out query")
        ax.set_xlabel("cosine")
        ax.set_ylabel("queries")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--names", default=",".join(NAMES),
                        help="comma-separated datasets to build or reuse")
    parser.add_argument("--rebuild", action="store_true",
                        help="rebuild even when cached arrays of the same recipe exist")
    parser.add_argument("--clean", action="store_true",
                        help=f"delete {REAL_DIR} first")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.names.split(",") if n.strip()]
    if args.clean:
        shutil.rmtree(REAL_DIR, ignore_errors=True)

    info = machine()
    print(f"machine: {machine_line(info)}")
    load_before = load_average()
    results: dict[str, Any] = {"benchmark": "realdata", "command": command_line(), "date": now(),
                               "machine": info, "datasets": {}}
    stats: dict[str, dict[str, Any]] = {}
    rows = []
    for name in names:
        base, queries, description = load(name, rebuild=args.rebuild)
        s = neighbour_stats(base, queries, SEED)
        stats[name] = s
        built = build_seconds(name)
        summary = {"base": len(base), "queries": len(queries), "dim": int(base.shape[1]),
                   "build_s": built, "description": description,
                   "top1_cosine_median": float(np.median(s["top1_cosine"])),
                   "random_cosine_median": float(np.median(s["random_cosine"])),
                   "random_cosine_p99": float(np.percentile(s["random_cosine"], 99))}
        results["datasets"][name] = summary
        rows.append([name, f"{len(base):,}", f"{len(queries):,}", summary["dim"],
                     "-" if built is None else built, summary["top1_cosine_median"],
                     summary["random_cosine_median"], summary["random_cosine_p99"]])
        print(f"\n{name}: {description}")
    print()
    print(table(["dataset", "base", "queries", "dim", "build s", "nearest cos p50",
                 "random cos p50", "random cos p99"], rows))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    plot = RESULTS_DIR / "realdata.png"
    _plot(stats, plot)
    results["load_average"] = {"before": load_before, "after": load_average()}
    print(f"load average (1, 5, 15 min) before: {load_before}, after: {load_average()}")
    print(f"\nwrote {write_results('realdata', results)} and {plot}")


if __name__ == "__main__":
    main()
