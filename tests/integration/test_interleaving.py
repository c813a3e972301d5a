"""Searches running while items are written: no errors, read-your-writes, no ghosts."""

from __future__ import annotations

import threading

from imagegen import picture
from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.types import Item, Query


def test_concurrent_searches_with_upserts_and_deletes(tmp_path):
    settings = Settings(text_encoder="fake", ingest_workers=1)
    with Engine.open(tmp_path / "c", settings) as engine:
        engine.ingest_items((Item(id=f"base{i}"), picture(i, (48, 40))) for i in range(60))
        errors: list[BaseException] = []
        deleted: set[str] = set()
        stop = threading.Event()

        def searcher(seed: int) -> None:
            n = 0
            while not stop.is_set() and n < 400:
                n += 1
                gone = set(deleted)  # deletes acknowledged before this search began
                try:
                    ids = [h.id for h in engine.search(Query(
                        images=[picture(seed + n % 7, (48, 40))], limit=30,
                        min_confidence=0, collapse_duplicates=False)).hits]
                    ghosts = set(ids) & gone
                    if ghosts:
                        errors.append(AssertionError(f"deleted items came back: {ghosts}"))
                except BaseException as exc:
                    errors.append(exc)

        threads = [threading.Thread(target=searcher, args=(s,)) for s in range(4)]
        for thread in threads:
            thread.start()
        try:
            for i in range(40):
                image = picture(1000 + i, (48, 40))
                engine.upsert(Item(id=f"new{i}"), image)
                # read your write: the very next search finds it
                hits = engine.search(Query(images=[image], limit=1, min_confidence=0)).hits
                assert hits and hits[0].id == f"new{i}"
                if i % 3 == 0:
                    victim = f"base{i}"
                    assert engine.delete(victim)
                    deleted.add(victim)  # acknowledged: no search begun from now may return it
                    assert victim not in [h.id for h in engine.search(Query(
                        images=[picture(i, (48, 40))], limit=60, min_confidence=0,
                        collapse_duplicates=False)).hits]
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        assert not errors, errors[:3]
        assert engine.catalog.count() == 60 + 40 - len(deleted)
