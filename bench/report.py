"""Copy the tables of the latest benchmark runs into BENCHMARKS.md.

BENCHMARKS.md marks each generated part with a pair of comments::

    <!-- bench:filters-100000 -->
    ... replaced on every run ...
    <!-- /bench -->

where ``filters-100000`` names ``bench/results/filters-100000.json``. Every benchmark
script stores in its JSON what it printed (``common.write_results``); this script puts
the report part of that output (from the first table's paragraph to the end, without
the "wrote ..." lines) between the marks, under a line with the command, the date and
the load average of that run. Prose outside the marks is left alone. A mark whose JSON
is missing or predates the stored output is left as it was, and said so.

    python bench/report.py            # rewrite BENCHMARKS.md in place
    python bench/report.py --check    # exit 1 if a generated part is out of date
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
BLOCK = re.compile(r"(<!-- bench:([\w.-]+) -->\n)(.*?)(<!-- /bench -->)", re.S)


def report_lines(printed: str) -> list[str]:
    """The report part of a script's output: from the paragraph of its first table on."""
    lines = [line.rstrip() for line in printed.splitlines()
             if not line.startswith(("wrote ", "machine: "))]
    first = next((i for i, line in enumerate(lines) if line.startswith("|")), None)
    if first is None:
        return [line for line in lines if line]
    start = first
    while start > 0 and lines[start - 1]:
        start -= 1
    return lines[start:]


def as_markdown(lines: Sequence[str]) -> str:
    """Tables kept as they are; every other line a paragraph of its own."""
    out: list[str] = []
    for line in lines:
        if not line:
            continue
        table = line.startswith("|")
        if out and not (table and out[-1].startswith("|")):
            out.append("")
        out.append(line)
    return "\n".join(out) + "\n"


def _load(value: Any) -> str:
    if isinstance(value, dict):
        before, after = value.get("before"), value.get("after")
        if before is not None and after is not None:
            return f"{_load(before)} before, {_load(after)} after"
    if isinstance(value, list | tuple):
        return " / ".join(f"{v:.1f}" for v in value)
    return str(value)


def header(stem: str, results: dict[str, Any]) -> str:
    parts = []
    if results.get("command"):
        command = str(results["command"])
        if "HF_HUB_OFFLINE" not in command:
            command = f"HF_HUB_OFFLINE=1 {command}"
        parts.append(f"Command: `{command}`")
    if results.get("date"):
        parts.append(f"run {results['date']}")
    if results.get("load_average") is not None:
        parts.append(f"load average (1/5/15 min) {_load(results['load_average'])}")
    files = [f"`bench/results/{stem}.json`"] + [
        f"`bench/results/{p.name}`" for p in sorted([*RESULTS_DIR.glob(f"{stem}.png"),
                                                     *RESULTS_DIR.glob(f"{stem}-*.png")])]
    parts.append("results " + ", ".join(files))
    return "; ".join(parts) + "."


def render(stem: str) -> str | None:
    path = RESULTS_DIR / f"{stem}.json"
    if not path.exists():
        return None
    results = json.loads(path.read_text())
    if not results.get("printed"):
        return None
    return header(stem, results) + "\n\n" + as_markdown(report_lines(results["printed"]))


def rewrite(text: str) -> tuple[str, list[str], list[str]]:
    """The new text, the parts replaced and the parts left as they were."""
    replaced: list[str] = []
    kept: list[str] = []

    def one(match: re.Match[str]) -> str:
        stem = match.group(2)
        body = render(stem)
        if body is None:
            kept.append(stem)
            return match.group(0)
        replaced.append(stem)
        return match.group(1) + body + match.group(4)

    return BLOCK.sub(one, text), replaced, kept


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file", type=Path, default=ROOT / "BENCHMARKS.md")
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 if a generated part differs")
    args = parser.parse_args(argv)
    text = args.file.read_text()
    new, replaced, kept = rewrite(text)
    for stem in kept:
        print(f"left as it was: {stem} (no bench/results/{stem}.json with its printed "
              f"output; run the benchmark that writes it)")
    if args.check:
        if new != text:
            print(f"{args.file} is out of date: run python bench/report.py")
            sys.exit(1)
        print(f"{args.file}: {len(replaced)} generated parts up to date")
        return
    args.file.write_text(new)
    print(f"{args.file}: {len(replaced)} generated parts written "
          f"({', '.join(replaced) or 'none'})")


if __name__ == "__main__":
    main()
