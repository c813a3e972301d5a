"""Calibrations of a remote collection, measured from what a backend hands out: the
encoder's prior under ``MIN_VECTORS`` items, the collection's random pairs above, kept
until the collection has grown or shrunk by a fifth."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from numpy.typing import NDArray

from imgsearch.engine.backends.base import Hit, Row, ranked
from imgsearch.engine.remote_confidence import RemoteCalibrations
from imgsearch.search.calibration import MIN_VECTORS, calibrate_sample, prior
from imgsearch.types import Item


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

    def rows(self, batch: int = 1000, source: str | None = None) -> Iterator[list[Row]]:
        self.listed += 1
        ids = list(self.vectors)
        for start in range(0, len(ids), batch):
            yield [Row(Item(id=i), {"image": self.vectors[i]}) for i in ids[start:start + batch]]

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


def test_a_sample_is_at_most_the_limit_drawn_from_what_is_listed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import imgsearch.engine.remote_confidence as module

    monkeypatch.setattr(module, "SAMPLE", 25)
    backend = VectorBackend(300)
    sample = calibrations(backend)._sample("image")
    assert sample.shape == (25, 8)
    held = {v.tobytes() for v in list(backend.vectors.values())[:100]}  # 4 x SAMPLE listed
    assert all(v.tobytes() in held for v in sample)


def test_warming_measures_ahead_and_leaves_a_failure_to_the_search() -> None:
    backend = VectorBackend(50)
    judged = calibrations(backend)
    judged.warm()
    assert backend.listed == 1
    judged.image()
    assert backend.listed == 1  # measured once

    def unreachable(*_args: object, **_kwargs: object) -> Iterator[list[Row]]:
        raise ConnectionError("server gone")

    broken = VectorBackend(50)
    broken.rows = unreachable  # type: ignore[method-assign]
    calibrations(broken).warm()  # no error here
    with pytest.raises(ConnectionError):
        calibrations(broken).image()
