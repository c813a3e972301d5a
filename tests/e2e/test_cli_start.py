"""What the command line loads: help and light commands start without the heavy
libraries, and a text search on the default encoders runs without torch."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import imagegen as gen

# (typer itself loads pydantic to read a command's options: not ours to leave out)
HEAVY = ("torch", "transformers", "sentence_transformers", "faiss", "cv2", "fastapi",
         "uvicorn", "scipy", "httpx", "onnxruntime", "numpy", "PIL",
         "rich", "markdown_it")  # help is click's plain layout, not typer's rich panels
# a text query needs numpy, faiss and the text model's runtime; nothing else heavy
# (numpy.ma: numpy's first np.unique imports it, ~10 ms of a cold start)
NOT_FOR_TEXT = ("torch", "transformers", "sentence_transformers", "cv2", "fastapi",
                "uvicorn", "scipy", "httpx", "numpy.ma")
NOT_FOR_IMAGE = ("torch", "transformers", "sentence_transformers", "onnxruntime", "fastapi",
                 "uvicorn", "httpx", "scipy", "numpy.ma")

# Runs the command as `python -m imgsearch.cli` does, then prints which modules it loaded.
PROBE = """
import json, runpy, sys
watch = json.loads(sys.argv[2])
sys.argv = ["imgsearch", *json.loads(sys.argv[1])]
code = 0
try:
    runpy.run_module("imgsearch.cli", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code or 0
print("\\n" + json.dumps({"code": code, "loaded": sorted(
    name for name in watch if name in sys.modules)}))
"""


def loaded(args: list[str], watch: tuple[str, ...], env: dict[str, str] | None = None
           ) -> tuple[int, list[str], str]:
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(args), json.dumps(watch)],
                          capture_output=True, text=True, timeout=300,
                          env=env or dict(os.environ))
    answer = json.loads(proc.stdout.strip().splitlines()[-1])
    return int(answer["code"]), list(answer["loaded"]), proc.stdout


@pytest.mark.parametrize("args", [["--help"], ["search", "--help"], ["--version"]])
def test_help_loads_no_heavy_library(args: list[str]) -> None:
    code, heavy, out = loaded(args, HEAVY)
    assert code == 0
    assert "imgsearch" in out
    assert heavy == []


@pytest.fixture(scope="module")
def catalog_collection(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    root = tmp_path_factory.mktemp("start")
    rows = [("red", "a red leather shoe"), ("car", "a fast blue car"),
            ("soup", "a bowl of tomato soup"), ("chair", "a wooden kitchen chair")]
    with open(root / "items.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "image", "title"])
        for seed, (ident, title) in enumerate(rows):
            gen.write_image(root / f"{ident}.jpg", seed)
            writer.writerow([ident, f"{ident}.jpg", title])
    env = dict(os.environ, IMGSEARCH_MODEL_CACHE_DIR=str(root / "models"),
               HF_HUB_OFFLINE="1")
    done = subprocess.run([sys.executable, "-m", "imgsearch.cli", "index", str(root / "items.csv"),
                           "-c", str(root / "c")], capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    return root / "c", env


def test_text_search_runs_without_torch(catalog_collection: tuple[Path, dict[str, str]]
                                        ) -> None:
    collection, env = catalog_collection
    code, heavy, out = loaded(["search", "-c", str(collection), "--text", "soup in a bowl",
                               "--limit", "2"], (*NOT_FOR_TEXT, "onnxruntime"), env)
    assert code == 0
    first = next(line for line in out.splitlines() if line.strip().startswith("1."))
    assert "soup" in first
    assert heavy == ["onnxruntime"]


def test_image_search_loads_no_text_model(catalog_collection: tuple[Path, dict[str, str]],
                                          tmp_path: Path) -> None:
    collection, env = catalog_collection
    query = gen.write_image(tmp_path / "q.jpg", 2)
    # (cv2 may load here, for copy verification; the perceptual hash needs no scipy)
    code, heavy, _ = loaded(["search", "-c", str(collection), "--image", str(query),
                             "--limit", "2"], NOT_FOR_IMAGE, env)
    assert code == 0
    assert heavy == []
