"""Helpers shared by the benchmarks: machine description, statistics, tables, results.

Benchmarks are not tests: they measure, print a table and write JSON under
``bench/results/``; nothing here asserts on a timing.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
DATA_DIR = BENCH_DIR / "data"
RESULTS_DIR = BENCH_DIR / "results"


class _Tee:
    """Standard output, also kept: ``write_results`` stores what the script printed (its
    tables) in the JSON, and ``bench/report.py`` copies those tables into BENCHMARKS.md."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.kept: list[str] = []

    def write(self, text: str) -> int:
        self.kept.append(text)
        return int(self.stream.write(text))

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


_printed = _Tee(sys.stdout)
sys.stdout = _printed


def machine() -> dict[str, Any]:
    """Cores, CPU model, memory and library versions: what a reader needs to compare."""
    model = "unknown"
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model == "unknown":
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    mem_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    versions: dict[str, str] = {"python": platform.python_version(), "numpy": np.__version__}
    for name in ("PIL", "faiss", "torch"):
        try:
            module = __import__(name)
            versions[name] = str(getattr(module, "__version__", "?"))
        except ImportError:
            continue
    simd = [f for f in ("avx2", "avx512f", "fma") if f in flags]
    return {"cores": cores, "cpu_model": model, "simd": simd, "memory_gib": mem_gib,
            "platform": platform.platform(), "versions": versions}


def load_average() -> list[float]:
    """1-, 5- and 15-minute load averages: how busy the shared machine was."""
    return [round(v, 2) for v in os.getloadavg()]


def machine_line(info: dict[str, Any]) -> str:
    simd = "/".join(info["simd"]) or "no avx"
    return (f"{info['cores']} cores, {info['cpu_model']} ({simd}), "
            f"{info['memory_gib']} GiB RAM, Python {info['versions']['python']}")


def command_line() -> str:
    """The command that produced the results, as a reader would type it."""
    script = Path(sys.argv[0])
    with contextlib.suppress(ValueError):  # a script outside the working directory
        script = script.resolve().relative_to(Path.cwd())
    return " ".join(["HF_HUB_OFFLINE=1", ".venv/bin/python", shlex.quote(str(script)),
                     *(shlex.quote(a) for a in sys.argv[1:])])


def now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def median(values: Sequence[float]) -> float:
    return float(np.median(np.asarray(values, dtype=np.float64))) if len(values) else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    if not len(values):
        return float("nan")
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table, so the same text reads in a terminal and in BENCHMARKS.md."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    for row in cells:
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))
                     + " |")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}" if abs(value) >= 0.1 else f"{value:.3f}"
    return str(value)


def write_results(name: str, payload: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    payload = {**payload, "printed": "".join(_printed.kept)}
    path.write_text(json.dumps(payload, indent=2, default=_json_default) + "\n")
    return path


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def timed(fn: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    """(milliseconds, answer) of one call, timed around the call alone."""
    t0 = time.perf_counter_ns()
    out = fn(*args)
    return (time.perf_counter_ns() - t0) / 1e6, out


def take_turns(calls: dict[str, Callable[[int], Any]], n: int,
               order: np.random.Generator) -> tuple[dict[str, list[float]],
                                                    dict[str, list[Any]]]:
    """Every method answers queries 0..n-1 once, the methods taking turns in a random
    order. A query answered again right after another method answered it runs about
    twice as fast (the graph nodes it visits are still in the CPU caches), so no method
    gets a query another has just run: in round r method j answers query (r + j·n/m)
    mod n. Per method and query: milliseconds and the answer."""
    ms: dict[str, list[float]] = {m: [0.0] * n for m in calls}
    found: dict[str, list[Any]] = {m: [None] * n for m in calls}
    names = list(calls)
    shift = {name: j * n // len(names) for j, name in enumerate(names)}
    for r in range(n):
        for name in order.permutation(names).tolist():
            i = (r + shift[name]) % n
            ms[name][i], found[name][i] = timed(calls[name], i)
    return ms, found


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and every process under it (Linux /proc):
    with --workers the server is several processes."""
    parents: dict[int, int] = {}
    own: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        child = int(stat.parent.name)
        parents[child] = int(fields[1])
        own[child] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    total = 0.0
    for child, cpu in own.items():
        up = child
        while up in parents and up != pid:
            up = parents[up]
        if up == pid:
            total += cpu
    return total
