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
   (a cow in ``animals/mammals/bovines`` is relevant to "mammals"), on two catalogs of
   the same stamps, ids and order: (a) titled by their descriptions, (b) titled only by
   their file names (``050kennedy-halfdollar.png``, ``op1_minus.png``): the noisy case,
   where the engine cleans the titles into words (``imgsearch.titles``) and nothing else
   describes a stamp. Searched with ``parse=False, min_confidence=0, limit=100`` in
   the configurations of ``TEXT_CONFIGS``: BM25 alone (``weight_text=0``), minilm
   alone (``weight_keyword=0``), the WordNet concept list alone, each with every
   expansion off; visual feedback alone (the ``visual_feedback`` list's own ranking,
   seeded by the default text ranking); fusion as it was before feedback (BM25 and
   minilm by RRF, every expansion off); text feedback with round one's settings (3
   seeds, beta 0.5, equal seed weights, nothing else); the default (text feedback,
   neighbour smoothing and concepts); the default without each of its parts; the
   default plus visual feedback (weight ``VISUAL_WEIGHT``); weighted fusion. A
   zero-weight list still lends its items to the fused union at score 0, so
   the "alone" runs drop hits whose fused score is 0 (or, for visual feedback, that it
   did not bring): what is left is exactly the single signal's own ranking. Metrics are
   the project's (``imgsearch.evaluate``): nDCG@10, Recall@10, mAP@10 and mAP@100
   (AP@K divides by min(R, K)); per query better / worse / tied on mAP@10 and nDCG@10.
   The same queries under default settings count how many come back as "no match".
   ``imgsearch tune`` (``imgsearch.evaluate.tune``) runs on each catalog's qrels from
   the settings before feedback (every expansion off) and from the defaults, 5-fold
   cross-validated.
   Text query latency: ``--latency-n`` (10,000) synthetic items built by
   ``bench/load.py`` (descriptor + minilm), 50 two-word queries x 4 rounds per
   configuration, in-process, result and embedding caches off, configurations taking
   turns query by query.
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
import os
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
from imgsearch.evaluate.tune import tune
from imgsearch.ingest.decode import to_rgb
from load import build_collection as build_load_collection
from load import words as load_words

STAMPS = Path("/usr/share/tuxpaint/stamps")
INSTALL_HINT = "apt-get install tuxpaint-stamps-default"
WORK = DATA_DIR / "relevance-tuxpaint"
WORK_FILE_NAMES = DATA_DIR / "relevance-tuxpaint-filenames"
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


def build_catalog(root: Path, seed: int, *, file_names: bool = False
                  ) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """Catalog rows (id, image, title) and the ground truth kept apart from them; with
    ``file_names`` the title is the stamp's file name (``050kennedy-halfdollar.png``)
    instead of its description: the same stamps, ids and order, noisy titles."""
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
        rows.append({"id": item_id, "image": str(png),
                     "title": png.name if file_names else description})
        categories[item_id] = category_of(png, root)
        files[item_id] = str(png.relative_to(root))
    return rows, {"category": categories, "file": files, "skipped_no_text": skipped}


def build_collection(rows: list[dict[str, str]], truth: dict[str, Any],
                     work: Path = WORK) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    catalog = work / "catalog.jsonl"
    catalog.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (work / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")
    collection = work / "collection"
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


def feedback_only(engine: Engine, dropped: list[int]) -> Any:
    """Search, keeping only the visual-feedback list's own ranking."""
    def search(query: Query) -> SearchResult:
        result: SearchResult = engine.search(query)
        kept = sorted((h for h in result.hits if "visual_feedback" in h.matched_by),
                      key=lambda h: h.matched_by["visual_feedback"]["rank"])
        dropped.append(len(result.hits) - len(kept))
        result.hits = kept
        return result
    return search


_NO_FEEDBACK = {"text_feedback_beta": 0.0, "weight_visual_feedback": 0.0,
                "weight_concepts": 0.0, "smooth_text": 0.0, "smooth_image": 0.0}
VISUAL_WEIGHT = 0.25  # the visual-feedback runs (off by default)
# label, settings, which hits count ("all", "weighted": the lists with weight, "visual")
TEXT_CONFIGS: tuple[tuple[str, Settings, str], ...] = (
    ("BM25 alone", Settings(weight_text=0.0, **_NO_FEEDBACK), "weighted"),
    ("minilm alone", Settings(weight_keyword=0.0, **_NO_FEEDBACK), "weighted"),
    ("concepts alone", Settings(weight_text=0.0, weight_keyword=0.0,
                                **{**_NO_FEEDBACK, "weight_concepts": 1.0}), "weighted"),
    ("visual feedback alone", Settings(weight_visual_feedback=VISUAL_WEIGHT), "visual"),
    ("fusion before (no feedback)", Settings(**_NO_FEEDBACK), "all"),
    ("text feedback as in round 1", Settings(**{
        **_NO_FEEDBACK, "text_feedback_beta": 0.5, "text_feedback_seeds": 3,
        "text_feedback_temperature": 1000.0}), "all"),
    ("fusion default", Settings(), "all"),
    ("default without concepts", Settings(weight_concepts=0.0), "all"),
    ("default without smoothing", Settings(smooth_text=0.0, smooth_image=0.0), "all"),
    ("default without text feedback", Settings(text_feedback_beta=0.0), "all"),
    ("default + visual feedback", Settings(weight_visual_feedback=VISUAL_WEIGHT), "all"),
    ("fusion weighted (default otherwise)", Settings(fusion="weighted"), "all"),
)
SINGLES = ("BM25 alone", "minilm alone")
DEFAULT = "fusion default"
BEFORE = "fusion before (no feedback)"
COMPARED = ((DEFAULT, "best single"), (DEFAULT, BEFORE),
            (DEFAULT, "default without concepts"), (DEFAULT, "default without smoothing"),
            ("default + visual feedback", DEFAULT), (BEFORE, "best single"))
LATENCY_CONFIGS = (BEFORE, DEFAULT, "default + visual feedback")


def _versus(a: EvalRun, b: EvalRun, metric: str) -> dict[str, int]:
    """Per query, b against a: better / worse / tied on ``metric``."""
    pairs = compare(a, b).paired
    diffs = [y.metrics[metric] - x.metrics[metric] for x, y in pairs if x.metrics and y.metrics]
    return {"better": sum(d > 1e-9 for d in diffs), "worse": sum(d < -1e-9 for d in diffs),
            "tied": sum(abs(d) <= 1e-9 for d in diffs)}


def run_text(collection: Path, qrels: list[QrelsQuery]) -> dict[str, Any]:
    runs: dict[str, EvalRun] = {}
    dropped: dict[str, int] = {}
    for label, settings, keep in TEXT_CONFIGS:
        with Engine.open(collection, settings, readonly=True) as engine:
            lost: list[int] = []
            searcher = single_signal(engine, lost) if keep == "weighted" else \
                feedback_only(engine, lost) if keep == "visual" else engine
            runs[label] = run_eval(qrels, EvalConfig(label, searcher), ks=KS)
            dropped[label] = sum(lost)
    best = max(SINGLES, key=lambda label: runs[label].overall["map@10"])
    versus = {}
    for fused, other in COMPARED:
        other = best if other == "best single" else other
        versus[f"{fused} vs {other}"] = {metric: _versus(runs[other], runs[fused], metric)
                                         for metric in ("map@10", "ndcg@10")}
    gain = runs[DEFAULT].overall["map@10"] / runs[best].overall["map@10"] - 1 \
        if runs[best].overall["map@10"] else 0.0
    with Engine.open(collection, Settings(), readonly=True) as engine:
        empty = [q.id for q in qrels if q.query.text
                 and engine.search(Query(text=q.query.text)).empty_reason == "no_match"]
    return {"runs": runs, "dropped_zero_weight_hits": dropped, "versus": versus,
            "best_single": best, "default_gain_map@10_over_best_single": gain,
            "default_no_match": empty}


def run_tune(collection: Path, qrels: list[QrelsQuery], folds: int) -> dict[str, Any]:
    """``imgsearch tune``'s choice, cross-validated, from the settings before feedback
    and from the defaults."""
    out = {}
    for label, settings in ((f"from {BEFORE}", Settings(**_NO_FEEDBACK)),
                            ("from the defaults", Settings())):
        with Engine.open(collection, settings, readonly=True) as engine:
            started = time.perf_counter()
            report = tune(engine, qrels, folds=folds)
            data = report.to_dict()
            data["seconds"] = round(time.perf_counter() - started, 1)
            data["fold_held_out"] = _fold_scores(report, qrels, folds)
            out[label] = data
    return out


def _fold_scores(report: Any, qrels: list[QrelsQuery], folds: int) -> list[list[float]]:
    """Held-out mean per fold, before and after (the folds as tune deals them)."""
    order = list(range(len(qrels)))
    random.Random(0).shuffle(order)
    per = report.per_query
    out = []
    for fold in range(min(folds, len(qrels))):
        members = [per[i] for n, i in enumerate(order) if n % folds == fold]
        out.append([round(sum(c.before for c in members) / len(members), 4),
                    round(sum(c.after for c in members) / len(members), 4)])
    return out


def run_latency(n: int, queries: int, rounds: int) -> dict[str, Any]:
    """Text query latency in-process on a synthetic ``n``-item collection (bench/load.py's
    builder: descriptor + minilm), with the caches off so that every query is encoded
    and ranked; the configurations take turns query by query."""
    directory = DATA_DIR / f"relevance-latency-{n}"
    if not (directory / "manifest.json").exists():
        build_load_collection(directory, n, 1000, seed=0)
    adjectives, nouns = load_words()
    rng = random.Random(1)
    texts = [f"{rng.choice(adjectives)} {rng.choice(nouns)}" for _ in range(queries)]
    configs = {label: settings for label, settings, _ in TEXT_CONFIGS
               if label in LATENCY_CONFIGS}
    times: dict[str, list[float]] = {label: [] for label in configs}
    off = {"result_cache_size": 0, "embedding_cache_size": 0, "log_searches": False}
    engines = {label: Engine.open(directory, s.replace(**off), readonly=True)
               for label, s in configs.items()}
    try:
        for engine in engines.values():
            engine.search(Query(text="warm up"))
        for _ in range(rounds):
            for text in texts:
                for label, engine in engines.items():
                    started = time.perf_counter()
                    engine.search(Query(text=text))
                    times[label].append((time.perf_counter() - started) * 1000)
    finally:
        for engine in engines.values():
            engine.close()
    base = float(np.median(times[BEFORE]))
    return {"items": n, "queries": queries * rounds, "cores": os.cpu_count(),
            "ms": {label: {"p50": round(float(np.median(t)), 2),
                           "p90": round(float(np.percentile(t, 90)), 2),
                           "p50_over_before": round(float(np.median(t)) / base, 3)}
                   for label, t in times.items()}}


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


def stamps_arguments(doc: str, more: Any = None) -> argparse.Namespace:
    """--stamps and --seed of the benchmarks over the Tux Paint stamps (exit 2 without
    the stamps); ``more(parser)`` adds a script's own options."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--stamps", type=Path, default=STAMPS)
    parser.add_argument("--seed", type=int, default=0)
    if more is not None:
        more(parser)
    args = parser.parse_args()
    if not args.stamps.is_dir() or not any(args.stamps.rglob("*.png")):
        print(f"{args.stamps}: the Tux Paint stamps are not installed; install them with\n"
              f"  {INSTALL_HINT}", file=sys.stderr)
        sys.exit(2)
    return args


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--folds", type=int, default=5, help="tune's cross-validation folds")
    parser.add_argument("--no-tune", action="store_true", help="skip the tune runs")
    parser.add_argument("--latency-n", type=int, default=10_000,
                        help="items of the latency collection (0: skip)")
    parser.add_argument("--latency-queries", type=int, default=50)
    parser.add_argument("--latency-rounds", type=int, default=4)
    parser.add_argument("--latency-only", action="store_true",
                        help="only the latency part (printed, not written to results)")


def _print_text(name: str, qrels: list[QrelsQuery], text: dict[str, Any]) -> None:
    print(f"\n1{name}. Text queries from {len(qrels)} category names (parse=False, "
          f"min_confidence=0; relevant = every stamp under the folder)\n")
    print(table(["configuration", "nDCG@10", "Recall@10", "mAP@10", "mAP@100", "MRR",
                 "queries"], _metric_rows(text["runs"])))
    print(f"\ndefault vs the better single signal ({text['best_single']}), mAP@10: "
          f"{100 * text['default_gain_map@10_over_best_single']:+.1f} %")
    print("\nper query (better / worse / tied):")
    print(table(["comparison", "mAP@10", "nDCG@10"],
                [[k, "{better} / {worse} / {tied}".format(**v["map@10"]),
                  "{better} / {worse} / {tied}".format(**v["ndcg@10"])]
                 for k, v in text["versus"].items()]))
    print(f"\nhits dropped from the 'alone' runs: {text['dropped_zero_weight_hits']}")
    print(f"default settings (parse on, min_confidence {Settings().min_confidence}): "
          f"{len(text['default_no_match'])} of {len(qrels)} category queries answer "
          f"'no match': {', '.join(query_text(c) for c in text['default_no_match'] if c)}")


def _print_tune(tuned: dict[str, Any]) -> None:
    rows = []
    for start, r in tuned.items():
        rows.append([start, f"{r['held_out']['before']:.3f}", f"{r['held_out']['after']:.3f}",
                     f"{r['wins']} / {r['losses']} / {r['tied']}",
                     " ".join(f"{b:.3f}->{a:.3f}" for b, a in r["fold_held_out"]),
                     ", ".join(f"{k}={v}" for k, v in r["changes"].items()) or "-",
                     "yes" if r["improves"] else "no", r["seconds"]])
    print(table(["tune", "held-out before", "held-out after", "better/worse/tied",
                 "per fold", "chosen changes", "writes", "s"], rows))


def _text_results(qrels: list[QrelsQuery], text: dict[str, Any]) -> dict[str, Any]:
    return {"query_text": {q.id: q.query.text for q in qrels},
            "configs": {label: {"overall": run.overall, "scored": len(run.scored),
                                "per_query_map@10": {o.qrels.label: o.metrics["map@10"]
                                                     for o in run.scored if o.metrics}}
                        for label, run in text["runs"].items()},
            "versus": text["versus"], "best_single": text["best_single"],
            "default_gain_map@10_over_best_single": text[
                "default_gain_map@10_over_best_single"],
            "dropped_hits": text["dropped_zero_weight_hits"],
            "default_settings_no_match": text["default_no_match"]}


def _print_latency(latency: dict[str, Any]) -> None:
    print(f"\ntext query latency in-process, {latency['items']} synthetic items, "
          f"{latency['queries']} queries per configuration, caches off, "
          f"{latency['cores']} cores:\n")
    print(table(["configuration", "p50 ms", "p90 ms", "p50 / before"],
                [[k, v["p50"], v["p90"], v["p50_over_before"]]
                 for k, v in latency["ms"].items()]))


def main() -> None:
    args = stamps_arguments(__doc__ or "", _options)
    info = machine()
    print(f"machine: {machine_line(info)}")
    if args.latency_only:
        _print_latency(run_latency(args.latency_n, args.latency_queries,
                                   args.latency_rounds))
        print(f"load average after: {load_average()}")
        return
    started = time.perf_counter()
    rows, truth = build_catalog(args.stamps, args.seed)
    ingest = build_collection(rows, truth)
    noisy_rows, noisy_truth = build_catalog(args.stamps, args.seed, file_names=True)
    noisy_ingest = build_collection(noisy_rows, noisy_truth, WORK_FILE_NAMES)
    collection = WORK / "collection"
    with Engine.open(collection, Settings(), readonly=True) as engine:
        categories = {i: c for i, c in truth["category"].items() if i in engine}
    print(f"{len(rows)} stamps with an English text ({len(truth['skipped_no_text'])} without, "
          f"left out); {len(categories)} indexed in {ingest['seconds']} s, "
          f"{len(ingest['failed'])} refused; titled by file name: indexed in "
          f"{noisy_ingest['seconds']} s")

    stage = time.perf_counter()
    timings: dict[str, float] = {"build_and_ingest": round(stage - started, 1)}
    qrels = text_qrels(categories)
    catalogs = {"a": ("descriptions", collection),
                "b": ("file names", WORK_FILE_NAMES / "collection")}
    text: dict[str, Any] = {}
    tuned: dict[str, Any] = {}
    for mark, (name, where) in catalogs.items():
        text[name] = run_text(where, qrels)
        _print_text(f"{mark} (titles: {name})", qrels, text[name])
    timings["text"] = round(time.perf_counter() - stage, 1)
    if not args.no_tune:
        stage = time.perf_counter()
        for name, where in catalogs.values():
            tuned[name] = run_tune(where, qrels, args.folds)
            print(f"\nimgsearch tune on the titles by {name} ({args.folds} folds, map@10; "
                  f"held-out = each query scored by settings chosen without it):\n")
            _print_tune(tuned[name])
        timings["tune"] = round(time.perf_counter() - stage, 1)
    latency = None
    if args.latency_n:
        stage = time.perf_counter()
        latency = run_latency(args.latency_n, args.latency_queries, args.latency_rounds)
        timings["latency"] = round(time.perf_counter() - stage, 1)
        _print_latency(latency)
    stage = time.perf_counter()

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
                    "ingest_file_names": noisy_ingest, "categories": len(qrels)},
        "text": {name: _text_results(qrels, t) for name, t in text.items()},
        "tune": tuned, "latency": latency,
        "image_to_image": images,
        "no_match": no_match,
    })
    print(f"results: {path}")


if __name__ == "__main__":
    main()
