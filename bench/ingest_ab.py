"""Ingest CPU time per image of several revisions of the code, taking turns.

On a shared machine the wall clock of one ingest swings by a quarter between repeats;
the CPU time of the process that does the work swings far less. Each revision of
``--revs`` is exported (``git archive REV src``) to a temporary folder; then, for each of
``--rounds`` rounds, in an order rotated every round, a fresh Python process with that
export first on ``PYTHONPATH`` runs ``Engine.ingest`` of the web-size JPEGs of
``bench/data/ingest-<images>-s0/`` (built by ``bench/ingest.py``, with the same
builder) into a fresh collection: text encoder ``none`` (or ``--text-encoder``), and
decoding on threads where the revision has worker processes, so that all of the work is
that process's CPU time (``time.process_time()``). Prints CPU milliseconds per image
and images per second per revision (medians), and the per-round ratio of each revision
to the first.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import BENCH_DIR, command_line, machine, machine_line, median, now, table, write_results
from ingest import build_wallpapers

DRIVER = """
import dataclasses, shutil, sys, tempfile, time
from pathlib import Path
from imgsearch.config import Settings
from imgsearch.engine import Engine
names = {f.name for f in dataclasses.fields(Settings)}
extra = {"decode_processes": False} if "decode_processes" in names else {}
target = Path(tempfile.mkdtemp(prefix="imgsearch-ingest-ab-"))
try:
    engine = Engine.open(target / "c", Settings(text_encoder=sys.argv[2], **extra))
    cpu, wall = time.process_time(), time.perf_counter()
    report = engine.ingest(Path(sys.argv[1]))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    engine.close()
    if report.failed:
        raise SystemExit(f"failed: {report.failed[:2]}")
    print(cpu / report.added * 1000, report.added / wall)
finally:
    shutil.rmtree(target, ignore_errors=True)
"""


def export(rev: str, into: Path) -> Path:
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(BENCH_DIR.parent), "archive", rev, "src"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "src"


def one_run(src: Path, folder: Path, text_encoder: str) -> tuple[float, float]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run([sys.executable, "-c", DRIVER, str(folder), text_encoder], env=env,
                          capture_output=True, text=True, check=True)
    cpu_ms, rate = (float(v) for v in done.stdout.split()[-2:])
    return cpu_ms, rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--revs", default="7867c0b^1,7867c0b,HEAD",
                        help="git revisions, the first one the reference")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--text-encoder", default="none",
                        help="the collections' text encoder (none, minilm, fake)")
    parser.add_argument("--name", default="ingest-ab",
                        help="results go to bench/results/<name>.json")
    args = parser.parse_args()
    revs = [r.strip() for r in args.revs.split(",") if r.strip()]
    folder, _ = build_wallpapers(args.images, 0)
    print(f"# Ingest CPU per image, revisions taking turns ({now()})\n\n"
          f"{machine_line(machine())}\n\n`{command_line()}`\n")
    runs: dict[str, list[tuple[float, float]]] = {rev: [] for rev in revs}
    with tempfile.TemporaryDirectory(prefix="imgsearch-ingest-ab-") as tmp:
        sources = {rev: export(rev, Path(tmp) / f"rev{i}") for i, rev in enumerate(revs)}
        for round_no in range(args.rounds):
            shift = round_no % len(revs)
            for rev in revs[shift:] + revs[:shift]:
                runs[rev].append(one_run(sources[rev], folder, args.text_encoder))
                print(f"round {round_no + 1}: {rev} {runs[rev][-1][0]:.2f} ms/image, "
                      f"{runs[rev][-1][1]:.1f} images/s", file=sys.stderr)
    base = revs[0]
    rows: list[list[Any]] = []
    for rev in revs:
        cpu = [c for c, _ in runs[rev]]
        ratios = [c / b for (c, _), (b, _) in zip(runs[rev], runs[base], strict=True)]
        rows.append([rev, median(cpu), f"{min(cpu):.1f}-{max(cpu):.1f}",
                     median([r for _, r in runs[rev]]), median(ratios)])
    print(f"{len(next(iter(runs.values())))} rounds of `Engine.ingest` of {args.images} "
          f"JPEGs ({folder.name}), text encoder {args.text_encoder}, decoding on threads:\n")
    print(table(["revision", "CPU ms/image (median)", "range", "images/s (median)",
                 f"CPU ÷ {base}, per round (median)"], rows))
    write_results(args.name, {"command": command_line(), "machine": machine(),
                                "revs": revs, "text_encoder": args.text_encoder, "runs": runs})


if __name__ == "__main__":
    main()
