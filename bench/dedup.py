"""Near-duplicate grouping quality on real clip-art: the Tux Paint stamps.

Takes the PNG stamps of the Debian package ``tuxpaint-stamps-default`` (under
``/usr/share/tuxpaint/stamps``), picks ``--groups`` of them (seeded, shorter side at
least 128 px so that a half-size copy is still accepted) and plants four copies of each:

- ``copy``: the file's bytes, unchanged;
- ``jpeg50``: flattened over white and saved as JPEG quality 50;
- ``half``: resized to 0.5x (Lanczos), PNG;
- ``crop10``: a random crop keeping 90% of the width and of the height, PNG.

Every stamp and every copy is ingested into a temporary collection through
``Engine.ingest`` (offline default image encoder, no text encoder). Duplicate pairs and
groups are then computed with ``imgsearch.search.duplicates`` from the catalog's hashes
and the image space's stored vectors, and scored against the planted groups:

- pairwise precision and recall of group co-membership. Precision counts pairs that
  touch a planted item; groups formed only of the package's own stamps (it ships
  look-alikes such as dreidels that differ by one letter) are listed separately, since
  no ground truth says whether they are duplicates;
- how many planted groups came out exactly (the original and its four copies, nothing
  more);
- per copy kind: the tier of its pair with the original, and Hamming/cosine percentiles;
- a sweep of the variant bounds, re-thresholding candidates found once at a wide radius.

Prints Markdown tables and writes ``bench/results/dedup.json``.
"""

from __future__ import annotations

import argparse
import io
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from common import (
    command_line,
    load_average,
    machine,
    machine_line,
    now,
    percentile,
    table,
    write_results,
)
from imgsearch import Engine, Settings
from imgsearch.search.duplicates import (
    TIERS,
    DuplicateTiers,
    find_duplicate_pairs,
    group_duplicates,
)

STAMPS = Path("/usr/share/tuxpaint/stamps")
KINDS = ("copy", "jpeg50", "half", "crop10")
MIN_PLANTED_SIDE = 128
INSTALL_HINT = ("the Tux Paint stamps are not installed; install them with\n"
                "    sudo apt-get install tuxpaint-stamps-default\n"
                "or pass --stamps DIR with a folder of PNG images")


def plant(stamps_dir: Path, root: Path, groups: int, seed: int
          ) -> dict[str, tuple[int, str]]:
    """Copy every stamp under root/stamps and plant copies of ``groups`` of them under
    root/planted. Returns item id -> (group number, kind) for planted items."""
    rng = random.Random(seed)
    stamps = sorted(stamps_dir.rglob("*.png"))
    for path in stamps:
        target = root / "stamps" / path.relative_to(stamps_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    eligible = [p for p in stamps if min(Image.open(p).size) >= MIN_PLANTED_SIDE]
    chosen = rng.sample(eligible, groups)
    truth: dict[str, tuple[int, str]] = {}
    planted = root / "planted"
    planted.mkdir()
    for group, path in enumerate(chosen):
        truth["stamps/" + str(path.relative_to(stamps_dir))] = (group, "original")
        image = Image.open(path)
        image.load()
        width, height = image.size
        cut_w, cut_h = width // 10, height // 10
        left, top = rng.randint(0, cut_w), rng.randint(0, cut_h)
        copies = {
            "copy": path.read_bytes(),
            "jpeg50": _save(_flatten(image), "JPEG", quality=50),
            "half": _save(image.resize((width // 2, height // 2), Image.Resampling.LANCZOS),
                          "PNG"),
            "crop10": _save(image.crop((left, top, left + width - cut_w, top + height - cut_h)),
                            "PNG"),
        }
        for kind, data in copies.items():
            name = f"g{group:02d}-{kind}.{'jpg' if kind == 'jpeg50' else 'png'}"
            (planted / name).write_bytes(data)
            truth[f"planted/{name}"] = (group, kind)
    return truth



def _flatten(image: Image.Image) -> Image.Image:
    rgba = image.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def _save(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


# copy kinds a group is expected to hold at each minimum tier
EXPECTED = {"exact": ("original", "copy"), "near-exact": ("original", "copy", "jpeg50", "half"),
            "variant": ("original", *KINDS)}


def score(groups: list[list[str]], truth: dict[str, tuple[int, str]],
          min_tier: str = "variant") -> dict[str, Any]:
    """Pairwise precision/recall of co-membership against the planted groups (the copy
    kinds expected at ``min_tier``), and planted groups found exactly.

    ``precision`` judges every predicted pair that touches a planted item;
    ``precision_planted`` only pairs of two planted items, leaving out the package's
    own look-alikes, which no ground truth covers.
    """
    expected = {i: t for i, t in truth.items() if t[1] in EXPECTED[min_tier]}
    planted = _planted_sets(expected)
    true_pairs = {frozenset(p) for g in planted.values() for p in combinations(sorted(g), 2)}
    predicted = {frozenset(p) for g in groups for p in combinations(sorted(g), 2)}
    judged = {p for p in predicted if any(i in expected for i in p)}
    among = {p for p in judged if all(i in expected for i in p)}
    exact = sum(1 for g in planted.values() if any(set(found) == g for found in groups))
    unplanted = [g for g in groups if not any(i in truth for i in g)]
    return {"precision": _ratio(len(judged & true_pairs), len(judged)),
            "precision_planted": _ratio(len(among & true_pairs), len(among)),
            "recall": _ratio(len(judged & true_pairs), len(true_pairs)),
            "true_pairs": len(true_pairs), "predicted_pairs_judged": len(judged),
            "groups_exact": exact, "groups": len(groups),
            "unplanted_groups": len(unplanted),
            "false_pairs": sorted(sorted(p) for p in judged - true_pairs)[:40]}


def _planted_sets(truth: dict[str, tuple[int, str]]) -> dict[int, set[str]]:
    sets: dict[int, set[str]] = {}
    for item_id, (group, _kind) in truth.items():
        sets.setdefault(group, set()).add(item_id)
    return sets


def _ratio(part: int, whole: int) -> float:
    return part / whole if whole else 1.0


def run(stamps_dir: Path, groups: int, seed: int, keep: Path | None) -> dict[str, Any]:
    stamps = sorted(stamps_dir.rglob("*.png"))
    work = Path(tempfile.mkdtemp(prefix="imgsearch-dedup-"))
    try:
        images = work / "images"
        truth = plant(stamps_dir, images, groups, seed)
        with Engine.open(work / "collection", Settings(text_encoder="none")) as engine:
            started = time.perf_counter()
            report = engine.ingest(images)
            ingest_s = time.perf_counter() - started
            space = engine.spaces["image"]
            keys, _vids = engine.catalog.key_vid_pairs("image")
            keys = np.sort(keys)
            items = engine.catalog.items_by_key(keys.tolist())
            keys = np.asarray([k for k in keys if items[int(k)].phash is not None], np.int64)
            hashes = np.asarray([items[int(k)].phash for k in keys], dtype=np.int64)
            id_of = {int(k): items[int(k)].id for k in keys}

            tiers = DuplicateTiers()
            started = time.perf_counter()
            pairs = find_duplicate_pairs(keys, hashes, space.vectors_of_keys, tiers)
            pairs_s = time.perf_counter() - started
            started = time.perf_counter()
            found = {tier: group_duplicates(pairs, min_tier=tier) for tier in TIERS}
            group_s = time.perf_counter() - started
            quality = {tier: score([[id_of[k] for k in g.keys] for g in gs], truth, tier)
                       for tier, gs in found.items()}

            # every candidate once, at a wide radius and no cosine bound, for the tables below
            wide = DuplicateTiers(exact_hamming=0, exact_cosine=1.0, near_hamming=0,
                                  near_cosine=1.0, variant_hamming=24, variant_cosine=-1.0)
            started = time.perf_counter()
            candidates = find_duplicate_pairs(keys, hashes, space.vectors_of_keys, wide)
            wide_s = time.perf_counter() - started
            result = {
                "benchmark": "dedup", "command": command_line(), "date": now(),
                "machine": machine(), "load_average": load_average(),
                "stamps": len(stamps), "groups": groups, "seed": seed,
                "ingest": {**{k: v for k, v in report.to_dict().items() if k != "failed"},
                           "failed": len(report.failed), "seconds": round(ingest_s, 2)},
                "items": len(keys), "tiers": tiers.__dict__,
                "seconds": {"find_duplicate_pairs": round(pairs_s, 3),
                            "group_duplicates_all_tiers": round(group_s, 4),
                            "find_duplicate_pairs_radius_24": round(wide_s, 3),
                            "candidates_radius_24": len(candidates)},
                "pairs_by_tier": dict(Counter(p[4] for p in pairs)),
                "quality_by_min_tier": quality,
                "copies": per_kind(candidates, truth, id_of, tiers),
                "unrelated": unrelated(candidates, truth, id_of),
                "sweep": sweep(candidates, truth, id_of),
                "unplanted_groups": [[id_of[k] for k in g.keys] + [g.tier]
                                     for g in found["variant"]
                                     if not any(id_of[k] in truth for k in g.keys)],
            }
        if keep is not None:
            shutil.copytree(work, keep, dirs_exist_ok=True)
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def per_kind(candidates: list[tuple[int, int, int, float, str]],
             truth: dict[str, tuple[int, str]], id_of: dict[int, str],
             tiers: DuplicateTiers) -> dict[str, Any]:
    """The direct (original, copy) pair of each planted copy: tier and signal spread."""
    seen: dict[str, list[tuple[int, float]]] = {kind: [] for kind in KINDS}
    for a, b, hamming, cosine, _tier in candidates:
        ta, tb = truth.get(id_of[a]), truth.get(id_of[b])
        if ta and tb and ta[0] == tb[0] and "original" in (ta[1], tb[1]):
            kind = tb[1] if ta[1] == "original" else ta[1]
            seen[kind].append((hamming, cosine))
    out: dict[str, Any] = {}
    for kind, found in seen.items():
        tiers_found = Counter(tiers.classify(h, c) or "none" for h, c in found)
        hams, coss = [h for h, _ in found], [c for _, c in found]
        out[kind] = {"within_24_bits": len(found),
                     **{t: tiers_found.get(t, 0) for t in (*TIERS, "none")},
                     "hamming_p50": percentile(hams, 50), "hamming_max": max(hams, default=-1),
                     "cosine_min": min(coss, default=float("nan")),
                     "cosine_p10": percentile(coss, 10), "cosine_p50": percentile(coss, 50)}
    return out


def unrelated(candidates: list[tuple[int, int, int, float, str]],
              truth: dict[str, tuple[int, str]], id_of: dict[int, str]) -> dict[str, int]:
    """Pairs of different stamps (neither a planted copy of the other) by bounds."""
    out: dict[str, int] = {}
    for a, b, hamming, cosine, _tier in candidates:
        ta, tb = truth.get(id_of[a]), truth.get(id_of[b])
        if ta and tb and ta[0] == tb[0]:
            continue
        for radius in (6, 12, 16):
            if hamming <= radius:
                out[f"hamming<={radius}"] = out.get(f"hamming<={radius}", 0) + 1
                for bound in (0.85, 0.95):
                    if cosine >= bound:
                        name = f"hamming<={radius},cosine>={bound}"
                        out[name] = out.get(name, 0) + 1
    return out


def sweep(candidates: list[tuple[int, int, int, float, str]],
          truth: dict[str, tuple[int, str]], id_of: dict[int, str]) -> list[dict[str, Any]]:
    rows = []
    base = DuplicateTiers()
    for radius in (8, 12, 16, 20):
        for bound in (0.80, 0.85, 0.90):
            tiers = DuplicateTiers(base.exact_hamming, base.exact_cosine,
                                   min(base.near_hamming, radius), max(base.near_cosine, bound),
                                   radius, bound)
            kept = [(a, b, h, c, tiers.classify(h, c) or "") for a, b, h, c, _t in candidates]
            groups = group_duplicates([p for p in kept if p[4]])
            quality = score([[id_of[k] for k in g.keys] for g in groups], truth)
            rows.append({"variant_hamming": radius, "variant_cosine": bound,
                         "candidates_within_radius": sum(1 for p in candidates if p[2] <= radius),
                         **quality})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stamps", type=Path, default=STAMPS)
    parser.add_argument("--groups", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, default=None,
                        help="copy the generated images and collection here")
    args = parser.parse_args()
    if not args.stamps.is_dir() or not any(args.stamps.rglob("*.png")):
        print(f"{args.stamps}: {INSTALL_HINT}", file=sys.stderr)
        sys.exit(2)
    info = machine()
    print(f"machine: {machine_line(info)}")
    result = run(args.stamps, args.groups, args.seed, args.keep)
    print(f"\n{result['stamps']} stamps + {4 * args.groups} planted copies; "
          f"{result['items']} items indexed in {result['ingest']['seconds']} s "
          f"({result['ingest']['failed']} refused, mostly stamps under the minimum side); "
          f"find_duplicate_pairs {result['seconds']['find_duplicate_pairs']} s "
          f"({result['seconds']['find_duplicate_pairs_radius_24']} s for all "
          f"{result['seconds']['candidates_radius_24']} candidates within 24 bits)\n")
    print(table(["min tier", "pair precision", "precision (planted only)", "pair recall",
                 "groups exact", "groups", "unplanted groups"],
                [[t, q["precision"], q["precision_planted"], q["recall"],
                  f"{q['groups_exact']}/{args.groups}",
                  q["groups"], q["unplanted_groups"]]
                 for t, q in result["quality_by_min_tier"].items()]))
    print()
    print(table(["copy", *TIERS, "none", "hamming p50", "hamming max", "cosine min",
                 "cosine p10", "cosine p50"],
                [[k, v["exact"], v["near-exact"], v["variant"],
                  v["none"] + args.groups - v["within_24_bits"], v["hamming_p50"],
                  v["hamming_max"], v["cosine_min"], v["cosine_p10"], v["cosine_p50"]]
                 for k, v in result["copies"].items()]))
    print()
    print(table(["variant hamming", "variant cosine", "candidates", "precision",
                 "precision (planted only)", "recall", "groups exact"],
                [[r["variant_hamming"], r["variant_cosine"], r["candidates_within_radius"],
                  r["precision"], r["precision_planted"], r["recall"], r["groups_exact"]]
                 for r in result["sweep"]]))
    print(f"\nunrelated stamp pairs: {result['unrelated']}")
    print(f"groups among the package's own stamps: {len(result['unplanted_groups'])}")
    path = write_results("dedup", result)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
