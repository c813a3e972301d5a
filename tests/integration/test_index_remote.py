"""``imgsearch index SOURCE --collection milvus://...`` is incremental, as into a local
collection: an unchanged file is not decoded or encoded again, a changed one is, and
the item of a file gone from the folder is removed from Milvus."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

import backendkit as kit
import imagegen as gen
from imgsearch.config import Settings
from imgsearch.engine.backends.milvus import MilvusBackend
from imgsearch.engine.migrate import index_remote

SETTINGS = Settings(image_encoder="fake", text_encoder="fake", ingest_workers=1)


def test_a_second_run_skips_unchanged_items_by_id_and_content(tmp_path: Path,
                                                              milvus_lite_address: str,
                                                              ) -> None:
    folder = tmp_path / "photos"
    for i in range(6):
        gen.write_image(folder / f"photo-{i}.jpg", i)
    uri = f"milvus://{milvus_lite_address}/{kit.collection_name('incremental')}"
    first = index_remote(folder, uri, SETTINGS)
    assert (first.added, first.unchanged) == (6, 0)
    opened = MilvusBackend.open(uri, create=False)
    before = opened.fetch_vectors("image", ["photo-2.jpg"])["photo-2.jpg"]
    opened.close()
    again = index_remote(folder, uri, SETTINGS)
    assert (again.added, again.updated, again.unchanged, again.removed) == (0, 0, 6, 0)
    # touched, not changed: skipped by its content hash, its new time remembered
    os.utime(folder / "photo-1.jpg", (1_000_000_000, 1_000_000_000))
    gen.write_image(folder / "photo-3.jpg", 40)  # changed: encoded again
    (folder / "photo-5.jpg").unlink()  # gone: removed from Milvus
    third = index_remote(folder, uri, SETTINGS)
    assert (third.added, third.updated, third.unchanged, third.removed) == (0, 1, 4, 1)
    fourth = index_remote(folder, uri, SETTINGS)
    assert (fourth.updated, fourth.unchanged) == (0, 5)  # photo-1's new time was kept
    remote = MilvusBackend.open(uri, create=False)
    try:
        assert remote.count() == 5 and not remote.get(["photo-5.jpg"])
        np.testing.assert_array_equal(
            remote.fetch_vectors("image", ["photo-2.jpg"])["photo-2.jpg"], before)
        assert remote.get(["photo-1.jpg"])["photo-1.jpg"].source_mtime == 1_000_000_000
        # thumbnails travel too: a new item's, a changed one's, and a touched one's
        # (copied from the staging collection, which was seeded with it)
        thumbnails = remote.thumbnails(["photo-0.jpg", "photo-1.jpg", "photo-3.jpg"])
        assert len(thumbnails) == 3 and all(t.startswith(b"\xff\xd8\xff")
                                            for t in thumbnails.values())
    finally:
        remote.close()
