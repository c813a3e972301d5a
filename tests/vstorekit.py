"""Make a collection look as schema 4 wrote it: vectors back in the catalog as blobs."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np

_SUFFIX = {"float32": ("f32", "<f4"), "float16": ("f16", "<f2")}


def undo_vector_files(conn: sqlite3.Connection) -> None:
    """Undo migration 5 on the open catalog ``conn``: each vector's numbers go back into
    its row's blob, the slot column and the vector files go."""
    catalog = Path(conn.execute("PRAGMA database_list").fetchone()[2])
    folder = catalog.parent / "vectors"
    specs = {key[len("vectors."):]: json.loads(value) for key, value in conn.execute(
        "SELECT key, value FROM meta WHERE key LIKE 'vectors.%'")}
    for space, spec in specs.items():
        suffix, dtype = _SUFFIX[spec["dtype"]]
        rows = np.fromfile(folder / f"{space}.{spec['generation']}.{suffix}", dtype=dtype)
        rows = rows.reshape(-1, spec["dim"]).astype("<f4")
        conn.executemany("UPDATE vectors SET vector = ? WHERE vid = ?", [
            (rows[slot].tobytes(), vid) for vid, slot in conn.execute(
                "SELECT vid, slot FROM vectors WHERE space = ?", (space,)).fetchall()])
    conn.execute("DELETE FROM meta WHERE key LIKE 'vectors.%'")
    conn.execute("ALTER TABLE vectors DROP COLUMN slot")
    conn.execute("PRAGMA user_version = 4")
    conn.commit()
    shutil.rmtree(folder, ignore_errors=True)
