"""Relevance on real data nobody here wrote: the Tux Paint stamps.

The Debian package ``tuxpaint-stamps-default`` puts about 800 PNG clip-art stamps under
``/usr/share/tuxpaint/stamps``, in category folders, each with a ``.txt`` beside it whose
first line is the English description (the lines after it are ``<lang>.utf8=``
translations). A stamp ``x_mirror.png`` without a text of its own takes the text of
``x.png``; a stamp with no text at all is left out.

The script writes a catalog ``bench/data/relevance-tuxpaint/catalog.jsonl`` with one row
per stamp: an opaque id (``stamp-NNNN``, assigned in a seeded shuffle so that catalog
order says nothing about the folder), the absolute image path and the English
description as ``title``. There is no category column: the folder is ground truth only,
kept in ``truth.json`` beside the catalog. The catalog is indexed through ``Engine``
with the offline defaults (``descriptor`` images, ``minilm`` text).

Categories. A stamp's category is its folder path with the style folders (cartoon,
filled, outlined, uppercase, lowercase, coins, plastic, toys) removed, so
``animals/birds/cartoon`` counts as ``animals/birds``. Every category that holds a stamp
becomes a text query: the leaf folder name with ``_``/``-`` as spaces, except the names
in ``QUERY_TEXT`` below (run-together words, abbreviations, qualifiers such as
``symbols/money/us`` -> "us money", and the clash ``military/vehicles``), which are
written out there in full.

1. Text queries, relevant = every stamp under the category folder, sub-folders included
   (a cow in ``animals/mammals/bovines`` is relevant to "mammals"). Searched with
   ``parse=False, min_confidence=0, limit=100`` in four configurations: BM25 alone
   (``weight_text=0``), minilm alone (``weight_keyword=0``), RRF fusion and weighted
   fusion (both signals at weight 1). A zero-weight list still lends its items to the
   fused union at score 0 (after every item of the other list, in catalog-key order),
   so the "alone" runs drop hits whose fused score is 0: what is left is exactly the
   single signal's own ranking. Metrics are the project's (``imgsearch.evaluate``):
   nDCG@10, Recall@10, mAP@10 and mAP@100 (AP@K divides by min(R, K)).
   The same queries under default settings count how many come back as "no match".
2. Image -> image: every stamp queried with ``similar_to=<its id>``
   (``min_confidence=0, collapse_duplicates=False``), relevant = the other stamps of its
   own category (not sub-folders); stamps alone in their category are skipped. Beside
   the ``descriptor`` encoder, two baselines over the same decoded images (alpha over
   white): an RGB 8x8x8 colour histogram (L1-normalised, cosine) and pHash alone
   (Hamming distance; ties broken by id, which is random with respect to folders).
3. Honest "no match" under default settings: a seeded noise image and unrelated texts
   must come back empty with ``empty_reason == "no_match"``; a stamp's own image, a
   stamp's exact description and a few category names must not.

Prints Markdown tables and writes ``bench/results/relevance.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import sys
import time
from collections import defaultdict
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
    now,
    table,
    write_results,
)
from imgsearch import Engine, Query, SearchResult, Settings
from imgsearch.enrich.phash import hamming, perceptual_hash
from imgsearch.evaluate.metrics import mean_metrics, query_metrics
from imgsearch.evaluate.runner import EvalConfig, EvalRun, QrelsQuery, compare, run_eval
from imgsearch.ingest.decode import to_rgb

STAMPS = Path("/usr/share/tuxpaint/stamps")
INSTALL_HINT = "apt-get install tuxpaint-stamps-default"
WORK = DATA_DIR / "relevance-tuxpaint"
STYLE_FOLDERS = frozenset({"cartoon", "filled", "outlined", "uppercase", "lowercase",
                           "coins", "plastic", "toys"})
QUERY_TEXT = {
    "household/arttools": "art tools",
    "naturalforces": "natural forces",
    "seasonal/newyears": "new years",
    "town/roadsigns": "road signs",
    "vehicles/masstransit": "mass transit",
    "symbols/alphabets/asl": "american sign language",
    "symbols/alphabets/english": "english alphabet",
    "symbols/alphabets/german": "german alphabet",
    "symbols/alphabets/spanish": "spanish alphabet",
    "symbols/money/00_symbols": "money symbols",
    "symbols/money/canadian": "canadian money",
    "symbols/money/euro": "euro money",
    "symbols/money/japanese": "japanese money",
    "symbols/money/us": "us money",
    "symbols/math/operators": "math operators",
    "hobbies/music/brass": "brass music",
    "hobbies/music/percussion": "percussion music",
    "hobbies/music/string": "string music",
    "hobbies/music/wind": "wind music",
    "animals/mammals/aquatic": "aquatic mammals",
    "vehicles/auto": "auto vehicles",
    "vehicles/race": "race vehicles",
    "vehicles/emergency": "emergency vehicles",
    "vehicles/construction": "construction vehicles",
    "vehicles/farming": "farming vehicles",
    "military/vehicles": "military vehicles",
}
UNRELATED_TEXTS = ("quantum chromodynamics lecture", "kubernetes pod eviction policy",
                   "appeal deadline for a tax court ruling", "sql query optimizer statistics")
PRESENT_CATEGORIES = ("birds", "fruit", "flowers", "road signs")
_TRANSLATION = re.compile(r"^[A-Za-z_@]+\.utf8=")
KS = (10, 100)


def english_description(text_file: Path) -> str | None:
    """The English line of a stamp's text: its first line unless that is a translation."""
    lines = [ln.strip() for ln in text_file.read_text(encoding="utf-8",
                                                      errors="replace").splitlines()]
    if lines and lines[0] and not _TRANSLATION.match(lines[0]):
        return lines[0]
    for line in lines:
        if line.startswith("en.utf8="):
            return line.split("=", 1)[1].strip() or None
    return None


def category_of(png: Path, root: Path) -> str:
    parts = [p for p in png.parent.relative_to(root).parts if p not in STYLE_FOLDERS]
    return "/".join(parts)


def query_text(category: str) -> str:
    return QUERY_TEXT.get(category) or category.rsplit("/", 1)[-1].replace("_", " ") \
        .replace("-", " ")


def build_catalog(root: Path, seed: int) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """Catalog rows (id, image, title) and the ground truth kept apart from them."""
    stamps: list[tuple[Path, str]] = []
    skipped: list[str] = []
    for png in sorted(root.rglob("*.png")):
        text = png.with_suffix(".txt")
        if not text.is_file() and png.stem.endswith("_mirror"):
            text = png.with_name(png.stem[: -len("_mirror")] + ".txt")
        description = english_description(text) if text.is_file() else None
        if description:
            stamps.append((png, description))
        else:
            skipped.append(str(png.relative_to(root)))
    random.Random(seed).shuffle(stamps)
    rows, categories, files = [], {}, {}
    for number, (png, description) in enumerate(stamps, start=1):
        item_id = f"stamp-{number:04d}"
        rows.append({"id": item_id, "image": str(png), "title": description})
        categories[item_id] = category_of(png, root)
        files[item_id] = str(png.relative_to(root))
    return rows, {"category": categories, "file": files, "skipped_no_text": skipped}


def build_collection(rows: list[dict[str, str]], truth: dict[str, Any]) -> dict[str, Any]:
    WORK.mkdir(parents=True, exist_ok=True)
    catalog = WORK / "catalog.jsonl"
    catalog.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (WORK / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")
    collection = WORK / "collection"
    shutil.rmtree(collection, ignore_errors=True)
    with Engine.open(collection, Settings()) as engine:
        report = engine.ingest(catalog)
    return {"items": len(rows) - len(report.failed), "seconds": round(report.seconds, 1),
            "failed": [f"{f.source}: {f.reason}" for f in report.failed]}


# -- 1. text queries ---------------------------------------------------------------------
def text_qrels(categories: dict[str, str]) -> list[QrelsQuery]:
    queries = []
    for line, category in enumerate(sorted(set(categories.values())), start=1):
        under = [i for i, c in categories.items() if c == category
                 or c.startswith(category + "/")]
        query = Query(text=query_text(category), parse=False, min_confidence=0.0)
        queries.append(QrelsQuery(line, category, query, {i: 1.0 for i in under}))
    return queries


def single_signal(engine: Engine, dropped: list[int]) -> Any:
    """Search, keeping only hits of the lists that carry weight (fused score above 0)."""
    def search(query: Query) -> SearchResult:
        result: SearchResult = engine.search(query)
        kept = [h for h in result.hits if h.score > 0]
        dropped.append(len(result.hits) - len(kept))
        result.hits = kept
        return result
    return search


TEXT_CONFIGS: tuple[tuple[str, Settings, bool], ...] = (
    ("BM25 alone", Settings(weight_text=0.0), True),
    ("minilm alone", Settings(weight_keyword=0.0), True),
    ("fusion rrf", Settings(fusion="rrf"), False),
    ("fusion weighted", Settings(fusion="weighted"), False),
)


def run_text(collection: Path, qrels: list[QrelsQuery]) -> dict[str, Any]:
    runs: dict[str, EvalRun] = {}
    dropped: dict[str, int] = {}
    for label, settings, alone in TEXT_CONFIGS:
        with Engine.open(collection, settings, readonly=True) as engine:
            lost: list[int] = []
            searcher = single_signal(engine, lost) if alone else engine
            runs[label] = run_eval(qrels, EvalConfig(label, searcher), ks=KS)
            dropped[label] = sum(lost)
    versus = {}
    for fused in ("fusion rrf", "fusion weighted"):
        for single in ("BM25 alone", "minilm alone"):
            pairs = compare(runs[single], runs[fused]).paired
            diffs = [b.metrics["ndcg@10"] - a.metrics["ndcg@10"] for a, b in pairs
                     if a.metrics and b.metrics]
            versus[f"{fused} vs {single}"] = {
                "better": sum(d > 1e-9 for d in diffs), "worse": sum(d < -1e-9 for d in diffs),
                "tied": sum(abs(d) <= 1e-9 for d in diffs)}
    with Engine.open(collection, Settings(), readonly=True) as engine:
        empty = [q.id for q in qrels if q.query.text
                 and engine.search(Query(text=q.query.text)).empty_reason == "no_match"]
    return {"runs": runs, "dropped_zero_weight_hits": dropped, "versus": versus,
            "default_no_match": empty}


# -- 2. image -> image -------------------------------------------------------------------
def same_folder(categories: dict[str, str]) -> dict[str, dict[str, float]]:
    members: dict[str, list[str]] = defaultdict(list)
    for item_id, category in categories.items():
        members[category].append(item_id)
    return {i: {o: 1.0 for o in members[c] if o != i} for i, c in categories.items()
            if len(members[c]) > 1}


def colour_histogram(image: Image.Image) -> np.ndarray:
    pixels = np.asarray(image, dtype=np.uint8).reshape(-1, 3) // 32
    codes = pixels[:, 0].astype(np.int64) * 64 + pixels[:, 1] * 8 + pixels[:, 2]
    hist = np.bincount(codes, minlength=512).astype(np.float64)
    return hist / hist.sum()


def run_images(collection: Path, files: dict[str, Path],
               relevant: dict[str, dict[str, float]]) -> dict[str, Any]:
    ids = sorted(files)
    images = [to_rgb(Image.open(files[i])) for i in ids]
    hists = np.stack([colour_histogram(im) for im in images])
    hists /= np.linalg.norm(hists, axis=1, keepdims=True)
    cosine = hists @ hists.T
    hashes = [perceptual_hash(im) for im in images]
    position = {i: n for n, i in enumerate(ids)}
    per: dict[str, list[dict[str, float]]] = {"descriptor (engine)": [],
                                              "colour histogram": [], "pHash only": []}
    qrels = [QrelsQuery(n, i, Query(similar_to=i, min_confidence=0.0,
                                    collapse_duplicates=False), grades)
             for n, (i, grades) in enumerate(sorted(relevant.items()), start=1)]
    # the image alone: "more like this" also fuses the title (bench/similar.py measures it)
    image_only = Settings(similar_weight_text=0.0, similar_weight_category=0.0,
                          similar_weight_brand=0.0)
    with Engine.open(collection, image_only, readonly=True) as engine:
        run = run_eval(qrels, EvalConfig("descriptor", engine), ks=(10,))
    per["descriptor (engine)"] = [o.metrics for o in run.outcomes if o.metrics]
    for q in qrels:
        me = position[q.label]
        order = [n for n in np.argsort(-cosine[me], kind="stable") if n != me][:10]
        per["colour histogram"].append(query_metrics([ids[n] for n in order], q.grades, (10,)))
        dist = sorted((hamming(hashes[me], h), n) for n, h in enumerate(hashes) if n != me)
        per["pHash only"].append(query_metrics([ids[n] for _, n in dist[:10]], q.grades,
                                               (10,)))
    return {"queries": len(qrels), "errors": len(run.errors),
            "overall": {name: mean_metrics(rows) for name, rows in per.items()}}


# -- 3. honest "no match" ----------------------------------------------------------------
def run_no_match(collection: Path, rows: list[dict[str, str]], indexed: set[str],
                 seed: int) -> list[dict[str, Any]]:
    noise = np.random.default_rng(seed).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    # the first indexed stamp (shuffled order) whose description is a phrase, not a word
    stamp = next(r for r in rows if r["id"] in indexed and len(r["title"].split()) >= 4)
    cases: list[tuple[str, Query, bool]] = [
        ("noise image 256x256 (seeded)", Query(images=[Image.fromarray(noise, "RGB")]), False)]
    cases += [(f"text {t!r}", Query(text=t), False) for t in UNRELATED_TEXTS]
    cases.append((f"own image of {stamp['id']}", Query(images=[stamp["image"]]), True))
    cases.append((f"exact description {stamp['title']!r}", Query(text=stamp["title"]), True))
    cases += [(f"category {t!r}", Query(text=t), True) for t in PRESENT_CATEGORIES]
    out = []
    with Engine.open(collection, Settings(), readonly=True) as engine:
        for label, query, present in cases:
            result = engine.search(query)
            top = result.hits[0] if result.hits else None
            ok = (result.empty_reason is None and top is not None) if present \
                else result.empty_reason == "no_match"
            out.append({"query": label, "expect": "results" if present else "no_match",
                        "empty_reason": result.empty_reason, "hits": len(result.hits),
                        "top_hit": f"{top.id} {top.title!r}" if top else None,
                        "confidence": top.confidence if top else None, "ok": ok,
                        "message": result.message})
    return out


def _metric_rows(runs: dict[str, EvalRun]) -> list[list[Any]]:
    rows = []
    for label, run in runs.items():
        m = run.overall
        # three decimals: the signals differ in the third place
        rows.append([label, *(f"{m[k]:.3f}" for k in ("ndcg@10", "recall@10", "map@10",
                                                     "map@100", "mrr")), len(run.scored)])
    return rows


def stamps_arguments(doc: str) -> argparse.Namespace:
    """--stamps and --seed of the benchmarks over the Tux Paint stamps (exit 2 without
    the stamps)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--stamps", type=Path, default=STAMPS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not args.stamps.is_dir() or not any(args.stamps.rglob("*.png")):
        print(f"{args.stamps}: the Tux Paint stamps are not installed; install them with\n"
              f"  {INSTALL_HINT}", file=sys.stderr)
        sys.exit(2)
    return args


def main() -> None:
    args = stamps_arguments(__doc__ or "")
    info = machine()
    print(f"machine: {machine_line(info)}")
    started = time.perf_counter()
    rows, truth = build_catalog(args.stamps, args.seed)
    ingest = build_collection(rows, truth)
    collection = WORK / "collection"
    with Engine.open(collection, Settings(), readonly=True) as engine:
        categories = {i: c for i, c in truth["category"].items() if i in engine}
    print(f"{len(rows)} stamps with an English text ({len(truth['skipped_no_text'])} without, "
          f"left out); {len(categories)} indexed in {ingest['seconds']} s, "
          f"{len(ingest['failed'])} refused")

    stage = time.perf_counter()
    timings: dict[str, float] = {"build_and_ingest": round(stage - started, 1)}
    qrels = text_qrels(categories)
    text = run_text(collection, qrels)
    timings["text"] = round(time.perf_counter() - stage, 1)
    stage = time.perf_counter()
    print(f"\n1. Text queries from {len(qrels)} category names (parse=False, "
          f"min_confidence=0; relevant = every stamp under the folder)\n")
    print(table(["configuration", "nDCG@10", "Recall@10", "mAP@10", "mAP@100", "MRR",
                 "queries"], _metric_rows(text["runs"])))
    print("\nper-query nDCG@10, fused vs single signal (better / worse / tied):")
    print(table(["comparison", "better", "worse", "tied"],
                [[k, v["better"], v["worse"], v["tied"]] for k, v in text["versus"].items()]))
    print(f"\nzero-weight hits dropped from the 'alone' runs: {text['dropped_zero_weight_hits']}")
    print(f"default settings (parse on, min_confidence {Settings().min_confidence}): "
          f"{len(text['default_no_match'])} of {len(qrels)} category queries answer "
          f"'no match': {', '.join(query_text(c) for c in text['default_no_match'] if c)}")

    relevant = same_folder(categories)
    files = {i: args.stamps / truth["file"][i] for i in categories}
    images = run_images(collection, files, relevant)
    timings["image_to_image"] = round(time.perf_counter() - stage, 1)
    stage = time.perf_counter()
    print(f"\n2. Image -> image, {images['queries']} stamps as queries (relevant = the other "
          f"stamps of the same category)\n")
    print(table(["method", "mAP@10", "nDCG@10", "P@10", "Recall@10", "MRR"],
                [[name, m["map@10"], m["ndcg@10"], m["precision@10"], m["recall@10"],
                  m["mrr"]] for name, m in images["overall"].items()]))

    no_match = run_no_match(collection, rows, set(categories), args.seed)
    timings["no_match"] = round(time.perf_counter() - stage, 1)
    print("\n3. Honest 'no match' (default settings)\n")
    print(table(["query", "expect", "empty_reason", "top hit", "confidence", "ok"],
                [[r["query"], r["expect"], r["empty_reason"] or "-", r["top_hit"] or "-",
                  r["confidence"] if r["confidence"] is not None else "-",
                  "yes" if r["ok"] else "NO"] for r in no_match]))
    seconds = round(time.perf_counter() - started, 1)
    print(f"\ntotal {seconds} s ({timings})")

    path = write_results("relevance", {
        "date": now(), "command": command_line(), "machine": info,
        "load_average": load_average(), "seconds": seconds, "timings": timings,
        "seed": args.seed,
        "dataset": {"stamps": len(rows), "indexed": len(categories),
                    "skipped_no_text": truth["skipped_no_text"], "ingest": ingest,
                    "categories": len(qrels)},
        "text": {"query_text": {q.id: q.query.text for q in qrels},
                 "configs": {label: {"overall": run.overall, "scored": len(run.scored),
                                     "per_query_ndcg@10": {o.qrels.label: o.metrics["ndcg@10"]
                                                           for o in run.scored if o.metrics}}
                             for label, run in text["runs"].items()},
                 "fused_vs_single_ndcg@10": text["versus"],
                 "dropped_zero_weight_hits": text["dropped_zero_weight_hits"],
                 "default_settings_no_match": text["default_no_match"]},
        "image_to_image": images,
        "no_match": no_match,
    })
    print(f"results: {path}")


if __name__ == "__main__":
    main()
