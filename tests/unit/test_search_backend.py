"""The executor talks to a vector space only through ``SpaceBackend``: tested here with an
in-memory backend, no collection on disk; and the local backend's ``SearchParams``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from imgsearch.errors import InvalidQueryError
from imgsearch.index.base import SearchParams
from imgsearch.search.backend import Capabilities
from imgsearch.search.executor import Signal, candidates, rank


class MemoryBackend:
    """Exact inner-product search over a dict of key -> vector; records the hints."""

    def __init__(self, vectors: dict[int, NDArray[np.float32]]) -> None:
        self.vectors = vectors
        self.seen: list[Mapping[str, Any]] = []

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(kind="memory")

    def __len__(self) -> int:
        return len(self.vectors)

    def search(self, vector: NDArray[np.float32], k: int, allowed: NDArray[np.int64] | None,
               params: Mapping[str, Any]) -> tuple[NDArray[np.int64], NDArray[np.float32], str]:
        self.seen.append(params)
        keys = np.array(sorted(self.vectors if allowed is None else
                               set(allowed.tolist()) & set(self.vectors)), np.int64)
        found, stored = self.vectors_of_keys(keys)
        scores = (stored @ vector).astype(np.float32)
        top = np.argsort(-scores, kind="stable")[:k]
        return found[top], scores[top], "memory"

    def vectors_of_keys(self, keys: NDArray[np.int64]
                        ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        found = np.array([k for k in keys.tolist() if k in self.vectors], np.int64)
        stored = np.stack([self.vectors[k] for k in found.tolist()]) if len(found) else \
            np.empty((0, 2), np.float32)
        return found, stored.astype(np.float32)

    def vector_of_key(self, key: int) -> NDArray[np.float32] | None:
        return self.vectors.get(key)


def unit(*values: float) -> NDArray[np.float32]:
    v = np.asarray(values, np.float32)
    return v / np.linalg.norm(v)


SPACE = {1: unit(1, 0), 2: unit(1, 1), 3: unit(0, 1), 4: unit(-1, 1), 5: unit(1, 0.1)}


def test_candidates_pass_the_hints_exclude_and_break_ties_by_key() -> None:
    backend = MemoryBackend({**SPACE, 6: unit(1, 0)})  # 6 ties with 1
    keys, scores, plan = candidates(Signal("image", backend, unit(1, 0)), 3, None, exclude=5,
                                    params={"ef_search": 99})
    assert keys.tolist() == [1, 6, 2] and plan == "memory"
    assert scores[0] == pytest.approx(1.0) and scores[2] == pytest.approx(2 ** -0.5)
    assert backend.seen == [{"ef_search": 99}]


def test_candidates_keep_to_the_allowed_keys() -> None:
    keys, _scores, _plan = candidates(Signal("image", MemoryBackend(SPACE), unit(1, 0)), 10,
                                      np.array([3, 4], np.int64), None)
    assert keys.tolist() == [3, 4]


def test_rank_combines_two_spaces_by_weight() -> None:
    image = MemoryBackend(SPACE)
    text = MemoryBackend({1: unit(0, 1), 2: unit(1, 0), 3: unit(0, 1)})
    ranked = rank([Signal("image", image, unit(1, 0), 0.5), Signal("text", text, unit(1, 0),
                                                                   0.5)], 0, 3, None, None)
    # item 2 is second in images and first in text: the best combined score
    assert ranked.keys[0] == 2
    assert set(ranked.per_signal) == {"image", "text"}
    assert ranked.plan == "image:memory, text:memory"


def test_search_params_come_from_hints() -> None:
    assert SearchParams.from_hints({}) == SearchParams()
    assert SearchParams.from_hints({"ef_search": 256, "nprobe": 8}) == SearchParams(256, 8)


@pytest.mark.parametrize(("hints", "message"), [
    ({"efSearch": 10}, "unknown search parameter 'efSearch'"),
    ({"ef_search": 0}, "ef_search must be a whole number from 1"),
    ({"nprobe": 2.5}, "nprobe must be a whole number"),
    ({"nprobe": True}, "nprobe must be a whole number"),
])
def test_bad_search_params_are_refused_by_name(hints: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidQueryError, match=message):
        SearchParams.from_hints(hints)
