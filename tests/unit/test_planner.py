"""The ranking stages after the candidates, with dictionaries standing in for the
catalog and the vector store: no collection on disk."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from imgsearch.config import Settings
from imgsearch.errors import InvalidQueryError
from imgsearch.search.executor import Ranked
from imgsearch.search.planner import RerankOptions, business_weights, rerank
from imgsearch.search.rerank import BusinessWeights
from imgsearch.types import Item

ITEMS = {
    1: Item(id="a", category="hats", colors=("red",), popularity=1.0),
    2: Item(id="b", category="hats", colors=("blue",), popularity=100.0),
    3: Item(id="c", category="bags", colors=("blue",), popularity=10.0),
    4: Item(id="d", category="bags", colors=("red",), popularity=1.0),
}
VECTORS = {1: [1.0, 0.0], 2: [1.0, 0.0], 3: [0.0, 1.0], 4: [0.6, 0.8]}
NONE = BusinessWeights(0, 0, 0, 0)


def items_by_key(keys: list[int]) -> dict[int, Item]:
    return {k: ITEMS[k] for k in keys if k in ITEMS}


def vectors_of_keys(keys: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    found = np.array([k for k in keys.tolist() if k in VECTORS], np.int64)
    return found, np.array([VECTORS[k] for k in found.tolist()], np.float32).reshape(-1, 2)


def ranked() -> tuple[Ranked, NDArray[np.float32], NDArray[np.int64]]:
    keys = np.array([1, 2, 3, 4], np.int64)
    scores = np.array([0.9, 0.85, 0.8, 0.75], np.float32)
    return (Ranked(keys, scores, {"image": scores.copy()}, {"image": np.arange(1, 5)}),
            np.array([0.4, 0.3, 0.2, 0.1], np.float32), keys.copy())


def order(options: RerankOptions) -> list[int]:
    out, confidence, stands_for = rerank(*ranked(), options, items_by_key, vectors_of_keys)
    # confidences and stand-ins travel with their candidates
    assert dict(zip(out.keys.tolist(), confidence.tolist(), strict=True)) == pytest.approx(
        {k: c for k, c in zip([1, 2, 3, 4], [0.4, 0.3, 0.2, 0.1], strict=True)
         if k in out.keys.tolist()})
    assert stands_for.tolist() == out.keys.tolist()
    return out.keys.tolist()


def test_nothing_asked_leaves_the_block_as_it_is() -> None:
    block = ranked()
    out = rerank(*block, RerankOptions(NONE), items_by_key, vectors_of_keys)
    assert out[0] is block[0]


def test_a_cap_per_category_keeps_the_best_of_each() -> None:
    assert order(RerankOptions(NONE, max_per_category=1)) == [1, 3]


def test_a_preferred_colour_moves_its_items_up() -> None:
    assert order(RerankOptions(NONE, prefer_colors=("red",), color_boost=0.5))[:2] == [1, 4]


def test_popularity_reorders_by_weight() -> None:
    assert order(RerankOptions(BusinessWeights(popularity=0.9)))[0] == 2


def test_mmr_puts_a_different_vector_second() -> None:
    # 2 repeats 1's vector: pure diversity after the first pick takes the farthest (3)
    assert order(RerankOptions(NONE, mmr_lambda=0.0))[:2] == [1, 3]
    assert order(RerankOptions(NONE, mmr_lambda=1.0)) == [1, 2, 3, 4]


def test_boosts_are_checked_by_name_and_sum() -> None:
    settings = Settings()
    assert business_weights({"rating": 0.5}, settings).rating == 0.5
    with pytest.raises(InvalidQueryError, match="unknown boost 'luck'"):
        business_weights({"luck": 0.5}, settings)
    with pytest.raises(InvalidQueryError):
        business_weights({"rating": 0.8, "popularity": 0.8}, settings)
