"""Calibrations of a remote collection, measured from what a backend hands out: the
encoder's prior under ``MIN_VECTORS`` items, the collection's random pairs above, kept
until the collection has grown or shrunk by a fifth."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from numpy.typing import NDArray

from imgsearch.engine.backends.base import Hit, ranked
from imgsearch.engine.remote_confidence import RemoteCalibrations
from imgsearch.search.calibration import MIN_VECTORS, calibrate_sample, prior


class VectorBackend:
    """Rows of random unit vectors in one "image" space, counting what is asked."""

    def __init__(self, n: int, dim: int = 8) -> None:
        self.vectors: dict[str, NDArray[np.float32]] = {}
        self.listed = 0
        self.add(n, dim)

    def add(self, n: int, dim: int = 8) -> None:
        rng = np.random.default_rng(len(self.vectors))
        for _ in range(n):
            v = rng.normal(size=dim).astype(np.float32)
            self.vectors[f"v{len(self.vectors)}"] = v / np.linalg.norm(v)

    def count(self) -> int:
        return len(self.vectors)

    def ids(self, batch: int = 10_000) -> Iterator[list[str]]:
        self.listed += 1
        ids = list(self.vectors)
        for start in range(0, len(ids), batch):
            yield ids[start:start + batch]

    def fetch_vectors(self, space: str, ids: list[str]) -> dict[str, NDArray[np.float32]]:
        return {i: self.vectors[i] for i in ids if i in self.vectors}

    def search(self, space: str, vector: NDArray[np.float32], k: int) -> list[Hit]:
        return ranked({i: float(v @ vector) for i, v in self.vectors.items()}, k)


def calibrations(backend: VectorBackend) -> RemoteCalibrations:
    found = RemoteCalibrations(backend, {"image": "descriptor-v2"},  # type: ignore[arg-type]
                               lambda space: pytest.fail("no text encoder is needed"))
    found.size = backend.count  # type: ignore[method-assign]  # no count kept for seconds
    return found


def test_a_small_collection_is_judged_by_the_encoders_prior() -> None:
    backend = VectorBackend(MIN_VECTORS - 1)
    assert calibrations(backend).image() == prior("descriptor-v2")
    assert backend.listed == 0


def test_a_larger_one_by_its_own_pairs_measured_once_until_it_grows_by_a_fifth() -> None:
    backend = VectorBackend(100)
    judged = calibrations(backend)
    first = judged.image()
    assert first is not None and first.vectors == 100
    assert first == calibrate_sample(np.stack(list(backend.vectors.values())), 100)
    backend.add(10)
    assert judged.image() is first and backend.listed == 1
    backend.add(20)
    again = judged.image()
    assert again is not None and again.vectors == 130 and backend.listed == 2


def test_the_neighbourhood_is_the_whole_collection_searched_by_the_backend() -> None:
    backend = VectorBackend(30)
    space = calibrations(backend).neighbourhood("image")
    query = backend.vectors["v3"]
    scores, _labels = space.index.search(query[None, :], 5)
    assert len(space) == 30
    assert scores[0].tolist() == pytest.approx([h.score for h in backend.search(
        "image", query, 5)])
    assert scores[0][0] == pytest.approx(1.0)


def test_the_sample_is_drawn_from_the_whole_collection_not_its_first_rows(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import imgsearch.engine.remote_confidence as module

    monkeypatch.setattr(module, "SAMPLE", 2_000)
    backend = VectorBackend(20_000, dim=2)
    judged = calibrations(backend)
    sample = judged._sample("image")
    assert sample.shape == (2_000, 2)
    drawn = judged.sampled
    assert drawn is not None and drawn.complete and drawn.listed == 20_000
    positions = np.asarray([int(i[1:]) for i in drawn.ids])
    assert len(set(drawn.ids)) == 2_000
    # uniform over the 20,000: a tenth of them in each tenth of the listing (the first
    # 8,000 rows alone, as a listing cut short would give, hold none of the rest)
    per_tenth = np.bincount(positions // 2_000, minlength=10)
    assert per_tenth.min() >= 140 and per_tenth.max() <= 260, per_tenth
    assert (positions >= 8_000).mean() == pytest.approx(0.6, abs=0.05)


def test_a_scan_past_its_time_budget_says_the_sample_is_partial() -> None:
    from imgsearch.engine.remote_sample import reservoir

    ticks = iter(range(100))
    pages = ([f"p{page}-{i}" for i in range(10)] for page in range(10))
    drawn = reservoir(pages, 5, budget_s=2.5, clock=lambda: float(next(ticks)))
    assert not drawn.complete and drawn.listed == 30 and len(drawn.ids) == 5
    assert all(int(i.split("-")[0][1:]) < 3 for i in drawn.ids)


def test_warming_measures_ahead_and_leaves_a_failure_to_the_search() -> None:
    backend = VectorBackend(50)
    judged = calibrations(backend)
    judged.warm()
    assert backend.listed == 1
    judged.image()
    assert backend.listed == 1  # measured once

    def unreachable(*_args: object, **_kwargs: object) -> Iterator[list[str]]:
        raise ConnectionError("server gone")

    broken = VectorBackend(50)
    broken.ids = unreachable  # type: ignore[method-assign]
    calibrations(broken).warm()  # no error here
    with pytest.raises(ConnectionError):
        calibrations(broken).image()
