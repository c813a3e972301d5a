"""The ranking stages a node over a remote collection runs on what the backend returns
(engine.remote_rank), against a backend held in dictionaries: no server needed."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from numpy.typing import NDArray

from imgsearch.config import Settings
from imgsearch.engine.backends.base import Hit, ranked
from imgsearch.engine.remote_rank import finish, item_duplicates
from imgsearch.types import Filters, Item, Query


class DictBackend:
    """What ``remote_rank`` asks of a backend: items, vectors and an exact search."""

    def __init__(self, items: list[Item], vectors: dict[str, NDArray[np.float32]]) -> None:
        self.items = {i.id: i for i in items}
        self.vectors = vectors

    def spaces(self) -> dict[str, int]:
        return {"image": 4}

    def get(self, ids: Sequence[str]) -> dict[str, Item]:
        return {i: self.items[i] for i in ids if i in self.items}

    def fetch_vectors(self, space: str, ids: Sequence[str]) -> dict[str, NDArray[np.float32]]:
        return {i: self.vectors[i] for i in ids if i in self.vectors}

    def search(self, space: str, vector: NDArray[np.float32], k: int,
               filters: Filters | None = None) -> list[Hit]:
        return ranked({i: float(v @ vector) for i, v in self.vectors.items()}, k)


def unit(*values: float) -> NDArray[np.float32]:
    vector = np.asarray(values, np.float32)
    return vector / np.linalg.norm(vector)


def collection() -> DictBackend:
    vectors = {"a": unit(1, 0, 0, 0), "a-copy": unit(1, 0, 0, 0), "b": unit(1, 0.3, 0, 0),
               "c": unit(1, 0.6, 0, 0), "d": unit(0, 1, 0, 0)}
    items = [Item(id="a", category="hats", phash=0x0F0F, popularity=1),
             Item(id="a-copy", category="hats", phash=0x0F0F),
             Item(id="b", category="hats", phash=0x7FFF_0000_0000_0000, popularity=1000),
             Item(id="c", category="bags", phash=0x00FF_00FF),
             Item(id="d", category="bags")]
    return DictBackend(items, vectors)


def hits_for(backend: DictBackend) -> list[Hit]:
    return backend.search("image", unit(1, 0, 0, 0), 10)


def test_a_copy_folds_into_the_best_hit_and_boosts_and_caps_apply() -> None:
    backend = collection()
    block = finish(hits_for(backend), Query(vector=[1.0]), Settings(), backend)
    ids = [h.id for h in block.hits]
    assert ids[0] in ("a", "a-copy") and "a-copy" not in ids[1:] and len(ids) == 4
    assert block.stands_for[0] == 2  # it stands for its copy too
    kept = finish(hits_for(backend), Query(vector=[1.0], collapse_duplicates=False),
                  Settings(), backend)
    assert len(kept.hits) == 5
    capped = finish(hits_for(backend), Query(vector=[1.0], max_per_category=1,
                                             collapse_duplicates=False), Settings(), backend)
    assert [backend.items[h.id].category for h in capped.hits] == ["hats", "bags"]
    boosted = finish(hits_for(backend), Query(vector=[1.0], boosts={"popularity": 0.9},
                                              collapse_duplicates=False), Settings(), backend)
    assert boosted.hits[0].id == "b"  # the popular one, though not the nearest


def test_the_query_images_exact_copies_come_first_with_their_confidence() -> None:
    backend = collection()
    hits = hits_for(backend)
    sure = {h.id: 0.25 for h in hits} | {"c": 1.0}
    block = finish(hits, Query(vector=[1.0], collapse_duplicates=False), Settings(),
                   backend, {"c"}, sure)
    assert block.hits[0].id == "c" and block.exact == {"c"}
    assert block.confidence == {h.id: sure[h.id] for h in block.hits}


def test_an_items_duplicates_come_from_its_neighbours_and_their_hashes() -> None:
    backend = collection()
    found = item_duplicates(backend, "a")
    assert [(d.id, d.tier, d.hamming) for d in found] == [("a-copy", "exact", 0)]
    assert item_duplicates(backend, "d") == []  # no hash: never paired


def test_keyword_evidence_is_the_share_of_query_words_stemmed_as_the_catalog_does() -> None:
    from imgsearch.engine.remote_confidence import term_coverage

    found = term_coverage("the red running shoes", [
        Item(id="a", title="Red shoe"), None,
        Item(id="b", title="runner", description="shoes for running"),
        Item(id="c", title="blue hat")])
    assert found.tolist() == pytest.approx([2 / 3, 0.0, 2 / 3, 0.0])
