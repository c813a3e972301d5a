"""Data flows ingest -> enrich -> encode -> store -> index -> search -> evaluate -> engine
-> web -> cli.

A module may import only from its own stage, from stages to its left, and from the
leaf modules. These tests walk every import (relative ones resolved, imports inside
functions included) and fail on an arrow pointing backwards, on a cycle inside a
package, and on an edge (cli, web) reaching past the engine.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import imgsearch

PACKAGE = Path(imgsearch.__file__).parent
_READS_ENV = re.compile(r"os\.environ\b(?!``)|getenv\(")
LEAVES = {"types", "errors", "config", "ids", "version", "titles"}
RANK = {"ingest": 1, "enrich": 2, "encode": 3, "store": 4, "index": 5, "search": 6,
        "evaluate": 7, "engine": 8, "web": 9, "cli": 10, "__init__": 11}
# The edges talk to the engine (STYLE.md habit 2), never to the stages behind it.
EDGE_MAY_IMPORT = {"engine", "types", "errors", "config"} | LEAVES
# ...with two named exceptions: `imgsearch serve` starts the web app, and `imgsearch
# eval` runs the evaluation tools (which take an opened engine) and prints their reports.
EDGE_EXCEPTIONS = {("cli", "web"), ("cli", "evaluate")}


def _module(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.parts[-1] == "__init__" else rel.parts
    return ".".join(parts)


def _stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _type_only(tree: ast.Module) -> set[int]:
    """Line numbers of imports under ``if TYPE_CHECKING:`` (never run)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                lines.update(n.lineno for n in ast.walk(inner) if hasattr(n, "lineno"))
    return lines


def _imports(path: Path, *, runtime_only: bool = False) -> list[str]:
    return _imports_in(path.read_text(), _module(path), path.name == "__init__.py",
                       runtime_only=runtime_only)


def _imports_in(source: str, module: str, is_package: bool, *,
                runtime_only: bool = False) -> list[str]:
    """Every imgsearch module ``source`` imports, relative imports resolved; a name
    imported from a package counts as its submodule where one exists."""
    tree = ast.parse(source)
    skip = _type_only(tree) if runtime_only else set()
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.append(base)
            found += [f"{base}.{a.name}" for a in node.names if _is_module(f"{base}.{a.name}")]
    return [name for name in found if name == "imgsearch" or name.startswith("imgsearch.")]


def _is_module(name: str) -> bool:
    path = PACKAGE.parent / name.replace(".", "/")
    return path.is_dir() or path.with_suffix(".py").exists()


def _sources() -> Iterator[tuple[Path, str]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path, _module(path)


def test_every_stage_has_a_rank_of_its_own() -> None:
    assert len(set(RANK.values())) == len(RANK), RANK
    stages = {_stage(module) for _, module in _sources()}
    assert stages - LEAVES == set(RANK), "add new stages to RANK"


def test_no_import_points_backwards():
    violations = []
    for path, module in _sources():
        stage = _stage(module)
        if stage in LEAVES:
            for target in _imports(path):
                if _stage(target) not in LEAVES:
                    violations.append(f"{module} (a leaf) imports {target}")
            continue
        assert stage in RANK, f"{module}: unknown stage {stage!r}; add it to RANK"
        for target in _imports(path):
            target_stage = _stage(target)
            if target_stage in LEAVES or target_stage == stage:
                continue
            if RANK.get(target_stage, 99) > RANK[stage]:
                violations.append(f"{module} imports {target}")
    assert not violations, "\n".join(violations)


def test_the_edges_import_only_the_engine_and_the_leaves() -> None:
    violations = []
    for path, module in _sources():
        stage = _stage(module)
        if stage not in ("cli", "web"):
            continue
        for target in _imports(path):
            target_stage = _stage(target)
            if target_stage not in EDGE_MAY_IMPORT | {stage} and \
                    (stage, target_stage) not in EDGE_EXCEPTIONS:
                violations.append(f"{module} imports {target}")
    assert not violations, "\n".join(violations)


def test_no_import_cycle_inside_a_package() -> None:
    """Among the imports that run (a type-only back-reference is not a cycle at run
    time), no module of a package reaches itself again through its siblings."""
    graph: dict[str, set[str]] = {}
    for path, module in _sources():
        graph[module] = {t for t in _imports(path, runtime_only=True) if t != module}
    cycles = []
    for start in graph:
        package = start.rpartition(".")[0]
        seen: set[str] = set()
        todo = [t for t in graph[start] if t.rpartition(".")[0] == package]
        while todo:
            current = todo.pop()
            if current == start:
                cycles.append(start)
                break
            if current in seen or current not in graph:
                continue
            seen.add(current)
            todo += [t for t in graph[current] if t.rpartition(".")[0] == package]
    assert not cycles, f"modules on an import cycle: {sorted(cycles)}"


def test_the_walker_sees_relative_nested_and_type_only_imports() -> None:
    """Otherwise a backwards arrow could hide in ``from ..engine import x`` or inside a
    function."""
    source = ("from typing import TYPE_CHECKING\n"
              "from .. import engine\n"
              "from .space import SpaceIndex\n"
              "def late():\n    from imgsearch.web import app\n"
              "if TYPE_CHECKING:\n    from imgsearch.cli import main\n")
    found = _imports_in(source, "imgsearch.search.sample", False)
    assert {"imgsearch.engine", "imgsearch.search.space", "imgsearch.web.app",
            "imgsearch.cli"} <= set(found)
    runtime = _imports_in(source, "imgsearch.search.sample", False, runtime_only=True)
    assert "imgsearch.cli" not in runtime and "imgsearch.web.app" in runtime


def test_only_the_edges_read_the_environment():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        if _READS_ENV.search(text) and path.name != "cli.py" and "web" not in path.parts:
            offenders.append(str(path.relative_to(PACKAGE)))
    assert not offenders, offenders


def test_public_api_is_explicit_and_sorted():
    assert imgsearch.__all__ == sorted(imgsearch.__all__)
    for name in imgsearch.__all__:
        assert getattr(imgsearch, name) is not None


FACADE = PACKAGE / "engine" / "core.py"
FACADE_MAX_LINES = 300
# what the Engine wires: each is given what it uses and knows nothing of the Engine
COLLABORATORS = ("locking", "derived", "indexes", "writer", "query_encoder", "overview")


def _body_lines(function: ast.FunctionDef) -> int:
    body = function.body
    if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring
    return 0 if not body else (body[-1].end_lineno or body[-1].lineno) - body[0].lineno + 1


def test_the_engine_stays_a_facade() -> None:
    """core.py holds the Engine and nothing else; each method hands its work on in a few
    lines (``__init__``, the wiring, aside) and none is a private helper: work that
    grows there belongs in a collaborator."""
    source = FACADE.read_text()
    assert len(source.splitlines()) <= FACADE_MAX_LINES, \
        f"engine/core.py has {len(source.splitlines())} lines; move work to a collaborator"
    tree = ast.parse(source)
    outside = [n.name for n in tree.body
               if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
               and n.name != "Engine"]
    assert not outside, f"engine/core.py defines {outside} beside the Engine"
    (engine,) = [n for n in tree.body if isinstance(n, ast.ClassDef)]
    methods = [n for n in engine.body if isinstance(n, ast.FunctionDef)]
    assert len(methods) > 30, "the walk found the Engine's methods"
    private = [m.name for m in methods if m.name.startswith("_") and
               not (m.name.startswith("__") and m.name.endswith("__"))]
    assert not private, f"private helpers in the Engine: {private}"
    long = [f"{m.name} ({_body_lines(m)} lines)" for m in methods
            if m.name != "__init__" and _body_lines(m) > 8]
    assert not long, f"Engine methods doing work of their own: {long}"


def test_the_collaborators_know_nothing_of_the_engine() -> None:
    """They are passed what they use (STYLE.md habit 11), so each can be built and tested
    without an Engine: none imports engine.core, not even for its types."""
    offenders = []
    for name in COLLABORATORS:
        path = PACKAGE / "engine" / f"{name}.py"
        assert path.exists(), path
        offenders += [f"engine.{name} imports {t}" for t in _imports(path)
                      if t == "imgsearch.engine.core"]
    assert not offenders, offenders


def test_the_cycle_check_walks_the_engines_collaborators() -> None:
    """The split modules are in the graph the no-cycle test walks, and the builder
    reaches the Engine only for its type (at run time, core imports opening)."""
    modules = {module for _, module in _sources()}
    assert {f"imgsearch.engine.{n}" for n in (*COLLABORATORS, "opening", "core")} <= modules
    opening = PACKAGE / "engine" / "opening.py"
    assert "imgsearch.engine.core" in _imports(opening)
    assert "imgsearch.engine.core" not in _imports(opening, runtime_only=True)
    assert "imgsearch.engine.opening" in _imports(FACADE, runtime_only=True)


def test_the_searcher_imports_nothing_from_the_engine() -> None:
    """Ranking lives in search/ and is given what it reads (search.protocols): no module
    there imports engine/, not even for its types, so it runs without an Engine."""
    offenders = []
    for path, module in _sources():
        if _stage(module) != "search":
            continue
        offenders += [f"{module} imports {t}" for t in _imports(path)
                      if _stage(t) in ("engine", "web", "cli", "evaluate")]
    assert not offenders, "\n".join(offenders)
    searcher = PACKAGE / "search" / "searcher.py"
    assert "imgsearch.search.protocols" in _imports(searcher, runtime_only=True)


def test_the_engine_hands_searches_to_the_searcher() -> None:
    """The builder wires the searcher; the facade reaches the ranking code only
    through it (no module of engine/ imports the searcher's helpers)."""
    opening = PACKAGE / "engine" / "opening.py"
    assert "imgsearch.search.searcher" in _imports(opening, runtime_only=True)
    helpers = {f"imgsearch.search.{n}" for n in
               ("browse", "known", "similar", "text_feedback", "concept_source")}
    offenders = [f"{module} imports {t}" for path, module in _sources()
                 if _stage(module) == "engine" for t in _imports(path) if t in helpers]
    assert not offenders, offenders
