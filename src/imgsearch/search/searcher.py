"""The searcher: turn a Query into weighted signals, rank, and build the hits.

A ``Searcher`` is given what it reads, each through a narrow protocol
(``search.protocols``): the catalog's reads, the vector spaces and their calibrations,
the query encoder, what is derived from the collection (known values, vocabulary,
Hamming index, write version), the readers' lock, the result caches and the search
log. The engine builds one when it opens a collection; a test builds one over fakes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import math
import os
import time
from collections.abc import Callable, Mapping
from concurrent import futures
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from imgsearch.config import Settings
from imgsearch.encode.blas import one_blas_thread
from imgsearch.errors import ImgSearchError, InvalidQueryError, ItemNotFoundError
from imgsearch.ingest.decode import DecodedImage
from imgsearch.search.browse import browse
from imgsearch.search.calibration import (
    MIN_VECTORS,
    Calibration,
    background,
    judge_image_hits,
    own_best,
    plain_image_confidence,
    prior,
)
from imgsearch.search.concept_source import ConceptSource
from imgsearch.search.concepts import NAME as CONCEPTS
from imgsearch.search.copy_views import WIDE_CANDIDATES, query_views, wide_params
from imgsearch.search.duplicates import collapse_hits, hash_index
from imgsearch.search.executor import Ranked, Signal, candidates, fetch_size, rank
from imgsearch.search.feedback import NAME as FEEDBACK
from imgsearch.search.fusion import RankedList, fuse
from imgsearch.search.known import check_known_values
from imgsearch.search.matching import (
    HASH_CANDIDATES,
    PHASH_RADIUS,
    SIMILAR_CEILING,
    VERIFY_TOP,
    Candidate,
    EarlyFeatures,
    Match,
    QueryImage,
    copy_confidence,
    match_kinds,
)
from imgsearch.search.planner import RerankOptions, business_weights, rerank, subset
from imgsearch.search.protocols import (
    CatalogReads,
    CollectionState,
    QueryEncoding,
    ReadLock,
    ResultCache,
    SearchLogSink,
    SharedResults,
)
from imgsearch.search.similar import SOFT_SIGNALS, more_like_this
from imgsearch.search.similar import weights as similar_weights
from imgsearch.search.space import SpaceIndex
from imgsearch.search.text_feedback import evidence as expansion_evidence
from imgsearch.search.text_feedback import expand
from imgsearch.search.timing import current as current_timings
from imgsearch.search.timing import recording, stage
from imgsearch.search.understand import Interpretation, Vocabulary, understand
from imgsearch.search.validation import EMPTY_MESSAGE, validate
from imgsearch.search.verify import FeatureCache, in_background, opencv_loaded
from imgsearch.store.catalog import FIELD_SIGNALS
from imgsearch.store.filters import validate as validate_filters
from imgsearch.store.logs import SearchRecord
from imgsearch.types import Filters, ImageInput, Item, Query, SearchHit, SearchResult

_NEGATIVE_WEIGHT = 0.5
_ITEM_SPACES = ("image", "text")  # the spaces an item may have a vector in (search.similar)
HASH_LOOKUP_MAX = 200_000


class Searcher:
    """Runs a ``Query`` against what it is given (see the module doc). ``settings`` may
    be replaced between queries (tuning does): the next query reads the new ones."""

    def __init__(self, settings: Settings, directory: Path, catalog: CatalogReads,
                 spaces: Mapping[str, SpaceIndex],
                 calibrations: Mapping[str, Calibration | None], lock: ReadLock,
                 query_encoder: QueryEncoding, derived: CollectionState,
                 model_id: Callable[[str], str], result_cache: ResultCache, *,
                 shared_cache: SharedResults | None = None,
                 logs: SearchLogSink | None = None) -> None:
        self.settings = settings
        self.directory = directory  # stored thumbnails are read from here
        self.catalog = catalog
        self.spaces = spaces  # filled and replaced in place by their owner
        self.calibrations = calibrations
        self.lock = lock
        self.query_encoder = query_encoder
        self.derived = derived
        self.model_id = model_id  # a space's encoder model id
        self.result_cache = result_cache
        self.shared_cache = shared_cache
        self.logs = logs
        self.feature_cache = FeatureCache()  # local features of verified candidates
        self.concepts = ConceptSource(settings)  # WordNet and vocabulary, for text

    def search(self, query: Query) -> SearchResult:
        """The answer to ``query``: ranked hits, or the listing a browse query asks for."""
        if query.kind == "browse":
            return browse(self, query)
        return run_query(self, query)

    def hamming_index(self) -> Any:
        """A binary index over every item's perceptual hash; rebuilt after writes."""
        return self.derived.hamming_index(lambda: hash_index(*self.catalog.phashes()))


_UNIT_SLACK = 1e-5  # a length squared this close to 1 is left as it is (rounding)


def _unit(vector: NDArray[Any], square: float | None = None) -> NDArray[np.float32]:
    """A new float32 copy of a 1-d ``vector`` scaled to length 1 (left as is if zero);
    ``square``: its length squared, when already taken."""
    vector = np.asarray(vector, dtype=np.float32)
    if square is None:
        square = float(vector @ vector)
    if not math.isfinite(square):  # large numbers: their squares overflow float32
        wide = vector.astype(np.float64)
        square = float(wide @ wide)
    if abs(square - 1.0) <= _UNIT_SLACK:
        # already of length 1 (an encoder's output): kept bit for bit, so that one query
        # image's hits are judged by the very vector they were searched with
        return vector.copy()
    norm = math.sqrt(square)
    return vector * np.float32(1.0 / norm) if norm > 0 else vector.copy()


def _image_vectors(searcher: Searcher, values: list[ImageInput],
                   looks: list[QueryImage] | None = None, verified: bool = False
                   ) -> NDArray[np.float32]:
    """The vectors of ``values``; with ``looks``, each decoded image is kept there too,
    and when they will be ``verified``, their local features are found from the moment
    they are decoded (``matching.EarlyFeatures``)."""
    if looks is None:
        return np.stack([searcher.query_encoder.embed_query_image(v) for v in values])
    vectors = []
    for value in values:
        early: list[EarlyFeatures] = []
        decoded, vector = searcher.query_encoder.look_at(
            value, functools.partial(_start_features, early) if verified else None)
        looks.append(QueryImage(vector, decoded.content_hash, decoded.image,
                                early=early[0] if early else None))
        vectors.append(vector)
    return np.stack(vectors)


def _start_features(started: list[EarlyFeatures], decoded: DecodedImage) -> None:
    started.append(EarlyFeatures(decoded.image))


def signals_for(searcher: Searcher, query: Query, looks: list[QueryImage] | None = None,
                negatives: list[QueryImage] | None = None
                ) -> tuple[list[Signal], int | None]:
    """The query's signals; ``looks`` and ``negatives``, when given, receive the decoded
    example and counter-example images (for match kinds)."""
    spaces = searcher.spaces
    signals: list[Signal] = []
    exclude: int | None = None
    if query.similar_to is not None:
        key = searcher.catalog.key_of(query.similar_to)
        if key is None:
            raise ItemNotFoundError(query.similar_to)
        exclude = key
        with searcher.lock.read():  # the vector may come from inside the index
            for name in _ITEM_SPACES:  # everything the item has (search.similar)
                vector = spaces[name].vector_of_key(key) if name in spaces else None
                if vector is not None:
                    signals.append(Signal(name, spaces[name], vector,
                                          similar_weights(searcher.settings)[name]))
        if not signals:
            raise InvalidQueryError(f"item {query.similar_to!r} has no stored vector to "
                                    f"search with")
        return signals, exclude
    if query.vector is not None:
        space = spaces.get(query.vector_space)
        if space is None:
            raise InvalidQueryError(f"no vector space {query.vector_space!r}; this collection "
                                    f"has {', '.join(spaces)}")
        vector = np.asarray(query.vector, dtype=np.float32).reshape(-1)
        # its length squared is finite when every number is (an overflow is checked apart)
        square = float(vector @ vector) if vector.shape[0] == space.space.dim else math.nan
        if not math.isfinite(square) and (vector.shape[0] != space.space.dim or
                                          not np.isfinite(vector).all()):
            raise InvalidQueryError(f"vector must be {space.space.dim} finite numbers for "
                                    f"space {query.vector_space!r}, got {vector.shape[0]}")
        return [Signal(query.vector_space, space, _unit(vector, square))], None
    text_weight = 1.0 - query.image_weight if query.images else 1.0
    image_weight = query.image_weight if query.text else 1.0
    if query.images:
        verified = looks is not None and _copies_looked_for(query) and opencv_loaded()
        positive = _unit(_image_vectors(searcher, query.images, looks,
                                        verified).mean(axis=0))
        if query.negative_images:
            negative = _unit(_image_vectors(searcher, query.negative_images,
                                            negatives).mean(axis=0))
            positive = _unit(positive - _NEGATIVE_WEIGHT * negative)
        signals.append(Signal("image", spaces["image"], positive, image_weight))
    if query.text:
        encoder = searcher.query_encoder
        text_signals: list[Signal] = []
        if "text" in spaces and len(spaces["text"]):
            text_signals.append(Signal("text", spaces["text"],
                                       encoder.embed_query_text("text", query.text)))
        image_encoder = encoder.encoder("image")
        if "text" in image_encoder.modalities:
            text_signals.append(Signal("clip_text", spaces["image"],
                                       encoder.embed_query_text("image", query.text)))
        # keyword search alone still answers; say so when there is nothing to read
        if not text_signals and not query.images and not searcher.catalog.has_text():
            raise InvalidQueryError(
                "this collection has no text to search (its items have no titles or "
                "descriptions and its image encoder cannot read text); search by image, "
                "or index with --image-encoder clip for text-to-image search")
        for s in text_signals:
            signals.append(Signal(s.name, s.space, s.vector, text_weight / len(text_signals)))
    return signals, exclude


def _confidence(searcher: Searcher, ranked: Ranked, signals: list[Signal],
                looks: list[QueryImage], whole: bool = False,
                exclude: int | None = None) -> NDArray[np.float32]:
    """Calibrated 0..1 confidence of every ranked candidate (see search.calibration).

    Each kind of evidence is judged on its own scale and the strongest one counts: image
    hits against the query images' own neighbours and the collection (or, in a collection
    too small for either, the encoder's prior), text signals against unrelated probe
    queries, keyword hits by the share of the query's words they contain. Closeness to a
    counter-example is no evidence of a match.
    """
    plain = _plain_confidence(searcher, ranked, signals, looks, whole, exclude)
    if plain is not None:
        return plain
    n = len(ranked.keys)
    parts: list[NDArray[np.float32]] = []
    for name in (FEEDBACK, CONCEPTS):  # looks like a confident hit / a kind of the words
        if name in ranked.evidence:
            parts.append(ranked.evidence[name])
    if "keyword" in ranked.evidence:
        # BM25 is not comparable across queries; the share of the query's words an
        # item contains is: "tax court ruling" matching only "rules" is a weak match
        parts.append(ranked.evidence["keyword"])
    image_done = False
    for name, scores in ranked.per_signal.items():
        space_name = name.split(":", 1)[0]
        if name in ("keyword", FEEDBACK, CONCEPTS) or space_name == "not-image" \
                or name in SOFT_SIGNALS \
                or name in FIELD_SIGNALS:  # parts of the keyword list, judged with it
            continue  # closeness to a counter-example, a shared category: no evidence
        if space_name == "image":
            if not image_done:
                parts.append(_image_confidence(searcher, ranked, signals, looks, whole,
                                               exclude))
                image_done = True
            continue
        calibration = searcher.calibrations.get(space_name)
        values = np.where(np.isnan(scores), -1.0, scores).astype(np.float32)
        parts.append(calibration.confidence(values) if calibration else
                     np.where(np.isfinite(scores), 1.0, 0.0).astype(np.float32))
    # each part lies in 0..1; none: no evidence at all
    confidence = parts[0] if len(parts) == 1 else np.maximum.reduce(parts) if parts else \
        np.zeros(n, np.float32)
    return np.minimum(confidence, np.float32(SIMILAR_CEILING)).astype(np.float32, copy=False)


def _plain_confidence(searcher: Searcher, ranked: Ranked, signals: list[Signal],
                      looks: list[QueryImage], whole: bool, exclude: int | None
                      ) -> NDArray[np.float32] | None:
    """What ``_confidence`` gives the usual query, one image signal over its own ranked
    list (similar by id or by vector, one query image), through
    ``calibration.plain_image_confidence``; None for any other query or where that path
    declines."""
    if not whole or len(signals) != 1 or signals[0].name != "image" or len(looks) > 1 or \
            len(ranked.per_signal) != 1 or "image" not in ranked.ranks or \
            not ranked.evidence.keys().isdisjoint((FEEDBACK, CONCEPTS, "keyword")):
        return None
    scores = ranked.per_signal.get("image")
    vector = signals[0].vector
    if scores is None:
        return None
    if looks and (looks[0].noise_like or not (
            looks[0].vector is vector or np.array_equal(looks[0].vector, vector))):
        return None
    calibration = searcher.calibrations.get("image")
    if calibration is None or len(searcher.spaces["image"]) < MIN_VECTORS:
        return None
    return plain_image_confidence(  # scores as the general path reads them, float32
        scores.astype(np.float32, copy=False), ranked.ranks["image"], vector,
        None if exclude is None else float(vector @ vector), calibration,
        background(searcher.model_id("image")), SIMILAR_CEILING)


def _image_confidence(searcher: Searcher, ranked: Ranked, signals: list[Signal],
                      looks: list[QueryImage], whole: bool = False,
                      exclude: int | None = None) -> NDArray[np.float32]:
    """How well each candidate matches the best-matching query image: an averaged or
    subtracted query vector does not live on one image's scale, so every example is
    judged by its own similarity to the candidate. ``whole``: the image signal searched
    the whole collection (no filter), leaving out ``exclude``."""
    space = searcher.spaces["image"]
    positives = [look.vector for look in looks] or \
        [sig.vector for sig in signals if sig.name == "image"]
    single = [sig for sig in signals if sig.name == "image"]
    neighbours = None  # the query's best scores over the collection, when already found
    if len(positives) == 1 and single and "image" in ranked.per_signal and \
            (single[0].vector is positives[0] or
             np.array_equal(single[0].vector, positives[0])):
        sims = ranked.per_signal["image"][None, :].astype(np.float32, copy=False)
        if whole and "image" in ranked.ranks:  # the query's neighbours: already found
            left_out = None
            if exclude is not None:
                # similar by id: the query is the left-out item's own vector, so its score
                # is the vector with itself (reading the item's row again cost a disk
                # read, ~0.9 ms at 1M items, whenever the row was not in the page cache)
                left_out = np.array([positives[0] @ positives[0]], np.float32)
            neighbours = own_best(ranked.ranks["image"], sims[0], left_out)
    else:
        sims = np.full((len(positives), len(ranked.keys)), -1.0, np.float32)
        found, vectors = space.vectors_of_keys(ranked.keys)
        if len(found):
            where = np.searchsorted(ranked.keys, found, sorter=np.argsort(ranked.keys))
            order = np.argsort(ranked.keys)[where]
            sims[:, order] = np.stack(positives) @ vectors.T
    if np.isnan(sims).any():
        sims = np.where(np.isnan(sims), np.float32(-1.0), sims)
    model_id = searcher.model_id("image")
    calibration = prior(model_id) if len(space) < MIN_VECTORS else \
        searcher.calibrations.get("image")
    noisy = [look.noise_like for look in looks] or [False] * len(positives)
    best = None
    for vector, row, noise in zip(positives, sims, noisy, strict=True):
        if not noise:  # nothing merely looks like noise (its copies are still verified)
            judged = judge_image_hits(row, vector, space, calibration, background(model_id),
                                      neighbours)
            best = judged if best is None else np.maximum(best, judged)
    return np.zeros(len(ranked.keys), np.float32) if best is None else best


def _matches(searcher: Searcher, ranked: Ranked, confidence: NDArray[np.float32],
             looks: list[QueryImage], hashed: list[int], negatives: list[QueryImage],
             promote: bool, signals: list[Signal] | None = None,
             cropped: Callable[[set[int]], list[int]] = lambda _known: []
             ) -> tuple[Ranked, NDArray[np.float32], dict[int, Match]]:
    """Exact and verified copies among the best few candidates, those whose perceptual
    hash is close (``hashed``) and, when none of these verifies, those ``cropped`` gives
    (found by the query images' central parts; one that verifies joins the list),
    their confidence raised to what the evidence says and, when ``promote`` (image-only
    queries: a hybrid one keeps the order its weights give), moved to the front, exact
    first."""
    if not looks:
        return ranked, confidence, {}
    # several examples: each may have its own copy among the candidates
    top = [int(k) for k in ranked.keys[:min(VERIFY_TOP * len(looks), 4 * VERIFY_TOP)]]
    top += [k for k in hashed if k not in top]
    if not top:
        return ranked, confidence, {}

    def more() -> list[Candidate]:
        # often started ahead on a worker thread, and may end after this query does:
        # the index is read under the readers' lock, as the ranking read it
        with searcher.lock.read():
            return _candidates(searcher, cropped(set(top)))

    matches = match_kinds(looks, _candidates(searcher, top), searcher.feature_cache, negatives,
                          more)
    if not matches:
        return ranked, confidence, {}
    joined = [k for k in matches if k not in set(ranked.keys.tolist())]
    if joined and signals is not None:  # verified copies found by their central parts
        before = len(ranked.keys)
        ranked = _join(ranked, signals, searcher.spaces["image"], joined, "crop")
        confidence = np.concatenate([confidence,
                                     np.zeros(len(ranked.keys) - before, np.float32)])
        matches = {k: m for k, m in matches.items() if k in set(ranked.keys.tolist())}
    confidence = confidence.copy()
    tier = np.full(len(ranked.keys), 2, np.int64)
    position_of = {int(k): i for i, k in enumerate(ranked.keys.tolist())}
    for key, match in matches.items():
        position = position_of[key]
        tier[position] = 0 if match.kind == "exact" else 1
        confidence[position] = 1.0 if match.kind == "exact" else \
            max(float(confidence[position]), copy_confidence(match.evidence))
    if not promote:
        return ranked, confidence, matches
    order = np.argsort(tier, kind="stable")
    return subset(ranked, order), confidence[order], matches


def _candidates(searcher: Searcher, keys: list[int]) -> list[Candidate]:
    """What verification needs of the items ``keys`` (in that order)."""
    if not keys:
        return []
    items = searcher.catalog.items_by_key(keys)
    found, vectors = searcher.spaces["image"].vectors_of_keys(np.asarray(keys, np.int64))
    stored = dict(zip(found.tolist(), vectors, strict=True))
    return [Candidate(key, stored.get(key), item.content_hash, item.phash,
                      ("thumbnail", key, item.thumbnail, item.content_hash),
                      functools.partial(_stored_image, searcher, item))
            for key in keys if (item := items.get(key)) is not None]


def _start_first_features(searcher: Searcher, key: int) -> None:
    """Start finding the local features of the first candidate (the one most queries
    examine first, and most copies are) while its confidence is worked out."""
    for candidate in _candidates(searcher, [key]):
        in_background(functools.partial(searcher.feature_cache.get, candidate.cache_key,
                                        candidate.load))


def _hash_candidates(searcher: Searcher, ranked: Ranked, signals: list[Signal],
                     looks: list[QueryImage], allowed: NDArray[np.int64] | None,
                     exclude: int | None) -> tuple[Ranked, list[int]]:
    """Items whose perceptual hash is within ``PHASH_RADIUS`` bits of a query image's (or
    of its mirror image's): a second way to find a copy, blind to colour (grey, brighter),
    that the global descriptor may rank far down. They join the candidates (scored on
    every signal) and are verified. Collections over ``HASH_LOOKUP_MAX`` items skip it:
    the hash index is rebuilt after writes, which costs seconds there."""
    space = searcher.spaces.get("image")
    if not looks or space is None or len(space) > HASH_LOOKUP_MAX or \
            any(sig.name not in ("image", "text", "clip_text") for sig in signals):
        return ranked, []
    hashes = [h for look in looks for h in (look.phash, look.mirrored_phash)]
    near = searcher.hamming_index().radius_search(np.asarray(hashes, dtype=np.int64),
                                                PHASH_RADIUS)
    keys = list(dict.fromkeys(k for found in near for k, _d in found[:HASH_CANDIDATES]))
    keys = [k for k in keys if k != exclude]
    if allowed is not None:
        keys = [k for k in keys if _members_of(allowed, k)]
    if not keys:
        return ranked, []
    return _join(ranked, signals, space, keys, "phash"), keys


def _crop_keys(searcher: Searcher, signals: list[Signal], looks: list[QueryImage],
               allowed: NDArray[np.int64] | None, exclude: int | None,
               params: Mapping[str, int], known: set[int]) -> list[int]:
    """The items nearest each query image walked wider (those not ``known`` already),
    and nearest its views (its central part, the end squares of an elongated one:
    ``search.copy_views``): a third way to find a copy, whose borders changed (rotated,
    framed, overlaid along an edge, another aspect ratio of the picture), that the whole
    image's vector ranks far down or the index's usual walk missed. Asked for only when
    no other candidate verified; they count only if they verify. Only for the
    descriptor: a crop costs it 2 ms, CLIP a second model pass."""
    space = searcher.spaces.get("image")
    encoder = searcher.query_encoder.encoder("image")
    if not looks or space is None or encoder.name != "descriptor" or \
            any(sig.name not in ("image", "text", "clip_text") for sig in signals):
        return []
    keys: list[int] = []
    for look in looks:  # what the index's usual walk missed comes first
        found, _scores, _plan = space.search(look.vector, WIDE_CANDIDATES + 1, allowed,
                                             wide_params(params))
        keys += [int(k) for k in found.tolist()
                 if int(k) != exclude and int(k) not in known][:WIDE_CANDIDATES]
    views = [view for look in looks for view in query_views(look.image)]
    vectors = encoder.embed_images([image for image, _count in views])
    for vector, (_image, count) in zip(vectors, views, strict=True):
        found, _scores, _plan = space.search(vector, count + 1, allowed, wide_params(params))
        keys += [int(k) for k in found.tolist() if int(k) != exclude][:count]
    return list(dict.fromkeys(keys))


def _join(ranked: Ranked, signals: list[Signal], space: SpaceIndex, keys: list[int],
          source: str) -> Ranked:
    """``ranked`` with those of ``keys`` it lacks added at its end, scored on the image
    signals (the others give them nothing)."""
    present = set(ranked.keys.tolist())
    new = np.asarray([k for k in keys if k not in present], dtype=np.int64)
    if len(new):
        new, vectors = space.vectors_of_keys(new)
    if len(new):
        by_name = {sig.name: sig for sig in signals}
        total = sum(sig.weight for sig in signals) or 1.0
        combined = np.zeros(len(new), np.float32)
        per_signal = {}
        for name, column in ranked.per_signal.items():
            sig = by_name.get(name)  # "image:0" of a fused multi-image list: not one signal
            if sig is not None and sig.space is space:
                extra = (vectors @ sig.vector).astype(np.float32)
            else:
                extra = np.zeros(len(new), np.float32)  # judged by the image alone
            per_signal[name] = np.concatenate([column, extra])
            if sig is not None:
                combined += np.float32(sig.weight / total) * extra
        ranked = Ranked(np.concatenate([ranked.keys, new]),
                        np.concatenate([ranked.scores, combined]), per_signal,
                        {n: np.concatenate([c, np.zeros(len(new), c.dtype)])
                         for n, c in ranked.ranks.items()},
                        ranked.plan + f" +{source}", ranked.candidates + len(new),
                        {n: np.concatenate([c, np.zeros(len(new), c.dtype)])
                         for n, c in ranked.evidence.items()})
    return ranked


def _members_of(allowed: NDArray[np.int64], key: int) -> bool:
    at = int(np.searchsorted(allowed, key))
    return at < len(allowed) and int(allowed[at]) == key


def _stored_image(searcher: Searcher, item: Item) -> Image.Image | None:
    """The candidate's stored thumbnail, or else its original when it is a local file."""
    if item.thumbnail:  # written by this collection: a small JPEG, read directly
        with contextlib.suppress(OSError, ValueError, Image.DecompressionBombError), \
                Image.open(searcher.directory / item.thumbnail) as thumbnail:
            return thumbnail.convert("RGB")
    if item.image and not item.image.startswith(("http://", "https://")):
        with contextlib.suppress(ImgSearchError, OSError):
            if Path(item.image).is_file():
                return searcher.query_encoder.preparer.decode(item.image, item.image).image
    return None


def _rerank(searcher: Searcher, query: Query, ranked: Ranked, confidence: NDArray[np.float32],
            stands_for: NDArray[np.int64]
            ) -> tuple[Ranked, NDArray[np.float32], NDArray[np.int64]]:
    """Business signals, then diversity, over the whole candidate block (``planner``)."""
    options = RerankOptions(business_weights(query.boosts, searcher.settings),
                            query.prefer_colors, searcher.settings.color_boost,
                            query.max_per_category, query.mmr_lambda)
    if not options.asks_anything:  # most queries: nothing to read or reorder
        return ranked, confidence, stands_for
    return rerank(ranked, confidence, stands_for, options, searcher.catalog.items_by_key,
                  lambda keys: searcher.spaces["image"].vectors_of_keys(keys))


def _fused_images(searcher: Searcher, query: Query, allowed: NDArray[np.int64] | None) -> Ranked:
    """Several example images by per-image rank fusion (RRF over one list per example):
    each example keeps its own neighbourhood, where vector averaging looks only between
    them; counter-examples enter with a negative weight."""
    s = searcher.settings
    k = fetch_size(query.offset, query.limit)
    space = searcher.spaces["image"]
    lists: list[RankedList] = []
    for prefix, values, weight in (("image", query.images, 1.0),
                                   ("not-image", query.negative_images, -_NEGATIVE_WEIGHT)):
        if not values:
            continue
        vectors = _image_vectors(searcher, list(values))
        for number, vector in enumerate(vectors, 1):
            keys, scores, _plan = candidates(Signal(prefix, space, vector), k, allowed, None,
                                             query.search_params)
            lists.append(RankedList(f"{prefix}:{number}", keys, scores, weight))
    fused = fuse(lists, "rrf", s.rrf_k)
    return Ranked(fused.keys[:k], fused.scores[:k],
                  {name: col[:k] for name, col in fused.list_scores.items()},
                  {name: col[:k] for name, col in fused.ranks.items()},
                  f"image:{space.capabilities.kind} fused:rrf x{len(lists)}", len(fused.keys))


_SIGNAL_WEIGHT = {"text": "weight_text", "clip_text": "weight_clip_text"}


def _fused_text(searcher: Searcher, query: Query, signals: list[Signal],
                allowed: NDArray[np.int64] | None) -> tuple[Ranked, dict[str, Any]]:
    """Text queries: keyword (BM25) and semantic lists, fused (RRF by default), then
    expanded from the surest hits of that ranking (search.text_feedback). Also returns
    what the query was expanded with, for the interpretation."""
    s = searcher.settings
    k = fetch_size(query.offset, query.limit)
    assert query.text is not None
    lists: list[RankedList] = []
    plans = []
    for signal in signals:
        keys, scores, plan = candidates(signal, k, allowed, None, query.search_params)
        lists.append(RankedList(signal.name, keys, scores,
                                getattr(s, _SIGNAL_WEIGHT.get(signal.name, "weight_text"))))
        plans.append(f"{signal.name}:{plan}")
    keys, scores = searcher.catalog.keyword_search(query.text, k, s.keyword_weights(),
                                                 query.filters)
    lists.append(RankedList("keyword", keys, scores, s.weight_keyword))
    plans.append("keyword:fts5")
    expansion = expand(searcher, query, signals, lists, fuse(lists, s.fusion, s.rrf_k), k,
                       allowed)
    fused = expansion.fused
    top = fused.keys[:k]
    per_signal = {name: col[:k] for name, col in fused.list_scores.items()}
    evidence = expansion_evidence(searcher, expansion, top, per_signal)
    if "keyword" in fused.ranks:
        evidence["keyword"] = searcher.catalog.term_coverage(query.text, top)
        per_signal.update(searcher.catalog.field_matches(query.text, top))  # "ocr", ...
    return Ranked(top, fused.scores[:k], per_signal,
                  {name: col[:k] for name, col in fused.ranks.items()},
                  ", ".join(plans + expansion.plans) + f" fused:{s.fusion}", len(fused.keys),
                  evidence), expansion.described


def _merge(filters: Filters, parsed: Interpretation, colors_as_filter: bool = True
           ) -> Filters:
    """Parsed values fill only the filters the caller left empty."""
    low = filters.price_min if filters.price_min is not None else parsed.price_min
    high = filters.price_max if filters.price_max is not None else parsed.price_max
    if low is not None and high is not None and low > high:
        low, high = filters.price_min, filters.price_max  # the caller's word wins
    return dataclasses.replace(
        filters, price_min=low, price_max=high,
        colors=filters.colors or (tuple(parsed.colors) if colors_as_filter else ()),
        brands=filters.brands or tuple(parsed.brands),
        categories=filters.categories or tuple(parsed.categories),
        cameras=filters.cameras or tuple(parsed.cameras),
        taken_after=filters.taken_after or (
            None if filters.taken_before else parsed.taken_after),
        taken_before=filters.taken_before or (
            None if filters.taken_after else parsed.taken_before),
    )


def interpret(query: Query, vocabulary: Callable[[], Vocabulary], settings: Settings
              ) -> tuple[Query, dict[str, Any]]:
    """The query with what was understood of its text merged into its filters and colour
    preference, and the interpretation to report. ``vocabulary`` (the collection's
    brands, categories and cameras) is read only when the text is parsed."""
    if not (query.parse and query.text and query.text.strip()):
        return query, {}
    parsed = understand(query.text, vocabulary())
    if not parsed.understood:
        return query, parsed.to_dict()
    mode = settings.parsed_colors
    if mode not in ("filter", "boost"):
        raise InvalidQueryError(f"parsed_colors must be 'filter' or 'boost', got {mode!r}")
    merged = _merge(query.filters, parsed, colors_as_filter=mode == "filter")
    prefer = query.prefer_colors
    interpretation = parsed.to_dict()
    if parsed.colors:
        # What each colour word became: "prefer" ranks that colour higher and keeps the
        # rest, "filter" keeps only that colour, "ignored": an explicit colour filter won.
        if mode == "boost":
            prefer = tuple(dict.fromkeys((*prefer, *parsed.colors)))
            interpretation["filters"].pop("colors", None)
            interpretation["boosts"] = {"colors": list(parsed.colors)}
        use = "prefer" if mode == "boost" else "ignored" if query.filters.colors else "filter"
        interpretation["colors"] = dict.fromkeys(parsed.colors, use)
    return dataclasses.replace(query, text=parsed.text or None, filters=merged,
                               prefer_colors=prefer), interpretation


def _cache_key(searcher: Searcher, query: Query) -> tuple[Any, ...] | None:
    """What identifies a query's answer until the next write; None: do not cache."""
    parts: list[Any] = []
    for value in [*query.images, *query.negative_images]:
        if isinstance(value, bytes):
            parts.append(("bytes", hashlib.sha256(value).hexdigest()))
        elif isinstance(value, str) and value.startswith(("http://", "https://")):
            parts.append(("url", value))
        elif isinstance(value, str | Path):
            try:
                stat = os.stat(value)
            except OSError:
                return None  # let the search report the missing file
            parts.append(("path", str(value), stat.st_mtime_ns, stat.st_size))
        else:
            return None  # a decoded image: hashing its pixels costs what it saves
    if query.vector is not None:
        parts.append(("vector", hashlib.sha256(np.asarray(query.vector).tobytes()).hexdigest()))
    plain = dataclasses.replace(query, images=[], negative_images=[], vector=None)
    return (searcher.derived.write_version, repr(plain), tuple(parts))


def run_query(searcher: Searcher, query: Query) -> SearchResult:
    key = _cache_key(searcher, query) if searcher.settings.result_cache_size > 0 else None
    if key is not None:
        cached = searcher.result_cache.get(key)
        if cached is None and searcher.shared_cache is not None:
            cached = searcher.shared_cache.get_result(key[1:])
        if cached is not None:
            started = time.perf_counter()
            return _logged(searcher, query, dataclasses.replace(
                cached, hits=list(cached.hits), cached=True,
                query_time_ms=(time.perf_counter() - started) * 1000))
    result = _run_query(searcher, query)
    if key is not None and key[0] == searcher.derived.write_version:
        searcher.result_cache.put(key, result)
        if searcher.shared_cache is not None:
            searcher.shared_cache.put_result(key[1:], result)
    return result


def _run_query(searcher: Searcher, query: Query) -> SearchResult:
    # a query's products are small: BLAS threads would only spin (encode.blas)
    limit = contextlib.nullcontext() if _no_shared_products(searcher, query) else \
        one_blas_thread()
    with recording() as timings, limit:
        result = _answer(searcher, query)
    # decoding and loading a model happen inside encoding: report them on their own
    for inner in ("decode", "model_load"):
        if inner in timings and "encode" in timings:
            timings["encode"] = max(timings["encode"] - timings[inner], 0.0)
    result.stage_ms = {name: round(ms, 3) for name, ms in timings.items()}
    return result


def _no_shared_products(searcher: Searcher, query: Query) -> bool:
    """Whether ``query`` is a search by one stored or given vector, unfiltered, where the
    indexes it reads score exactly: none of its own products is large enough for
    OpenBLAS to share out (a dot product of two vectors at most), so it need not set one
    BLAS thread and put the count back, 15 µs of a 0.9 ms query at 1M items timed in
    place (bench/query_steps.py). Where such a query goes on to make one, that step
    sets it itself: folding duplicates, and similar by id when it fuses an item's
    lists (``search.similar``)."""
    if query.text or query.images or query.negative_images or \
            query.mmr_lambda is not None or not query.filters.is_empty():
        return False
    spaces = searcher.spaces
    if query.similar_to is not None:  # each space the item may have a vector in
        read = [space for name in _ITEM_SPACES
                if (space := spaces.get(name)) is not None and len(space)]
    elif query.vector is not None and query.vector_space in spaces:
        read = [spaces[query.vector_space]]
    else:
        return False
    return bool(read) and all(space.capabilities.exact_scores for space in read)


def _copies_looked_for(query: Query) -> bool:
    """Whether copies of the query images are looked for: not when a text query weighs
    its images at nothing."""
    return not (query.text and query.image_weight == 0)


def _read_ahead(searcher: Searcher, query: Query) -> list[Future[Any]]:
    """Start reading, on worker threads, what this query will search and a reader open
    for one query has not read yet: the index file of each space it searches (left to
    first use at open, ``SpaceIndex.open_deferred``) and, for a query image, the Hamming
    index of every item's perceptual hash. Meanwhile this thread decodes and encodes the
    query (or loads the text model). A server has read them at warm-up: nothing starts.
    A read that fails here is done again where it is needed, and fails there."""
    started: list[Future[Any]] = []
    searched = {"image": bool(query.images or query.negative_images), "text": bool(query.text)}
    for name, wanted in searched.items():
        space = searcher.spaces.get(name)
        if wanted and space is not None and space.deferred:
            started.append(in_background(space.read_index))
    space = searcher.spaces.get("image")
    if query.images and _copies_looked_for(query) and space is not None \
            and not searcher.derived.has_hamming_index() and len(space) <= HASH_LOOKUP_MAX:
        started.append(in_background(searcher.hamming_index))
    return started


def _answer(searcher: Searcher, query: Query) -> SearchResult:
    started = time.perf_counter()
    validate(query, searcher.settings.max_limit)
    ahead = _read_ahead(searcher, query)
    try:
        return _answer_valid(searcher, query, started)
    finally:
        # The reads use the catalog: none may outlive the query, whose caller may close
        # the collection next (a query image refused, an answer found without them).
        if ahead:
            futures.wait(ahead)


def _answer_valid(searcher: Searcher, query: Query, started: float) -> SearchResult:
    s = searcher.settings
    check_known_values(searcher.derived, query.filters)
    # images are looked at (and refused when bad) even where there is nothing to find
    if not (query.images or query.negative_images or query.similar_to is not None) \
            and searcher.derived.is_empty():
        return _logged(searcher, query, SearchResult(
            [], query.kind, (time.perf_counter() - started) * 1000, plan="empty collection",
            empty_reason="empty", message=EMPTY_MESSAGE))
    original = query
    query, interpretation = interpret(query, searcher.derived.vocabulary, s)
    if interpretation.get("understood"):
        validate_filters(query.filters)
    allowed = None
    if not query.filters.is_empty():
        with stage("filter"):
            allowed = searcher.catalog.filter_keys(query.filters)
        if not len(allowed) and query is not original:
            # What was understood rules out every item: say so and search as typed.
            interpretation["applied"] = False
            interpretation["note"] = ("no item matches what was understood; "
                                      "searched for the text as typed")
            query = dataclasses.replace(original, parse=False)
            allowed = None if query.filters.is_empty() else \
                searcher.catalog.filter_keys(query.filters)
    if query.kind == "browse":  # "photos from 2019": the understood filters are the query
        browsed = browse(searcher, query)  # what passes the filters, listed
        browsed.interpretation = interpretation
        return _logged(searcher, query, browsed)
    looks: list[QueryImage] = []
    negatives: list[QueryImage] = []
    with stage("encode"):
        signals, exclude = signals_for(searcher, query, looks, negatives)
    # an image weighed at nothing in a hybrid query is not looked for
    matching = looks if _copies_looked_for(query) else []
    if allowed is not None and len(allowed) == 0:
        return _logged(searcher, query, SearchResult(
            [], query.kind, (time.perf_counter() - started) * 1000,
            plan="filters match no item", interpretation=interpretation,
            empty_reason="filtered_out", message="no item passes the filters"))
    mode = query.multi_image or s.multi_image
    if mode not in ("average", "rrf"):
        raise InvalidQueryError(f"multi_image must be 'average' or 'rrf', got {mode!r}")
    several = len(query.images) + len(query.negative_images) > 1
    with searcher.lock.read(), stage("ann"):
        if query.text and not query.images:
            ranked, expanded = _fused_text(searcher, query, signals, allowed)
            if expanded:
                interpretation = {**interpretation, "expanded": expanded}
        elif exclude is not None:
            ranked = more_like_this(searcher.catalog, signals, exclude, allowed, s,
                                    offset=query.offset, limit=query.limit,
                                    params=query.search_params)
        elif mode == "rrf" and several and not query.text:
            ranked = _fused_images(searcher, query, allowed)
        else:
            ranked = rank(signals, query.offset, query.limit, allowed, exclude,
                          query.search_params)
    # "More like this" and raw vectors browse from inside the collection: they always show
    # the nearest items. Queries from outside (text, images) must clear the minimum.
    default = 0.0 if query.kind in ("item", "vector") else s.min_confidence
    minimum = default if query.min_confidence is None else query.min_confidence
    # copies are looked for only with query images to compare (no stage without them)
    hashed: list[int] = []
    if matching:
        with stage("verify"):
            if len(ranked.keys):
                _start_first_features(searcher, int(ranked.keys[0]))
            ranked, hashed = _hash_candidates(searcher, ranked, signals, matching, allowed,
                                              exclude)
    with stage("rerank"):
        confidence = _confidence(searcher, ranked, signals, looks, allowed is None, exclude)
    matches: dict[int, Match] = {}
    if matching:
        with stage("verify"):
            cropped = functools.partial(_crop_keys, searcher, signals, matching, allowed,
                                        exclude, query.search_params)
            ranked, confidence, matches = _matches(searcher, ranked, confidence, matching,
                                                   hashed, negatives, promote=not query.text,
                                                   signals=signals, cropped=cropped)
    fetched = len(ranked.keys)
    if minimum > 0 and fetched:
        # a verified copy is shown whatever the minimum: its evidence is not a guess
        keep = confidence >= minimum
        if matches:
            keep |= np.isin(ranked.keys, np.fromiter(matches, np.int64, len(matches)))
        best = float(confidence.max())
        ranked = subset(ranked, keep)
        confidence = confidence[keep]
        if not len(ranked.keys) and query.offset == 0:
            return _logged(searcher, query, SearchResult(
                [], query.kind, (time.perf_counter() - started) * 1000,
                total_candidates=fetched, plan=ranked.plan, interpretation=interpretation,
                empty_reason="no_match",
                message=f"nothing in this collection matches well enough: the best candidate "
                        f"scored {best:.2f} confidence, under the minimum {minimum:.2f} "
                        f"(lower it with min_confidence to see weaker matches)"))
    stands_for = np.ones(len(ranked.keys), np.int64)
    if query.collapse_duplicates and len(ranked.keys) > 1:
        # Folding walks the list in rank order, so folding a prefix decides that prefix
        # exactly as folding the whole list would: every page agrees with the others.
        need = query.offset + query.limit
        prefix = min(len(ranked.keys), 2 * need)
        folded = _collapse(searcher, ranked.keys[:prefix])
        if folded is not None:  # most lists hold no duplicate: nothing to take out
            keep, counts = folded
            if keep.sum() < need and prefix < len(ranked.keys):
                whole = _collapse(searcher, ranked.keys)
                if whole is not None:
                    prefix, (keep, counts) = len(ranked.keys), whole
            keep = np.concatenate([keep, np.ones(len(ranked.keys) - prefix, bool)])
            stands_for[:prefix] = counts
            ranked, confidence, stands_for = subset(ranked, keep), confidence[keep], \
                stands_for[keep]
    with stage("rerank"):
        ranked, confidence, stands_for = _rerank(searcher, query, ranked, confidence,
                                                 stands_for)
    page = slice(query.offset, query.offset + query.limit)
    keys = ranked.keys[page]
    with stage("fetch"):
        rows = searcher.catalog.hits_by_key(keys.tolist())
    # plain Python lists, rounded in one pass each: indexing numpy arrays and rounding
    # per hit and field costs more than the rest
    scores = _rounded(ranked.scores[page], 6)
    confidences = _rounded(confidence[page], 4)
    stands = stands_for[page].tolist()
    columns = [(name, scores if col is ranked.scores else _rounded(col[page], 6),
                ranked.ranks[name][page].tolist() if name in ranked.ranks else None)
               for name, col in ranked.per_signal.items()]
    hits = []
    for row, key in enumerate(keys.tolist()):
        found = rows.get(key)
        if found is None:  # deleted between ranking and fetching
            continue
        ident, title, category, brand, price, image, thumbnail = found
        matched: dict[str, dict[str, float]] = {}
        for name, column, positions in columns:
            score = column[row]
            if math.isfinite(score):
                if positions is not None and positions[row]:
                    matched[name] = {"score": score, "rank": positions[row]}
                else:
                    matched[name] = {"score": score}
        # positional: keywords cost a third of making the hit
        match = matches.get(key)
        hits.append(SearchHit(ident, scores[row], title, category, brand, price, image,
                              thumbnail, confidences[row], stands[row] - 1, matched,
                              match.kind if match else "similar",
                              dict(match.evidence) if match else {}))
    return _logged(searcher, query, SearchResult(
        hits, query.kind, (time.perf_counter() - started) * 1000,
        total_candidates=ranked.candidates, plan=ranked.plan, interpretation=interpretation))


def _collapse(searcher: Searcher, keys: NDArray[np.int64]
              ) -> tuple[NDArray[np.bool_], NDArray[np.int64]] | None:
    """Which ranked keys to keep (near-exact duplicates folded), and how many hits each
    kept one stands for; None when nothing folds."""
    return collapse_hits(keys, searcher.catalog.phashes_of,
                         lambda some: searcher.spaces["image"].vectors_of_keys(some))


def _rounded(values: NDArray[Any], digits: int) -> list[float]:
    """Floats rounded to ``digits`` decimals (NaN stays NaN), as a list."""
    return values.astype(np.float64).round(digits).tolist()


def _logged(searcher: Searcher, query: Query, result: SearchResult) -> SearchResult:
    if searcher.logs is not None:
        # The line is made here (a few µs), not on the log's thread: waiting there, the
        # answer's objects stayed alive for up to a tenth of a second. bench/peers.py at
        # 1M items, p99 of similar-by-id 1.6-1.8 ms before, 0.81-0.82 ms after (by vector
        # 0.94-1.25 and 0.79-0.80, 2026-12-06 22:27-22:46 UTC); the medians did not move.
        load_ms = current_timings().get("model_load", 0.0)
        result.search_id = searcher.logs.log_search(SearchRecord.of(
            query, result, result.hits, result.interpretation,
            max(result.query_time_ms - load_ms, 0.0), load_ms))
    return result
