""""More like this" on the titled Tux Paint stamps: image only against everything fused.

The catalog is the one ``bench/relevance.py`` builds (one row per stamp: an opaque id,
the image, the English description as ``title``; seeded shuffle), indexed with the
offline defaults (``descriptor`` images, ``minilm`` text). Every stamp is queried with
``similar_to=<its id>`` (``min_confidence=0, collapse_duplicates=False``); relevant = the
other stamps of its own category folder (sub-folders not included, style folders
removed); stamps alone in their category are skipped. Metrics are the project's
(``imgsearch.evaluate``): mAP@10 (AP@10 divided by min(R, 10)), nDCG@10, P@10, MRR.

Configurations (weights are ``Settings.similar_weight_*``; fusion is the default RRF):

1. image only: text, category and brand weights 0 (what "more like this" did before);
2. text only: image, category and brand weights 0 (for reference);
3. image + text: default settings on the catalog **without** a category column, so no
   ground truth reaches the engine: the honest figure;
4. image + text + category: default settings on a second collection whose rows also carry
   the folder as ``category`` (product metadata a shop has). The category is the ground
   truth here, so this figure shows what a catalog's own categories add, not a fair test
   of the ranking; the item's category also enters its text vector, as a shop's would.

Prints a Markdown table and writes ``bench/results/similar.json``.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from common import command_line, load_average, machine, machine_line, now, table, write_results
from imgsearch import Engine, Query, Settings
from imgsearch.evaluate.runner import EvalConfig, QrelsQuery, run_eval
from relevance import WORK, build_catalog, same_folder, stamps_arguments

IMAGE_ONLY = {"similar_weight_text": 0.0, "similar_weight_category": 0.0,
              "similar_weight_brand": 0.0}  # as bench/relevance.py's image -> image
TEXT_ONLY = {"similar_weight_image": 0.0, "similar_weight_category": 0.0,
             "similar_weight_brand": 0.0}


def build(rows: list[dict[str, str]], name: str) -> Path:
    directory = WORK / name
    directory.mkdir(parents=True, exist_ok=True)
    catalog = directory / "catalog.jsonl"
    catalog.write_text("".join(json.dumps(r) + "\n" for r in rows))
    collection = directory / "collection"
    shutil.rmtree(collection, ignore_errors=True)
    with Engine.open(collection, Settings()) as engine:
        report = engine.ingest(catalog)
    if report.failed:
        print(f"{name}: {len(report.failed)} stamps refused (e.g. {report.failed[0].reason})")
    return collection


def evaluate(collection: Path, settings: Settings, relevant: dict[str, dict[str, float]]
             ) -> dict[str, Any]:
    qrels = [QrelsQuery(n, i, Query(similar_to=i, min_confidence=0.0,
                                    collapse_duplicates=False), grades)
             for n, (i, grades) in enumerate(sorted(relevant.items()), start=1)]
    started = time.perf_counter()
    with Engine.open(collection, settings, readonly=True) as engine:
        run = run_eval(qrels, EvalConfig("similar", engine), ks=(10,))
    seconds = time.perf_counter() - started
    return {"overall": run.overall, "queries": len(run.scored), "errors": len(run.errors),
            "ms_per_query": round(seconds * 1000 / max(len(qrels), 1), 2),
            "per_query_map@10": {o.qrels.label: o.metrics["map@10"] for o in run.scored
                                 if o.metrics}}


def main() -> None:
    args = stamps_arguments(__doc__ or "")
    info = machine()
    print(f"machine: {machine_line(info)}")
    started = time.perf_counter()
    rows, truth = build_catalog(args.stamps, args.seed)
    titled = build(rows, "similar-titles")
    with_category = build([dict(r, category=truth["category"][r["id"]]) for r in rows],
                          "similar-titles-categories")
    with Engine.open(titled, Settings(), readonly=True) as engine:
        categories = {i: c for i, c in truth["category"].items() if i in engine}
    relevant = same_folder(categories)
    print(f"{len(rows)} stamps, {len(categories)} indexed, {len(relevant)} queries")
    configs: list[tuple[str, Path, Settings]] = [
        ("image only", titled, Settings(**IMAGE_ONLY)),
        ("text only", titled, Settings(**TEXT_ONLY)),
        ("image + text (no category in the catalog)", titled, Settings()),
        ("image + text + category (catalog has categories)", with_category, Settings()),
    ]
    results = {label: evaluate(path, settings, relevant) for label, path, settings in configs}
    base = results["image only"]["overall"]["map@10"]
    rows_out = []
    for label, r in results.items():
        m = r["overall"]
        gain = (m["map@10"] / base - 1) * 100 if base else float("nan")
        rows_out.append([label, f"{m['map@10']:.3f}", f"{gain:+.0f} %", f"{m['ndcg@10']:.3f}",
                         f"{m['precision@10']:.3f}", f"{m['mrr']:.3f}", r["queries"],
                         r["ms_per_query"]])
    print()
    print(table(["configuration", "mAP@10", "vs image only", "nDCG@10", "P@10", "MRR",
                 "queries", "ms/query"], rows_out))
    seconds = round(time.perf_counter() - started, 1)
    print(f"\ntotal {seconds} s")
    path = write_results("similar", {
        "date": now(), "command": command_line(), "machine": info,
        "load_average": load_average(), "seconds": seconds, "seed": args.seed,
        "settings": {k: getattr(Settings(), k) for k in (
            "similar_weight_image", "similar_weight_text", "similar_weight_category",
            "similar_weight_brand", "fusion", "rrf_k")},
        "dataset": {"stamps": len(rows), "indexed": len(categories),
                    "queries": len(relevant)},
        "configs": results,
        "table": rows_out,
    })
    print(f"results: {path}")


if __name__ == "__main__":
    main()
