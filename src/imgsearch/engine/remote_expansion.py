"""A text query's lists on a remote collection, expanded from its surest hits as the
local engine expands them (``search.text_feedback``), then fused as it fuses them.

The semantic list (the text space) is searched with the filters pushed down; its hits'
text vectors are fetched from the backend, and the same functions as the local
engine's (``search.feedback``) re-score it with the query moved towards the vectors of
its confident head (text feedback) and re-rank it by each hit's neighbours in the list,
in the text and image spaces (neighbour smoothing). It is fused with the keyword list
(BM25, where the backend has it) and the concept list (``remote_concepts``) by
``search.fusion`` with the local engine's weights. The ids are numbered in sorted
order for that code, so that where two items tie, the first by id wins (locally, the
first written: the same where ids are written in order).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from imgsearch.engine.backends.base import Hit
from imgsearch.engine.remote_concepts import concept_hits
from imgsearch.engine.remote_fuse import Matched, matched_in
from imgsearch.search.concepts import concept_options
from imgsearch.search.feedback import (
    TEXT,
    by_score,
    moved_towards,
    neighbour_smoothing,
    soft_seeds,
)
from imgsearch.search.fusion import RankedList, fuse
from imgsearch.types import Query

if TYPE_CHECKING:
    from imgsearch.engine.remote import RemoteEngine


@dataclass
class Expanded:
    fused: list[Hit]
    described: dict[str, Any] = field(default_factory=dict)  # for the interpretation
    plans: list[str] = field(default_factory=list)
    concepts: dict[str, float] = field(default_factory=dict)  # id: concept evidence
    matched: Matched = field(default_factory=dict)  # of the fused hits, for matched_by


def expands(engine: RemoteEngine) -> bool:
    """Whether a text query's lists are expanded (the local engine's settings: text
    feedback, neighbour smoothing, concepts); else they are fused as before."""
    s = engine.settings
    feedback = s.text_feedback_beta > 0 and s.text_feedback_seeds > 0
    smoothing = bool(s.smooth_text or s.smooth_image) and s.smooth_neighbours > 0
    return feedback or smoothing or concept_options(s).enabled


class _Numbers:
    """Ids as the int keys ``search.fusion`` and ``search.feedback`` work with."""

    def __init__(self, ids: list[str]) -> None:
        self.ids = sorted(set(ids))
        self.number = {item_id: n for n, item_id in enumerate(self.ids)}

    def keys(self, ids: list[str]) -> NDArray[np.int64]:
        return np.asarray([self.number[i] for i in ids], np.int64)


def text_lists(engine: RemoteEngine, query: Query, vector: NDArray[np.float32],
               keyword: bool, k: int) -> Expanded:
    """The query's semantic list expanded, fused with its keyword and concept lists
    (see the module docstring)."""
    assert query.text is not None
    s, backend = engine.settings, engine.backend
    semantic = backend.search("text", vector, k, query.filters, query.search_params)
    keywords = backend.keyword_search(query.text, k, query.filters) if keyword else []
    concepts = concept_hits(engine, query, vector, k)
    out = Expanded([])
    ids = [h.id for h in semantic]
    text = backend.fetch_vectors("text", ids) if ids else {}
    ids = [i for i in ids if i in text]
    numbers = _Numbers([*ids, *(h.id for h in keywords),
                        *(h.id for h in (concepts.hits if concepts else []))])
    keys = numbers.keys(ids)
    vectors = np.stack([text[i] for i in ids]).astype(np.float32) if ids else \
        np.empty((0, len(vector)), np.float32)
    scores = (vectors @ vector).astype(np.float32)
    keys, scores, vectors = by_score(keys, scores, vectors)
    typed = {numbers.ids[int(key)]: float(score) for key, score in zip(
        keys, scores, strict=True)}  # the query as typed: what matched_by says
    if s.text_feedback_beta > 0 and s.text_feedback_seeds > 0 and len(keys) and \
            _surest(engine, scores) >= s.feedback_min_confidence:
        head = slice(0, s.text_feedback_seeds)
        weights = soft_seeds(scores[head], s.text_feedback_temperature)
        moved = moved_towards(vector, (weights @ vectors[head])[None, :],
                              s.text_feedback_beta)
        seeds = keys[head]
        keys, scores, vectors = by_score(keys, (vectors @ moved).astype(np.float32), vectors)
        out.plans.append(f"{TEXT}:seeds:{len(weights)}")
        out.described[TEXT] = {"seeds": [numbers.ids[int(x)] for x in seeds[:3]],
                               "beta": s.text_feedback_beta}
    if (s.smooth_text or s.smooth_image) and s.smooth_neighbours > 0 and len(keys) > 2:
        keys, scores = _smoothed(engine, numbers, keys, scores, vectors)
        out.plans.append(f"smoothed:{s.smooth_neighbours}")
    lists = [RankedList("text", keys, scores, s.weight_text)]
    if keyword:
        lists.append(RankedList("keyword", numbers.keys([h.id for h in keywords]),
                                np.asarray([h.score for h in keywords], np.float32),
                                s.weight_keyword))
    if concepts is not None:
        lists.append(RankedList(concepts.name, numbers.keys([h.id for h in concepts.hits]),
                                np.asarray([h.score for h in concepts.hits], np.float32),
                                concepts.weight))
        out.plans.append(concepts.plan)
        out.described[concepts.name] = concepts.described
        out.concepts = concepts.evidence
    fused = fuse(lists, s.fusion, s.rrf_k)
    out.fused = [Hit(numbers.ids[int(key)], float(score))
                 for key, score in zip(fused.keys[:k], fused.scores[:k], strict=True)]
    out.matched = matched_in([(rl.name, [Hit(numbers.ids[int(key)], float(score)) for key,
                                         score in zip(rl.keys, rl.scores, strict=True)])
                              for rl in lists], {"text": typed})
    return out


def _surest(engine: RemoteEngine, scores: NDArray[np.float32]) -> float:
    """The calibrated confidence of the semantic list's best hit (1 without a
    calibration), as ``search.text_feedback`` judges it."""
    calibration = engine.calibrations.text("text", "text", "text")
    if calibration is None or not len(scores):
        return 1.0
    return float(calibration.confidence(scores[:1].astype(np.float32))[0])


def _smoothed(engine: RemoteEngine, numbers: _Numbers, keys: NDArray[np.int64],
              scores: NDArray[np.float32], text: NDArray[np.float32]
              ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    s = engine.settings
    spaces = [(np.arange(len(keys)), text, s.smooth_text)] if s.smooth_text else []
    if s.smooth_image and "image" in engine.backend.spaces():
        ids = [numbers.ids[int(key)] for key in keys]
        stored = engine.backend.fetch_vectors("image", ids)
        positions = np.asarray([n for n, i in enumerate(ids) if i in stored], np.int64)
        if len(positions) > 1:
            spaces.append((positions, np.stack([stored[ids[n]] for n in positions]
                                               ).astype(np.float32), s.smooth_image))
    smoothed = neighbour_smoothing(scores, spaces, s.smooth_neighbours)
    order = np.lexsort((keys, -smoothed))
    return keys[order], smoothed[order]


__all__ = ["Expanded", "expands", "text_lists"]
