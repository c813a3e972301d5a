"""Data flows ingest -> enrich -> encode -> store/index -> search -> engine -> cli/web.

A module may import only from its own stage, from stages to its left, and from the
leaf modules. This test walks every import and fails on an arrow pointing backwards.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import imgsearch

PACKAGE = Path(imgsearch.__file__).parent
_READS_ENV = re.compile(r"os\.environ\b(?!``)|getenv\(")
LEAVES = {"types", "errors", "config", "ids", "version"}
RANK = {"ingest": 1, "enrich": 2, "encode": 3, "store": 4, "index": 4, "search": 5,
        "evaluate": 5, "engine": 6, "cli": 7, "web": 7, "__init__": 8}


def _stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
    return [name for name in found if name == "imgsearch" or name.startswith("imgsearch.")]


def test_no_import_points_backwards():
    violations = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        module = ".".join(rel.parts)
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
