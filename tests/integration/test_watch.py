"""A watched folder is mirrored into its collection: real files, a real watcher.

Waits poll for an outcome with a generous limit; nothing here measures time.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import imagegen as gen
from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.engine.watch import FolderWatcher, open_for_writing
from imgsearch.types import IngestReport

LIMIT_S = 30.0


def wait_for(condition: Callable[[], bool], limit_s: float = LIMIT_S) -> bool:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    photos = tmp_path / "photos"
    gen.write_image(photos / "beach.jpg", 1)
    gen.write_image(photos / "trip" / "IMG_0001.png", 2)
    old = time.time() - 60
    for path in photos.rglob("*.*"):
        os.utime(path, (old, old))
    return photos


@pytest.fixture
def reports() -> list[IngestReport]:
    return []


@pytest.fixture
def watcher(engine: Engine, folder: Path, reports: list[IngestReport]
            ) -> Iterator[FolderWatcher]:
    watching = FolderWatcher(engine, folder, settle_s=0.3, on_report=reports.append).start()
    yield watching
    watching.stop()


def test_initial_sync_gives_the_ids_index_gives(watcher: FolderWatcher, engine: Engine,
                                                folder: Path, tmp_path: Path,
                                                settings: Settings) -> None:
    with Engine.open(tmp_path / "indexed", settings) as indexed:
        indexed.ingest(folder)
        expected = {i.id: i.source for i in indexed.catalog.iter_items()}
    watched = {i.id: i.source for i in engine.catalog.iter_items()}
    assert watched == expected == {"beach.jpg": str(folder.resolve()),
                                   "trip/IMG_0001.png": str(folder.resolve())}


def test_create_modify_move_delete(watcher: FolderWatcher, engine: Engine,
                                   folder: Path) -> None:
    gen.write_image(folder / "new.jpg", 3)
    assert wait_for(lambda: "new.jpg" in engine)
    first_hash = engine.get("new.jpg").content_hash

    gen.write_image(folder / "new.jpg", 4)  # same name, another picture
    assert wait_for(lambda: engine.get("new.jpg").content_hash != first_hash)

    (folder / "album").mkdir()
    os.rename(folder / "new.jpg", folder / "album" / "moved.jpg")
    assert wait_for(lambda: "album/moved.jpg" in engine and "new.jpg" not in engine)
    assert engine.get("album/moved.jpg").tags == ("album",)

    (folder / "album" / "moved.jpg").unlink()
    assert wait_for(lambda: "album/moved.jpg" not in engine)
    assert {i.id for i in engine.catalog.iter_items()} == {"beach.jpg", "trip/IMG_0001.png"}


def test_folders_moved_out_and_in(watcher: FolderWatcher, engine: Engine, folder: Path,
                                  tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    shutil.move(folder / "trip", outside)
    assert wait_for(lambda: "trip/IMG_0001.png" not in engine)
    shutil.move(outside, folder / "returned")
    assert wait_for(lambda: "returned/IMG_0001.png" in engine)


def test_a_file_being_written_is_not_read_until_complete(watcher: FolderWatcher,
                                                         engine: Engine, folder: Path,
                                                         reports: list[IngestReport]) -> None:
    data = gen.jpeg_bytes(5, (640, 480))
    path = folder / "slow.jpg"
    with open(path, "wb") as handle:
        handle.write(data[: len(data) // 2])
        handle.flush()
        if open_for_writing(path) is None:
            pytest.skip("file leases are not available here, so an open writer cannot "
                        "be seen; only the settle time guards such files")
        syncs = watcher.stats.syncs
        # the watcher looks at the folder several times and holds the file back each time
        assert wait_for(lambda: watcher.stats.syncs >= syncs + 3 and watcher.stats.held == 1)
        assert "slow.jpg" not in engine
        handle.write(data[len(data) // 2:])
    assert wait_for(lambda: "slow.jpg" in engine)
    assert engine.get("slow.jpg").width == 640
    assert not [f for r in reports for f in r.failed], "the half-written file was read"


def test_failures_are_reported_once_and_retried_when_the_file_changes(
        watcher: FolderWatcher, engine: Engine, folder: Path,
        reports: list[IngestReport]) -> None:
    (folder / "broken.jpg").write_bytes(gen.truncated_jpeg(6))
    assert wait_for(lambda: any(r.failed for r in reports))
    failed = [f for r in reports for f in r.failed]
    assert [f.code for f in failed] == ["corrupt_image"]
    assert failed[0].source.endswith("broken.jpg")
    gen.write_image(folder / "other.jpg", 7)  # another change: broken.jpg is not re-read
    assert wait_for(lambda: "other.jpg" in engine)
    assert len([f for r in reports for f in r.failed]) == 1
    gen.write_image(folder / "broken.jpg", 8)  # repaired: read again, and indexed
    assert wait_for(lambda: "broken.jpg" in engine)


def test_changes_are_synced_without_rescanning_the_folder(watcher: FolderWatcher,
                                                          engine: Engine,
                                                          folder: Path) -> None:
    assert wait_for(lambda: watcher.stats.rescans == 2)  # at start, and as the watch began
    gen.write_image(folder / "trip" / "day2" / "IMG_0002.jpg", 2)
    os.rename(folder / "beach.jpg", folder / "trip" / "beach.jpg")
    assert wait_for(lambda: {i.id for i in engine.catalog.iter_items()} == {
        "trip/IMG_0001.png", "trip/day2/IMG_0002.jpg", "trip/beach.jpg"})
    shutil.rmtree(folder / "trip" / "day2")
    assert wait_for(lambda: "trip/day2/IMG_0002.jpg" not in engine)
    assert watcher.stats.rescans == 2


def test_more_changes_than_it_keeps_fall_back_to_a_rescan(engine: Engine,
                                                          folder: Path) -> None:
    watching = FolderWatcher(engine, folder, settle_s=0.3, max_pending=5).start()
    try:
        assert wait_for(lambda: watching.stats.rescans == 2)
        for i in range(40):
            (folder / f"many{i:02d}.png").write_bytes(gen.png_bytes(300 + i, (64, 48)))
        assert wait_for(lambda: watching.stats.added == 42)
        assert watching.stats.rescans > 2
        assert engine.catalog.count() == 42
    finally:
        watching.stop()


def test_a_burst_is_coalesced_into_few_syncs(watcher: FolderWatcher, engine: Engine,
                                             folder: Path) -> None:
    burst = folder / "burst"
    burst.mkdir()
    for i in range(200):
        (burst / f"p{i:03d}.png").write_bytes(gen.png_bytes(100 + i, (64, 48)))
    assert wait_for(lambda: watcher.stats.added == 202)
    assert engine.catalog.count() == 202
    assert watcher.stats.syncs < 100  # events coalesced, not one sync per file


def test_hidden_folders_and_the_collection_inside_the_folder_are_ignored(
        tmp_path: Path, settings: Settings) -> None:
    photos = tmp_path / "photos"
    gen.write_image(photos / "a.jpg", 1)
    with Engine.open(photos / ".collection", settings) as engine:
        watching = FolderWatcher(engine, photos, settle_s=0.3).start()
        try:
            gen.write_image(photos / ".hidden" / "b.jpg", 2)
            gen.write_image(photos / "c.jpg", 3)
            assert wait_for(lambda: watching.stats.added == 2)  # a.jpg, then c.jpg
            syncs = watching.stats.syncs
            time.sleep(1.5)  # the collection's own writes must not wake the watcher
            assert watching.stats.syncs == syncs
            assert {i.id for i in engine.catalog.iter_items()} == {"a.jpg", "c.jpg"}
        finally:
            watching.stop()


def test_a_failed_sync_is_reported_and_the_next_one_catches_up(
        engine: Engine, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from imgsearch.engine import watch as watch_module

    real = watch_module.run_ingest
    failed_once: list[bool] = []

    def flaky(*args: object, **kwargs: object) -> IngestReport:
        if kwargs.get("changed") is not None and not failed_once:
            failed_once.append(True)
            raise OSError(28, "No space left on device")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(watch_module, "run_ingest", flaky)
    errors: list[str] = []
    watching = FolderWatcher(engine, folder, settle_s=0.3, on_error=errors.append).start()
    try:
        assert wait_for(lambda: watching.stats.rescans == 2)
        gen.write_image(folder / "after.jpg", 9)
        assert wait_for(lambda: "after.jpg" in engine)
        assert errors == ["OSError: [Errno 28] No space left on device"]
    finally:
        watching.stop()


def test_a_file_held_for_its_age_is_looked_at_again_when_it_settles(
        engine: Engine, folder: Path) -> None:
    now = time.time()
    watching = FolderWatcher(engine, folder, settle_s=0.4, clock=lambda: now)
    watching.sync()  # the first sync: the old files
    fresh = gen.write_image(folder / "fresh.jpg", 7)
    os.utime(fresh, (now - 0.1, now - 0.1))
    watching.sync(full=True)
    assert watching.stats.held == 1 and "fresh.jpg" not in engine
    assert watching.settles_at == pytest.approx(now - 0.1 + 0.4)
    with open(fresh, "ab") as writer:  # a writer has it open: only polling can tell
        os.utime(fresh, (now - 1, now - 1))
        if open_for_writing(fresh) is None:
            pytest.skip("file leases are not available here")
        watching.sync(full=True)
        assert watching.stats.held == 1 and watching.settles_at is None
        writer.write(b"")
    watching.sync(full=True)
    assert "fresh.jpg" in engine and watching.settles_at is None
