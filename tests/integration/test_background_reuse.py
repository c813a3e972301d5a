"""An image query's background level (its 11th neighbour) is read from the candidates its
own search found, and judges hits exactly as a second search of the collection did."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from imagegen import picture
from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.search import calibration
from imgsearch.search.calibration import BACKGROUND_RANK, own_best
from imgsearch.types import Filters, Item, Query

SETTINGS = Settings(image_encoder="descriptor", text_encoder="fake", ingest_workers=2,
                    decode_processes=False, index_type="flat")


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("background") / "c"
    with Engine.open(directory, SETTINGS) as opened:
        opened.ingest_items((Item(id=f"p{i}", title=f"picture {i}",
                                  category="a" if i % 2 else "b"), picture(i))
                            for i in range(60))
    return directory


def _answers(directory: Path) -> list[list[tuple[str, float]]]:
    # a fresh engine each time: its result cache would answer a repeated query
    with Engine.open(directory, SETTINGS, readonly=True) as engine:
        return _asked(engine)


def _asked(engine: Engine) -> list[list[tuple[str, float]]]:
    stored = engine.spaces["image"].vector_of_key(engine.catalog.key_of("p7") or -1)
    assert stored is not None
    queries = [engine.search(Query(images=[picture(60 + i)], min_confidence=0))
               for i in range(3)]
    queries += [engine.search(Query(images=[picture(3)], min_confidence=0)),
                engine.similar("p5", limit=20, min_confidence=0),
                engine.search(Query(vector=stored, vector_space="image", min_confidence=0)),
                engine.search(Query(images=[picture(61)], min_confidence=0,
                                    filters=Filters(categories=("a",)))),
                engine.search(Query(images=[picture(62), picture(9)], min_confidence=0))]
    return [[(h.id, h.confidence) for h in result.hits] for result in queries]


def test_confidence_is_what_a_second_search_gave(collection: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    searches: list[int] = []
    level = calibration.background_level

    def counted(space: Any, vector: Any, sample: Any = None, found: Any = None) -> Any:
        searches.append(found is None)
        return level(space, vector, sample, found)

    plain = calibration.plain_image_confidence
    answered: list[bool] = []

    def counted_plain(*args: Any) -> Any:
        judged = plain(*args)
        answered.append(judged is not None)
        return judged

    monkeypatch.setattr(calibration, "background_level", counted)
    monkeypatch.setattr("imgsearch.search.searcher.plain_image_confidence", counted_plain)
    reused = _answers(collection)
    # the six queries of one image, item or vector are judged from their own lists (their
    # 11th neighbour among what their search found), without searching again: the five of
    # one list on the plain path, similar by id (its image, text and category lists fused)
    # on the general one; searched again: the filtered query (its candidates are not the
    # collection's) and each image of the two-image one (judged each by its own neighbours)
    assert answered == [True] * 5
    assert searches == [False] + [True] * 3
    # every query searched again for its neighbours gives the same confidences
    monkeypatch.setattr("imgsearch.search.searcher.plain_image_confidence",
                        lambda *args: None)
    monkeypatch.setattr(calibration, "own_best", lambda *args: None)
    monkeypatch.setattr("imgsearch.search.searcher.own_best", lambda *args: None)
    searches.clear()
    searched = _answers(collection)
    assert searches == [True] * 9
    assert reused == searched
    assert any(0 < c < 1 for answer in reused for _id, c in answer)  # judged, not clamped


def test_a_list_without_the_searchs_own_best_is_not_used() -> None:
    scores = np.linspace(1.0, 0.0, 20).astype(np.float32)
    ranks = np.arange(1, 21)
    assert own_best(ranks, scores) is not None
    cut = ranks.copy()
    cut[3] = 0  # a fused list that left out the 4th of the image search's own
    assert own_best(cut, scores) is None
    short = np.arange(1, BACKGROUND_RANK + 1)  # one short, unless the excluded item counts
    assert own_best(short, scores[:BACKGROUND_RANK]) is None
    found = own_best(short, scores[:BACKGROUND_RANK], np.array([1.0], np.float32))
    assert found is not None and len(found) == BACKGROUND_RANK + 1
