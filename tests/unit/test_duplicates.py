"""Near-duplicate tiers, groups, per-item duplicates and result collapsing.

Families of generated pictures: an original, a byte copy, a JPEG q=50 re-encode, a
half-size copy and a 10% crop, hashed and encoded the way ingest does; plus pictures
that are no copies of anything.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from PIL import Image

from imagegen import picture
from imgsearch.config import Settings
from imgsearch.encode.blas import blas_threads
from imgsearch.encode.registry import get_encoder
from imgsearch.enrich.phash import hash_to_unsigned, perceptual_hash
from imgsearch.errors import InvalidInputError
from imgsearch.search.duplicates import (
    TIERS,
    DuplicateTiers,
    collapse,
    duplicates_of,
    find_duplicate_pairs,
    group_duplicates,
    hash_index,
)

FAMILY_SEEDS = (0, 1, 2, 3)
OTHER_SEEDS = (100, 101, 102, 103, 104, 105)
KINDS = ("original", "copy", "jpeg50", "half", "crop10")
VectorsOf = Callable[[NDArray[np.int64]], tuple[NDArray[np.int64], NDArray[np.float32]]]


def key(seed: int, kind: str) -> int:
    return 10 * seed + KINDS.index(kind) + 1


def _decoded(image: Image.Image, fmt: str, **options: object) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def _family(seed: int) -> dict[str, Image.Image]:
    image = picture(seed, (256, 192))
    width, height = image.size
    original = _decoded(image, "PNG")
    return {
        "original": original,
        "copy": _decoded(original, "PNG"),  # the same pixels through another file
        "jpeg50": _decoded(image, "JPEG", quality=50),
        "half": _decoded(image.resize((width // 2, height // 2), Image.Resampling.LANCZOS),
                         "PNG"),
        "crop10": _decoded(image.crop((width // 20, height // 20, width - width // 20,
                                       height - height // 20)), "PNG"),
    }


class Collection:
    """Keys, hashes and stored vectors of the generated pictures."""

    def __init__(self) -> None:
        images: dict[int, Image.Image] = {}
        for seed in FAMILY_SEEDS:
            for kind, image in _family(seed).items():
                images[key(seed, kind)] = image
        for seed in OTHER_SEEDS:
            images[10 * seed + 1] = picture(seed, (256, 192))
        self.keys = np.asarray(sorted(images), dtype=np.int64)
        self.hashes = np.asarray([perceptual_hash(images[int(k)]) for k in self.keys],
                                 dtype=np.int64)
        encoder = get_encoder("descriptor", Settings())
        vectors = encoder.embed_images([images[int(k)] for k in self.keys])
        self.vectors = {int(k): v for k, v in zip(self.keys, vectors, strict=True)}

    def vectors_of(self, keys: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        found = [int(k) for k in keys if int(k) in self.vectors]
        matrix = np.stack([self.vectors[k] for k in found]) if found else np.empty((0, 1))
        return np.asarray(found, dtype=np.int64), matrix.astype(np.float32)

    def hash_of(self, k: int) -> int:
        return int(self.hashes[np.flatnonzero(self.keys == k)[0]])

    def hashes_of(self, keys: NDArray[np.int64]) -> NDArray[np.int64]:
        return np.asarray([self.hash_of(int(k)) for k in keys], dtype=np.int64)


@pytest.fixture(scope="module")
def pictures() -> Collection:
    return Collection()


def test_each_kind_of_copy_lands_in_its_tier(pictures: Collection) -> None:
    pairs = find_duplicate_pairs(pictures.keys, pictures.hashes, pictures.vectors_of)
    tier_of = {(a, b): tier for a, b, _h, _c, tier in pairs}
    for seed in FAMILY_SEEDS:
        original = key(seed, "original")
        assert tier_of[(original, key(seed, "copy"))] == "exact"
        assert tier_of[(original, key(seed, "jpeg50"))] == "near-exact"
        assert tier_of[(original, key(seed, "half"))] == "near-exact"
        assert tier_of[(original, key(seed, "crop10"))] == "variant"


def test_pairs_never_join_different_pictures_and_come_strongest_first(
        pictures: Collection) -> None:
    pairs = find_duplicate_pairs(pictures.keys, pictures.hashes, pictures.vectors_of)
    assert pairs
    for a, b, hamming, cosine, _tier in pairs:
        assert a < b and a // 10 == b // 10, (a, b, hamming, cosine)
    order = [(TIERS.index(p[4]), -p[3]) for p in pairs]
    assert order == sorted(order)


def test_groups_are_the_families_at_each_tier(pictures: Collection) -> None:
    pairs = find_duplicate_pairs(pictures.keys, pictures.hashes, pictures.vectors_of)
    expected_kinds = {"exact": KINDS[:2], "near-exact": KINDS[:4], "variant": KINDS}
    for min_tier, kinds in expected_kinds.items():
        groups = group_duplicates(pairs, min_tier=min_tier)
        assert sorted(g.keys for g in groups) == [
            [key(seed, kind) for kind in kinds] for seed in FAMILY_SEEDS]
        for group in groups:
            assert group.tier == min_tier
            assert group.representative == min(group.keys)
            assert {(a, b) for a, b, _h, _c in group.pairs} >= {
                (group.keys[0], other) for other in group.keys[1:]}


def test_group_tier_is_its_weakest_needed_link_and_prefer_picks_representative() -> None:
    pairs = [(1, 2, 0, 1.0, "exact"), (2, 3, 14, 0.91, "variant"),
             (3, 4, 2, 0.97, "near-exact"), (5, 6, 1, 0.99, "near-exact")]
    groups = group_duplicates(pairs)
    assert [(g.keys, g.tier) for g in groups] == [([5, 6], "near-exact"),
                                                  ([1, 2, 3, 4], "variant")]
    # a stronger path around the weak link makes the whole group near-exact
    stronger = group_duplicates([*pairs, (1, 3, 3, 0.96, "near-exact")])
    assert (stronger[0].keys, stronger[0].tier) == ([1, 2, 3, 4], "near-exact")
    preferred = group_duplicates(pairs, prefer=lambda k: {3: 9.0}.get(k, 1.0))
    assert [g.representative for g in preferred] == [5, 3]
    assert [g.keys for g in group_duplicates(pairs, min_tier="exact")] == [[1, 2]]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 15), st.integers(0, 15), st.sampled_from(TIERS)),
                max_size=25),
       st.sampled_from(TIERS))
def test_groups_match_connected_components(edges: list[tuple[int, int, str]],
                                           min_tier: str) -> None:
    pairs = [(min(a, b), max(a, b), 0, 0.5, t) for a, b, t in edges if a != b]
    groups = group_duplicates(pairs, min_tier=min_tier)

    def components(limit: int) -> set[frozenset[int]]:
        links: dict[int, set[int]] = {}
        for a, b, _h, _c, t in pairs:
            if TIERS.index(t) <= limit:
                links.setdefault(a, set()).add(b)
                links.setdefault(b, set()).add(a)
        seen: set[int] = set()
        found = set()
        for start in links:
            if start not in seen:
                todo, part = [start], set()
                while todo:
                    node = todo.pop()
                    if node not in part:
                        part.add(node)
                        todo.extend(links[node])
                seen |= part
                found.add(frozenset(part))
        return found

    assert {frozenset(g.keys) for g in groups} == components(TIERS.index(min_tier))
    for group in groups:
        # the group's tier is the strongest at which it is still one piece
        holds = [t for t in range(len(TIERS)) if frozenset(group.keys) in components(t)]
        assert TIERS.index(group.tier) == min(holds)


def test_duplicates_of_lists_the_family_without_the_item(pictures: Collection) -> None:
    index = hash_index(pictures.keys, pictures.hashes)
    for asked in ("original", "copy"):
        item = key(2, asked)
        found = duplicates_of(item, pictures.hash_of(item), index, pictures.vectors_of)
        assert item not in [k for k, *_ in found]
        assert sorted(k for k, *_ in found) == sorted(
            key(2, kind) for kind in KINDS if kind != asked)
        assert found[0][3] == "exact" and found[-1][3] == "variant"
        order = [(TIERS.index(tier), -cosine) for _k, _h, cosine, tier in found]
        assert order == sorted(order)
    lonely = 10 * OTHER_SEEDS[0] + 1
    assert duplicates_of(lonely, pictures.hash_of(lonely), index, pictures.vectors_of) == []


def test_collapse_folds_duplicates_into_earlier_hits(pictures: Collection) -> None:
    ranked = np.asarray([key(0, "original"), key(0, "jpeg50"), key(1, "original"),
                         key(0, "half"), key(0, "crop10"), key(1, "copy"),
                         10 * OTHER_SEEDS[0] + 1], dtype=np.int64)
    scores = np.linspace(0.9, 0.3, len(ranked)).astype(np.float32)

    def run(min_tier: str) -> tuple[list[int], list[float], list[int]]:
        kept, kept_scores, counts = collapse(ranked, scores, pictures.hashes_of,
                                             pictures.vectors_of, min_tier=min_tier)
        return kept.tolist(), kept_scores.tolist(), counts.tolist()

    kept, kept_scores, counts = run("near-exact")
    assert kept == [ranked[0], ranked[2], ranked[4], ranked[6]]
    assert kept_scores == [scores[0], scores[2], scores[4], scores[6]]
    assert counts == [3, 2, 1, 1]
    assert run("variant")[2] == [4, 2, 1]
    assert run("exact")[0] == [ranked[i] for i in (0, 1, 2, 3, 4, 6)]


def test_items_without_a_stored_vector_are_never_paired(pictures: Collection) -> None:
    missing = key(3, "copy")

    def vectors_of(keys: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        return pictures.vectors_of(keys[keys != missing])

    pairs = find_duplicate_pairs(pictures.keys, pictures.hashes, vectors_of)
    assert pairs and all(missing not in (a, b) for a, b, *_ in pairs)
    ranked = np.asarray([key(3, "original"), missing], dtype=np.int64)
    kept, _scores, counts = collapse(ranked, np.ones(2), pictures.hashes_of, vectors_of)
    assert kept.tolist() == ranked.tolist() and counts.tolist() == [1, 1]


def test_pairs_match_a_brute_force_oracle_on_planted_hashes() -> None:
    rng = np.random.default_rng(7)
    n, dim = 3000, 16
    hashes = rng.integers(0, 2**64, n, dtype=np.uint64)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    for a, b in rng.choice(n, (300, 2), replace=False):
        flips = rng.choice(64, rng.integers(0, 18), replace=False).astype(np.uint64)
        hashes[b] = hashes[a] ^ np.bitwise_or.reduce(np.uint64(1) << flips, initial=np.uint64(0))
        vectors[b] = vectors[a] + rng.uniform(0.0, 0.6) * rng.normal(size=dim)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    keys = (rng.permutation(n) * 3 + 5).astype(np.int64)
    row = {int(k): i for i, k in enumerate(keys)}

    def vectors_of(asked: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        return asked, vectors[[row[int(k)] for k in asked]]

    tiers = DuplicateTiers()
    found = find_duplicate_pairs(keys, hashes.view(np.int64), vectors_of, tiers)
    hamming = np.bitwise_count(hashes[:, None] ^ hashes[None, :])
    ranks = tiers.ranks(hamming, vectors @ vectors.T)
    i, j = np.nonzero(np.triu(ranks < len(TIERS), 1))
    expected = {(min(keys[x], keys[y]), max(keys[x], keys[y]), TIERS[ranks[x, y]])
                for x, y in zip(i, j, strict=True)}
    assert len(expected) > 100
    assert {(a, b, t) for a, b, _h, _c, t in found} == expected


def test_hash_index_reads_signed_and_unsigned_forms_alike(pictures: Collection) -> None:
    unsigned = [hash_to_unsigned(int(h)) for h in pictures.hashes]
    assert any(h >= 2**63 for h in unsigned)
    by_signed = hash_index(pictures.keys, pictures.hashes)
    by_unsigned = hash_index(pictures.keys, unsigned)
    assert by_signed.pairs_within(8) == by_unsigned.pairs_within(8)


def test_bad_arguments_are_refused_with_a_clear_error(pictures: Collection) -> None:
    with pytest.raises(InvalidInputError, match="Hamming bounds"):
        DuplicateTiers(near_hamming=20)
    with pytest.raises(InvalidInputError, match="cosine bounds"):
        DuplicateTiers(variant_cosine=0.97)
    with pytest.raises(InvalidInputError, match="unknown duplicate tier"):
        group_duplicates([], min_tier="similar")
    with pytest.raises(InvalidInputError, match="one hash per key"):
        hash_index(pictures.keys, pictures.hashes[:-1])
    with pytest.raises(InvalidInputError, match="scores"):
        collapse(pictures.keys[:3], np.ones(2), pictures.hashes_of, pictures.vectors_of)


def test_collapse_scores_its_pairs_on_one_blas_thread(pictures: Collection) -> None:
    """Folding makes a product of the candidates' vectors: it runs it on one BLAS thread
    itself, for a query that did not set one (encode.blas) and puts the count back."""
    outside = blas_threads()
    if max(outside, default=1) < 2:
        pytest.skip("no BLAS library here runs more than one thread: nothing to limit")
    seen: list[list[int]] = []

    def vectors_of(keys: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        seen.append(blas_threads())
        return pictures.vectors_of(keys)

    ranked = np.asarray([key(0, "original"), key(0, "jpeg50")], dtype=np.int64)
    kept, _scores, counts = collapse(ranked, np.ones(2), pictures.hashes_of, vectors_of)
    assert kept.tolist() == [ranked[0]] and counts.tolist() == [2]  # scored and folded
    assert seen == [[1] * len(outside)]
    assert blas_threads() == outside
