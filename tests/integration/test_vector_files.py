"""Vectors live in one memory-mapped file per space, not in the catalog (schema 5)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from imagegen import jpeg_bytes
from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.errors import CorruptCollectionError
from imgsearch.store.catalog import Catalog
from imgsearch.store.schema import SCHEMA_VERSION
from imgsearch.store.vectors import SpaceFile, StoreFile
from imgsearch.types import Item, Query
from vstorekit import undo_vector_files

SETTINGS = Settings(text_encoder="fake", ingest_workers=1, index_type="flat")


def _fill(engine: Engine, n: int, first: int = 0) -> None:
    engine.upsert_many([(Item(id=f"i{k}", title=f"item number {k}"), jpeg_bytes(k, (64, 48)))
                        for k in range(first, first + n)])


def _encoded(engine: Engine, seed: int) -> np.ndarray:
    """The image's vector as the encoder gives it (alone, not in a batch: ~1e-7 apart)."""
    return engine.embed_query_image(jpeg_bytes(seed, (64, 48)))


def _answers(engine: Engine, seeds: range) -> list[list[tuple[str, float]]]:
    return [[(h.id, round(h.score, 6)) for h in engine.search(Query(
        images=[jpeg_bytes(s, (64, 48))], limit=5, min_confidence=0,
        collapse_duplicates=False)).hits] for s in seeds]


def test_vectors_are_in_files_and_read_back_exactly(tmp_path: Path) -> None:
    with Engine.open(tmp_path / "c", SETTINGS) as engine:
        _fill(engine, 6)
        blobs = engine.catalog._reader.execute(
            "SELECT COUNT(*), SUM(length(vector)) FROM vectors").fetchone()
        assert blobs == (12, 0)  # image and text vectors of 6 items; no numbers in SQLite
        stats = engine.catalog.vector_file_stats()
        assert stats["image"]["file"] == "image.0.f32" and stats["image"]["live"] == 6
        index = engine.spaces["image"].index  # flat: it holds what it was given, exactly
        for k in range(6):
            key = engine.catalog.key_of(f"i{k}") or -1
            stored = engine.catalog.vector_of("image", key)
            held = index.stored(engine.catalog.vid_of("image", key) or -1)
            assert stored is not None and held is not None
            assert np.array_equal(stored, held)
            assert np.allclose(stored, _encoded(engine, k), atol=1e-6)
    assert (tmp_path / "c" / "vectors" / "image.0.f32").stat().st_size == 6 * 992 * 4


def test_a_schema_4_collection_upgrades_with_a_backup_and_the_same_answers(
        tmp_path: Path) -> None:
    collection = tmp_path / "c"
    with Engine.open(collection, SETTINGS) as engine:
        _fill(engine, 12)
        before = _answers(engine, range(12))
    conn = sqlite3.connect(collection / "catalog.sqlite3")
    undo_vector_files(conn)  # as imgsearch wrote it before this schema
    conn.close()
    assert not (collection / "vectors").exists()
    (collection / "indexes" / "image.faiss").unlink()  # rebuilt from the moved vectors
    with Engine.open(collection, SETTINGS) as engine:
        assert engine.catalog.schema_version == SCHEMA_VERSION == 5
        assert any("upgraded from schema 4" in note and "24 vectors moved" in note
                   for note in engine.open_notes), engine.open_notes
        assert _answers(engine, range(12)) == before
        assert engine.catalog._reader.execute(
            "SELECT SUM(length(vector)) FROM vectors").fetchone()[0] == 0
    backup = collection / "catalog.sqlite3.schema4.bak"
    with sqlite3.connect(backup) as old:  # the old file, as it was
        assert old.execute("PRAGMA user_version").fetchone()[0] == 4
        assert old.execute("SELECT SUM(length(vector)) FROM vectors").fetchone()[0] > 0
    with Engine.open(collection, SETTINGS) as engine:  # the next open changes nothing
        assert not any("upgraded" in note for note in engine.open_notes)


def test_float16_files_are_half_the_size_and_close(tmp_path: Path) -> None:
    with Engine.open(tmp_path / "c", SETTINGS.replace(vector_dtype="float16")) as engine:
        _fill(engine, 4)
        assert engine.catalog.vector_file_stats()["image"]["file"] == "image.0.f16"
        stored = engine.catalog.vector_of("image", engine.catalog.key_of("i2") or -1)
        exact = _encoded(engine, 2)
        assert stored is not None and stored.dtype == np.float32
        assert 0 < np.abs(stored - exact).max() < 1e-3
        assert _answers(engine, range(1))[0][0][0] == "i0"
    assert (tmp_path / "c" / "vectors" / "image.0.f16").stat().st_size == 4 * 992 * 2


def test_compaction_drops_dead_rows_and_keeps_every_vector(tmp_path: Path) -> None:
    with Engine.open(tmp_path / "c", SETTINGS) as engine:
        _fill(engine, 8)
        engine.upsert_many([(Item(id=f"i{k}"), jpeg_bytes(100 + k, (64, 48)))
                            for k in range(3)])  # new images: three dead rows
        engine.delete("i7")
        before = _answers(engine, range(100, 103))
        stats = engine.catalog.vector_file_stats()["image"]
        assert (stats["rows"], stats["live"]) == (11, 7)
        assert engine.catalog.compact_vectors("image") == 4
        stats = engine.catalog.vector_file_stats()["image"]
        assert (stats["file"], stats["rows"], stats["live"]) == ("image.1.f32", 7, 7)
        assert not (tmp_path / "c" / "vectors" / "image.0.f32").exists()
        stored = engine.catalog.vector_of("image", engine.catalog.key_of("i1") or -1)
        assert stored is not None and np.allclose(stored, _encoded(engine, 101), atol=1e-6)
        assert _answers(engine, range(100, 103)) == before
    with Engine.open(tmp_path / "c", SETTINGS.replace(index_type="auto")) as engine:
        assert _answers(engine, range(100, 103)) == before


def test_rows_of_a_write_that_never_committed_are_dead(tmp_path: Path) -> None:
    with Engine.open(tmp_path / "c", SETTINGS) as engine:
        _fill(engine, 3)
        catalog = engine.catalog
        vector = np.ones(992, np.float32) / np.sqrt(992)
        with pytest.raises(RuntimeError), catalog.transaction() as conn:
            catalog.upsert(conn, Item(id="lost"), {"image": vector})
            raise RuntimeError("the process died here")
        assert "lost" not in engine
        assert catalog.vector_file_stats()["image"]["rows"] == 4  # appended, unnamed
        _fill(engine, 1, first=3)
        stored = catalog.vector_of("image", catalog.key_of("i3") or -1)
        assert stored is not None and np.allclose(stored, _encoded(engine, 3), atol=1e-6)


def test_a_truncated_vector_file_is_named(tmp_path: Path) -> None:
    with Engine.open(tmp_path / "c", SETTINGS) as engine:
        _fill(engine, 3)
    path = tmp_path / "c" / "vectors" / "image.0.f32"
    with open(path, "r+b") as fh:
        fh.truncate(992 * 4)
    catalog = Catalog(tmp_path / "c" / "catalog.sqlite3")
    try:
        with pytest.raises(CorruptCollectionError, match=r"image\.0\.f32 holds 1 rows"):
            list(catalog.iter_vectors("image", 992))
    finally:
        catalog.close()
    health = Engine.check(tmp_path / "c")
    assert not health.healthy
    assert [f.part for f in health.findings if f.severity == "error"] == ["vectors:image"]


def test_files_no_catalog_names_are_removed_by_a_writer(tmp_path: Path) -> None:
    with Engine.open(tmp_path / "c", SETTINGS) as engine:
        _fill(engine, 2)
    stray = tmp_path / "c" / "vectors" / "image.7.f32"  # a crashed compaction's
    stray.write_bytes(b"\0" * 992 * 4)
    with Engine.open(tmp_path / "c", SETTINGS) as engine:
        assert not stray.exists()
        assert len(_answers(engine, range(2))[0]) == 2


def test_the_in_memory_row_table_follows_writes_and_compaction(tmp_path: Path) -> None:
    with Engine.open(tmp_path / "c", SETTINGS) as engine:
        catalog = engine.catalog
        _fill(engine, 5)

        def both(vids: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
            return (catalog.vectors_at("image", vids, 992),
                    catalog.vectors_by_vid(vids.tolist(), 992)[1])

        vids = catalog.key_vid_pairs("image")[1]
        # the first few small reads ask SQLite for their rows (None: the caller does),
        # as a one-shot command does before it exits; after them the table is made
        answers = [catalog.vectors_at("image", vids, 992) for _ in range(40)]
        assert answers[0] is None and answers[-1] is not None
        fast, slow = both(vids)
        assert fast is not None and np.array_equal(fast, slow)
        _fill(engine, 3, first=5)  # rows written after it was made join it at commit
        engine.upsert(Item(id="i0"), jpeg_bytes(50, (64, 48)))
        vids = catalog.key_vid_pairs("image")[1]
        fast, slow = both(vids)
        assert fast is not None and np.array_equal(fast, slow) and len(vids) == 8
        catalog.compact_vectors("image")  # rows move: the table is made again
        fast, slow = both(vids)
        assert fast is not None and np.array_equal(fast, slow)
        assert catalog.vectors_at("image", np.array([10**6]), 992) is None  # unknown vid


@pytest.mark.parametrize("kind", ["hnsw_sq8", "ivfpq"])
def test_a_compressed_index_is_rescored_exactly_from_the_vector_files(
        tmp_path: Path, kind: str) -> None:
    from imgsearch.engine.pipeline import Prepared

    settings = Settings(image_encoder="fake", text_encoder="none", index_type=kind,
                        result_cache_size=0)
    rng = np.random.default_rng(0)
    with Engine.open(tmp_path / "c", settings) as engine:
        dim = engine.manifest.spaces["image"].dim
        x = rng.standard_normal((600, dim)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        engine.commit([Prepared(Item(id=f"v{i}"), {"image": x[i]}, b"") for i in range(600)])
    with Engine.open(tmp_path / "c", settings) as engine:
        assert engine.spaces["image"].index.kind == kind
        assert not engine.spaces["image"].index.exact_scores
        for probe in (5, 77, 301):
            hits = engine.search(Query(vector=x[probe], vector_space="image", limit=3,
                                       min_confidence=0, collapse_duplicates=False)).hits
            exact = x @ x[probe]
            assert hits[0].id == f"v{probe}"
            # the scores are the exact inner products of the stored float32 vectors
            for hit in hits:
                assert hit.score == pytest.approx(float(exact[int(hit.id[1:])]), abs=1e-5)


def test_a_vector_file_is_read_whole_into_the_cache_only_when_it_fits(tmp_path: Path) -> None:
    made = SpaceFile(tmp_path / "image.0.f16", StoreFile(0, "float16", 8), writable=True)
    rows = np.random.default_rng(0).standard_normal((100, 8)).astype(np.float32)
    made.append(rows)
    made.sync()
    size = 100 * 8 * 2
    assert made.cache(size) == size
    assert made.cache(size - 1) == 0  # larger than the limit: not read
    assert np.allclose(made.read(np.array([5, 2])), rows[[5, 2]], atol=1e-2)
    made.close()


def test_warming_a_collection_leaves_its_answers_as_they_were(tmp_path: Path) -> None:
    with Engine.open(tmp_path / "c", SETTINGS.replace(index_type="ivfpq")) as engine:
        _fill(engine, 300)
        answers = _answers(engine, range(3))
        engine.warm()  # reads the vector file that re-scoring reads
        assert _answers(engine, range(3)) == answers
