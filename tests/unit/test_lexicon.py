"""WordNet's noun hierarchy, read from a tiny database in its own file format."""

from __future__ import annotations

import pytest

from imgsearch.errors import InvalidInputError
from imgsearch.search.lexicon import WordNet, content_words
from wordnetgen import write_wordnet


@pytest.fixture(scope="module")
def wordnet(tmp_path_factory: pytest.TempPathFactory) -> WordNet:
    return WordNet(write_wordnet(tmp_path_factory.mktemp("wordnet")))


def test_plural_and_irregular_forms_find_their_noun(wordnet):
    assert wordnet.lemma("mammals") == "mammal"
    assert wordnet.lemma("Mice") == "mouse"  # noun.exc
    assert wordnet.lemma("kine") == "cow"
    assert wordnet.lemma("cow") == "cow"
    assert wordnet.lemma("percussion") is None  # only inside a compound
    assert wordnet.lemma("percussion", compounds=True) == "percussion"
    assert wordnet.compounds("percussion") == ("percussion instrument",)
    assert wordnet.lemma("quantum") is None


def test_kinds_of_a_word_go_down_the_hierarchy(wordnet):
    kinds = wordnet.narrower("mammal")
    assert kinds[0] == "mammal"
    assert {"bovine", "cow", "moo cow", "cat", "true cat", "mouse"} <= set(kinds)
    assert "pigeon" not in kinds and "animal" not in kinds  # not below, nor above


def test_depth_limits_how_far_down(wordnet):
    assert set(wordnet.narrower("animal", depth=1)) == {"animal", "beast", "mammal", "bird"}
    assert "cow" in wordnet.narrower("animal", depth=3)


def test_a_word_counts_only_through_its_first_meanings(wordnet):
    # "cow" as a person is cow's second meaning: counted with two senses, not with one
    assert "cow" in wordnet.narrower("person", senses=2)
    assert wordnet.narrower("person", senses=1) == ("person",)


def test_a_too_broad_word_gives_no_kinds(wordnet):
    assert wordnet.narrower("animal", limit=3) == ()
    assert wordnet.narrower("unknown") == ()


def test_compounds_that_hold_the_word_count_when_asked(wordnet):
    assert wordnet.narrower("percussion", compounds=False) == ()  # no noun of its own
    assert wordnet.narrower("percussion", compounds=True) == (
        "percussion", "percussion instrument", "drum")


def test_find_without_the_files_is_none_and_a_broken_database_is_refused(tmp_path):
    assert WordNet.find(tmp_path / "missing") is None
    assert WordNet.find("") is None
    (tmp_path / "index.noun").write_text("cow n 1 0 1 0 notanumber\n")
    (tmp_path / "data.noun").write_text("")
    with pytest.raises(InvalidInputError, match="wordnet-base"):
        WordNet.find(tmp_path)


def test_content_words_drop_stopwords_and_short_words():
    assert content_words("Insects and BUGS of the UK", frozenset({"and", "the"})) == [
        "insects", "bugs"]


def test_every_lemma_is_found_as_a_full_read_of_the_index_finds_it(tmp_path):
    # lines are parsed in stretches found by binary search: lemmas shorter than a
    # stretch's prefix, the first and the last line, and compounds anywhere all count
    synsets = (
        ("a", ("a", "ab", "abc", "abcd"), ()),
        ("ox", ("ox", "musk ox", "oxen cart"), ("a",)),
        ("zebra", ("zebra", "zz", "z"), ("a",)),
        ("cart", ("cart", "ox cart", "a cart"), ("ox",)),
    )
    wordnet = WordNet(write_wordnet(tmp_path, synsets))
    lines = (tmp_path / "index.noun").read_text(encoding="utf-8").splitlines()
    everything = {line.split()[0]: line for line in lines if not line.startswith(" ")}
    for lemma, line in everything.items():
        parts = line.split()
        offsets = tuple(int(o) for o in parts[4 + int(parts[3]) + 2:])
        assert wordnet.senses(lemma.replace("_", " ")) == offsets, lemma
    assert wordnet.senses("b") == wordnet.senses("oxe") == wordnet.senses("zzz") == ()
    assert wordnet.compounds("ox") == ("musk ox", "ox cart")
    assert wordnet.compounds("cart") == ("a cart", "ox cart", "oxen cart")
    assert wordnet.compounds("a") == ("a cart",)
    assert wordnet.narrower("a", depth=2) == (
        "a", "ab", "abc", "abcd", "ox", "musk ox", "oxen cart", "zebra", "zz", "z",
        "cart", "ox cart", "a cart")
