"""The CLI builds its queries with the same builder as the HTTP API and the web page:
its options give the library's answer to the same query."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from imagegen import jpeg_bytes
from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.types import Item, Query

ENV = dict(os.environ, IMGSEARCH_TEXT_ENCODER="fake")
SETTINGS = Settings(image_encoder="descriptor", text_encoder="fake")


def cli_ids(*args: str | Path) -> list[str]:
    proc = subprocess.run([sys.executable, "-m", "imgsearch.cli", *map(str, args), "--json"],
                          capture_output=True, text=True, env=ENV, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return [hit["id"] for hit in json.loads(proc.stdout)["results"]]


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("options") / "c"
    with Engine.open(path, SETTINGS) as engine:
        report = engine.ingest_items(
            (Item(id=f"p{i}", title=f"thing {i}", category=("hats", "bags")[i % 2]),
             jpeg_bytes(i)) for i in range(10))
        assert report.ok, report.failed
    return path



def test_similar_takes_a_preferred_colour(shop: Path) -> None:
    plain = cli_ids("similar", "p0", "-c", shop, "--min-confidence", "0", "--no-collapse")
    with Engine.open(shop, SETTINGS, readonly=True) as engine:
        colour = engine.get(plain[-1]).colors[0]
        expected = [h.id for h in engine.search(Query(
            similar_to="p0", min_confidence=0, collapse_duplicates=False,
            prefer_colors=(colour,))).hits]
    preferred = cli_ids("similar", "p0", "-c", shop, "--min-confidence", "0", "--no-collapse",
                        "--prefer-color", colour)
    assert preferred == expected
    assert preferred.index(plain[-1]) < plain.index(plain[-1])


def test_search_options_match_the_library(shop: Path) -> None:
    found = cli_ids("search", "-c", shop, "-t", "thing", "--min-confidence", "0",
                    "--max-per-category", "1", "--mmr", "0.5", "--limit", "5")
    with Engine.open(shop, SETTINGS, readonly=True) as engine:
        expected = [h.id for h in engine.search(Query(
            text="thing", min_confidence=0, max_per_category=1, mmr_lambda=0.5,
            limit=5)).hits]
    assert found == expected and len(found) == 2


def test_index_parameters_reach_the_backend(shop: Path) -> None:
    tuned = cli_ids("search", "-c", shop, "-t", "thing", "--min-confidence", "0",
                    "--ef-search", "64", "--nprobe", "4", "--limit", "5")
    assert tuned == cli_ids("search", "-c", shop, "-t", "thing", "--min-confidence", "0",
                            "--limit", "5")  # a flat index: exact either way
    proc = subprocess.run([sys.executable, "-m", "imgsearch.cli", "search", "-c", str(shop),
                           "-t", "thing", "--ef-search", "0"],
                          capture_output=True, text=True, env=ENV, timeout=300)
    assert proc.returncode == 2 and "ef_search must be a whole number" in proc.stderr
