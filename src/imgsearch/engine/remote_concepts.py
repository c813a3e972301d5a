"""A text query's concept list on a remote collection (``search.concepts``), as the
local engine makes it (``search.concept_source``).

The list needs the collection's words (the vocabulary WordNet's kinds of a query word
are checked against) and which items hold a word. Locally both come from the catalog's
keyword index; a Milvus collection has neither to read (its BM25 is over another
analyser, and the 2.3.5 server has none), so the node builds them (``RemoteWords``):
it reads every item's title, description, tags and category from the backend into an
in-memory SQLite FTS5 table with the catalog's own tokenizer, so that a word matches
the same items as locally. They are kept ``VOCABULARY_TTL_S`` seconds, as the brands
and categories of query understanding are (``remote_understand``), and none are built
over a collection of more than ``Settings.concept_vocabulary_max_items`` items (no
concept list there). The query's filters are pushed down to the backend for the
matched items (``filter_ids``), and the semantic similarity that orders them is their
stored text vectors' with the query.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from imgsearch.engine.backends.base import CollectionBackend, Hit
from imgsearch.engine.remote_understand import VOCABULARY_TTL_S
from imgsearch.search.concepts import (
    CONFIDENCE,
    NAME,
    Vocabulary,
    concept_options,
    expand,
    ranking,
)
from imgsearch.search.concepts import vocabulary_of as _vocabulary_of
from imgsearch.search.lexicon import WordNet
from imgsearch.store.catalog import STOPWORDS
from imgsearch.titles import clean_title
from imgsearch.types import Item, Query

if TYPE_CHECKING:
    from imgsearch.engine.remote import RemoteEngine

_TERM = re.compile(r"\w+", re.UNICODE)  # the catalog's word pattern (store.catalog)
_COLUMNS = "title, description, tags, category"


class _Words:
    """The collection's words as of one reading: its vocabulary, and an FTS5 table
    (rowid: position in ``ids``) that says which items hold a word."""

    def __init__(self, items: list[Item], wordnet: WordNet) -> None:
        self.ids = [item.id for item in items]
        self.db = sqlite3.connect(":memory:", check_same_thread=False)
        self.lock = threading.Lock()
        self.db.execute(f"CREATE VIRTUAL TABLE words USING fts5({_COLUMNS}, "
                        f"tokenize = 'porter unicode61 remove_diacritics 2')")
        rows = [(n, clean_title(item.title) or "", item.description or "",
                 " ".join(item.tags), item.category or "") for n, item in enumerate(items)]
        self.db.executemany(f"INSERT INTO words (rowid, {_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
                            rows)
        self.vocabulary: Vocabulary = _vocabulary_of(wordnet, (
            word for row in rows for value in row[1:] if value
            for word in _TERM.findall(value.casefold())))

    def matching_any(self, words: tuple[str, ...]) -> set[str]:
        """Ids of the items holding any of ``words`` (as ``Catalog.keys_matching_any``)."""
        phrases = [" ".join(_TERM.findall(w.casefold())) for w in words]
        phrases = [p for p in dict.fromkeys(phrases) if p]
        if not phrases:
            return set()
        match = "{" + _COLUMNS.replace(",", "") + "} : (" + \
            " OR ".join(f'"{p}"' for p in phrases) + ")"
        with self.lock:
            rows = self.db.execute("SELECT rowid FROM words WHERE words MATCH ?",
                                   (match,)).fetchall()
        return {self.ids[int(r[0])] for r in rows}


class RemoteWords:
    """WordNet (read once) and the collection's words, read when first needed and again
    ``VOCABULARY_TTL_S`` seconds later."""

    def __init__(self, backend: CollectionBackend, wordnet_dir: str, limit: int) -> None:
        self.backend, self.wordnet_dir, self.limit = backend, wordnet_dir, limit
        self._wordnet: WordNet | None = None
        self._looked = False
        self._held: tuple[float, _Words | None] | None = None
        self._lock = threading.Lock()

    def wordnet(self) -> WordNet | None:
        with self._lock:
            if not self._looked:
                self._wordnet = WordNet.find(self.wordnet_dir)
                self._looked = True
            return self._wordnet

    def words(self, wordnet: WordNet) -> _Words | None:
        """The collection's words (None: over ``limit`` items, not read)."""
        with self._lock:
            now = time.monotonic()
            if self._held is None or now - self._held[0] > VOCABULARY_TTL_S:
                found = None
                if self.backend.count() <= self.limit:
                    found = _Words([item for page in self.backend.items()
                                    for item in page], wordnet)
                # the reading it replaces is left to the collector: a search on
                # another thread may still be asking it
                self._held = (now, found)
            return self._held[1]


@dataclass
class ConceptHits:
    hits: list[Hit]  # best first, scored by coverage
    weight: float
    described: dict[str, list[str]]  # each query word and the kinds looked for
    evidence: dict[str, float]  # every matched id: its coverage times CONFIDENCE
    name: str = NAME
    plan: str = f"{NAME}:wordnet"


def concept_hits(engine: RemoteEngine, query: Query, vector: NDArray[np.float32] | None,
                 k: int) -> ConceptHits | None:
    """The query's concept list (None: off, no WordNet, a collection too large to read
    its words, or no query word with a kind of it in the collection)."""
    options = concept_options(engine.settings)
    if not options.enabled or not query.text:
        return None
    wordnet = engine.concept_words.wordnet()
    if wordnet is None:
        return None
    words = engine.concept_words.words(wordnet)
    if words is None:
        return None
    expansion = expand(wordnet, query.text, STOPWORDS, words.vocabulary, options)
    if not expansion.kinds:
        return None
    counts: dict[str, int] = {}
    for terms in expansion.terms.values():
        for item_id in words.matching_any(terms):
            counts[item_id] = counts.get(item_id, 0) + 1
    if not query.filters.is_empty() and counts:  # pushed down to the backend
        passing = engine.backend.filter_ids(sorted(counts), query.filters)
        counts = {i: n for i, n in counts.items() if i in passing}
    if not counts:
        return None
    ids = sorted(counts)
    keys = np.arange(len(ids), dtype=np.int64)  # sorted: ties go to the first id
    coverage = np.asarray([counts[i] for i in ids], np.float32) / \
        np.float32(len(expansion.words))
    similarity = np.zeros(len(ids), np.float32)
    if vector is not None:
        stored = engine.backend.fetch_vectors("text", ids)
        held = [n for n, item_id in enumerate(ids) if item_id in stored]
        if held:
            similarity[held] = np.stack([stored[ids[n]] for n in held]) @ vector
    top, scores = ranking(keys, coverage, similarity, k)
    return ConceptHits([Hit(ids[int(key)], float(score)) for key, score in zip(
        top, scores, strict=True)], options.weight, expansion.describe(), {
        i: float(c) * CONFIDENCE for i, c in zip(ids, coverage.tolist(), strict=True)})


__all__ = ["ConceptHits", "RemoteWords", "concept_hits"]
