"""Rank fusion: hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from imgsearch.search.fusion import RankedList, fuse, reciprocal_rank_fusion, weighted_fusion


def _list(name, keys, scores, weight=1.0):
    return RankedList(name, np.asarray(keys, np.int64), np.asarray(scores, np.float32), weight)


def test_rrf_matches_hand_computation():
    a = _list("a", [1, 2, 3], [0.9, 0.8, 0.7])
    b = _list("b", [3, 1], [5.0, 4.0])
    fused = reciprocal_rank_fusion([a, b], k=60)
    expected = {1: 1 / 61 + 1 / 62, 2: 1 / 62, 3: 1 / 63 + 1 / 61}
    assert list(fused.keys) == [1, 3, 2]
    for key, score in zip(fused.keys, fused.scores, strict=True):
        assert score == pytest.approx(expected[int(key)], rel=1e-6)
    assert list(fused.ranks["a"]) == [1, 3, 2]
    assert list(fused.ranks["b"]) == [2, 1, 0]
    assert np.isnan(fused.list_scores["b"][2])


def test_rrf_weights_and_ties_break_by_key():
    a = _list("a", [7], [1.0], weight=2.0)
    b = _list("b", [5], [1.0], weight=2.0)
    fused = reciprocal_rank_fusion([a, b], k=10)
    assert list(fused.keys) == [5, 7]
    assert fused.scores[0] == pytest.approx(2 / 11)


def test_weighted_fusion_normalises_each_list():
    a = _list("a", [1, 2], [10.0, 0.0], weight=1.0)
    b = _list("b", [2, 1], [0.5, 0.3], weight=3.0)
    fused = weighted_fusion([a, b])
    scores = dict(zip(fused.keys.tolist(), fused.scores.tolist(), strict=True))
    # each list scales to 0.1..1: a=(1, 0.1), b=(0.1, 1) for keys (1, 2)
    assert scores[1] == pytest.approx(0.25 * 1.0 + 0.75 * 0.1)
    assert scores[2] == pytest.approx(0.25 * 0.1 + 0.75 * 1.0)
    assert list(fused.keys) == [2, 1]


def test_zero_weight_list_takes_no_part():
    a = _list("a", [1, 2], [0.9, 0.8])
    b = _list("b", [3], [5.0], weight=0.0)
    fused = fuse([a, b], "rrf", 60)
    assert list(fused.keys) == [1, 2] and "b" not in fused.ranks


def test_unknown_method_and_empty_lists():
    with pytest.raises(ValueError, match="rrf"):
        fuse([], "magic", 60)
    assert len(fuse([], "rrf", 60).keys) == 0
