"""`imgsearch tune` through the command line, on a generated catalog and qrels."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import imagegen as gen

# the fake text encoder carries little meaning: the keyword list finds the right items,
# so a collection configured without it has something to gain from tuning
ENV = dict(os.environ, IMGSEARCH_TEXT_ENCODER="fake")
WORDS = ["zebra", "kettle", "lantern", "violin", "cactus", "anchor", "helmet", "teapot",
         "compass", "pretzel"]


def run(*args: str | Path, check: int | None = 0) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "imgsearch.cli", *map(str, args)],
                          capture_output=True, text=True, env=ENV, timeout=600)
    if check is not None:
        assert proc.returncode == check, proc.stderr
    return proc


def test_tune_writes_settings_that_win_held_out_and_keeps_them_next_time(tmp_path):
    images = tmp_path / "img"
    images.mkdir()
    rows = ["id,image,title"]
    for i in range(40):
        (images / f"{i}.jpg").write_bytes(gen.jpeg_bytes(200 + i))
        rows.append(f"item{i},img/{i}.jpg,{WORDS[i % 10]} model {i}")
    (tmp_path / "catalog.csv").write_text("\n".join(rows) + "\n")
    c = tmp_path / "shop"
    run("index", tmp_path / "catalog.csv", "-c", c, "--json")
    (c / "imgsearch.toml").write_text("# keywords off\nweight_keyword = 0.0\n")
    qrels = tmp_path / "qrels.jsonl"
    qrels.write_text("".join(
        json.dumps({"id": word, "text": word,
                    "relevant": [f"item{i}" for i in range(40) if i % 10 == n]}) + "\n"
        for n, word in enumerate(WORDS)))

    first = run("tune", qrels, "-c", c, "--folds", "5", "--json")
    report = json.loads(first.stdout)
    assert report["improves"] and report["written"]
    assert report["held_out"]["after"] > report["held_out"]["before"]
    assert report["wins"] > report["losses"]
    assert report["changes"]["weight_keyword"] > 0
    text = (c / "imgsearch.toml").read_text()
    assert text.startswith("# keywords off\n")  # the file's other lines are kept
    written = tomllib.loads(text)
    assert written == report["changes"]
    shown = json.loads(run("config", "-c", c, "--json").stdout)
    assert shown["weight_keyword"]["from"].endswith("imgsearch.toml")

    again = run("tune", qrels, "-c", c, "--folds", "5")  # the human report
    assert "kept the current settings" in again.stdout
    assert "held out" in again.stdout and "weight_keyword" in again.stdout
    assert tomllib.loads((c / "imgsearch.toml").read_text()) == written  # untouched


def test_tune_refuses_qrels_without_text_queries(tmp_path):
    images = tmp_path / "img"
    images.mkdir()
    gen.write_image(images / "a.jpg", 1)
    c = tmp_path / "c"
    run("index", images, "-c", c)
    qrels = tmp_path / "qrels.jsonl"
    qrels.write_text(json.dumps({"item": "a.jpg", "relevant": ["a.jpg"]}) + "\n")
    refused = run("tune", qrels, "-c", c, check=2)
    assert "at least 2 text queries" in refused.stderr
    assert not (c / "imgsearch.toml").exists()
