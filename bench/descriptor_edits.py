"""How well the ``descriptor`` image encoder finds edited copies, and how alike it ranks.

Real photos (every raster image under ``/usr/share/backgrounds`` and
``/usr/share/wallpapers``: gnome-backgrounds, mate-backgrounds, ukui-wallpapers,
lomiri-wallpapers) are indexed among the Tux Paint stamps (``/usr/share/tuxpaint/stamps``)
as distractors. Each photo is first brought to a longer side of at most 1024 px (the size
a copy found on the web typically has) and then edited nine ways:

- ``downscale320``: longer side 320 px;
- ``jpeg15``: JPEG quality 15;
- ``crop60``: the central 60 % of width and height;
- ``grayscale``;
- ``rotate7``: 7 degrees counter-clockwise, same canvas, corners filled black;
- ``bright``: +50 % brightness (``ImageEnhance.Brightness(1.5)``);
- ``mirror``: left-right;
- ``blur4``: Gaussian blur of radius 4 px;
- ``banner``: a coloured banner with white text over the bottom fifth.

Every image, indexed or query, goes through the engine's own decoding
(``decode_image`` with the reduction the engine uses) and is encoded by the encoder the
registry gives for ``descriptor``; ranking is exact cosine over all indexed vectors.

Reported, per edit: rank-1 recall of the original photo, the cosine of each edited copy
with its original (p10 and median), how far that stands out from the copy's best other
match (median of the difference; negative when the original is not first), beside the
"unrelated best match": the best cosine an unedited photo gets from the rest of the index
with itself left out (leave-one-out, p50/p90/max). Then category mAP@10 image -> image on
the stamps, computed as ``bench/relevance.py`` part 2 does (each stamp against the other
indexed stamps, relevant = the other stamps of its category; project metrics), and the
encoding rate in images/s over the decoded stamps and photos (one process, as ingest
encodes; decoding not included).

Photos that are one picture shipped several times are kept once: the sizes and aspect
crops of one Plasma theme or sway wallpaper, and any photo whose perceptual hash is
within 6 bits of one kept before (colour variants of one design, near-flat gradients).
To measure an older version's descriptor on the same set, run the script with
``PYTHONPATH`` pointing at that checkout's ``src`` (and ``--results`` naming another file).

Prints Markdown tables and writes ``bench/results/descriptor_edits.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

from common import command_line, load_average, machine, machine_line, now, table, write_results
from imgsearch import Settings
from imgsearch.encode.base import Encoder
from imgsearch.encode.registry import get_encoder
from imgsearch.enrich.phash import hamming, perceptual_hash
from imgsearch.errors import ImgSearchError
from imgsearch.evaluate.metrics import mean_metrics, query_metrics
from imgsearch.ingest.decode import decode_image, to_rgb
from relevance import STAMPS, build_catalog, same_folder

PHOTO_ROOTS = (Path("/usr/share/backgrounds"), Path("/usr/share/wallpapers"))
RASTER = {".jpg", ".jpeg", ".png", ".webp"}
EDIT_SIDE = 1024


def _banner(image: Image.Image) -> Image.Image:
    out = image.copy()
    draw = ImageDraw.Draw(out)
    w, h = out.size
    draw.rectangle((0, h - h // 5, w, h), fill=(200, 30, 60))
    font = ImageFont.load_default(size=max(10, h // 12))
    draw.text((w // 20, h - h // 5 + h // 40), "SALE  50 % OFF  today only", fill="white",
              font=font)
    return out


def _crop60(image: Image.Image) -> Image.Image:
    w, h = image.size
    return image.crop((round(w * 0.2), round(h * 0.2), round(w * 0.8), round(h * 0.8)))


def _downscale(image: Image.Image, side: int) -> Image.Image:
    scale = side / max(image.size)
    if scale >= 1:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


EDITS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "downscale320": lambda im: _downscale(im, 320),
    "jpeg15": lambda im: im,  # the edit is in the saving, see ``edited_bytes``
    "crop60": _crop60,
    "grayscale": lambda im: ImageOps.grayscale(im).convert("RGB"),
    "rotate7": lambda im: im.rotate(7, Image.Resampling.BICUBIC, expand=False),
    "bright": lambda im: ImageEnhance.Brightness(im).enhance(1.5),
    "mirror": ImageOps.mirror,
    "blur4": lambda im: im.filter(ImageFilter.GaussianBlur(4)),
    "banner": _banner,
}


def edited_bytes(image: Image.Image, edit: str) -> bytes:
    buffer = io.BytesIO()
    EDITS[edit](image).save(buffer, "JPEG", quality=15 if edit == "jpeg15" else 90)
    return buffer.getvalue()


def decode(data: bytes, source: str, reduce_to: int) -> Image.Image:
    s = Settings()
    return decode_image(data, source=source, max_pixels=s.max_pixels, min_side=s.min_side,
                        max_bytes=1 << 30, reduce_to=reduce_to).image


def photo_files() -> list[Path]:
    """One file per picture: the largest of the sizes and aspect crops a package ships.

    Plasma themes ship ``<Theme>/contents/images/<W>x<H>.*`` (plus a screenshot and a dark
    variant), sway one file per size: those are one picture, kept once, so that a copy
    found under another size does not count as a miss.
    """
    best: dict[str, tuple[int, Path]] = {}
    for root in PHOTO_ROOTS:
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            if path.suffix.lower() not in RASTER or not path.is_file():
                continue
            parts = path.relative_to(root).parts
            if "contents" in parts:
                if parts[-2] != "images":
                    continue  # screenshots and dark variants
                key = str(root / parts[0])
            else:
                key = str(path.parent / _SIZE.sub("", path.stem))
            size = _pixels(path.stem)
            if key not in best or size > best[key][0]:
                best[key] = (size, path)
    return sorted(p for _, p in best.values())


_SIZE = re.compile(r"_?\d{3,5}x\d{3,5}|_Portrait")


def _pixels(stem: str) -> int:
    found = re.search(r"(\d{3,5})x(\d{3,5})", stem)
    return int(found[1]) * int(found[2]) if found else 0


Photos = tuple[list[str], list[Image.Image], dict[str, list[Image.Image]]]


def load_photos(reduce_to: int) -> Photos:
    """Photo names, their decoded originals and decoded edited copies per edit."""
    names, originals, hashes = [], [], []
    edited: dict[str, list[Image.Image]] = {e: [] for e in EDITS}
    for path in photo_files():
        try:
            with Image.open(path) as opened:
                opened.draft("RGB", (EDIT_SIDE, EDIT_SIDE))
                opened.load()
                base = _downscale(to_rgb(opened), EDIT_SIDE).copy()  # alpha over white
            original = decode(path.read_bytes(), str(path), reduce_to)
        except (OSError, ImgSearchError) as exc:
            print(f"skipped {path}: {exc}", file=sys.stderr)
            continue
        digest = perceptual_hash(original)
        twin = next((names[n] for n, h in enumerate(hashes) if hamming(h, digest) <= 6), None)
        if twin is not None:  # the same picture shipped twice: kept once
            print(f"skipped {path}: same picture as {twin}", file=sys.stderr)
            continue
        hashes.append(digest)
        names.append(str(path))
        originals.append(original)
        for edit in EDITS:
            edited[edit].append(decode(edited_bytes(base, edit), f"{path}:{edit}", reduce_to))
    return names, originals, edited


def load_stamps(root: Path, reduce_to: int) -> tuple[list[str], list[Image.Image],
                                                     dict[str, str]]:
    rows, truth = build_catalog(root, seed=0)
    ids, images = [], []
    for row in rows:
        try:
            images.append(decode(Path(row["image"]).read_bytes(), row["image"], reduce_to))
        except ImgSearchError:
            continue  # refused by the engine too (shorter side under 32 px)
        ids.append(row["id"])
    return ids, images, {i: truth["category"][i] for i in ids}


def edit_figures(index: np.ndarray, originals: np.ndarray,
                 edited: dict[str, np.ndarray]) -> dict[str, Any]:
    """Per edit: rank-1 recall and own cosines; leave-one-out unrelated best matches."""
    n = len(originals)
    loo = originals @ index.T
    loo[np.arange(n), np.arange(n)] = -np.inf
    unrelated = loo.max(axis=1)
    out: dict[str, Any] = {"unrelated_best": {
        "p50": float(np.percentile(unrelated, 50)), "p90": float(np.percentile(unrelated, 90)),
        "max": float(unrelated.max())}, "edits": {}}
    for edit, vectors in edited.items():
        scores = vectors @ index.T
        top = scores.argmax(axis=1)
        own = scores[np.arange(n), np.arange(n)]
        scores[np.arange(n), np.arange(n)] = -np.inf
        gap = own - scores.max(axis=1)  # how far the original stands out from the rest
        out["edits"][edit] = {
            "r@1": float(np.mean(top == np.arange(n))),
            "own_p10": float(np.percentile(own, 10)), "own_median": float(np.median(own)),
            "gap_median": float(np.median(gap)),
            "above_unrelated_max": float(np.mean(own > unrelated.max())),
        }
    rs = [e["r@1"] for e in out["edits"].values()]
    out["mean_r@1"] = float(np.mean(rs))
    out["min_r@1"] = float(np.min(rs))
    return out


def category_map(ids: list[str], vectors: np.ndarray, categories: dict[str, str]) -> dict[str, Any]:
    relevant = same_folder(categories)
    scores = vectors @ vectors.T
    per = []
    for me, item in enumerate(ids):
        if item not in relevant:
            continue
        scores[me, me] = -np.inf
        order = np.argsort(-scores[me], kind="stable")[:10]
        per.append(query_metrics([ids[n] for n in order], relevant[item], (10,)))
    return {"queries": len(per), **mean_metrics(per)}


ROUNDS = 4
SPEED_IMAGES = 256


def speed_against(older: Path, encoder: Encoder, corpus: list[Image.Image]
                  ) -> dict[str, dict[str, float]]:
    """Both encoders timed in alternating rounds (a shared machine's load hits both)."""
    spec = importlib.util.spec_from_file_location("older_descriptor", older)
    if spec is None or spec.loader is None:
        raise SystemExit(f"{older}: cannot load a descriptor module from it")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    old = module.DescriptorEncoder()
    images = corpus[:: max(1, len(corpus) // SPEED_IMAGES)][:SPEED_IMAGES]
    best: dict[str, dict[str, float]] = {}
    for _ in range(ROUNDS):
        for name, enc in ((old.model_id, old), (encoder.model_id, encoder)):
            wall, cpu = time.perf_counter(), time.process_time()
            enc.embed_images(images)
            rates = {"wall": len(images) / (time.perf_counter() - wall),
                     "cpu": len(images) / max(time.process_time() - cpu, 1e-9)}
            got = best.setdefault(name, rates)
            best[name] = {k: max(got[k], rates[k]) for k in rates}
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stamps", type=Path, default=STAMPS)
    parser.add_argument("--speed-against", type=Path, metavar="DESCRIPTOR_PY",
                        help="an older encode/descriptor.py (e.g. from `git show`): time "
                             "both encoders in alternating rounds on the same images")
    parser.add_argument("--results", default="descriptor_edits",
                        help="name of the results file under bench/results (no suffix)")
    args = parser.parse_args()
    if not args.stamps.is_dir():
        print(f"{args.stamps}: install the stamps with apt-get install tuxpaint-stamps-default",
              file=sys.stderr)
        sys.exit(2)
    info = machine()
    print(f"machine: {machine_line(info)}")
    settings = Settings()
    encoder = get_encoder("descriptor", settings)
    reduce_to = max(encoder.image_side, settings.thumbnail_size)  # as the engine decodes
    started = time.perf_counter()
    names, photos, edited = load_photos(reduce_to)
    stamp_ids, stamps, categories = load_stamps(args.stamps, reduce_to)
    print(f"{len(names)} photos, {len(stamp_ids)} stamps, encoder {encoder.model_id} "
          f"({encoder.dim}-d); loaded in {time.perf_counter() - started:.0f} s")

    corpus = photos + stamps
    encoder.embed_images(corpus[:64])  # warm-up
    began, cpu = time.perf_counter(), time.process_time()
    vectors = encoder.embed_images(corpus)
    rate = len(corpus) / (time.perf_counter() - began)
    cpu_rate = len(corpus) / (time.process_time() - cpu)  # steadier on a shared machine
    photo_vectors, stamp_vectors = vectors[: len(photos)], vectors[len(photos):]
    queries = {e: encoder.embed_images(images) for e, images in edited.items()}
    edits = edit_figures(vectors, photo_vectors, queries)
    alike = category_map(stamp_ids, stamp_vectors, categories)

    print(f"\nencoding: {rate:.0f} images/s wall, {cpu_rate:.0f} per CPU-second "
          f"({len(corpus)} decoded images, one process)\n")
    print(table(["edit", "R@1", "own cosine p10", "own cosine median",
                 "gap to next best (median)", "share above unrelated max"],
                [[e, f"{v['r@1']:.3f}", f"{v['own_p10']:.2f}", f"{v['own_median']:.2f}",
                  f"{v['gap_median']:+.2f}", f"{v['above_unrelated_max']:.2f}"]
                 for e, v in edits["edits"].items()]))
    u = edits["unrelated_best"]
    print(f"\nmean R@1 {edits['mean_r@1']:.3f}, worst edit {edits['min_r@1']:.3f}; unrelated "
          f"best match (leave-one-out) p50 {u['p50']:.2f}, p90 {u['p90']:.2f}, "
          f"max {u['max']:.2f}")
    print(f"category mAP@10 on the stamps (image only, {alike['queries']} queries): "
          f"{alike['map@10']:.3f} (nDCG@10 {alike['ndcg@10']:.3f}, P@10 "
          f"{alike['precision@10']:.3f}, MRR {alike['mrr']:.3f})")
    speed = speed_against(args.speed_against, encoder, corpus) if args.speed_against else None
    if speed:
        print(f"\nalternating rounds, best of {ROUNDS} on {SPEED_IMAGES} images: " + "; ".join(
            f"{name} {v['wall']:.0f} images/s ({v['cpu']:.0f} per CPU-second)"
            for name, v in speed.items()))
    path = write_results(args.results, {
        "date": now(), "command": command_line(), "machine": info,
        "load_average": load_average(), "model_id": encoder.model_id, "dim": encoder.dim,
        "photos": names, "stamps": len(stamp_ids), "images_per_s": rate,
        "images_per_cpu_s": cpu_rate, "speed_against": speed, "edits": edits,
        "category_map": alike})
    print(f"results: {path}")


if __name__ == "__main__":
    main()
