"""A filtered HNSW walk (filters too broad to score exactly, too narrow to post-filter)
returns only passing items, finds the right ones, and follows updates and deletes."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from imgsearch import Engine, Filters, Item, Query, Settings
from imgsearch.engine.pipeline import Prepared

N = 6000
DIM = 32


def thumbnail() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (90, 90, 90)).save(buffer, "JPEG")
    return buffer.getvalue()


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


def test_filtered_walk_returns_passing_items_through_updates_and_deletes(tmp_path):
    rng = np.random.default_rng(4)
    centres = unit(rng.standard_normal((20, DIM)))
    vectors = unit(centres[rng.integers(0, 20, N)] + 0.5 * rng.standard_normal((N, DIM)))
    category = np.where(rng.random(N) < 0.4, "a", "b")  # 40 %: a walk, not exact scoring
    thumb = thumbnail()
    settings = Settings(index_type="hnsw", image_encoder="fake", text_encoder="none",
                        result_cache_size=0)
    with Engine.open(tmp_path / "c", settings) as engine:
        engine.commit([Prepared(Item(id=f"i{i}", category=str(category[i])),
                                {"image": vectors[i]}, thumb) for i in range(N)])
        queries = unit(rng.standard_normal((30, DIM)))
        only_a = Filters(categories=("a",))

        def search(q: np.ndarray) -> tuple[list[int], str]:
            result = engine.search(Query(vector=q, vector_space="image", filters=only_a,
                                         limit=10))
            return [int(h.id[1:]) for h in result.hits], result.plan

        passing = np.flatnonzero(category == "a")
        found_all = []
        for q in queries:
            found, plan = search(q)
            assert plan == "image:hnsw+prefilter"
            assert all(category[i] == "a" for i in found)
            truth = passing[np.argsort(-(vectors[passing] @ q))[:10]]
            found_all.append(len(set(found) & set(truth.tolist())) / 10)
        assert np.mean(found_all) >= 0.9

        # deletes, moves out of the filter, and new vectors exactly on a query
        first, _ = search(queries[0])
        for i in first[:3]:
            engine.delete(f"i{i}")
        engine.commit([Prepared(Item(id=f"i{i}", category="b"), {"image": vectors[i]}, thumb)
                       for i in first[3:6]])
        moved_in = int(np.flatnonzero(category == "b")[0])
        engine.commit([Prepared(Item(id=f"i{moved_in}", category="a"),
                                {"image": queries[1]}, thumb)])
        category[first[3:6]], category[moved_in] = "b", "a"
        after, plan = search(queries[0])
        assert plan == "image:hnsw+prefilter"
        assert not set(after) & set(first[:6])
        assert all(category[i] == "a" for i in after)
        assert search(queries[1])[0][0] == moved_in
