"""Business signals, diversity and multi-image fusion, through Engine.search."""

from __future__ import annotations

import numpy as np
import pytest

from imagegen import picture
from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.errors import InvalidQueryError
from imgsearch.search.rerank import BusinessWeights, business_scores, mmr_order
from imgsearch.types import Filters, Item, Query


@pytest.fixture
def shop(tmp_path):
    with Engine.open(tmp_path / "c", Settings(text_encoder="fake")) as engine:
        engine.ingest_items(
            (Item(id=f"i{i}", title=f"thing {i}", category=f"c{i % 3}",
                  popularity=float(i * 10), rating=float(i % 5),
                  created_at=f"2026-{1 + i % 12:02d}-01"), picture(i))
            for i in range(30))
        yield engine


def _ids(result):
    return [h.id for h in result.hits]


def test_popularity_boost_reorders(shop):
    base = shop.similar("i0", limit=10)
    boosted = shop.search(Query(similar_to="i0", limit=10, boosts={"popularity": 1.0}))
    assert _ids(base) != _ids(boosted)
    # all weight on popularity: the candidates come out most popular first
    pops = [shop.get(i).popularity for i in _ids(boosted)]
    assert pops == sorted(pops, reverse=True)
    half = shop.search(Query(similar_to="i0", limit=10, boosts={"popularity": 0.5}))
    assert _ids(half) not in (_ids(base), _ids(boosted))


def test_boost_validation(shop):
    with pytest.raises(InvalidQueryError):
        shop.search(Query(similar_to="i0", boosts={"popularity": 0.8, "rating": 0.5}))
    with pytest.raises(InvalidQueryError):
        shop.search(Query(similar_to="i0", boosts={"likes": 0.5}))


def test_max_per_category(shop):
    result = shop.search(Query(similar_to="i1", limit=10, max_per_category=2))
    categories = [shop.get(i).category for i in _ids(result)]
    assert len(result.hits) == 6
    assert all(categories.count(c) <= 2 for c in set(categories))


def test_mmr_spreads_near_copies(tmp_path):
    with Engine.open(tmp_path / "m", Settings(text_encoder="fake")) as engine:
        base = picture(1, (96, 72))
        for i in range(4):  # four near-identical shots of one picture
            engine.upsert(Item(id=f"same{i}"), base.rotate(i * 0.5))
        for i in range(6):
            engine.upsert(Item(id=f"other{i}"), picture(100 + i, (96, 72)))
        plain = engine.search(Query(images=[base], limit=4, min_confidence=0,
                                    collapse_duplicates=False))
        diverse = engine.search(Query(images=[base], limit=4, min_confidence=0,
                                      collapse_duplicates=False, mmr_lambda=0.3))
        assert sum(i.startswith("same") for i in _ids(plain)) == 4
        assert sum(i.startswith("same") for i in _ids(diverse)) < 4
        assert _ids(diverse)[0].startswith("same")


def test_multi_image_rrf_finds_each_example(shop):
    examples = [picture(3), picture(17)]
    result = shop.search(Query(images=examples, limit=5, multi_image="rrf"))
    assert {"i3", "i17"} <= set(_ids(result))
    assert "fused:rrf" in result.plan
    assert result.hits[0].matched_by.keys() <= {"image:1", "image:2"}
    with_negative = shop.search(Query(images=examples, negative_images=[picture(17)],
                                      limit=5, multi_image="rrf", min_confidence=0))
    # rank fusion rewards items near both examples: i3, the copy of the first, is first in
    # its own list but 24th of 30 in the second one, so it lands 4th (measured with
    # descriptor-v2; it was in the top 3 with v1's neighbour order)
    assert "i3" in _ids(with_negative)[:5]
    assert "i17" not in _ids(with_negative)  # the counter-example pushed its own match out
    with pytest.raises(InvalidQueryError):
        shop.search(Query(images=examples, multi_image="median"))


def test_business_scores_by_hand():
    scores = np.asarray([1.0, 0.5], np.float32)
    items = [Item(id="a", rating=1.0), Item(id="b", rating=5.0)]
    got = business_scores(scores, items, BusinessWeights(rating=0.5))
    # relevance (1, 0.5) * 0.5 + rating scaled over [0, 5] -> (0.2, 1.0) * 0.5
    assert np.allclose(got, [0.5 * 1.0 + 0.5 * 0.2, 0.5 * 0.5 + 0.5 * 1.0])


def test_mmr_order_by_hand():
    vectors = np.asarray([[1, 0], [1, 0], [0, 1]], np.float32)
    keys = np.asarray([10, 11, 12])

    def vectors_of(k):
        return k, vectors[k - 10]

    order = mmr_order(keys, np.asarray([1.0, 0.99, 0.9], np.float32), vectors_of, 0.5)
    assert list(order) == [0, 2, 1]


def test_colour_as_boost_or_filter(tmp_path):
    from PIL import Image

    def swatch(rgb):
        image = Image.new("RGB", (64, 64), (250, 250, 250))
        image.paste(Image.new("RGB", (40, 40), rgb), (12, 12))
        return image

    for mode in ("boost", "filter"):
        settings = Settings(text_encoder="fake", parsed_colors=mode)
        with Engine.open(tmp_path / mode, settings) as engine:
            engine.upsert(Item(id="blue", title="coffee mug"), swatch((20, 40, 220)))
            engine.upsert(Item(id="red", title="coffee mug"), swatch((220, 20, 20)))
            engine.upsert(Item(id="green", title="coffee mug"), swatch((30, 160, 60)))
            result = engine.search(Query(text="red coffee mug", min_confidence=0))
            ids = [h.id for h in result.hits]
            assert ids[0] == "red"
            if mode == "boost":
                assert set(ids) == {"red", "blue", "green"}
                assert result.interpretation["boosts"] == {"colors": ["red"]}
                assert result.interpretation["colors"] == {"red": "prefer"}
            else:
                assert ids == ["red"]
                assert result.interpretation["colors"] == {"red": "filter"}
            overruled = engine.search(Query(text="red coffee mug", min_confidence=0,
                                            filters=Filters(colors=("blue",))))
            assert [h.id for h in overruled.hits] == ["blue"]  # the explicit filter wins
            assert overruled.interpretation["colors"] == \
                {"red": "prefer" if mode == "boost" else "ignored"}
            explicit = engine.search(Query(text="coffee mug", prefer_colors=("green",),
                                           min_confidence=0, parse=False))
            assert explicit.hits[0].id == "green"


def _swatch(rgb, seed):
    """A coloured square on a picture of its own: the colour is dominant, the rest varies."""
    from PIL import Image

    image = picture(seed).convert("RGB")
    image.paste(Image.new("RGB", (120, 90), rgb), (20, 15))
    return image


@pytest.fixture
def palette(tmp_path):
    """24 items (enough to calibrate): red, blue and green ones, titled alike."""
    colours = {"red": (220, 20, 20), "blue": (20, 40, 220), "green": (30, 160, 60)}
    with Engine.open(tmp_path / "c", Settings(text_encoder="fake")) as engine:
        engine.ingest_items((Item(id=f"{name}{i}", title=f"coffee mug {i}"),
                             _swatch(rgb, 10 * i + n))
                            for i in range(8) for n, (name, rgb) in enumerate(colours.items()))
        yield engine


def test_a_colour_word_is_a_boost_by_default(palette):
    assert Settings().parsed_colors == "boost"
    result = palette.search(Query(text="blue coffee mug", limit=24, min_confidence=0))
    ids = _ids(result)
    assert {i.rstrip("0123456789") for i in ids} == {"red", "blue", "green"}  # none removed
    assert ids[0].startswith("blue")
    assert result.interpretation["colors"] == {"blue": "prefer"}
    assert "colors" not in result.interpretation["filters"]


def test_an_explicit_colour_stays_a_hard_filter(palette):
    result = palette.search(Query(text="blue coffee mug", limit=24, min_confidence=0,
                                  filters=Filters(colors=("red",))))
    def colours(ids):
        return [palette.get(i).colors for i in ids]

    assert result.hits and all("red" in c for c in colours(_ids(result)))
    without_red = [i for i in (f"blue{n}" for n in range(8)) if "red" not in palette.get(i).colors]
    assert without_red and not set(without_red) & set(_ids(result))
    plain = palette.search(Query(images=[_swatch((220, 20, 20), 10)], limit=24,
                                 filters=Filters(colors=("green",))))
    assert all("green" in c for c in colours(_ids(plain)))


def test_hybrid_with_a_colour_word_keeps_the_pictured_item(palette):
    # The README's example: an image of a red item, the text "in blue". The colour word
    # must not filter the pictured item away.
    result = palette.search(Query(images=[_swatch((220, 20, 20), 0)], text="in blue",
                                  image_weight=0.7))
    assert result.empty_reason is None
    assert "red0" in _ids(result)
    assert result.interpretation["colors"] == {"blue": "prefer"}
