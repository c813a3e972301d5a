"""`imgsearch upgrade` and the storage figures of `imgsearch info`."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from test_cli import run

import imagegen as gen
from vstorekit import undo_vector_files


def _search(collection: Path, image: Path) -> list[tuple[str, float]]:
    hits = json.loads(run("search", "-c", collection, "--image", image, "--no-collapse",
                          "--json").stdout)["results"]
    return [(h["id"], round(h["score"], 6)) for h in hits]


def test_upgrade_moves_vectors_out_keeps_a_backup_and_the_answers(tmp_path: Path) -> None:
    folder, collection = tmp_path / "photos", tmp_path / "c"
    folder.mkdir()
    for seed in range(6):
        (folder / f"p{seed}.jpg").write_bytes(gen.jpeg_bytes(seed))
    run("index", folder, "-c", collection, "--quiet")
    before = _search(collection, folder / "p2.jpg")
    conn = sqlite3.connect(collection / "catalog.sqlite3")
    undo_vector_files(conn)  # as the previous schema wrote it
    conn.close()
    proc = run("upgrade", "-c", collection)
    assert "upgraded from schema 4 to 5" in proc.stdout + proc.stderr
    assert (collection / "catalog.sqlite3.schema4.bak").exists()
    assert _search(collection, folder / "p2.jpg") == before
    again = run("upgrade", "-c", collection, "--json")
    assert json.loads(again.stdout)["upgraded_from"] is None
    info = json.loads(run("info", "-c", collection, "--json").stdout)
    image = info["spaces"]["image"]
    assert image["index_resident_bytes"] > 6 * image["dim"] * 4
    assert image["vector_file"]["live"] == 6 and image["vector_file"]["dtype"] == "float32"
    text = run("info", "-c", collection).stdout
    assert "MB resident; vectors" in text


def test_compact_drops_the_rows_of_removed_items_and_keeps_the_answers(
        tmp_path: Path) -> None:
    folder, collection = tmp_path / "photos", tmp_path / "c"
    folder.mkdir()
    for seed in range(10):
        (folder / f"p{seed}.jpg").write_bytes(gen.jpeg_bytes(seed))
    run("index", folder, "-c", collection, "--quiet")
    run("remove", "p9.jpg", "-c", collection)  # 1 dead row of 10: left for `compact`
    before = _search(collection, folder / "p2.jpg")
    done = json.loads(run("compact", "-c", collection, "--json").stdout)["compacted"]
    assert done["image"]["dead_rows_dropped"] == 1
    assert done["image"]["bytes_after"] == done["image"]["bytes_before"] * 9 // 10
    assert _search(collection, folder / "p2.jpg") == before
    assert "nothing to compact" in run("compact", "-c", collection).stdout
