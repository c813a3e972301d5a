"""The search path of a node over a remote collection (``RemoteEngine.search``).

Vector searches run with the filters pushed down; text and hybrid queries are fused on
the server by reciprocal rank where it can, else here (``remote_fuse``). Each candidate
is then given the local engine's calibrated confidence (``remote_confidence``), those
under the query's minimum are dropped (an honest "no match" when none is left), and the
ranking stages run over the rest (``remote_rank``). Text queries are read first as the
local engine reads them (``remote_understand``).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from imgsearch.engine.backends.base import Hit
from imgsearch.engine.remote_browse import browse
from imgsearch.engine.remote_confidence import (
    capped,
    image_confidence,
    scores_of,
    term_coverage,
    text_confidence,
)
from imgsearch.engine.remote_expansion import Expanded, expands, text_lists
from imgsearch.engine.remote_fuse import (
    NEGATIVE_WEIGHT,
    Matched,
    fused_images,
    hit,
    run,
    unit,
)
from imgsearch.engine.remote_matches import RemoteCandidates, copies, view_candidates
from imgsearch.engine.remote_rank import finish
from imgsearch.engine.remote_similar import more_like_this
from imgsearch.engine.remote_understand import check_known_values, interpret, validate
from imgsearch.errors import InvalidQueryError, UnsupportedOnBackendError
from imgsearch.index.base import SearchParams
from imgsearch.search.calibration import BACKGROUND_RANK
from imgsearch.search.executor import fetch_size
from imgsearch.search.matching import (
    VERIFY_TOP,
    EarlyFeatures,
    Match,
    QueryImage,
    copy_confidence,
)
from imgsearch.types import ImageInput, Item, Query, SearchResult

if TYPE_CHECKING:
    from imgsearch.engine.remote import RemoteEngine


def look(engine: RemoteEngine, value: ImageInput, verified: bool = False) -> QueryImage:
    """A query image decoded and encoded (its content hash and pixels kept); when it
    will be ``verified``, its local features are found on the worker threads while it
    is encoded and its candidates searched (``matching.EarlyFeatures``), as locally."""
    decoded = engine.preparer.decode(value, "query image")
    early = EarlyFeatures(decoded.image) if verified else None
    return QueryImage(unit(engine.encoder("image").embed_image(decoded.image)),
                      decoded.content_hash or "", decoded.image, early=early)


def text_vector(engine: RemoteEngine, text: str) -> NDArray[np.float32]:
    key = ("text", text)
    cached = engine.embedding_cache.get(key)
    if cached is None:
        cached = unit(engine.encoder("text").embed_text(text))
        engine.embedding_cache.put(key, cached)
    return cached


def search(engine: RemoteEngine, query: Query) -> SearchResult:
    """The query's answer (see the module docstring); what was understood of its text
    is in the result's interpretation, as locally."""
    started = time.perf_counter()
    if query.kind == "browse":  # filters alone, or nothing: list what passes
        return browse(engine, query)
    validate(query, engine.settings.max_limit)
    SearchParams.from_hints(query.search_params)  # refused before any work
    check_known_values(engine, query.filters)
    original = query
    query, interpretation = interpret(engine, query)
    if query.kind == "browse":  # "photos from 2019": the understood filters alone
        browsed = browse(engine, query)
        browsed.interpretation = interpretation
        return browsed
    result = _answer(engine, query, started)
    if query is not original and result.total_candidates == 0:
        # what was understood rules out every item: say so and search as typed
        interpretation["applied"] = False
        interpretation["note"] = ("no item matches what was understood; searched for the "
                                  "text as typed")
        result = _answer(engine, dataclasses.replace(original, parse=False), started)
    result.interpretation = {**interpretation, **result.interpretation}
    return result


def _query_vector(query: Query, spaces: dict[str, int]) -> NDArray[np.float32]:
    dim = spaces.get(query.vector_space)
    if dim is None:
        raise InvalidQueryError(f"no vector space {query.vector_space!r}; this collection "
                                f"has {', '.join(sorted(spaces))}")
    vector = np.asarray(query.vector, dtype=np.float32).reshape(-1)
    if vector.shape[0] != dim or not np.isfinite(vector).all():
        raise InvalidQueryError(f"vector must be {dim} finite numbers for space "
                                f"{query.vector_space!r}, got {vector.shape[0]}")
    return unit(vector)


@dataclasses.dataclass
class _Signals:
    """What a query searches with, and what its confidence is judged by."""

    vectors: dict[str, NDArray[np.float32]] = dataclasses.field(default_factory=dict)
    looks: list[QueryImage] = dataclasses.field(default_factory=list)  # positive images
    negatives: list[QueryImage] = dataclasses.field(default_factory=list)
    clip_text: bool = False  # the text went into the image space (CLIP)
    exclude: str | None = None
    fused: list[Hit] | None = None
    expanded: Expanded | None = None  # a text query's lists, expanded (remote_expansion)
    matched: Matched | None = None  # of fused hits: each list's score and rank
    plans: list[str] = dataclasses.field(default_factory=list)  # what was fused, and how


def _signals(engine: RemoteEngine, query: Query, block: int) -> _Signals:
    spaces = engine.backend.spaces()
    found = _Signals()
    if query.similar_to is not None:  # everything the item has, fused (remote_similar)
        similar = more_like_this(engine.backend, query.similar_to, block, query,
                                 engine.settings)
        found.vectors, found.fused = similar.vectors, similar.fused
        found.matched = similar.matched
        if similar.fused is not None:
            found.plans = [f"{'+'.join(similar.lists)} fused:{engine.settings.fusion}"]
        found.exclude = query.similar_to
        return found
    if query.vector is not None:
        found.vectors[query.vector_space] = _query_vector(query, spaces)
        return found
    verified = engine.refuses("copies") is None and \
        not (query.text and query.image_weight == 0)
    found.looks = [look(engine, v, verified) for v in query.images]
    found.negatives = [look(engine, v) for v in query.negative_images]
    negatives = [x.vector for x in found.negatives]
    several = len(query.images) + len(query.negative_images) > 1
    if query.images and several and not query.text and \
            (query.multi_image or engine.settings.multi_image) == "rrf":
        found.fused = fused_images(engine.backend, [x.vector for x in found.looks],
                                   negatives, block, query, engine.settings.rrf_k)
    elif query.images:  # averaged, pushed away from the counter-examples
        positive = unit(np.mean([x.vector for x in found.looks], axis=0))
        if negatives:
            positive = unit(positive - NEGATIVE_WEIGHT * unit(np.mean(negatives, axis=0)))
        found.vectors["image"] = positive
    if query.text:
        if "text" in spaces:
            found.vectors["text"] = text_vector(engine, query.text)
        elif engine.encoder("image").supports("text") and "image" not in found.vectors:
            found.vectors["image"] = unit(engine.encoder("image").embed_text(query.text))
            found.clip_text = True
    if query.text and not query.images and "text" in found.vectors and expands(engine):
        found.expanded = text_lists(engine, query, found.vectors["text"],
                                    engine.backend.capabilities.bm25, block)
        found.fused, found.matched = found.expanded.fused, found.expanded.matched
        found.plans = [*found.expanded.plans, f"fused:{engine.settings.fusion}"]
    return found


def _answer(engine: RemoteEngine, query: Query, started: float) -> SearchResult:
    block = fetch_size(query.offset, query.limit)
    signals = _signals(engine, query, block)
    vectors, text = signals.vectors, query.text
    bm25 = bool(text and engine.backend.capabilities.bm25)
    if signals.fused is None and not vectors and not bm25:
        reason = engine.refuses("text") if text else None
        raise UnsupportedOnBackendError(reason or (
            f"browsing by filters alone is not supported on the {engine.kind} backend; "
            f"give a text, an image, a vector or an item"))
    k = block + (1 if signals.exclude else 0)
    listed = signals.fused if signals.fused is not None else \
        run(engine.backend, vectors, text if bm25 else None, k, query)
    candidates = [h for h in listed if h.id != signals.exclude][:block]
    # one list searched: a hit says its score and rank there (fused lists do not)
    single = None if signals.fused is not None or len(vectors) + bm25 > 1 \
        else next(iter(vectors), "keyword")
    rank_of = {h.id: n for n, h in enumerate(candidates, 1)}  # in the list searched
    items = engine.backend.get([h.id for h in candidates]) if candidates else {}
    # an image weighed at nothing in a hybrid query is not looked for
    matching = [] if query.text and query.image_weight == 0 else signals.looks
    matches = _matches(engine, query, signals, matching, candidates, items)
    joined = [i for i in matches if i not in {h.id for h in candidates}]
    if joined:  # verified copies found by the query's views join the candidates
        stored = engine.backend.fetch_vectors("image", joined)
        candidates += [Hit(i, max(float(stored[i] @ x.vector) for x in matching)
                           if i in stored else 0.0) for i in joined]
        items.update(engine.backend.get(joined))
    evidence = {i: dict(m.evidence) for i, m in matches.items()}
    exact = {i for i, m in matches.items() if m.kind == "exact"}
    confidence = _confidence(engine, query, signals, candidates, listed, single, items)
    for n, h in enumerate(candidates):
        if h.id in matches:
            confidence[n] = 1.0 if h.id in exact else \
                max(float(confidence[n]), copy_confidence(matches[h.id].evidence))
    if matches and not query.text:  # image-only: exact copies first, then verified ones
        tier = {i: 0 if i in exact else 1 for i in matches}
        order = sorted(range(len(candidates)), key=lambda n: tier.get(candidates[n].id, 2))
        candidates = [candidates[n] for n in order]
        confidence = confidence[np.asarray(order, np.int64)]
    default = 0.0 if query.kind in ("item", "vector") else engine.settings.min_confidence
    minimum = default if query.min_confidence is None else query.min_confidence
    fetched = len(candidates)
    if minimum > 0 and fetched:
        # a verified copy is shown whatever the minimum: its evidence is not a guess
        keep = [bool(c >= minimum) or h.id in matches for h, c in zip(
            candidates, confidence, strict=True)]
        best = float(confidence.max())
        candidates = [h for h, kept in zip(candidates, keep, strict=True) if kept]
        confidence = confidence[np.asarray(keep, bool)]
        if not candidates and query.offset == 0:
            return SearchResult(
                [], query.kind, (time.perf_counter() - started) * 1000,
                total_candidates=fetched, plan=_plan(engine, vectors, bm25),
                empty_reason="no_match",
                message=f"nothing in this collection matches well enough: the best candidate "
                        f"scored {best:.2f} confidence, under the minimum {minimum:.2f} "
                        f"(lower it with min_confidence to see weaker matches)")
    ranked = finish(candidates, query, engine.settings, engine.backend, exact,
                    dict(zip([h.id for h in candidates], confidence.tolist(), strict=True)),
                    items)
    page = slice(query.offset, query.offset + query.limit)
    hits, stands = ranked.hits[page], ranked.stands_for[page]
    shown = {i: ranked.items[i] for i in (h.id for h in hits) if i in ranked.items}
    missing = [h.id for h in hits if h.id not in shown]
    if missing:
        shown.update(engine.backend.get(missing))
    expanded = signals.expanded
    return SearchResult(
        hits=[hit(h, shown[h.id], n - 1, (signals.matched or {}).get(h.id, {})
                  if single is None or h.id not in rank_of else {
            single: {"score": round(h.score, 6), "rank": rank_of[h.id]}},
            matches[h.id].kind if h.id in matches else "similar",
            round(ranked.confidence.get(h.id, 0.0), 4), evidence.get(h.id, {}))
              for h, n in zip(hits, stands, strict=True) if h.id in shown],
        query_kind=query.kind, query_time_ms=(time.perf_counter() - started) * 1000,
        total_candidates=fetched, plan=_plan(engine, vectors, bm25, signals.plans),
        interpretation={"expanded": expanded.described} if expanded and expanded.described
        else {})


def _matches(engine: RemoteEngine, query: Query, signals: _Signals,
             looks: list[QueryImage], candidates: list[Hit], items: dict[str, Item]
             ) -> dict[str, Match]:
    """Exact and verified copies of the query images among the candidates, by the local
    engine's rules (``remote_matches``); only exact ones where the collection holds no
    thumbnails."""
    if not looks or not candidates:
        return {}
    reader = RemoteCandidates(engine.backend, items,
                              {x.phash for x in [*looks, *signals.negatives]})
    top = min(VERIFY_TOP * len(looks), 4 * VERIFY_TOP)
    more = None
    if engine.refuses("copies") is None and engine.encoder("image").name == "descriptor" \
            and "image" in engine.backend.spaces():
        # as locally, only for the descriptor: a view costs it 2 ms, CLIP a model pass
        more = functools.partial(view_candidates, engine.backend,
                                 engine.encoder("image").embed_images, looks, query.filters,
                                 query.search_params, signals.exclude)
    return copies(looks, signals.negatives, candidates, top, reader, engine.feature_cache,
                  more)


def _plan(engine: RemoteEngine, vectors: dict[str, Any], bm25: bool,
          plans: list[str] | None = None) -> str:
    plan = f"{engine.kind}:{'+'.join(sorted(vectors)) or 'image-rrf'}{'+bm25' if bm25 else ''}"
    return ", ".join([plan, *(plans or [])])


def _sims(engine: RemoteEngine, space: str, vectors: list[NDArray[np.float32]],
          candidates: list[Hit]) -> NDArray[np.float32]:
    """Each vector's cosine with each candidate's stored vector in ``space`` (-1: none)."""
    sims = np.full((len(vectors), len(candidates)), -1.0, np.float32)
    stored = engine.backend.fetch_vectors(space, [h.id for h in candidates]) \
        if candidates and space in engine.backend.spaces() else {}
    for n, h in enumerate(candidates):
        if h.id in stored:
            sims[:, n] = np.stack(vectors) @ stored[h.id]
    return sims


def _confidence(engine: RemoteEngine, query: Query, signals: _Signals, candidates: list[Hit],
                listed: list[Hit], single: str | None, items: dict[str, Item]
                ) -> NDArray[np.float32]:
    """Calibrated 0..1 confidence of each candidate (``remote_confidence``): the
    strongest of its image, text and keyword evidence, as the local engine judges it."""
    n = len(candidates)
    parts: list[NDArray[np.float32]] = []
    calibrations = engine.calibrations
    image_vector = signals.vectors.get("image")
    positives = [(x.vector, x.noise_like) for x in signals.looks] or (
        [] if image_vector is None or signals.clip_text else [(image_vector, False)])
    if positives and n:
        if len(positives) == 1 and single == "image":
            sims = scores_of(candidates)[None, :]
        else:
            sims = _sims(engine, "image", [v for v, _noise in positives], candidates)
        neighbours = None  # the query's best over the whole collection, already found
        if single == "image" and query.filters.is_empty() and len(positives) == 1 \
                and len(listed) > BACKGROUND_RANK:
            neighbours = scores_of(listed)
        parts.append(image_confidence(calibrations, positives, sims, neighbours))
    if n and "text" in signals.vectors:
        sims = scores_of(candidates) if single == "text" else \
            _sims(engine, "text", [signals.vectors["text"]], candidates)[0]
        parts.append(text_confidence(calibrations.text("text", "text", "text"), sims))
    if n and signals.clip_text and image_vector is not None:
        sims = scores_of(candidates) if single == "image" else \
            _sims(engine, "image", [image_vector], candidates)[0]
        parts.append(text_confidence(calibrations.text("clip_text", "image", "image"), sims))
    if n and query.text and engine.backend.capabilities.bm25:
        parts.append(term_coverage(query.text, [items.get(h.id) for h in candidates]))
    if n and signals.expanded is not None and signals.expanded.concepts:
        concepts = signals.expanded.concepts  # a kind of the query's words, as locally
        parts.append(np.asarray([concepts.get(h.id, 0.0) for h in candidates], np.float32))
    return capped(parts, n)


__all__ = ["look", "search", "text_vector"]
