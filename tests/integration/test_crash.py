"""Nothing acknowledged is lost: kill -9 an indexing process at random points."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imagegen import make_photo_folder
from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.types import Query

pytestmark = pytest.mark.slow


def _start(folder: Path, collection: Path, out: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, IMGSEARCH_TEXT_ENCODER="fake", IMGSEARCH_INGEST_BATCH_SIZE="4",
               IMGSEARCH_INDEX_SAVE_EVERY="24", IMGSEARCH_INGEST_WORKERS="1")
    with open(out, "ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "imgsearch.cli", "index", str(folder), "--collection",
             str(collection), "--print-committed", "--quiet"],
            stdout=sink, stderr=subprocess.DEVNULL, env=env)


def _committed(out: Path) -> set[str]:
    lines = out.read_text().splitlines()
    return {line.split(" ", 1)[1] for line in lines if line.startswith("committed ")}


def _check(collection: Path, folder: Path, committed: set[str]) -> None:
    settings = Settings(text_encoder="fake")
    with Engine.open(collection, settings) as engine:
        ids = [item.id for item in engine.catalog.iter_items()]
        assert len(ids) == len(set(ids)), "duplicate items after a crash"
        assert committed <= set(ids), f"lost acknowledged items: {committed - set(ids)}"
        for name, space in engine.spaces.items():
            assert len(space.index) == engine.catalog.count_vectors(name), name
        for item_id in sorted(committed):
            hits = engine.search(Query(images=[folder / item_id], limit=2)).hits
            top = [h.id for h in hits if h.score >= hits[0].score - 1e-6]
            assert item_id in top, (item_id, hits)


def test_kill_9_at_random_points_loses_nothing_acknowledged(tmp_path):
    folder = tmp_path / "photos"
    make_photo_folder(folder, 500, seed=11)
    collection = tmp_path / "collection"
    out = tmp_path / "committed.txt"
    out.touch()
    rng = random.Random(2024)
    kills = 0
    for _round in range(6):
        proc = _start(folder, collection, out)
        time.sleep(rng.uniform(0.5, 2.5))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=60)
        _check(collection, folder, _committed(out))
    assert kills >= 1, "the indexing process always finished before it could be killed"
    proc = _start(folder, collection, out)
    assert proc.wait(timeout=300) == 0
    _check(collection, folder, _committed(out))
    with Engine.open(collection, Settings(text_encoder="fake"), readonly=True) as engine:
        assert engine.catalog.count() == 500
