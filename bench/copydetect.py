"""Copy detection on real photos under the default settings: does an edited copy of an
indexed photo come back first, and do unrelated photos and noise get "no match"?

The set (built once, cached under ``bench/data/copydetect/``):

- **photos**: every raster wallpaper of the desktop packages installed here
  (``/usr/share/backgrounds``: gnome-backgrounds, mate-backgrounds, sway-backgrounds,
  ukui and lomiri wallpapers; ``/usr/share/wallpapers``: plasma-workspace-wallpapers,
  which ships each picture at several sizes and aspects). Pictures are grouped (a
  picture's sizes, its light/dark variants); a seeded two thirds of the groups are
  indexed (one file each, the largest), the other third is held out as **unrelated
  queries**, never indexed.
- **distractors**: real drawings and clip-art, every PNG/JPEG of tuxpaint-stamps-default,
  openclipart-png and wesnoth-1.16-data (when installed) that the decoder accepts, up to
  ``--distractors``.
- **copy queries**: each indexed photo, first brought to 1280 px on its longer side
  (the size of a picture found on the web; the full 5K originals would make the query
  time a JPEG-decoding benchmark), then edited: ``down320`` (longer side 320 px),
  ``jpeg15`` (JPEG quality 15), ``crop60`` (the central 60 % of each side), ``gray``,
  ``rotate7`` (7°, black corners), ``bright`` (+50 %), ``mirror``, ``blur4`` (Gaussian
  radius 4), ``banner`` (a coloured band with text over the bottom fifth); plus
  ``othersize``: the package's own other files of the same picture (other resolutions
  and aspect crops). Queries are saved as JPEG quality 90 (PNG for none).
- **noise**: seeded uniform RGB noise, 256 × 256.

Wallpapers that are one flat colour once their transparency is laid over white (the
transparent MATE overlays, a solid fill) stay indexed but are not queried for: there is
no picture in them to find, and they are "exact" copies of each other.

Everything is asked through ``Engine.search`` with default ``Settings`` (only the text
encoder is off: the items have no text). Reported: R@1 overall and per edit; the share of
unrelated photos claimed as a match (any hit of kind ``copy``/``exact``, or any hit at all
under the default minimum confidence); the share of noise images answered "no match" at
collection sizes 10, 100 and the full set; image-query latency p50/p99 end to end
(decode, encode, search, verification), one query at a time.

    .venv/bin/python bench/copydetect.py            # about 15 minutes the first time
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import shutil
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import imagehash
import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

from common import (
    DATA_DIR,
    command_line,
    load_average,
    machine,
    machine_line,
    now,
    percentile,
    table,
    write_results,
)
from imgsearch import Engine, Item, Query, Settings
from imgsearch.enrich.thumbnails import flatten_to_rgb
from imgsearch.search.verify import LARGE_SIDE, features, verify

HERE = DATA_DIR / "copydetect"
PHOTO_ROOTS = (Path("/usr/share/backgrounds"), Path("/usr/share/wallpapers"))
DISTRACTOR_ROOTS = (Path("/usr/share/tuxpaint/stamps"), Path("/usr/share/openclipart"),
                    Path("/usr/share/games/wesnoth"))
EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp"}
EDITS = ("down320", "jpeg15", "crop60", "gray", "rotate7", "bright", "mirror", "blur4",
         "banner")
QUERY_SIDE = 1280
SEED = 0
NOISE = 30
RECIPE = 2
STAGES: list[dict[str, float]] = []  # stage timings of each copy query


def _files(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in EXTENSIONS)


_VARIANT = re.compile(r"[-_](l|d|day|night|light|dark|morning|evening)$")


def _group_key(path: Path) -> str:
    """Files that show one picture share a key: plasma's ``Name/contents/images/WxH``,
    gnome's ``name-l``/``name-d`` light and dark variants."""
    parts = path.parts
    if "contents" in parts:
        return "/".join(parts[:parts.index("contents")])
    stem = _VARIANT.sub("", path.stem)
    stem = re.sub(r"_\d+x\d+(_portrait)?$", "", stem, flags=re.IGNORECASE)  # sway's sizes
    return str(path.with_name(stem))


def photo_groups() -> list[list[Path]]:
    groups: dict[str, list[Path]] = defaultdict(list)
    seen: set[str] = set()
    for root in PHOTO_ROOTS:
        for path in _files(root):
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if digest in seen:  # the same file shipped twice (symlinks, copies)
                continue
            seen.add(digest)
            try:
                with Image.open(path) as im:
                    if min(im.size) < 256:
                        continue
            except Exception:
                continue
            groups[_group_key(path)].append(path)
    return _merge_lookalikes([sorted(g, key=_pixels, reverse=True)
                              for _k, g in sorted(groups.items())])


def _merge_lookalikes(groups: list[list[Path]]) -> list[list[Path]]:
    """One picture shipped by two packages under two names is one group (pHash within 6
    bits), so that no "unrelated" query has its own twin in the index."""
    hashes = []
    for group in groups:
        with Image.open(group[0]) as im:
            hashes.append(int(str(imagehash.phash(flatten_to_rgb(im))), 16))
    merged: list[list[Path]] = []
    owner: list[int] = []
    for group, h in zip(groups, hashes, strict=True):
        for i, other in enumerate(owner):
            if bin(h ^ other).count("1") <= 6:
                merged[i] += group
                break
        else:
            merged.append(list(group))
            owner.append(h)
    return merged


def _pixels(path: Path) -> int:
    with Image.open(path) as im:
        return im.size[0] * im.size[1]


def _fit(image: Image.Image, side: int) -> Image.Image:
    image = flatten_to_rgb(image)  # transparency over white, as ingest does
    scale = side / max(image.size)
    if scale < 1:
        image = image.resize((max(1, round(image.width * scale)),
                              max(1, round(image.height * scale))), Image.Resampling.LANCZOS)
    return image


def edit(image: Image.Image, name: str) -> tuple[Image.Image, int]:
    """(edited image, JPEG quality to save it with)."""
    w, h = image.size
    if name == "down320":
        return _fit(image, 320), 90
    if name == "jpeg15":
        return image, 15
    if name == "crop60":
        return image.crop((round(w * 0.2), round(h * 0.2), round(w * 0.8), round(h * 0.8))), 90
    if name == "gray":
        return ImageOps.grayscale(image).convert("RGB"), 90
    if name == "rotate7":
        return image.rotate(7, resample=Image.Resampling.BICUBIC), 90
    if name == "bright":
        return ImageEnhance.Brightness(image).enhance(1.5), 90
    if name == "mirror":
        return ImageOps.mirror(image), 90
    if name == "blur4":
        return image.filter(ImageFilter.GaussianBlur(4)), 90
    if name == "banner":
        out = image.copy()
        draw = ImageDraw.Draw(out)
        draw.rectangle((0, round(h * 0.8), w, h), fill=(200, 30, 60))
        draw.text((w // 20, round(h * 0.85)), "SALE -50% today only www.example.com",
                  fill=(255, 255, 255), font_size=max(12, h // 14))
        return out, 90
    raise ValueError(f"unknown edit {name!r}")


def build(distractor_cap: int) -> dict[str, Any]:
    """The set's files and labels, made once (``HERE/set.json``)."""
    manifest = HERE / "set.json"
    recipe = {"recipe": RECIPE, "seed": SEED, "distractors": distractor_cap,
              "query_side": QUERY_SIDE}
    if manifest.exists():
        data = json.loads(manifest.read_text())
        if data.get("recipe") == recipe:
            return dict(data)
    shutil.rmtree(HERE / "queries", ignore_errors=True)
    (HERE / "queries").mkdir(parents=True)
    groups = photo_groups()
    rng = random.Random(SEED)
    order = list(range(len(groups)))
    rng.shuffle(order)
    cut = round(len(groups) * 2 / 3)
    indexed = [groups[i] for i in sorted(order[:cut])]
    held = [groups[i] for i in sorted(order[cut:])]
    photos = [{"id": f"photo-{n:03d}", "path": str(g[0])} for n, g in enumerate(indexed)]
    copies: list[dict[str, str]] = []
    for photo, group in zip(photos, indexed, strict=True):
        base = _fit(Image.open(group[0]), QUERY_SIDE)
        for name in EDITS:
            edited, quality = edit(base, name)
            out = HERE / "queries" / f"{photo['id']}-{name}.jpg"
            edited.save(out, quality=quality)
            copies.append({"edit": name, "path": str(out), "expect": photo["id"]})
        for other in group[1:]:  # the same picture at other sizes and aspects
            if _VARIANT.search(other.stem):
                continue  # a light/dark variant is another picture, not a copy
            copies.append({"edit": "othersize", "path": str(other), "expect": photo["id"]})
    unrelated = []
    for n, group in enumerate(held):
        out = HERE / "queries" / f"unrelated-{n:03d}.jpg"
        _fit(Image.open(group[0]), QUERY_SIDE).save(out, quality=90)
        unrelated.append(str(out))
    noise = []
    gen = np.random.default_rng(SEED)
    for n in range(NOISE):
        out = HERE / "queries" / f"noise-{n:02d}.png"
        Image.fromarray(gen.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(out)
        noise.append(str(out))
    distractors = [str(p) for root in DISTRACTOR_ROOTS for p in _files(root)]
    random.Random(SEED).shuffle(distractors)
    data = {"recipe": recipe, "photos": photos, "copies": copies, "unrelated": unrelated,
            "noise": noise, "distractors": distractors[:distractor_cap]}
    manifest.write_text(json.dumps(data, indent=1))
    return data


def collection(data: dict[str, Any], size: str, settings: Settings) -> Engine:
    """The collection of ``size`` ("10", "100" or "full"), ingested once."""
    path = HERE / f"collection-{size}"
    photos = data["photos"]
    if size == "10":
        chosen = photos[:10]
        rest: list[str] = []
    elif size == "100":
        chosen, rest = photos[:30], data["distractors"][:70]
    else:
        chosen, rest = photos, data["distractors"]
    done = path / "done.json"
    # thumbnails are what copies are verified against: another size is another collection
    made_with = {"recipe": data["recipe"], "thumbnail_size": settings.thumbnail_size}
    if done.exists() and {k: json.loads(done.read_text()).get(k) for k in made_with} == made_with:
        return Engine.open(path, settings, create=False)
    shutil.rmtree(path, ignore_errors=True)
    engine = Engine.open(path, settings, text_encoder="none")
    items = [(Item(id=p["id"], image=p["path"]), p["path"]) for p in chosen]
    items += [(Item(id=f"d-{n:05d}", image=p), p) for n, p in enumerate(rest)]
    started = time.perf_counter()
    report = engine.ingest_items(items, total=len(items))
    seconds = time.perf_counter() - started
    print(f"collection {size}: {report.added} items in {seconds:.0f} s "
          f"({report.added / max(seconds, 1e-9):.0f} images/s), {len(report.failed)} refused",
          file=sys.stderr)
    done.write_text(json.dumps({**made_with, "items": report.added, "seconds": seconds}))
    return engine


def _claimed(result: Any) -> bool:
    """Under the default floor every hit shown is a claim: a copy/exact one, or one whose
    confidence cleared the minimum."""
    return bool(result.hits)


def verification_cost(engine: Engine, data: dict[str, Any], n: int = 200) -> dict[str, float]:
    """Milliseconds to read a stored thumbnail, to find its ORB features, to match and
    verify a query against it (plain and mirrored), and the bytes its features would take
    if they were stored at ingest instead."""
    thumbs = sorted((engine.directory / "thumbnails").rglob("*.jpg"))[:n]
    started = time.perf_counter()
    images = [Image.open(t).convert("RGB") for t in thumbs]
    read_ms = (time.perf_counter() - started) * 1000 / len(images)
    started = time.perf_counter()
    feats = [features(im, side=LARGE_SIDE) for im in images]
    orb_ms = (time.perf_counter() - started) * 1000 / len(images)
    query = Image.open(data["copies"][0]["path"]).convert("RGB")
    started = time.perf_counter()
    plain = features(query, side=LARGE_SIDE)
    mirrored = features(query, mirror=True, side=LARGE_SIDE)
    query_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    for f in feats:
        verify(plain, f)
        verify(mirrored, f, True)
    match_ms = (time.perf_counter() - started) * 1000 / len(feats)
    stored = float(np.mean([len(f) * (32 + 8) for f in feats]))
    # the closer look (the first candidate, when none verified): more keypoints, mutual
    started = time.perf_counter()
    close = [features(im, side=LARGE_SIDE, closer=True) for im in images[:50]]
    close_ms = (time.perf_counter() - started) * 1000 / len(close)
    started = time.perf_counter()
    plain_close = features(query, side=LARGE_SIDE, closer=True)
    mirrored_close = features(query, mirror=True, side=LARGE_SIDE, closer=True)
    close_query_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    for f in close:
        verify(plain_close, f)
        verify(mirrored_close, f, True)
    close_match_ms = (time.perf_counter() - started) * 1000 / len(close)
    # the dense alignment (the first candidates, when no look verified): per candidate
    from imgsearch.search.aligned import align  # here: --latency-only runs older trees

    decoded = query.copy()
    decoded.thumbnail((640, 640))  # a 1280 px JPEG query as the engine decodes it
    started = time.perf_counter()
    for im in images[:30]:
        align(decoded, im)
    aligned_ms = (time.perf_counter() - started) * 1000 / len(images[:30])
    return {"read_ms": read_ms, "features_ms": orb_ms, "query_features_ms": query_ms,
            "aligned_ms": aligned_ms,
            "verify_both_ms": match_ms, "bytes_if_stored": stored,
            "closer_features_ms": close_ms, "closer_query_features_ms": close_query_ms,
            "closer_verify_both_ms": close_match_ms}


def explain_misses(engine: Engine, data: dict[str, Any],
                   rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each copy not found first: where its photo ranks for the whole query (by exact
    search over the stored vectors, and in the index's usual walk) and for each view the
    engine searches (``search.copy_views``), and the evidence each look finds against
    the photo's stored thumbnail (inliers: plain, closer, local contrast; dense
    alignment: whole, without the bottom fifth)."""
    # here: --latency-only runs older trees
    from imgsearch.search.aligned import align
    from imgsearch.search.copy_views import central_part, end_squares, without_bottom

    space, encoder = engine.spaces["image"], engine.encoder("image")
    keys, vectors = space.vectors_of_keys(np.arange(len(space.key_vid), dtype=np.int64))
    path_of = {(_short(c["path"]), c["expect"]): c["path"] for c in data["copies"]}
    explained = []
    for row in rows:
        if row["ok"]:
            continue
        key = engine.catalog.key_of(row["expect"])
        if key is None:
            continue
        decoded, vector = engine.look_at(path_of[(row["query"], row["expect"])])
        image = decoded.image
        views = {"central": central_part(image),
                 **{f"square{n}": sq for n, sq in enumerate(end_squares(image))}}
        ranks: dict[str, int | None] = {}
        for name, v in [("whole", vector),
                        *zip(views, encoder.embed_images(list(views.values())), strict=True)]:
            sims = vectors @ v
            ranks[name] = int((sims > sims[keys == key][0]).sum()) + 1
        walked, _s, _p = space.search(vector, 10, None, {})
        ranks["whole, index walk (top 10)"] = \
            walked.tolist().index(key) + 1 if key in walked.tolist() else None
        item = engine.catalog.items_by_key([key])[key]
        stored = Image.open(engine.directory / str(item.thumbnail)).convert("RGB")
        looks: dict[str, float | None] = {}
        for name, look in (("plain", {}), ("closer", {"closer": True}),
                           ("local_contrast", {"local_contrast": True})):
            kept = features(stored, side=LARGE_SIDE, **look)
            looks[name] = max(verify(features(image, mirror=m, side=LARGE_SIDE, **look),
                                     kept, m).inliers for m in (False, True))
        for name, query in (("aligned", image), ("aligned_without_bottom",
                                                 without_bottom(image))):
            found = align(query, stored)
            looks[name] = round(found.agreement, 3) if found is not None else None
        explained.append({"query": row["query"], "expect": row["expect"], "ranks": ranks,
                          "evidence": looks})
        print(f"miss: {row['query']} (of {row['expect']}): ranks {ranks}; evidence {looks}",
              file=sys.stderr)
    return explained


def half(photo_id: str) -> str:
    """The tuning half (even numbers: its photos' crops are in the background sample,
    thresholds were measured on it) or the held-out half."""
    return "tuning" if int(photo_id.rsplit("-", 1)[1]) % 2 == 0 else "held-out"


def run_copies(engine: Engine, data: dict[str, Any]) -> tuple[dict[str, list[int]], list[float],
                                                              list[dict[str, Any]]]:
    per_edit: dict[str, list[int]] = defaultdict(list)
    latencies: list[float] = []
    rows = []
    for q in data["copies"]:
        started = time.perf_counter()
        result = engine.search(Query(images=[q["path"]], limit=10))
        latencies.append((time.perf_counter() - started) * 1000)
        STAGES.append(result.stage_ms)
        top = result.hits[0] if result.hits else None
        ok = int(top is not None and top.id == q["expect"])
        per_edit[q["edit"]].append(ok)
        rows.append({"edit": q["edit"], "query": _short(q["path"]), "ok": ok,
                     "expect": q["expect"],
                     "half": half(q["expect"]), "ms": latencies[-1],
                     "top": top.id if top else None,
                     "confidence": top.confidence if top else None,
                     "match": top.match if top else None,
                     "evidence": top.evidence if top else None})
    return per_edit, latencies, rows


def _short(path: str) -> str:
    """A query's name: an edited copy's file name, or a package file's picture and size
    (plasma ships every picture as ``Name/contents/images/WxH``)."""
    parts = Path(path).parts
    if "contents" in parts:
        return f"{parts[parts.index('contents') - 1]}/{parts[-1]}"
    return Path(path).name


def _blank(path: str) -> bool:
    """A wallpaper that is one flat colour once its transparency is laid over white (a
    transparent overlay, a solid fill): there is no picture to find."""
    with Image.open(path) as im:
        small = flatten_to_rgb(im)
        small.thumbnail((64, 64))
        return float(np.asarray(small.convert("L"), np.float32).std()) < 2.0


def latency_only(data: dict[str, Any]) -> None:
    """p50 of 80 seeded copy queries and of the unrelated photos, one JSON line: run it
    alternately with two trees' code on PYTHONPATH for a comparison in the same minutes
    (the collection must exist: a full run builds it)."""
    settings = Settings(result_cache_size=0, embedding_cache_size=0, log_searches=False)
    engine = Engine.open(HERE / "collection-full", settings, create=False)
    copies = random.Random(1).sample(data["copies"], 80)
    for q in copies[:5]:
        engine.search(Query(images=[q["path"]]))
    timings: dict[str, list[float]] = {"copies": [], "unrelated": []}
    for kind, paths in (("copies", [q["path"] for q in copies]),
                        ("unrelated", data["unrelated"])):
        for path in paths:
            started = time.perf_counter()
            engine.search(Query(images=[path], limit=10))
            timings[kind].append((time.perf_counter() - started) * 1000)
    print(json.dumps({f"{k}_p50_ms": round(percentile(v, 50), 1) for k, v in timings.items()}
                     | {"load": load_average()}))
    engine.close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--distractors", type=int, default=11_000)
    parser.add_argument("--min-confidence", type=float, default=None,
                        help="override the default floor (diagnostics only)")
    parser.add_argument("--latency-only", action="store_true",
                        help="only time 80 seeded copy queries and the unrelated photos on "
                             "the full collection (to alternate with another tree's code)")
    parser.add_argument("--misses", action="store_true",
                        help="only explain the misses of the last run's results (ranks of "
                             "the right photo, evidence of each look) on the full collection")
    args = parser.parse_args(argv)
    data = build(args.distractors)
    if args.latency_only:
        latency_only(data)
        return
    if args.misses:
        last = json.loads((Path(__file__).parent / "results" / "copydetect.json").read_text())
        engine = Engine.open(HERE / "collection-full", Settings(log_searches=False),
                             create=False, readonly=True)
        explain_misses(engine, data, last["rows"])
        engine.close()
        return
    blank = {p["id"] for p in data["photos"] if _blank(p["path"])}
    data["copies"] = [c for c in data["copies"]
                      if c["expect"] not in blank and not _blank(c["path"])]
    settings = Settings(result_cache_size=0, embedding_cache_size=0, log_searches=False)
    if args.min_confidence is not None:
        settings = Settings(result_cache_size=0, embedding_cache_size=0, log_searches=False,
                            min_confidence=args.min_confidence)
    print(f"# copydetect — {now()}\n\n{machine_line(machine())}\n\n`{command_line()}`\n")
    engines = {size: collection(data, size, settings) for size in ("10", "100", "full")}
    full = engines["full"]
    size_full = len(full.spaces["image"])
    for q in data["copies"][:5]:  # warm caches of code paths, not of answers
        full.search(Query(images=[q["path"]]))
    per_edit, latencies, rows = run_copies(full, data)
    everything = [v for values in per_edit.values() for v in values]
    print(f"{len(data['photos'])} indexed photos ({len(blank)} of them flat, not queried) "
          f"among {size_full:,} items; "
          f"{len(everything)} copy queries, {len(data['unrelated'])} unrelated photos, "
          f"{len(data['noise'])} noise images\n")
    edit_rows = [[name, len(per_edit[name]), float(np.mean(per_edit[name]))]
                 for name in (*EDITS, "othersize") if per_edit[name]]
    edit_rows.append(["all", len(everything), float(np.mean(everything))])
    print("Copies found first (R@1), by edit:\n")
    print(table(["edit", "queries", "R@1"], edit_rows) + "\n")
    halves = {h: [r["ok"] for r in rows if r["half"] == h] for h in ("tuning", "held-out")}
    print("By half of the photos (the tuning half's crops are in the background sample and "
          "the stand-out threshold was measured on it; the held-out half is in neither):\n")
    print(table(["half", "queries", "R@1"],
                [[h, len(v), float(np.mean(v))] for h, v in halves.items()]) + "\n")
    claims = {}
    unrelated_ms: list[float] = []
    for size, engine in engines.items():
        unrelated = []
        for p in data["unrelated"]:
            started = time.perf_counter()
            unrelated.append(_claimed(engine.search(Query(images=[p]))))
            if size == "full":
                unrelated_ms.append((time.perf_counter() - started) * 1000)
        noise_empty = [not engine.search(Query(images=[p])).hits for p in data["noise"]]
        claims[size] = (len(engine.spaces["image"]), float(np.mean(unrelated)),
                        float(np.mean(noise_empty)))
    print("Unrelated photos and noise, by collection size:\n")
    print(table(["collection", "items", "unrelated photos claimed", "noise answered no match"],
                [[s, n, u, z] for s, (n, u, z) in claims.items()]) + "\n")
    kinds: dict[str, int] = defaultdict(int)
    for r in rows:
        kinds[str(r["match"])] += 1
    print(f"image query end to end at {size_full:,} items, one at a time: "
          f"p50 {percentile(latencies, 50):.1f} ms, p99 {percentile(latencies, 99):.1f} ms; "
          f"top-1 match kinds {dict(kinds)}; unrelated photos (nothing to find, every "
          f"candidate verified): p50 {percentile(unrelated_ms, 50):.1f} ms, "
          f"p99 {percentile(unrelated_ms, 99):.1f} ms; load {load_average()}\n")
    names = sorted({name for st in STAGES for name in st})
    print("Stages of a copy query:\n")
    print(table(["stage", "p50 ms", "p99 ms"],
                [[n, percentile([st.get(n, 0.0) for st in STAGES], 50),
                  percentile([st.get(n, 0.0) for st in STAGES], 99)] for n in names]) + "\n")
    cost = verification_cost(full, data)
    print("What verification costs, per candidate and per query:\n")
    print(table(["verification cost (one core)", "value"],
                [[f"read a stored thumbnail ({settings.thumbnail_size} px), ms",
                  cost["read_ms"]],
                 ["ORB features of a thumbnail, ms", cost["features_ms"]],
                 ["ORB features of the query, plain + mirrored, ms", cost["query_features_ms"]],
                 ["match + RANSAC, plain + mirrored, per candidate, ms", cost["verify_both_ms"]],
                 ["features per item if stored at ingest, bytes", cost["bytes_if_stored"]],
                 ["closer look: ORB features of a thumbnail (1,000), ms",
                  cost["closer_features_ms"]],
                 ["closer look: the query's, plain + mirrored, ms",
                  cost["closer_query_features_ms"]],
                 ["closer look: mutual match + RANSAC, plain + mirrored, ms",
                  cost["closer_verify_both_ms"]],
                 ["dense alignment of a candidate, plain + mirrored, ms",
                  cost["aligned_ms"]]])
          + "\n")
    misses = [r for r in rows if not r["ok"]]
    for r in misses[:40]:
        print(f"miss: {r['query']} (of {r['expect']}) -> {r['top']} conf {r['confidence']} "
              f"{r['match']} {r['evidence']}", file=sys.stderr)
    explained = explain_misses(full, data, misses[:40])
    write_results("copydetect", {"per_edit": {k: float(np.mean(v)) for k, v in per_edit.items()},
                                 "r_at_1": float(np.mean(everything)),
                                 "r_at_1_by_half": {h: float(np.mean(v))
                                                    for h, v in halves.items()},
                                 "unrelated_p50_ms": percentile(unrelated_ms, 50),
                                 "claims": claims, "p50_ms": percentile(latencies, 50),
                                 "verification_cost": cost,
                                 "p99_ms": percentile(latencies, 99), "rows": rows,
                                 "misses": explained})
    for engine in engines.values():
        engine.close()


if __name__ == "__main__":
    main()
