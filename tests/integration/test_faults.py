"""An operator's faults: a full disk, damaged files, read-only storage, a deleted lock.

Each answers with a specific imgsearch error (never a raw traceback) and loses nothing
that was committed.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import imgsearch.engine.indexes as indexes
import imgsearch.engine.writer as writer
from faultkit import FAST, all_ids, build, grow, listing, read_only_view, small_tmpfs, top_k
from imagegen import jpeg_bytes
from imgsearch.engine import Engine
from imgsearch.errors import (
    CollectionLockedError,
    CorruptCollectionError,
    ReadOnlyCollectionError,
    StorageFullError,
)
from imgsearch.types import Item, Query


def _full(*_args: object, **_kwargs: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def _sqlite_full(*_args: object, **_kwargs: object) -> None:
    raise sqlite3.OperationalError("database or disk is full")


# -- disk full ---------------------------------------------------------------------------
def test_enospc_writing_a_thumbnail_is_storage_full_and_keeps_what_was_there(tmp_path,
                                                                             monkeypatch):
    ids = build(tmp_path / "c")
    with Engine.open(tmp_path / "c", FAST) as engine:
        monkeypatch.setattr(writer, "write_thumbnail", _full)
        with pytest.raises(StorageFullError) as caught:
            engine.upsert(Item(id="new"), jpeg_bytes(50))
        assert caught.value.status == 507 and caught.value.code == "insufficient_storage"
        assert "no space left" in caught.value.message
        monkeypatch.undo()
    with Engine.open(tmp_path / "c", FAST) as engine:
        assert all_ids(engine) == set(ids)


def test_sqlite_full_on_upsert_and_delete_is_storage_full(tmp_path, monkeypatch):
    ids = build(tmp_path / "c")
    with Engine.open(tmp_path / "c", FAST) as engine:
        monkeypatch.setattr(engine.catalog, "upsert", _sqlite_full)
        monkeypatch.setattr(engine.catalog, "delete", _sqlite_full)
        with pytest.raises(StorageFullError):
            engine.upsert(Item(id="new"), jpeg_bytes(50))
        with pytest.raises(StorageFullError):
            engine.delete(ids[0])
        monkeypatch.undo()
        assert engine.delete(ids[0])  # space again: writes work again
    with Engine.open(tmp_path / "c", FAST) as engine:
        assert all_ids(engine) == set(ids[1:])


def test_ingest_stopped_by_a_full_disk_carries_the_partial_report(tmp_path, monkeypatch):
    real = writer.write_thumbnail
    calls = {"n": 0}

    def fills_up(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 8:  # the first batch (8 items) fits, the second does not
            _full()
        return real(*args, **kwargs)

    monkeypatch.setattr(writer, "write_thumbnail", fills_up)
    with Engine.open(tmp_path / "c", FAST) as engine, pytest.raises(StorageFullError) as caught:
        engine.ingest_items((Item(id=f"i{n}"), jpeg_bytes(n)) for n in range(20))
    report = caught.value.report
    assert report is not None and report.added == 8
    assert [f.code for f in report.failed] == ["insufficient_storage"] * 8
    monkeypatch.undo()
    with Engine.open(tmp_path / "c", FAST) as engine:
        assert all_ids(engine) == {f"i{n}" for n in range(8)}


def test_a_real_full_tmpfs_stops_ingest_cleanly(tmp_path):
    with small_tmpfs(tmp_path, "4m") as mount:  # a few batches fit (originals kept)
        if mount is None:
            pytest.skip("tmpfs cannot be mounted here; the injected ENOSPC tests cover it")
        committed: list[str] = []
        with pytest.raises(StorageFullError) as caught, \
                Engine.open(mount / "c", FAST) as engine:
            engine.ingest_items(((Item(id=f"i{n}", description="x" * 20_000),
                                  jpeg_bytes(n, size=(640, 480))) for n in range(400)),
                                on_commit=committed.extend)
        assert caught.value.report is not None
        assert caught.value.report.added == len(committed) > 0
        with Engine.open(mount / "c", FAST, readonly=True) as engine:
            assert all_ids(engine) == set(committed)  # every acknowledged item is there
            assert engine.search(Query(similar_to=committed[0], limit=3)).hits
        assert grow(mount, "64m")  # space is freed: writing works again
        with Engine.open(mount / "c", FAST) as engine:
            engine.upsert(Item(id="after"), jpeg_bytes(999))
        health = Engine.check(mount / "c")
        assert health.healthy, health.findings
        assert health.items == len(committed) + 1


def test_check_changes_nothing(tmp_path):
    build(tmp_path / "c", n=4)
    catalog = tmp_path / "c" / "catalog.sqlite3"
    with sqlite3.connect(catalog) as conn:  # as if written by an older imgsearch
        conn.execute("PRAGMA user_version = 1")
    before = (catalog.read_bytes(), (tmp_path / "c" / "manifest.json").read_bytes())
    health = Engine.check(tmp_path / "c")
    assert [(f.part, f.severity) for f in health.findings] == [("catalog", "warning")]
    assert (catalog.read_bytes(), (tmp_path / "c" / "manifest.json").read_bytes()) == before
    assert health.healthy  # an older schema is upgraded by the next writer, not damage


# -- damaged files ---------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["garbage", "truncated", "emptied"])
def test_a_damaged_catalog_is_named_with_how_to_restore(tmp_path, damage):
    build(tmp_path / "c", n=40)
    catalog = tmp_path / "c" / "catalog.sqlite3"
    size = catalog.stat().st_size
    if damage == "garbage":
        catalog.write_bytes(os.urandom(size))
    elif damage == "truncated":
        os.truncate(catalog, size // 3)
    else:
        os.truncate(catalog, 0)
    with pytest.raises(CorruptCollectionError) as caught, \
            Engine.open(tmp_path / "c", FAST, readonly=True) as engine:
        engine.info()
        engine.search(Query(similar_to="item-1"))
    assert "backup" in caught.value.message
    health = Engine.check(tmp_path / "c")
    assert not health.healthy and health.findings[0].part == "catalog"
    with pytest.raises(CorruptCollectionError):
        Engine.repair(tmp_path / "c", FAST)


def test_a_truncated_manifest_is_rebuilt_from_the_catalog(tmp_path):
    ids = build(tmp_path / "c")
    with Engine.open(tmp_path / "c", FAST, readonly=True) as engine:
        before = top_k(engine, ids[:3])
    manifest = tmp_path / "c" / "manifest.json"
    os.truncate(manifest, manifest.stat().st_size // 2)
    assert not Engine.check(tmp_path / "c").healthy
    with Engine.open(tmp_path / "c", FAST) as engine:
        assert any("rebuilt from the catalog" in note for note in engine.open_notes)
        assert top_k(engine, ids[:3]) == before
    assert Engine.check(tmp_path / "c").healthy  # written again


def test_a_manifest_rebuilt_without_the_catalogs_copy_matches_encoders_by_dimension(
        tmp_path):
    ids = build(tmp_path / "c")
    with Engine.open(tmp_path / "c", FAST) as engine:
        with engine.catalog.transaction() as conn:  # a catalog written before the copy
            conn.execute("DELETE FROM meta WHERE key = 'manifest_spaces'")
        spaces = dict(engine.manifest.spaces)
    (tmp_path / "c" / "manifest.json").write_text("{")
    with Engine.open(tmp_path / "c", FAST) as engine:
        assert engine.manifest.spaces == spaces
        assert all_ids(engine) == set(ids)


def test_a_damaged_search_log_is_set_aside_and_search_goes_on(tmp_path):
    ids = build(tmp_path / "c")
    log = tmp_path / "c" / "logs.sqlite3"
    log.write_bytes(b"this is not a database" * 100)
    with Engine.open(tmp_path / "c", FAST, readonly=True) as engine:
        assert any("set aside" in note for note in engine.open_notes)
        assert engine.search(Query(similar_to=ids[0], limit=3)).hits
        engine.info()
        assert engine.report() is not None
    aside = list((tmp_path / "c").glob("logs.sqlite3.damaged-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not")
    assert Engine.check(tmp_path / "c").healthy


def test_a_search_log_damaged_while_open_is_set_aside(tmp_path):
    ids = build(tmp_path / "c")
    with Engine.open(tmp_path / "c", FAST, readonly=True) as engine:
        engine.search(Query(similar_to=ids[0]))
        assert engine.logs is not None
        engine.logs.flush()
        with open(tmp_path / "c" / "logs.sqlite3", "r+b") as fh:  # pages overwritten
            fh.seek(1024)
            fh.write(os.urandom(60_000))
        engine.logs._conn.execute("PRAGMA cache_size=0")  # read the damage, not a cache
        report = engine.report()
        assert isinstance(report, dict)
        assert engine.search(Query(similar_to=ids[1])).hits
    assert list((tmp_path / "c").glob("logs.sqlite3.damaged-*"))


def test_a_damaged_index_is_reported_and_repaired(tmp_path):
    ids = build(tmp_path / "c")
    index = tmp_path / "c" / "indexes" / "image.faiss"
    data = bytearray(index.read_bytes())
    data[len(data) // 2] ^= 0xFF
    index.write_bytes(bytes(data))
    (tmp_path / "c" / "thumbnails" / "zz").mkdir()
    (tmp_path / "c" / "thumbnails" / "zz" / "orphan.jpg").write_bytes(b"x")
    health = Engine.check(tmp_path / "c")
    assert not health.healthy
    assert {f.part for f in health.findings} == {"index:image", "thumbnails"}
    repaired = Engine.repair(tmp_path / "c", FAST)
    assert repaired.healthy and not repaired.findings, repaired.findings
    assert any("image index rebuilt" in r for r in repaired.repaired)
    with Engine.open(tmp_path / "c", FAST) as engine:
        assert all_ids(engine) == set(ids)


# -- backup and restore ----------------------------------------------------------------
def test_backup_wipe_restore_gives_the_same_ids_and_top_k(tmp_path):
    ids = build(tmp_path / "c", n=30)
    with Engine.open(tmp_path / "c", FAST, readonly=True) as engine:
        before_ids, before_top = all_ids(engine), top_k(engine, ids[:10])
    done = Engine.backup(tmp_path / "c", tmp_path / "backup")
    assert "catalog.sqlite3" in done["copied"] and "thumbnails/" in done["copied"]
    shutil.rmtree(tmp_path / "c")
    shutil.copytree(tmp_path / "backup", tmp_path / "c")  # the documented restore
    assert Engine.check(tmp_path / "c").healthy or all(
        f.severity == "warning" for f in Engine.check(tmp_path / "c").findings)
    with Engine.open(tmp_path / "c", FAST) as engine:
        assert all_ids(engine) == before_ids
        assert top_k(engine, ids[:10]) == before_top


_WRITER = """
import sys
sys.path.insert(0, {tests!r})
from faultkit import FAST
from imagegen import jpeg_bytes
from imgsearch.engine import Engine
from imgsearch.types import Item
with Engine.open({path!r}, FAST) as engine:
    for n in range(400):
        engine.upsert(Item(id=f"w{{n}}", description="x" * 5000), jpeg_bytes(100 + n))
        print(f"w{{n}}", flush=True)
"""


def test_backup_while_another_process_writes_is_consistent(tmp_path):
    build(tmp_path / "c", n=8)
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER.format(tests=str(Path(__file__).parents[1]),
                                              path=str(tmp_path / "c"))],
        stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None
        acknowledged = [writer.stdout.readline().strip() for _ in range(5)]
        Engine.backup(tmp_path / "c", tmp_path / "backup")  # the writer keeps writing
        assert writer.poll() is None, "the writer finished before the backup was taken"
    finally:
        writer.kill()
        writer.wait()
    health = Engine.check(tmp_path / "backup")
    assert not any(f.part == "catalog" for f in health.findings), health.findings
    with Engine.open(tmp_path / "backup", FAST) as engine:
        got = all_ids(engine)
        assert {f"item-{i}" for i in range(8)} | set(acknowledged) <= got
        for item_id in got:  # every item in the copy is whole: its vectors are there
            assert engine.search(Query(similar_to=item_id, limit=1)).hits


def test_backup_refuses_a_destination_that_is_not_empty(tmp_path):
    build(tmp_path / "c", n=3)
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "something").write_text("x")
    from imgsearch.errors import InvalidInputError

    with pytest.raises(InvalidInputError):
        Engine.backup(tmp_path / "c", tmp_path / "dest")


# -- read-only storage -----------------------------------------------------------------
def test_read_only_storage_searches_and_refuses_writes(tmp_path, monkeypatch):
    ids = build(tmp_path / "c")
    with Engine.open(tmp_path / "c", FAST, readonly=True) as engine:
        engine.search(Query(similar_to=ids[1]))  # one search in the log
    with read_only_view(tmp_path / "c") as view:
        if view is None:  # no bind mounts here: pretend the directory is not writable
            view = tmp_path / "c"
            monkeypatch.setattr(os, "access", lambda path, mode: mode != os.W_OK)
        before = listing(tmp_path / "c")
        with Engine.open(view, FAST, readonly=True) as engine:
            assert engine.catalog.read_only_storage
            assert engine.logs is None
            assert any("read-only" in note for note in engine.open_notes)
            assert all_ids(engine) == set(ids)
            assert engine.search(Query(similar_to=ids[0], limit=3)).hits
            assert engine.info()["items"] == len(ids)
            assert engine.report()["all"]["searches"] == 1  # read, though not written
            with pytest.raises(ReadOnlyCollectionError):
                engine.upsert(Item(id="new"), jpeg_bytes(1))
        with pytest.raises(ReadOnlyCollectionError) as caught:
            Engine.open(view, FAST)
        assert "read-only storage" in caught.value.message
        assert listing(tmp_path / "c") == before  # not a byte written, no lock file


def test_read_only_storage_reads_commits_left_in_the_wal(tmp_path):
    """A writer killed before its last checkpoint leaves commits in catalog.sqlite3-wal:
    on read-only storage they are read, not ignored."""
    code = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(Path(__file__).parents[1])!r})
        from faultkit import FAST
        from imagegen import jpeg_bytes
        from imgsearch.engine import Engine
        from imgsearch.types import Item
        engine = Engine.open({str(tmp_path / "c")!r}, FAST)
        engine.upsert(Item(id="in-the-wal"), jpeg_bytes(3))
        os._exit(0)
    """)
    build(tmp_path / "c", n=4)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    assert (tmp_path / "c" / "catalog.sqlite3-wal").stat().st_size
    with read_only_view(tmp_path / "c") as view:
        if view is None:
            pytest.skip("read-only bind mounts are not permitted here")
        with Engine.open(view, FAST, readonly=True) as engine:
            assert "in-the-wal" in all_ids(engine)


# -- the writer lock -------------------------------------------------------------------
_HOLD = """
import sys, time
sys.path.insert(0, {tests!r})
from faultkit import FAST
from imgsearch.engine import Engine
engine = Engine.open({path!r}, FAST)
print("holding", flush=True)
time.sleep(300)
"""


def test_the_writer_lock_survives_a_deleted_lock_file_and_dies_with_its_process(tmp_path):
    build(tmp_path / "c", n=2)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD.format(tests=str(Path(__file__).parents[1]),
                                           path=str(tmp_path / "c"))],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        for name in ("lock", "lock.tmp"):  # whatever a user might delete
            (tmp_path / "c" / name).unlink(missing_ok=True)
        with pytest.raises(CollectionLockedError):
            Engine.open(tmp_path / "c", FAST)
        with Engine.open(tmp_path / "c", FAST, readonly=True) as reader:  # readers may
            assert reader.info()["items"] == 2
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
        with Engine.open(tmp_path / "c", FAST) as engine:  # the kernel let go of it
            engine.upsert(Item(id="after"), jpeg_bytes(7))
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_a_writer_opens_and_searches_on_a_full_disk(tmp_path, monkeypatch):
    ids = build(tmp_path / "c")
    import imgsearch.store.manifest as manifest

    def no_room(*_args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(manifest, "write_manifest", no_room)
    monkeypatch.setattr(indexes, "write_manifest", no_room)
    with Engine.open(tmp_path / "c", FAST) as engine:
        assert any("manifest not updated" in note for note in engine.open_notes)
        assert engine.search(Query(similar_to=ids[0], limit=3)).hits


class FullAtCommit:
    """A connection whose first COMMIT fails as on a full disk (WAL mode writes most
    pages at COMMIT), leaving the transaction open as SQLite does."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.failed = 0

    def execute(self, sql: str, *args: object) -> object:
        if sql == "COMMIT" and not self.failed:
            self.failed += 1
            raise sqlite3.OperationalError("database or disk is full")
        return self.conn.execute(sql, *args)

    def __getattr__(self, name: str) -> object:
        return getattr(self.conn, name)


def test_the_search_log_goes_on_after_a_commit_that_fails_for_room(tmp_path):
    ids = build(tmp_path / "c")
    with Engine.open(tmp_path / "c", FAST, readonly=True) as engine:
        log = engine.logs
        assert log is not None
        proxy = FullAtCommit(log._conn)
        log._conn = proxy  # type: ignore[assignment]
        engine.search(Query(similar_to=ids[0]))
        log.flush()
        assert proxy.failed == 1 and not proxy.conn.in_transaction  # that line is lost
        engine.search(Query(similar_to=ids[1]))
        assert engine.report()["all"]["searches"] == 1  # the log goes on


def test_a_commit_that_fails_for_room_leaves_the_catalog_writable(tmp_path, monkeypatch):
    """In WAL mode SQLite writes most pages at COMMIT: a full disk fails the COMMIT
    itself, which must roll back rather than leave a transaction open."""
    ids = build(tmp_path / "c")

    with Engine.open(tmp_path / "c", FAST) as engine:
        proxy = FullAtCommit(engine.catalog._writer)
        monkeypatch.setattr(engine.catalog, "_writer", proxy)
        with pytest.raises(StorageFullError):
            engine.upsert(Item(id="lost"), jpeg_bytes(200))
        assert proxy.failed == 1 and not proxy.conn.in_transaction
        engine.upsert(Item(id="after"), jpeg_bytes(300))  # writes work again
        assert "lost" not in engine
    with Engine.open(tmp_path / "c", FAST) as engine:
        assert all_ids(engine) == {*ids, "after"}
