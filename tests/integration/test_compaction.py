"""Vector files compact by themselves once dead rows pass a share of a file, and on
request; a kill -9 at any step of a compaction loses nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from imagegen import jpeg_bytes
from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.types import Item, Query

SETTINGS = Settings(text_encoder="fake", ingest_workers=1, index_type="flat")
ROW_BYTES = 992 * 4  # one descriptor vector, float32


def _fill(engine: Engine, n: int) -> None:
    engine.upsert_many([(Item(id=f"i{k}", title=f"item number {k}"), jpeg_bytes(k, (64, 48)))
                        for k in range(n)])


def _answers(engine: Engine) -> list[list[tuple[str, float]]]:
    return [[(h.id, round(h.score, 6)) for h in engine.search(Query(
        images=[jpeg_bytes(s, (64, 48))], limit=4, min_confidence=0,
        collapse_duplicates=False)).hits] for s in range(12)]


def _files(collection: Path) -> list[str]:
    return sorted(p.name for p in (collection / "vectors").iterdir())


def _deleted_and_answers(collection: Path, deleted: int) -> list[list[tuple[str, float]]]:
    """A collection of 12 items with ``deleted`` of them deleted, and its answers."""
    with Engine.open(collection, SETTINGS) as engine:
        _fill(engine, 12)
        for k in range(deleted):
            engine.delete(f"i{k}")
        return _answers(engine)


def test_saving_compacts_a_file_whose_dead_rows_pass_the_threshold(tmp_path: Path) -> None:
    collection = tmp_path / "c"
    before = _deleted_and_answers(collection, 4)  # 4 of 12 rows dead: past 0.2
    # closing saved: the files were compacted then
    assert _files(collection) == ["image.1.f32", "text.1.f32"]
    assert (collection / "vectors" / "image.1.f32").stat().st_size == 8 * ROW_BYTES
    with Engine.open(collection, SETTINGS) as engine:
        assert _answers(engine) == before
        stats = engine.catalog.vector_file_stats()["image"]
        assert (stats["rows"], stats["live"]) == (8, 8)
        assert all(f"i{k}" not in engine for k in range(4))


def test_a_few_dead_rows_stay_until_asked(tmp_path: Path) -> None:
    collection = tmp_path / "c"
    before = _deleted_and_answers(collection, 2)  # 2 of 12: under 0.2
    assert _files(collection) == ["image.0.f32", "text.0.f32"]
    with Engine.open(collection, SETTINGS) as engine:
        done = engine.compact()
        assert set(done) == {"image", "text"}
        assert done["image"]["dead_rows_dropped"] == 2
        assert (done["image"]["bytes_before"], done["image"]["bytes_after"]) == (
            12 * ROW_BYTES, 10 * ROW_BYTES)
        assert _answers(engine) == before
        assert engine.compact() == {}  # nothing dead left
    assert _files(collection) == ["image.1.f32", "text.1.f32"]
    with Engine.open(collection, SETTINGS.replace(compact_tombstone_ratio=0.1)) as engine:
        assert _answers(engine) == before


# A child process that compacts and kills itself (SIGKILL) at one step of it.
_CHILD = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from imgsearch.config import Settings
    from imgsearch.engine import Engine
    from imgsearch.store import catalog as catalog_module, vectors

    step = sys.argv[2]

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    def after(cls, name, when):
        original = getattr(cls, name)
        def wrapped(self, *args, **kwargs):
            if when == "before" and self_is_new(self):
                die()
            result = original(self, *args, **kwargs)
            if when == "after" and self_is_new(self):
                die()
            return result
        setattr(cls, name, wrapped)

    def self_is_new(obj):
        path = getattr(obj, "path", None)
        return path is None or not path.name.split(".")[1] == "0"

    if step == "appended":
        after(vectors.SpaceFile, "append", "after")
    elif step == "synced":
        after(vectors.SpaceFile, "sync", "after")
    elif step == "committed":
        after(vectors.VectorFiles, "forget", "before")
    elif step == "done":
        after(catalog_module.Catalog, "compact_vectors", "after")
    engine = Engine.open(Path(sys.argv[1]), Settings(text_encoder="fake", index_type="flat"))
    engine.compact()
    sys.exit(3)  # never reached: the step kills the process
""")


@pytest.mark.parametrize("step", ["appended", "synced", "committed", "done"])
def test_kill_9_at_each_step_of_a_compaction_loses_nothing(tmp_path: Path,
                                                             step: str) -> None:
    collection = tmp_path / "c"
    before = _deleted_and_answers(collection, 2)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(collection), step], env=env,
                          capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    with Engine.open(collection, SETTINGS) as engine:  # a writer: it sweeps what is left
        assert engine.catalog.count() == 10
        assert _answers(engine) == before
        for name, space in engine.spaces.items():
            assert len(space.index) == engine.catalog.count_vectors(name) == 10
        named = {stats["file"] for stats in engine.catalog.vector_file_stats().values()}
        assert set(_files(collection)) == named  # no file left over, none missing
        # the first space's switch was committed or not; the second was not reached
        first = "image.1.f32" if step in ("committed", "done") else "image.0.f32"
        assert named == {first, "text.0.f32"}
        engine.compact()  # and it compacts again from there
        assert _answers(engine) == before
