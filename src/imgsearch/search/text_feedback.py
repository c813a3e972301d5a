"""A text query's feedback from its surest hits, wired to the searcher (search.feedback).

``expand`` takes the first-pass fusion of a text query's lists and returns them
expanded: the semantic list re-scored with the query moved towards its own head's text
vectors, weighted by how sure each is (text feedback), and re-ranked with each
item's neighbours in the list (neighbour smoothing, in the text and image spaces); one
more list of the items named by words for kinds of the query's words (concepts, from
WordNet); then one more list of the confident seeds' look-alikes (visual feedback).
Each runs when its settings turn it on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from imgsearch.config import Settings
from imgsearch.search.concept_source import concept_list
from imgsearch.search.concept_source import evidence as concept_evidence
from imgsearch.search.concepts import CONFIDENCE as CONCEPT_CONFIDENCE
from imgsearch.search.concepts import NAME as CONCEPTS
from imgsearch.search.executor import Signal
from imgsearch.search.feedback import NAME as VISUAL
from imgsearch.search.feedback import (
    TEXT,
    Feedback,
    FeedbackOptions,
    by_score,
    moved_towards,
    neighbour_smoothing,
    seeds_of,
    soft_seeds,
    visual_feedback,
)
from imgsearch.search.fusion import Fused, RankedList, fuse
from imgsearch.types import Query

if TYPE_CHECKING:
    from imgsearch.search.searcher import Searcher



@dataclass
class Expansion:
    lists: list[RankedList]
    fused: Fused
    plans: list[str] = field(default_factory=list)
    described: dict[str, Any] = field(default_factory=dict)  # for the interpretation
    visual: Feedback | None = None
    semantic: Signal | None = None  # the query's own semantic signal, when moved
    concept_keys: NDArray[np.int64] = field(default_factory=lambda: np.empty(0, np.int64))
    concept_coverage: NDArray[np.float32] = field(
        default_factory=lambda: np.empty(0, np.float32))


def feedback_options(settings: Settings) -> FeedbackOptions:
    return FeedbackOptions(settings.weight_visual_feedback, settings.feedback_seeds,
                           settings.feedback_min_confidence, settings.feedback_depth)


def expand(searcher: Searcher, query: Query, signals: list[Signal], lists: list[RankedList],
           fused: Fused, k: int, allowed: NDArray[np.int64] | None) -> Expansion:
    """The text query's lists and fusion after feedback (see the module doc)."""
    s = searcher.settings
    assert query.text is not None
    out = Expansion(lists, fused)
    semantic = next((sig for sig in signals if sig.name == "text"), None)
    own = next((rl for rl in lists if rl.name == "text"), None)
    if semantic is not None and own is not None and len(own.keys):
        # the list's exact vectors, fetched once: feedback re-scores this pool with the
        # moved query (no second search of the space), and smoothing compares them
        keys, vectors = semantic.space.vectors_of_keys(own.keys)
        scores = (vectors @ semantic.vector).astype(np.float32)
        keys, scores, vectors = by_score(keys, scores, vectors)
        changed = not np.array_equal(keys, own.keys)
        if s.text_feedback_beta > 0 and s.text_feedback_seeds > 0 and len(keys) and \
                _surest(searcher, scores) >= s.feedback_min_confidence:
            head = slice(0, s.text_feedback_seeds)
            seeds = keys[head]
            weights = soft_seeds(scores[head], s.text_feedback_temperature)
            moved = moved_towards(semantic.vector, (weights @ vectors[head])[None, :],
                                  s.text_feedback_beta)
            keys, scores, vectors = by_score(keys, (vectors @ moved).astype(np.float32),
                                             vectors)
            out.plans.append(f"{TEXT}:seeds:{len(weights)}")
            out.described[TEXT] = {"seeds": ids_of(searcher, seeds[:3]),
                                   "beta": s.text_feedback_beta}
            changed = True
        if (s.smooth_text or s.smooth_image) and s.smooth_neighbours > 0 and len(keys) > 2:
            keys, scores = _smoothed(searcher, keys, scores, vectors)
            out.plans.append(f"smoothed:{s.smooth_neighbours}")
            changed = True
        if changed:
            out.lists = [RankedList("text", keys, scores, rl.weight) if rl.name == "text"
                         else rl for rl in out.lists]
            out.semantic = semantic
    concept = concept_list(searcher, query.text, semantic, k, allowed)
    if concept is not None:
        ranked, words, out.concept_keys, out.concept_coverage = concept
        out.lists = [*out.lists, ranked]
        out.plans.append(f"{CONCEPTS}:wordnet")
        out.described[CONCEPTS] = words.describe()
    if out.lists is not lists:
        out.fused = fuse(out.lists, s.fusion, s.rrf_k)
    options = feedback_options(s)
    space = searcher.spaces.get("image")
    if options.enabled and space is not None and len(space):
        seeds, confidence = _seeds(searcher, query.text, out.fused, options.seeds,
                                   out.semantic)
        visual = visual_feedback(space, seeds, confidence, options, allowed,
                                 query.search_params)
        if visual is not None:
            out.lists = [*out.lists, visual.ranked]
            out.fused = fuse(out.lists, s.fusion, s.rrf_k)
            out.plans.append(visual.plan)
            out.described[VISUAL] = visual.describe(dict(zip(
                visual.seeds.tolist(), ids_of(searcher, visual.seeds), strict=True)))
            out.visual = visual
    return out


def _surest(searcher: Searcher, scores: NDArray[np.float32]) -> float:
    """The calibrated confidence of the semantic list's best hit (1 without a
    calibration): a query that nothing matches well takes no feedback from its hits."""
    calibration = searcher.calibrations.get("text")
    if calibration is None or not len(scores):
        return 1.0
    return float(calibration.confidence(scores[:1].astype(np.float32))[0])


def _smoothed(searcher: Searcher, keys: NDArray[np.int64], scores: NDArray[np.float32],
              text: NDArray[np.float32]) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """The semantic list re-ranked by neighbour smoothing in the text space (``text``:
    the list's vectors there) and the image space (search.feedback)."""
    s = searcher.settings
    spaces = [(np.arange(len(keys)), text, s.smooth_text)] if s.smooth_text else []
    image = searcher.spaces.get("image")
    if s.smooth_image and image is not None and len(image):
        found, vectors = image.vectors_of_keys(keys)
        if len(found) > 1:
            at = {int(key): i for i, key in enumerate(keys.tolist())}
            positions = np.asarray([at[int(key)] for key in found], np.int64)
            spaces.append((positions, vectors, s.smooth_image))
    smoothed = neighbour_smoothing(scores, spaces, s.smooth_neighbours)
    order = np.lexsort((keys, -smoothed))
    return keys[order], smoothed[order]


def evidence(searcher: Searcher, expansion: Expansion, top: NDArray[np.int64],
             per_signal: dict[str, NDArray[np.float32]]) -> dict[str, NDArray[np.float32]]:
    """Per-key evidence of the expansions for the confidence, and ``per_signal``'s text
    column back on the query as typed (the moved vector sits closer to everything)."""
    found: dict[str, NDArray[np.float32]] = {}
    if expansion.semantic is not None and "text" in per_signal:
        per_signal["text"] = _similarity(expansion.semantic, top, per_signal["text"])
    if len(expansion.concept_keys):
        found[CONCEPTS] = concept_evidence(expansion.concept_keys, expansion.concept_coverage,
                                           top, CONCEPT_CONFIDENCE)
    if expansion.visual is not None:
        calibration = searcher.calibrations.get("image")
        found[VISUAL] = expansion.visual.evidence(
            searcher.spaces["image"], top, calibration.confidence if calibration else None)
    return found


def ids_of(searcher: Searcher, keys: NDArray[np.int64]) -> list[str]:
    rows = searcher.catalog.hits_by_key(keys.tolist())
    return [rows[int(key)][0] if int(key) in rows else str(int(key)) for key in keys]


def _similarity(signal: Signal, keys: NDArray[np.int64], listed: NDArray[np.float32]
                ) -> NDArray[np.float32]:
    """The signal's own similarity to each key that was in its list (NaN elsewhere)."""
    out = np.full(len(keys), np.nan, np.float32)
    inside = np.isfinite(listed)
    found, vectors = signal.space.vectors_of_keys(keys[inside])
    if len(found):
        at = {int(key): i for i, key in enumerate(keys)}
        out[[at[int(key)] for key in found]] = vectors @ signal.vector
    return out


def _seeds(searcher: Searcher, text: str, fused: Fused, n: int, semantic: Signal | None = None
           ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """The confident head of a ranking: of its first ``n`` keys, those whose text
    evidence (keyword coverage or calibrated semantic similarity) is confident;
    ``semantic``: the query's own signal, when its list was re-scored by feedback."""
    head = fused.keys[:n]
    confidence = np.zeros(len(head), np.float32)
    if "keyword" in fused.ranks:  # the share of the query's words a seed contains
        confidence = searcher.catalog.term_coverage(text, head)
    for name in ("text", "clip_text"):
        calibration = searcher.calibrations.get(name)
        if name in fused.list_scores and calibration is not None:
            scores = fused.list_scores[name][:n]
            if name == "text" and semantic is not None:
                scores = _similarity(semantic, head, scores)
            values = np.where(np.isnan(scores), -1.0, scores).astype(np.float32)
            confidence = np.maximum(confidence, calibration.confidence(values))
    return seeds_of(head, confidence, FeedbackOptions(
        seeds=n, min_confidence=searcher.settings.feedback_min_confidence))
