"""Concept expansion, neighbour smoothing and soft seeds: pure functions over arrays."""

from __future__ import annotations

import numpy as np
import pytest

from imgsearch.search.concept_source import evidence
from imgsearch.search.concepts import ConceptOptions, expand, ranking, vocabulary_of
from imgsearch.search.feedback import neighbour_smoothing, soft_seeds
from imgsearch.search.lexicon import WordNet
from wordnetgen import write_wordnet

STOP = frozenset({"and", "the", "a"})


@pytest.fixture(scope="module")
def wordnet(tmp_path_factory: pytest.TempPathFactory) -> WordNet:
    return WordNet(write_wordnet(tmp_path_factory.mktemp("wordnet")))


def test_only_kinds_the_collection_uses_are_looked_for(wordnet):
    vocabulary = vocabulary_of(wordnet, ["a", "cows", "drum", "true", "cat", "mice"])
    assert vocabulary["cow"] == ("cows",) and vocabulary["mouse"] == ("mice",)
    assert vocabulary["drum"] == ("drum",)
    found = expand(wordnet, "mammals and drums", STOP, vocabulary, ConceptOptions(1.0))
    assert found.words == ["mammals", "drums"]
    assert set(found.kinds["mammals"]) == {"cow", "cat", "true cat", "mouse"}
    # asked of the keyword index as the collection writes them
    assert set(found.terms["mammals"]) == {"mammals", "cows", "cat", "true cat", "mice"}
    assert "drums" not in found.kinds  # nothing below "drum"
    assert found.describe()["mammals"] == list(found.kinds["mammals"])


def test_without_a_vocabulary_the_first_kinds_are_taken(wordnet):
    found = expand(wordnet, "mammal", STOP, None, ConceptOptions(1.0, unchecked=2))
    assert len(found.kinds["mammal"]) == 2


def test_unknown_words_are_not_expanded(wordnet):
    found = expand(wordnet, "quantum lecture", STOP, {"cow": ("cow",)}, ConceptOptions(1.0))
    assert found.kinds == {} and found.words == ["quantum", "lecture"]


def test_ranking_is_by_coverage_then_similarity_then_key():
    keys = np.array([5, 3, 9, 7], np.int64)
    coverage = np.array([0.5, 1.0, 1.0, 0.5], np.float32)
    similarity = np.array([0.9, 0.1, 0.2, 0.9], np.float32)
    top, scores = ranking(keys, coverage, similarity, 3)
    assert top.tolist() == [9, 3, 5] and scores.tolist() == [1.0, 1.0, 0.5]


def test_evidence_is_coverage_times_confidence_for_matched_keys_only():
    matched = np.array([9, 2, 4], np.int64)
    coverage = np.array([1.0, 0.5, 0.25], np.float32)
    out = evidence(matched, coverage, np.array([4, 8, 9, 2], np.int64), 0.6)
    assert out.tolist() == pytest.approx([0.15, 0.0, 0.6, 0.3])
    assert evidence(matched[:0], coverage[:0], np.array([1], np.int64), 0.6).tolist() == [0]


def test_soft_seeds_weigh_the_surest_most_and_sum_to_one():
    weights = soft_seeds(np.array([0.8, 0.7, 0.4], np.float32), 0.05)
    assert weights.sum() == pytest.approx(1.0)
    assert weights[0] > weights[1] > weights[2]
    even = soft_seeds(np.array([0.5, 0.5], np.float32), 0.05)
    assert even.tolist() == pytest.approx([0.5, 0.5])


def test_smoothing_lifts_an_item_whose_neighbours_scored_well():
    # items 0-2 are one cluster that ranks high; item 4 belongs to it but ranks low,
    # item 3 is a stray between them
    scores = np.array([0.9, 0.85, 0.8, 0.6, 0.55], np.float32)
    vectors = np.array([[1, 0], [0.99, 0.1], [0.98, 0.2], [0, 1], [0.97, 0.25]],
                       np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    smoothed = neighbour_smoothing(scores, [(np.arange(5), vectors, 1.0)], 2)
    assert smoothed[4] > smoothed[3]  # rises above the stray
    plain = neighbour_smoothing(scores, [(np.arange(5), vectors, 0.0)], 2)
    assert np.argsort(-plain).tolist() == [0, 1, 2, 3, 4]  # weight 0: order kept


def test_smoothing_with_vectors_for_part_of_the_list_touches_only_those():
    scores = np.array([0.9, 0.5, 0.4, 0.3], np.float32)
    vectors = np.eye(2, dtype=np.float32)[[0, 0]]
    positions = np.array([0, 3], np.int64)
    smoothed = neighbour_smoothing(scores, [(positions, vectors, 1.0)], 5)
    z = (scores - scores.mean()) / scores.std()
    assert smoothed[1:3].tolist() == pytest.approx(z[1:3].tolist())
    assert smoothed[3] == pytest.approx(z[3] + z[0])
