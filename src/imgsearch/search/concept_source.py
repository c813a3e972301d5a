"""A text query's concept list (search.concepts), wired to a collection.

:class:`ConceptSource` keeps what the expansion needs between queries: WordNet, read
once (from ``Settings.wordnet_dir``; absent: no expansion), and the collection's
vocabulary, read from its keyword index after each write when the collection holds at
most ``Settings.concept_vocabulary_max_items`` items (above that, reading it after
every write would cost more than it saves: each word then gets its first
``ConceptOptions.unchecked`` kinds, and the keyword index finds which it holds).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from imgsearch.config import Settings
from imgsearch.search.concepts import (
    NAME,
    Expansion,
    Vocabulary,
    concept_options,
    expand,
    ranking,
)
from imgsearch.search.concepts import vocabulary_of as _vocabulary_of
from imgsearch.search.executor import Signal
from imgsearch.search.fusion import RankedList
from imgsearch.search.lexicon import WordNet
from imgsearch.search.protocols import CatalogReads, CollectionState
from imgsearch.store.catalog import STOPWORDS

if TYPE_CHECKING:
    from imgsearch.search.searcher import Searcher


class ConceptSource:
    """WordNet and the collection's vocabulary, each read when first needed."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._wordnet: WordNet | None = None
        self._looked = False
        self._vocabulary: tuple[int, Vocabulary | None] | None = None

    def wordnet(self) -> WordNet | None:
        with self._lock:
            if not self._looked:
                self._wordnet = WordNet.find(self.settings.wordnet_dir)
                self._looked = True
            return self._wordnet

    def vocabulary(self, derived: CollectionState, catalog: CatalogReads, wordnet: WordNet
                   ) -> Vocabulary | None:
        """The collection's words and their lemmas as of its last write (None: too
        large to read after every write)."""
        version = derived.write_version
        held = self._vocabulary
        if held is not None and held[0] == version:
            return held[1]
        found: Vocabulary | None = None
        if catalog.count() <= self.settings.concept_vocabulary_max_items:
            found = _vocabulary_of(wordnet, catalog.iter_words())
        if version == derived.write_version:  # else a write landed while it was read
            self._vocabulary = (version, found)
        return found


def concept_list(searcher: Searcher, text: str, semantic: Signal | None, k: int,
                 allowed: NDArray[np.int64] | None
                 ) -> tuple[RankedList, Expansion, NDArray[np.int64],
                            NDArray[np.float32]] | None:
    """The ``concepts`` list of ``text`` (see search.concepts), the expansion it came
    from, and every matched key with its coverage (for the evidence); None when it is
    off, WordNet is missing or no query word has a kind of it in the collection."""
    options = concept_options(searcher.settings)
    if not options.enabled:
        return None
    wordnet = searcher.concepts.wordnet()
    if wordnet is None:
        return None
    expansion = expand(wordnet, text, STOPWORDS, searcher.concepts.vocabulary(
        searcher.derived, searcher.catalog, wordnet),
                       options)
    if not expansion.kinds:
        return None
    counts: dict[int, int] = {}
    for terms in expansion.terms.values():
        for key in searcher.catalog.keys_matching_any(terms).tolist():
            counts[key] = counts.get(key, 0) + 1
    keys = np.fromiter(counts, np.int64, len(counts))
    if allowed is not None:
        keys = keys[np.isin(keys, allowed)]
    if not len(keys):
        return None
    coverage = np.asarray([counts[int(key)] for key in keys], np.float32) / \
        np.float32(len(expansion.words))
    similarity = np.zeros(len(keys), np.float32)
    if semantic is not None:
        found, vectors = semantic.space.vectors_of_keys(keys)
        if len(found):
            at = {int(key): i for i, key in enumerate(keys)}
            similarity[[at[int(key)] for key in found]] = vectors @ semantic.vector
    top, scores = ranking(keys, coverage, similarity, k)
    return RankedList(NAME, top, scores, options.weight), expansion, keys, coverage


def evidence(matched: NDArray[np.int64], coverage: NDArray[np.float32],
             keys: NDArray[np.int64], confidence: float) -> NDArray[np.float32]:
    """Per key of ``keys``: its share of the query's words matched through concepts,
    times ``confidence`` (0 for keys the list did not match)."""
    out = np.zeros(len(keys), np.float32)
    if not len(matched):
        return out
    order = np.argsort(matched)
    at = np.searchsorted(matched, keys, sorter=order)
    at = np.minimum(at, len(matched) - 1)
    hit = matched[order[at]] == keys
    out[hit] = coverage[order[at[hit]]] * np.float32(confidence)
    return out
