"""Calibrated confidence over a remote collection, with the local engine's rules
(``search.calibration``) fed from what the backend returns.

- **image** hits are judged against the query image's own neighbours (its
  ``BACKGROUND_RANK``-th best score over the whole collection, together with the
  encoder's fixed background sample) and, from ``MIN_VECTORS`` items on, against the
  collection's random-pair calibration, measured on a uniform random sample of the
  whole collection's items (``remote_sample``), their vectors fetched from the
  backend; a smaller collection is judged with the encoder's prior, which the
  stand-out must confirm (``judge_image_hits``). A noise image is judged like nothing.
- **text** hits (the text space, or CLIP text in the image space) are judged against
  unrelated probe queries searched in the collection (``calibrate_probes``).
- **keyword** (BM25) hits count by the share of the query's words their text holds.

A node keeps the calibrations it measured, as the local engine keeps its own in the
manifest, and measures them again when the collection has grown or shrunk by a fifth
(``is_stale``); the collection's size it checks at most every ``COUNT_TTL_S`` seconds,
so that a search does not ask the server to count on every call.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from typing import cast

import numpy as np
from numpy.typing import NDArray

from imgsearch.encode.base import Encoder
from imgsearch.engine.backends.base import CollectionBackend, Hit
from imgsearch.engine.remote_sample import Sample, reservoir
from imgsearch.search.calibration import (
    MIN_VECTORS,
    PROBE_TEXTS,
    Calibration,
    background,
    calibrate_probe_scores,
    calibrate_sample,
    is_stale,
    judge_image_hits,
    prior,
)
from imgsearch.search.matching import SIMILAR_CEILING
from imgsearch.search.space import SpaceIndex
from imgsearch.store.catalog import STOPWORDS
from imgsearch.titles import clean_title
from imgsearch.types import Item

COUNT_TTL_S = 5.0
SAMPLE = 2_000  # stored vectors fetched for a calibration (the local engine samples 2,000)
_WORD = re.compile(r"\w+", re.UNICODE)


class _Neighbourhood:
    """What ``search.calibration`` asks of a space (its size, a search for a query's
    best scores), answered by the backend over the whole collection, unfiltered."""

    def __init__(self, backend: CollectionBackend, space: str, size: int) -> None:
        self.backend, self.space, self.size = backend, space, size
        self.index = self

    def __len__(self) -> int:
        return self.size

    def search(self, queries: NDArray[np.float32], k: int
               ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        scores = np.full((len(queries), k), -np.inf, np.float32)
        for row, query in enumerate(queries):
            found = [h.score for h in self.backend.search(self.space, query, k)]
            scores[row, :len(found)] = found
        return scores, np.full((len(queries), k), -1, np.int64)


class RemoteCalibrations:
    """The calibrations of one remote collection, measured when first needed."""

    def __init__(self, backend: CollectionBackend, model_ids: dict[str, str],
                 encoder: Callable[[str], Encoder]) -> None:
        self.backend = backend
        self.model_ids = model_ids  # per space, as the collection records its encoders
        self.encoder = encoder
        self._held: dict[str, Calibration | None] = {}
        self._count: tuple[float, int] | None = None
        self.sampled: Sample | None = None  # the last calibration's sample of items
        self._lock = threading.Lock()

    def size(self) -> int:
        now = time.monotonic()
        held = self._count
        if held is None or now - held[0] > COUNT_TTL_S:
            held = (now, self.backend.count())
            self._count = held
        return held[1]

    def warm(self) -> None:
        """The image calibration measured now; errors are left for a search to meet."""
        with contextlib.suppress(Exception):  # an unreachable server, a closed client
            self.image()

    def neighbourhood(self, space: str) -> SpaceIndex:
        # search.calibration reads only len() and index.search() of a space
        return cast(SpaceIndex, _Neighbourhood(self.backend, space, self.size()))

    def image(self) -> Calibration | None:
        """The prior below ``MIN_VECTORS`` items, the collection's pairs above."""
        if self.size() < MIN_VECTORS:
            return prior(self.model_ids.get("image", ""))
        return self._get("image", lambda: calibrate_sample(self._sample("image"),
                                                           self.size()), MIN_VECTORS)

    def text(self, name: str, space: str, encoder_space: str) -> Calibration | None:
        """Probe calibration of text queries into ``space`` (``name``: "text" or
        "clip_text"), the probes embedded by ``encoder_space``'s encoder."""
        def measure() -> Calibration | None:
            probes = self.encoder(encoder_space).embed_texts(list(PROBE_TEXTS))
            best = np.asarray([(hits[0].score if (hits := self.backend.search(
                space, probe, 1)) else np.nan) for probe in probes], np.float32)
            return calibrate_probe_scores(probes, self._sample(space), best, self.size())
        return self._get(name, measure, 1)

    def _get(self, name: str, measure: Callable[[], Calibration | None],
             minimum: int) -> Calibration | None:
        with self._lock:
            if name not in self._held or is_stale(self._held[name], self.size(), minimum):
                self._held[name] = measure() if self.size() >= minimum else None
            return self._held[name]

    def _sample(self, space: str) -> NDArray[np.float32]:
        """Up to ``SAMPLE`` stored vectors of ``space``, of items drawn uniformly from the
        whole collection (``remote_sample``: a reservoir over a scan of the ids, bounded
        in time), fetched by id."""
        drawn = reservoir(self.backend.ids(), SAMPLE)
        self.sampled = drawn
        stored = self.backend.fetch_vectors(space, drawn.ids) if drawn.ids else {}
        vectors = [stored[i] for i in drawn.ids if i in stored]
        if not vectors:
            return np.empty((0, 1), np.float32)
        return np.stack(vectors).astype(np.float32)


def image_confidence(calibrations: RemoteCalibrations,
                     positives: Sequence[tuple[NDArray[np.float32], bool]],
                     sims: NDArray[np.float32],
                     neighbours: NDArray[np.float32] | None) -> NDArray[np.float32]:
    """How well each candidate matches the best-matching query image (``positives``:
    each query vector and whether its image is noise; ``sims``: one row per query
    vector, its cosine with each candidate, -1 where unknown). ``neighbours``:
    the single query image's best scores over the whole collection, when the search
    already found them."""
    model_id = calibrations.model_ids.get("image", "")
    calibration = calibrations.image()
    space = calibrations.neighbourhood("image")
    best = np.zeros(sims.shape[1], np.float32)
    for (vector, noise), row in zip(positives, sims, strict=True):
        if not noise:  # nothing merely looks like noise
            best = np.maximum(best, judge_image_hits(row, vector, space, calibration,
                                                     background(model_id), neighbours))
    return best


def text_confidence(calibration: Calibration | None,
                    sims: NDArray[np.float32]) -> NDArray[np.float32]:
    """Text hits against the probes' calibration (every hit counts without one)."""
    if calibration is None:
        return np.where(sims > -1.0, 1.0, 0.0).astype(np.float32)
    return calibration.confidence(sims)


def term_coverage(text: str, items: Sequence[Item | None]) -> NDArray[np.float32]:
    """For each item, the share of the query's words its text holds: the keyword
    evidence the local engine takes from its full-text index, computed the same way (an
    in-memory SQLite FTS5 table over the candidates, with the catalog's tokenizer)."""
    words = [w for w in _WORD.findall(text.casefold()) if w]
    terms = list(dict.fromkeys([w for w in words if w not in STOPWORDS] or words))
    coverage = np.zeros(len(items), np.float32)
    if not terms or not any(items):
        return coverage
    with contextlib.closing(sqlite3.connect(":memory:")) as db:
        db.execute("CREATE VIRTUAL TABLE t USING fts5(body, "
                   "tokenize = 'porter unicode61 remove_diacritics 2')")
        db.executemany("INSERT INTO t (rowid, body) VALUES (?, ?)", [
            (n, _text_of(item)) for n, item in enumerate(items) if item is not None])
        for term in terms:
            for (row,) in db.execute("SELECT rowid FROM t WHERE t MATCH ?", (f'"{term}"',)):
                coverage[int(row)] += 1.0
    return coverage / np.float32(len(terms))


def _text_of(item: Item) -> str:
    """What the catalog's full-text index holds of an item."""
    places = (item.city, item.region, item.country)
    return " ".join(filter(None, (
        clean_title(item.title), item.description, " ".join(item.tags), item.category,
        item.brand, " ".join([*item.colors, item.color or ""]), item.ocr_text, item.album,
        " ".join(p for p in places if p))))


def capped(parts: Sequence[NDArray[np.float32]], n: int) -> NDArray[np.float32]:
    """The strongest view of each candidate, a similar hit never shown as 100 %."""
    confidence = np.maximum.reduce([np.zeros(n, np.float32), *parts])
    return np.minimum(confidence, np.float32(SIMILAR_CEILING)).astype(np.float32)


def scores_of(hits: Sequence[Hit]) -> NDArray[np.float32]:
    return np.asarray([h.score for h in hits], np.float32)


__all__ = ["COUNT_TTL_S", "RemoteCalibrations", "capped", "image_confidence", "scores_of",
           "term_coverage", "text_confidence"]
