"""The positions of a filter mask's true values, at every share of true values."""

from __future__ import annotations

import numpy as np
import pytest

from imgsearch.store.columns import true_positions


@pytest.mark.parametrize("share", [0.0, 0.01, 0.04, 0.05, 0.08, 0.1, 0.11, 0.5, 1.0])
def test_true_positions_match_flatnonzero(share):
    rng = np.random.default_rng(int(share * 1000))
    for total in (1, 7, 8, 9, 1000, 100_003):
        mask = rng.random(total) < share
        found = true_positions(mask)
        assert found.dtype == np.int64
        assert np.array_equal(found, np.flatnonzero(mask))


def test_true_positions_of_runs_and_of_an_empty_mask():
    mask = np.zeros(50_000, bool)
    mask[100:3000] = True  # 5.8 %: the marked-positions path, with long runs
    mask[-1] = True
    assert np.array_equal(true_positions(mask), np.flatnonzero(mask))
    assert len(true_positions(np.zeros(0, bool))) == 0
