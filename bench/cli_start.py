"""Cold start of the command line: `imgsearch --help`, and a text and an image search on a
10k collection, each in a fresh process, timed by hyperfine (Debian's `hyperfine`).

Every command runs in a new Python process (page cache warm: the model files and the
collection were read by the warm-up runs, as on a machine where they were used before;
the ``src`` trees byte-compiled first, as pip compiles an installed package: where
PYTHONDONTWRITEBYTECODE is set, an editable checkout would otherwise compile each module
it imports on every start, about 0.15 s of a search here).
Peers in the same hyperfine run: `python -c pass` (the interpreter alone) and, with
``--baseline-src``, the same commands on another checkout's ``src`` (e.g. the previous
code on main), each on its own copy of the collection. Also the same search with the
minilm model on torch (``IMGSEARCH_MINILM_RUNTIME=torch``), to show what ONNX Runtime
changes apart from the lazy imports.

With ``--interleaved N``, N more rounds follow in which every command runs once in
turn, its CPU time (user + system) read from ``wait4``: on a loaded machine the load
then falls on this code and the baseline alike, where hyperfine runs each command's
runs one after the other.

    python bench/cli_start.py [--n 10000] [--runs 10] [--baseline-src ../main/src]
                              [--interleaved 10]
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import (
    BENCH_DIR,
    RESULTS_DIR,
    command_line,
    load_average,
    machine,
    machine_line,
    now,
    table,
    write_results,
)
from load import build_collection

SRC = BENCH_DIR.parent / "src"
TEXT = "wooden chair"
BASELINE_OF = {"imgsearch --help": "baseline --help",
               "search --text (onnx)": "baseline search --text",
               "search --image": "baseline search --image"}
BACKGROUNDS = Path("/usr/share/backgrounds")


def query_image(directory: Path) -> Path:
    """A real photo when gnome-backgrounds is installed, else a generated picture."""
    found = sorted(p for p in BACKGROUNDS.rglob("*.jpg")) if BACKGROUNDS.is_dir() else []
    if found:
        return found[0]
    sys.path.insert(0, str(BENCH_DIR.parent / "tests"))
    from imagegen import write_image

    return write_image(directory / "query.jpg", 7, (640, 480))


def query_name(image: Path) -> str:
    """What the query image is, for the table's caption."""
    from PIL import Image

    with Image.open(image) as im:
        size = f"{im.width}×{im.height} JPEG"
    if image.is_relative_to(BACKGROUNDS):
        return f"{image.name} from {BACKGROUNDS}, a {size}"
    return f"a generated {size} (no JPEG under {BACKGROUNDS})"


def byte_compile(*sources: Path) -> None:
    """Write the bytecode caches of each ``src`` tree (see the module docstring)."""
    for src in sources:
        if not compileall.compile_dir(str(src), quiet=1):
            raise SystemExit(f"cannot byte-compile {src}")


def commands(python: str, collection: dict[str, Path], image: Path, baseline: bool,
             torch: bool = True) -> list[tuple[str, list[str], dict[str, str]]]:
    """(name, argv, environment additions) of every timed command."""
    def cli(src: str, *args: str) -> list[str]:
        return ["env", f"PYTHONPATH={src}", python, "-m", "imgsearch.cli", *args]

    this, main_src = str(SRC), os.environ.get("BASELINE_SRC", "")
    text = ["--text", TEXT, "--limit", "10"]
    picture = ["--image", str(image), "--limit", "10"]
    out: list[tuple[str, list[str], dict[str, str]]] = [
        ("python -c pass", [python, "-c", "pass"], {}),
        ("imgsearch --help", cli(this, "--help"), {}),
    ]
    if baseline:
        out.append(("baseline --help", cli(main_src, "--help"), {}))
    out.append(
        ("search --text (onnx)", cli(this, "search", "-c", str(collection["this"]), *text), {}))
    if torch:
        out.append(("search --text (torch)",
                    cli(this, "search", "-c", str(collection["this"]), *text),
                    {"IMGSEARCH_MINILM_RUNTIME": "torch"}))
    if baseline:
        out.append(("baseline search --text",
                    cli(main_src, "search", "-c", str(collection["baseline"]), *text), {}))
    out.append(("search --image", cli(this, "search", "-c", str(collection["this"]), *picture),
                {}))
    if baseline:
        out.append(("baseline search --image",
                    cli(main_src, "search", "-c", str(collection["baseline"]), *picture), {}))
    return out


def run_hyperfine(cmds: list[tuple[str, list[str], dict[str, str]]], runs: int, warmup: int,
                  export: Path) -> dict[str, Any]:
    import shlex

    argv = ["hyperfine", "-N", "--warmup", str(warmup), "--runs", str(runs),
            "--export-json", str(export), "--style", "basic"]
    for name, cmd, extra in cmds:
        prefix = ["env", *(f"{k}={v}" for k, v in extra.items())] if extra else []
        argv += ["-n", name, shlex.join(prefix + cmd)]
    subprocess.run(argv, check=True, stdout=sys.stderr)
    return dict(json.loads(export.read_text()))


def run_interleaved(cmds: list[tuple[str, list[str], dict[str, str]]], rounds: int
                    ) -> dict[str, dict[str, Any]]:
    """Each command once per round, in turn: the median wall and CPU time of each."""
    seen: dict[str, list[tuple[float, float]]] = {name: [] for name, _, _ in cmds}
    for _ in range(rounds):
        for name, cmd, extra in cmds:
            started = time.perf_counter()
            proc = subprocess.Popen(cmd, env={**os.environ, **extra},
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            _pid, status, usage = os.wait4(proc.pid, 0)
            if status != 0:
                raise SystemExit(f"{name}: exit status {status}")
            seen[name].append((time.perf_counter() - started,
                               usage.ru_utime + usage.ru_stime))
    return {name: {"wall_median_s": statistics.median(w for w, _ in runs),
                   "cpu_median_s": statistics.median(c for _, c in runs),
                   "cpu_min_s": min(c for _, c in runs), "times": runs}
            for name, runs in seen.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="items in the collection")
    parser.add_argument("--runs", type=int, default=10, help="hyperfine runs per command")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--baseline-src", type=Path, default=None,
                        help="another checkout's src directory, timed beside this one")
    parser.add_argument("--skip-torch", action="store_true",
                        help="leave out the text search on torch (about 5 s a run)")
    parser.add_argument("--reuse", action="store_true",
                        help="keep the collection of an earlier run (same --n)")
    parser.add_argument("--interleaved", type=int, default=0, metavar="N",
                        help="then N rounds of every command in turn, CPU time per run")
    args = parser.parse_args(argv)
    if shutil.which("hyperfine") is None:
        raise SystemExit("hyperfine is not installed: apt-get install hyperfine")
    info = machine()
    print(f"machine: {machine_line(info)}")
    load_before = load_average()
    data = BENCH_DIR / "data" / f"cli-start-{args.n}"
    if not (args.reuse and (data / "manifest.json").exists()):
        build_collection(data, args.n, 1000, seed=0)
    work = Path(tempfile.mkdtemp(prefix="cli-start-"))
    try:
        collection = {"this": work / "this"}
        shutil.copytree(data, collection["this"])
        if args.baseline_src is not None:
            collection["baseline"] = work / "baseline"
            shutil.copytree(data, collection["baseline"])
            for log in collection["baseline"].glob("logs.sqlite3*"):  # its own log format
                log.unlink()
            os.environ["BASELINE_SRC"] = str(args.baseline_src.resolve())
        image = query_image(work)
        query_caption = query_name(image)
        byte_compile(SRC, *([args.baseline_src] if args.baseline_src is not None else []))
        cmds = commands(sys.executable, collection, image, args.baseline_src is not None,
                        torch=not args.skip_torch)
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        raw = run_hyperfine(cmds, args.runs, args.warmup,
                            RESULTS_DIR / f"cli-start-{args.n}-hyperfine.json")
        turns = run_interleaved(cmds, args.interleaved) if args.interleaved else {}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows: list[list[Any]] = []
    results: dict[str, Any] = {}
    named = list(zip([name for name, _, _ in cmds], raw["results"], strict=True))
    peer = float(named[0][1]["median"])  # python -c pass
    helped = float(named[1][1]["median"])  # imgsearch --help
    for name, r in named:
        cpu = float(r["user"]) + float(r["system"])  # hyperfine gives their means
        results[name] = {"median_s": r["median"], "mean_s": r["mean"],
                                 "min_s": r["min"], "max_s": r["max"], "cpu_mean_s": cpu,
                                 "times_s": r["times"]}
        rows.append([name, r["median"], r["min"], cpu, r["median"] / peer,
                     r["median"] / helped])
    for row in rows:  # this code's CPU time against the baseline's, same run
        base = results.get(BASELINE_OF.get(row[0], ""))
        row.append(row[3] / base["cpu_mean_s"] if base else "-")
    print(f"\nCold start of the command line, {args.n:,}-item collection (descriptor + "
          f"minilm), each command a fresh process, page cache warm, bytecode compiled "
          f"beforehand; hyperfine median of "
          f"{args.runs} runs after {args.warmup} warm-up runs. cpu s = user + system time "
          f"(mean), which the other jobs on the shared machine disturb less than the "
          f"wall time. × pass = median ÷ the median of `python -c pass` in the same run, "
          f"× help the same for `imgsearch --help`; cpu ÷ base = this code's cpu s ÷ "
          f"the baseline's for the same command (with --baseline-src). "
          f"Text query {TEXT!r}; image query {query_caption}.")
    print(table(["command", "median s", "min s", "cpu s", "× pass", "× help", "cpu ÷ base"],
                rows))
    if turns:
        print(f"\nThe same commands in {args.interleaved} interleaved rounds (each once per "
              f"round, in turn), medians; cpu ÷ base = this code's median cpu s ÷ the "
              f"baseline's for the same command.")
        print(table(["command", "median s", "cpu s", "min cpu s", "cpu ÷ base"], [
            [name, t["wall_median_s"], t["cpu_median_s"], t["cpu_min_s"],
             t["cpu_median_s"] / turns[BASELINE_OF[name]]["cpu_median_s"]
             if BASELINE_OF.get(name) in turns else "-"]
            for name, t in turns.items()]))
    payload = {"benchmark": "cli-start", "command": command_line(), "date": now(),
               "machine": info, "n": args.n, "runs": args.runs, "results": results,
               "commands": [{"name": n, "argv": c, "env": e} for n, c, e in cmds],
               "interleaved": {"rounds": args.interleaved, "results": turns},
               "load_average": {"before": load_before, "after": load_average()}}
    path = write_results(f"cli-start-{args.n}", payload)
    print(f"wrote {path.relative_to(RESULTS_DIR.parent.parent)}")


if __name__ == "__main__":
    main()
