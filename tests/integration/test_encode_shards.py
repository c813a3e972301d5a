"""`imgsearch encode` into Parquet shards and `import-embeddings` back into a collection."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from imagegen import make_photo_folder, write_image
from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.engine.batch_encode import run_encode
from imgsearch.engine.import_embeddings import import_embeddings, open_for_import, shard_spaces
from imgsearch.errors import CatalogFormatError, EncoderMismatchError, InvalidInputError
from imgsearch.store.shards import finished_shards, read_shard
from imgsearch.types import Item, Query

SETTINGS = Settings(image_encoder="descriptor", text_encoder="fake", ingest_workers=2,
                    ingest_batch_size=4)


def _vectors(out: Path) -> dict[tuple[str, str], np.ndarray]:
    found: dict[tuple[str, str], np.ndarray] = {}
    for path in finished_shards(out).values():
        table = pq.read_table(path).to_pydict()
        for item_id, space, vector in zip(table["id"], table["space"], table["vector"],
                                          strict=True):
            assert (item_id, space) not in found, f"{item_id} {space} twice"
            found[(item_id, space)] = np.asarray(vector, dtype=np.float32)
    return found


@pytest.fixture
def photos(tmp_path: Path) -> tuple[Path, list[str]]:
    folder = tmp_path / "photos"
    ids = make_photo_folder(folder, 14, seed=5)
    (folder / "broken.jpg").write_bytes(b"not an image at all")
    return folder, ids


def test_shards_hold_every_item_once_and_name_the_failures(tmp_path, photos):
    folder, ids = photos
    out = tmp_path / "shards"
    report = run_encode(folder, out, SETTINGS, shard_size=4)
    assert (report.shards, report.written, report.skipped) == (4, 4, 0)
    assert report.items == len(ids)
    assert [f.item_id for f in report.failed] == ["broken.jpg"]
    vectors = _vectors(out)
    assert {item_id for item_id, _ in vectors} == set(ids)
    for (_, space), vector in vectors.items():
        assert vector.shape == ((992,) if space == "image" else (32,))
        assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-4
    table, failures = read_shard(finished_shards(out)[0])
    assert set(table.column_names) >= {"id", "content_hash", "space", "vector", "encoder",
                                       "model_id"}
    assert set(table.column("encoder").to_pylist()) == {"descriptor", "fake"}
    assert [f.code for f in failures] == ["unsupported_format"]


def test_a_second_run_skips_finished_shards_and_refuses_other_options(tmp_path, photos):
    folder, _ = photos
    out = tmp_path / "shards"
    run_encode(folder, out, SETTINGS, shard_size=4)
    before = {n: p.stat().st_mtime_ns for n, p in finished_shards(out).items()}
    finished_shards(out)[2].unlink()  # as if the run had been killed before shard 2
    (out / ".shard-00002.parquet.999.tmp").write_bytes(b"half a shard")
    again = run_encode(folder, out, SETTINGS, shard_size=4)
    assert (again.written, again.skipped) == (1, 3)
    after = {n: p.stat().st_mtime_ns for n, p in finished_shards(out).items()}
    assert {n: after[n] for n in (0, 1, 3)} == {n: before[n] for n in (0, 1, 3)}
    assert not list(out.glob(".*.tmp"))
    with pytest.raises(InvalidInputError, match="shard_size"):
        run_encode(folder, out, SETTINGS, shard_size=5)
    first = sorted(folder.rglob("*.jpg"))[0]
    first.rename(first.with_name("renamed.jpg"))  # as many items, not the same ones
    with pytest.raises(InvalidInputError, match="items differ"):
        run_encode(folder, out, SETTINGS, shard_size=4)


def test_import_gives_the_same_search_results_as_ingesting(tmp_path, photos):
    folder, ids = photos
    out = tmp_path / "shards"
    run_encode(folder, out, SETTINGS, shard_size=5)
    with Engine.open(tmp_path / "direct", SETTINGS) as direct:
        direct.ingest(folder)
        with open_for_import(tmp_path / "imported", SETTINGS, shard_spaces(out)) as imported:
            report = import_embeddings(imported, out)
            assert report.added == len(ids)
            assert [f.item_id for f in report.failed] == ["broken.jpg"]
            assert imported.catalog.count() == direct.catalog.count() == len(ids)
            queries = [Query(images=[folder / ids[3]], limit=5),
                       Query(text="holidays photo", limit=5),
                       Query(images=[folder / ids[9]], text="family", limit=5)]
            for query in queries:
                a = direct.search(query).hits
                b = imported.search(query).hits
                assert [h.id for h in a] == [h.id for h in b], query
                assert np.allclose([h.score for h in a], [h.score for h in b], atol=1e-5)
            assert imported.get(ids[0]).phash == direct.get(ids[0]).phash
            assert imported.duplicates(ids[0]) == direct.duplicates(ids[0])
            again = import_embeddings(imported, out)  # upserts by id: nothing doubles
            assert (again.added, again.updated) == (0, len(ids))
            assert imported.catalog.count() == len(ids)


def test_import_refuses_vectors_of_other_encoders_naming_both(tmp_path, photos):
    folder, _ = photos
    out = tmp_path / "shards"
    run_encode(folder, out, SETTINGS, shard_size=5)
    other = Settings(image_encoder="fake", text_encoder="fake")
    with Engine.open(tmp_path / "fakes", other) as engine:
        write_image(tmp_path / "one.png", 1)
        engine.upsert(Item(id="one"), tmp_path / "one.png")
        with pytest.raises(EncoderMismatchError) as caught:
            import_embeddings(engine, out)
        assert "'descriptor' (descriptor-v2, 992-d)" in caught.value.message
        assert "'fake'" in caught.value.message
        assert engine.catalog.count() == 1


def test_import_refuses_a_folder_without_shards_and_a_damaged_shard(tmp_path, photos):
    folder, _ = photos
    with Engine.open(tmp_path / "c", SETTINGS) as engine:
        with pytest.raises(InvalidInputError, match="no shard"):
            import_embeddings(engine, tmp_path)
        out = tmp_path / "shards"
        run_encode(folder, out, SETTINGS, shard_size=5)
        finished_shards(out)[1].write_bytes(b"PAR1 garbage")
        with pytest.raises(CatalogFormatError, match="shard-00001"):
            import_embeddings(engine, out)
        assert engine.catalog.count() == 0  # checked before anything is written


@pytest.mark.slow
def test_kill_9_mid_run_resumes_without_duplicates_or_lost_shards(tmp_path):
    folder = tmp_path / "photos"
    ids = make_photo_folder(folder, 120, seed=8)
    out = tmp_path / "shards"
    env = dict(os.environ, IMGSEARCH_TEXT_ENCODER="fake", IMGSEARCH_INGEST_BATCH_SIZE="2",
               IMGSEARCH_INGEST_WORKERS="1")
    command = [sys.executable, "-m", "imgsearch.cli", "encode", str(folder), "--out",
               str(out), "--shard-size", "6"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if len(finished_shards(out) if out.is_dir() else {}) >= 3:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    kept = {n: p.stat().st_mtime_ns for n, p in finished_shards(out).items()}
    assert 3 <= len(kept) < 20
    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert f"{len(kept)} finished before" in finished.stderr
    shards = finished_shards(out)
    assert sorted(shards) == list(range(20))
    assert {n: shards[n].stat().st_mtime_ns for n in kept} == kept  # not written again
    assert not list(out.glob(".*.tmp"))
    vectors = _vectors(out)  # fails on any (id, space) written twice
    assert sorted({item_id for item_id, _ in vectors}) == ids
    reference = tmp_path / "reference"
    run_encode(folder, reference, Settings(text_encoder="fake"), shard_size=6)
    expected = _vectors(reference)
    assert vectors.keys() == expected.keys()
    assert max(float(np.abs(vectors[k] - expected[k]).max()) for k in expected) <= 1e-6


@pytest.mark.slow
def test_ray_on_two_cpus_gives_the_vectors_of_the_sequential_encoder(tmp_path):
    pytest.importorskip("ray.data", reason="Ray is not installed (the [ray] extra)")
    folder = tmp_path / "photos"
    make_photo_folder(folder, 20, seed=13)
    (folder / "broken.jpg").write_bytes(b"\x00" * 50)
    local = run_encode(folder, tmp_path / "local", SETTINGS, shard_size=6)
    ray = run_encode(folder, tmp_path / "ray", SETTINGS, shard_size=6, runner="ray",
                     workers=2)
    assert (ray.written, ray.items) == (local.written, local.items) == (4, 20)
    assert [f.item_id for f in ray.failed] == [f.item_id for f in local.failed] == [
        "broken.jpg"]
    a, b = _vectors(tmp_path / "local"), _vectors(tmp_path / "ray")
    assert a.keys() == b.keys()
    assert max(float(np.abs(a[k] - b[k]).max()) for k in a) <= 1e-5
    for number, path in finished_shards(tmp_path / "ray").items():
        mine = pq.read_table(path).drop_columns(["vector"])
        theirs = pq.read_table(finished_shards(tmp_path / "local")[number]).drop_columns(
            ["vector"])
        assert mine.equals(theirs), number


def test_a_local_ray_that_does_not_come_up_is_tried_again_then_named(tmp_path, photos,
                                                                     monkeypatch):
    ray = pytest.importorskip("ray", reason="Ray is not installed (the [ray] extra)")
    pytest.importorskip("ray.data", reason="Ray is not installed (the [ray] extra)")
    folder, _ids = photos
    tries: list[dict[str, Any]] = []
    shutdowns: list[int] = []
    failures = iter([Exception("The current node timed out during startup."),
                     RuntimeError("raylet exited with code 1")])

    def fails_to_start(**kwargs: Any) -> None:
        tries.append(kwargs)
        raise next(failures)

    monkeypatch.setattr(ray, "init", fails_to_start)
    monkeypatch.setattr(ray, "shutdown", lambda: shutdowns.append(1))
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    with pytest.raises(InvalidInputError) as refused:
        run_encode(folder, tmp_path / "out", SETTINGS, shard_size=5, runner="ray", workers=2)
    # tried twice, cleaned up after each, and the last cause is named
    assert len(tries) == 2 and tries[0]["num_cpus"] == 2 and len(shutdowns) == 2
    assert "a local Ray cluster" in str(refused.value)
    assert "raylet exited with code 1" in str(refused.value)
    assert not finished_shards(tmp_path / "out")
    # a cluster named by its address is not started here: one try, and its address named
    tries.clear()
    failures = iter([ConnectionError("no GCS at 10.0.0.9:6379")])
    with pytest.raises(InvalidInputError, match=re.escape("10.0.0.9:6379")):
        run_encode(folder, tmp_path / "out", SETTINGS, shard_size=5, runner="ray",
                   ray_address="10.0.0.9:6379")
    assert len(tries) == 1 and tries[0]["address"] == "10.0.0.9:6379"


def _cli(*args: str | Path) -> Any:
    from typer.testing import CliRunner

    from imgsearch.cli import app

    env = dict(os.environ, IMGSEARCH_TEXT_ENCODER="fake", IMGSEARCH_INGEST_WORKERS="1")
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


def test_the_commands_report_and_refuse_with_exit_codes(tmp_path, photos):
    folder, ids = photos
    out = tmp_path / "shards"
    encoded = _cli("encode", folder, "--out", out, "--shard-size", "5")
    assert encoded.exit_code == 1  # broken.jpg failed, and is named
    assert "broken.jpg" in encoded.output and "3 written" in encoded.output
    assert _cli("encode", folder, "--out", out, "--runner", "spark").exit_code == 2
    other = _cli("encode", folder, "--out", out, "--shard-size", "4")
    assert other.exit_code == 2 and "shard_size" in other.output
    imported = _cli("import-embeddings", out, "-c", tmp_path / "c", "--json")
    assert imported.exit_code == 1
    assert f'"added": {len(ids)}' in imported.output
    with Engine.open(tmp_path / "f", Settings(image_encoder="fake", text_encoder="fake")):
        pass
    refused = _cli("import-embeddings", out, "-c", tmp_path / "f")
    assert refused.exit_code == 4
    assert "descriptor" in refused.output and "'fake'" in refused.output
    assert _cli("import-embeddings", tmp_path / "nowhere", "-c", tmp_path / "g").exit_code == 2
    assert not (tmp_path / "g").exists()
