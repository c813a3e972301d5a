""""More like this" fuses the item's image, its text and its category, through Engine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from imagegen import picture
from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.types import Filters, Item, Query

IMAGE_ONLY = {"similar_weight_text": 0.0, "similar_weight_category": 0.0,
              "similar_weight_brand": 0.0}
N = 40


def _items() -> Iterator[tuple[Item, object]]:
    # Every picture differs; the titles of "twin" and "query" are the same words, and
    # "cousin" shares only the query's category. Both look nothing like the query.
    yield (Item(id="query", title="striped porcelain vase", category="vases", brand="acme"),
           picture(1))
    yield Item(id="sibling", title="other stuff", category="misc", brand="acme"), picture(1000)
    yield Item(id="twin", title="striped porcelain vase", category="lamps"), picture(2)
    yield Item(id="cousin", title="plain object", category="vases"), picture(9)
    for i in range(N - 4):
        yield (Item(id=f"x{i}", title=f"filler {i} thing", category=f"c{i % 5}"),
               picture(100 + i))


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mlt") / "c"
    with Engine.open(path, Settings(text_encoder="fake")) as engine:
        report = engine.ingest_items(_items())
        assert report.ok, report.failed
    return path


def _search(path: Path, query: Query, **settings: float) -> list:
    with Engine.open(path, Settings(text_encoder="fake", **settings), readonly=True) as engine:
        return engine.search(query).hits


def _position(hits: list, item_id: str) -> int:
    ids = [h.id for h in hits]
    return ids.index(item_id) if item_id in ids else len(ids)


def test_the_items_text_brings_a_same_titled_item_up(collection: Path) -> None:
    query = Query(similar_to="query", limit=N - 1, collapse_duplicates=False)
    image_only = _search(collection, query, **IMAGE_ONLY)
    fused = _search(collection, query, similar_weight_category=0.0)
    assert _position(fused, "twin") <= 2
    # its picture alone leaves it lower (where depends on the descriptor)
    assert _position(image_only, "twin") > _position(fused, "twin")
    twin = fused[_position(fused, "twin")]
    assert twin.matched_by["text"]["score"] > 0.5  # the same title; category, brand differ
    assert "image" in twin.matched_by  # scored on every space, not only its own list
    assert all(h.id != "query" for h in fused)


def test_category_is_a_soft_signal(collection: Path) -> None:
    query = Query(similar_to="query", limit=N - 1, collapse_duplicates=False)
    without = _search(collection, query, **IMAGE_ONLY)
    fused = _search(collection, query, similar_weight_text=0.0)  # image + category
    assert _position(fused, "cousin") < _position(without, "cousin")
    # soft: items of other categories still come back, every other item in fact
    assert len(fused) == N - 1
    assert {h.category for h in fused} > {"vases"}
    cousin = next(h for h in fused if h.id == "cousin")
    assert "category" in cousin.matched_by
    # sharing a category is no evidence of looking alike: it does not make the hit sure
    assert cousin.confidence < 0.9


def test_filters_still_apply_to_every_signal(collection: Path) -> None:
    hits = _search(collection, Query(similar_to="query", limit=20,
                                     filters=Filters(categories=("c1",))))
    assert hits and {h.category for h in hits} == {"c1"}


def test_an_item_with_only_an_image_ranks_as_before(tmp_path: Path) -> None:
    with Engine.open(tmp_path / "c", Settings(text_encoder="none")) as engine:
        engine.ingest_items((Item(id=f"p{i}"), picture(i)) for i in range(25))
        hits = engine.search(Query(similar_to="p0", limit=5)).hits
        plain = engine.search(Query(vector=engine.spaces["image"].vector_of_key(
            engine.catalog.key_of("p0")), limit=6)).hits
    assert [h.id for h in hits] == [h.id for h in plain if h.id != "p0"][:5]
    assert [h.score for h in hits] == [h.score for h in plain if h.id != "p0"][:5]


def test_brand_is_a_soft_signal_too(collection: Path) -> None:
    query = Query(similar_to="query", limit=N - 1, collapse_duplicates=False)
    without = _search(collection, query, **IMAGE_ONLY)
    fused = _search(collection, query, similar_weight_text=0.0, similar_weight_category=0.0)
    assert _position(fused, "sibling") < _position(without, "sibling")
    assert len(fused) == N - 1
    assert "brand" in fused[_position(fused, "sibling")].matched_by


def test_a_category_written_after_a_collection_without_any_is_used(tmp_path: Path) -> None:
    # A collection with no category or brand at all skips reading the item's own; the
    # first write that brings one must end that at once, for every query after it.
    with Engine.open(tmp_path / "c", Settings(text_encoder="none")) as engine:
        engine.ingest_items((Item(id=f"p{i}"), picture(i)) for i in range(30))
        engine.warm()  # the filter columns are read: they know no item has either
        assert "category" not in engine.search(Query(similar_to="p0", limit=5)).plan
        report = engine.ingest_items([(Item(id="query", category="vases"), picture(100)),
                                      (Item(id="cousin", category="vases"), picture(200))])
        assert report.ok, report.failed
        for _ in range(2):  # before and after a filter has read the written rows again
            hits = engine.search(Query(similar_to="query", limit=31,
                                       collapse_duplicates=False)).hits
            cousin = next(h for h in hits if h.id == "cousin")
            assert "category" in cousin.matched_by
            assert engine.search(Query(similar_to="query", limit=1,
                                       filters=Filters(categories=("vases",)))).hits
