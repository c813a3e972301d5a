"""Concept expansion of a text query: the collection's words for kinds of what it asks for.

A category-level query ("mammals", "insects and bugs", "desserts and sweets") rarely
shares a word with the titles of its members ("A cow.", "A bee.", "Chocolate cake"), and
a sentence encoder places "mammals" only loosely near "A cow.". WordNet's noun hierarchy
(:mod:`imgsearch.search.lexicon`) knows that a cow is a mammal. Each content word of the
query is expanded into the words for kinds of it that the collection actually uses (its
``vocabulary``, so the keyword index is asked only about words it has), and the items
holding any of them form one more ranked list, ``concepts``: first by the share of the
query's content words they match (by the word itself or a kind of it), then by their
semantic similarity to the query, so that a cow comes before a "sea cow" clip-art of a
coin.

The expansion is visible in the interpretation (``expanded.concepts``: each query word
with the kinds of it that were looked for). An item this list alone brought is only as
confident as its share of the query's words times ``CONFIDENCE`` (a kind of the word is
weaker evidence than the word itself): all of a query's words are needed to pass the
default minimum confidence of 0.5.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from imgsearch.config import Settings
from imgsearch.search.lexicon import WordNet, content_words

NAME = "concepts"
CONFIDENCE = 0.6  # evidence of an item that has a kind of every query word
SHOWN = 8  # kinds of each word named in the interpretation


@dataclass(frozen=True)
class ConceptOptions:
    weight: float = 0.0  # 0: off
    senses: int = 2
    depth: int = 10
    limit: int = 20_000  # a word with more kinds than this is too broad to expand
    unchecked: int = 200  # without a vocabulary, at most this many kinds per word
    compounds: bool = True  # also the kinds of the compounds that hold the word

    @property
    def enabled(self) -> bool:
        return self.weight > 0


@dataclass
class Expansion:
    words: list[str]  # the query's content words
    kinds: dict[str, tuple[str, ...]] = field(default_factory=dict)  # per word: its kinds
    # per word: the terms the keyword index is asked for (the kinds as the collection
    # writes them: "mouse" is looked for as "mice" where that is the word used)
    terms: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def describe(self) -> dict[str, list[str]]:
        """What the interpretation says: each expanded word and the first kinds of it."""
        return {word: list(kinds[:SHOWN]) for word, kinds in self.kinds.items()}


Vocabulary = Mapping[str, tuple[str, ...]]


def concept_options(settings: Settings) -> ConceptOptions:
    return ConceptOptions(settings.weight_concepts, settings.concept_senses,
                          settings.concept_depth, compounds=settings.concept_compounds)


def vocabulary_of(wordnet: WordNet, words: Iterable[str]) -> Vocabulary:
    """The collection's words and their WordNet lemmas, each with the words the
    collection writes it as ("cows" and "cow" -> ("cows",), "mouse" -> ("mice",))."""
    forms: dict[str, set[str]] = {}
    for word in set(words):
        forms.setdefault(word, set()).add(word)
        lemma = wordnet.lemma(word)
        if lemma is not None and lemma != word:
            forms.setdefault(lemma, set()).add(word)
    return {word: tuple(sorted(written)) for word, written in forms.items()}


def expand(wordnet: WordNet, text: str, stopwords: frozenset[str],
           vocabulary: Vocabulary | None, options: ConceptOptions) -> Expansion:
    """The kinds of each content word of ``text`` that the collection uses (without a
    ``vocabulary``: the first ``options.unchecked`` of them). A word WordNet does not
    know as a noun, or with no kind of it in the collection, is not expanded."""
    out = Expansion(content_words(text, stopwords))
    for word in out.words:
        lemma = wordnet.lemma(word, compounds=options.compounds)
        if lemma is None:
            continue
        kinds = wordnet.narrower(lemma, options.senses, options.depth, options.limit,
                                  options.compounds)[1:]
        if vocabulary is None:
            kept = kinds[:options.unchecked]
            terms = (word, *kept)
        else:
            kept = tuple(k for k in kinds if all(part in vocabulary for part in k.split()))
            terms = (word, *(form for k in kept
                             for form in (vocabulary[k] if " " not in k else (k,))))
        if kept:
            out.kinds[word] = kept
            out.terms[word] = tuple(dict.fromkeys(terms))
    return out


def ranking(keys: NDArray[np.int64], coverage: NDArray[np.float32],
            similarity: NDArray[np.float32], k: int
            ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """The first ``k`` keys by coverage, then similarity, then key; the scores are the
    coverage (what the list's rank says), the similarity only breaking ties."""
    order = np.lexsort((keys, -similarity, -coverage))[:k]
    return keys[order], coverage[order].astype(np.float32)
