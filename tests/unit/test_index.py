"""Congruence tests: every FAISS index kind against exact numpy search on seeded data."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import faiss
import numpy as np
import pytest
from numpy.typing import NDArray

from imgsearch.config import Settings
from imgsearch.errors import (
    CollectionError,
    InvalidInputError,
    InvalidQueryError,
    SchemaVersionError,
)
from imgsearch.index import early
from imgsearch.index.auto import (
    IVF_ADD_WORK,
    IVF_MAX_LISTS,
    choose_index_kind,
    estimated_bytes,
    ivf_lists,
    params_from_settings,
    rescore_depth,
)
from imgsearch.index.base import IndexParams, VectorIndex
from imgsearch.index.faiss_index import IVFPQIndex, build_index, load_index

DIM = 64
N = 5000
K = 10
KINDS = ("flat", "hnsw", "hnsw_sq8", "ivfpq")
LABELS = np.arange(N, dtype=np.int64) * 3 + 7  # sparse, not positions: catches mix-ups


def clustered(n: int, seed: int) -> NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).standard_normal((50, DIM)).astype(np.float32)
    x = centres[rng.integers(0, 50, n)] + 0.6 * rng.standard_normal((n, DIM)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


DATA = clustered(N, 0)
QUERIES = clustered(100, 1)


def exact(queries: NDArray[np.float32], labels: NDArray[np.int64], data: NDArray[np.float32],
          k: int) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    sims = queries @ data.T
    top = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(sims, top, axis=1), labels[top]


def recall(found: NDArray[np.int64], truth: NDArray[np.int64]) -> float:
    hits = [len(set(f[f >= 0].tolist()) & set(t[t >= 0].tolist()))
            for f, t in zip(found, truth, strict=True)]
    return sum(hits) / max(1, int((truth >= 0).sum()))


def rescored(index: VectorIndex, queries: NDArray[np.float32], k: int, **kw: object
             ) -> NDArray[np.int64]:
    """Exact re-scoring of 10·k candidates, as the engine does for approximate scores."""
    _, cand = index.search(queries, 10 * k, **kw)  # type: ignore[arg-type]
    position = {int(label): i for i, label in enumerate(LABELS)}
    out = np.full((len(queries), k), -1, np.int64)
    for q, row in enumerate(cand):
        row = row[row >= 0]
        sims = DATA[[position[int(r)] for r in row]] @ queries[q]
        best = row[np.argsort(-sims, kind="stable")[:k]]
        out[q, : len(best)] = best
    return out


Make = Callable[..., VectorIndex]


@pytest.fixture(scope="module")
def make(tmp_path_factory: pytest.TempPathFactory) -> Make:
    """Builds an index of a kind holding ``data``; IVF-PQ is trained once and reloaded."""
    trained = tmp_path_factory.mktemp("trained") / "ivfpq.idx"
    build_index("ivfpq", DIM, IndexParams(), training=DATA).save(trained, journal_seq=0)

    def build(kind: str, data: NDArray[np.float32] = DATA,
              labels: NDArray[np.int64] = LABELS) -> VectorIndex:
        index = load_index(trained)[0] if kind == "ivfpq" else build_index(
            kind, DIM, IndexParams(), training=DATA if kind == "hnsw_sq8" else None)
        index.add(labels, data)
        return index

    return build


@pytest.fixture(scope="module")
def full(make: Make) -> dict[str, VectorIndex]:
    """Read-only indexes over the whole data set, shared by the tests that only search."""
    return {kind: make(kind) for kind in KINDS}


def test_flat_equals_exact_search(full: dict[str, VectorIndex]) -> None:
    scores, labels = full["flat"].search(QUERIES, K)
    want_scores, want_labels = exact(QUERIES, LABELS, DATA, K)
    np.testing.assert_array_equal(labels, want_labels)
    np.testing.assert_allclose(scores, want_scores, atol=1e-5)
    assert full["flat"].exact_scores


def test_hnsw_recall_against_exact(full: dict[str, VectorIndex]) -> None:
    scores, labels = full["hnsw"].search(QUERIES, K, ef_search=128)
    _, truth = exact(QUERIES, LABELS, DATA, K)
    assert recall(labels, truth) >= 0.95
    assert np.all(np.diff(scores, axis=1) <= 1e-6), "scores must be descending"


def test_ivfpq_recall_after_exact_rescoring(full: dict[str, VectorIndex]) -> None:
    _, truth = exact(QUERIES, LABELS, DATA, K)
    assert not full["ivfpq"].exact_scores
    assert recall(rescored(full["ivfpq"], QUERIES, K), truth) >= 0.8


def test_hnsw_sq8_recall_after_exact_rescoring(full: dict[str, VectorIndex]) -> None:
    _, truth = exact(QUERIES, LABELS, DATA, K)
    assert not full["hnsw_sq8"].exact_scores
    assert recall(rescored(full["hnsw_sq8"], QUERIES, K, ef_search=128), truth) >= 0.95


def test_compressed_kinds_hold_a_fraction_of_float32(full: dict[str, VectorIndex]) -> None:
    sizes = {kind: index.memory_bytes() for kind, index in full.items()}
    assert sizes["flat"] >= N * DIM * 4
    assert sizes["hnsw"] > sizes["flat"]  # the vectors and the graph
    assert sizes["hnsw_sq8"] < 0.75 * sizes["hnsw"]  # 64-d: the graph weighs most here
    assert sizes["ivfpq"] < 0.25 * sizes["flat"]


@pytest.mark.parametrize("kind", KINDS)
def test_removed_labels_are_never_returned(kind: str, make: Make) -> None:
    index = make(kind)
    gone = LABELS[::4]
    assert index.remove(np.concatenate([gone, [-5, 10**12]])) == len(gone)
    assert index.remove(gone) == 0
    assert len(index) == N - len(gone)
    assert not index.contains(int(gone[0])) and index.contains(int(LABELS[1]))
    np.testing.assert_array_equal(np.sort(index.labels()), np.setdiff1d(LABELS, gone))
    _, labels = index.search(DATA[::4][:200], K)  # the removed vectors themselves as queries
    assert not np.isin(labels, gone).any()
    if kind == "flat":
        keep = ~np.isin(LABELS, gone)
        np.testing.assert_array_equal(labels, exact(DATA[::4][:200], LABELS[keep], DATA[keep],
                                                    K)[1])


@pytest.mark.parametrize("kind", KINDS)
def test_stored_gives_the_exact_vector_while_it_is_held(kind: str, make: Make) -> None:
    index = make(kind, DATA[:50], LABELS[:50])
    held = index.stored(int(LABELS[7]))
    if kind in ("ivfpq", "hnsw_sq8"):  # only codes are kept: no exact vector to give
        assert held is None
        return
    assert held is not None
    np.testing.assert_array_equal(held, DATA[7])
    held[:] = 0  # the caller's own copy: the index keeps its vector
    np.testing.assert_array_equal(index.stored(int(LABELS[7])), DATA[7])
    before = index.stored(int(LABELS[9]))
    index.add(LABELS[50:], DATA[50:])  # grows the index many times over
    np.testing.assert_array_equal(before, DATA[9])
    np.testing.assert_array_equal(index.stored(int(LABELS[9])), DATA[9])
    np.testing.assert_array_equal(index.stored(int(LABELS[-1])), DATA[-1])
    index.add(LABELS[7:8], DATA[30:31])  # an update
    np.testing.assert_array_equal(index.stored(int(LABELS[7])), DATA[30])
    index.remove(LABELS[7:8])
    assert index.stored(int(LABELS[7])) is None and index.stored(-3) is None


def best(index: VectorIndex, query: NDArray[np.float32], k: int,
         vectors: dict[int, NDArray[np.float32]]) -> list[int]:
    """The ``k`` best labels for ``query``: a compressed index's 100 candidates re-scored
    exactly from ``vectors`` (label: vector), as the engine re-scores them."""
    if index.exact_scores:
        return [int(label) for label in index.search(query[None, :], k)[1][0]]
    found = [int(label) for label in index.search(query[None, :], 100)[1][0] if label >= 0]
    return sorted(found, key=lambda label: -float(vectors[label] @ query))[:k]


@pytest.mark.parametrize("kind", KINDS)
def test_updates_replace_the_old_vector(kind: str, make: Make) -> None:
    index = make(kind)
    vectors = dict(zip(LABELS.tolist(), DATA, strict=True))
    target = int(LABELS[10])
    index.add(np.array([target]), DATA[20:21])  # same label, new vector
    vectors[target] = DATA[20]
    assert len(index) == N
    assert target not in best(index, DATA[10], 3, vectors)
    assert target in best(index, DATA[20], 3, vectors)
    fresh = 10**9  # an update under a new label: remove the old one, add the new one
    index.remove(np.array([target]))
    index.add(np.array([fresh]), DATA[10:11])
    vectors[fresh] = DATA[10]
    labels = best(index, DATA[10], 3, vectors)
    assert fresh in labels and target not in labels
    assert len(index) == N


@pytest.mark.parametrize("fraction", [0.01, 0.001])
def test_flat_allowed_matches_exact_filtered_search(full: dict[str, VectorIndex],
                                                    fraction: float) -> None:
    allowed = np.random.default_rng(5).choice(LABELS, int(N * fraction), replace=False)
    mask = np.isin(LABELS, allowed)
    scores, labels = full["flat"].search(QUERIES, K, allowed=allowed)
    want_scores, want_labels = exact(QUERIES, LABELS[mask], DATA[mask], K)
    n = min(K, int(mask.sum()))
    np.testing.assert_array_equal(labels[:, :n], want_labels)
    np.testing.assert_allclose(scores[:, :n], want_scores, atol=1e-5)
    assert (labels[:, n:] == -1).all() and np.isneginf(scores[:, n:]).all()


@pytest.mark.parametrize("fraction", [0.1, 0.01, 0.001])
@pytest.mark.parametrize("ef", [16, 128])
def test_hnsw_allowed_returns_allowed_neighbours(full: dict[str, VectorIndex], fraction: float,
                                                 ef: int) -> None:
    allowed = np.random.default_rng(6).choice(LABELS, int(N * fraction), replace=False)
    mask = np.isin(LABELS, allowed)
    _, labels = full["hnsw"].search(QUERIES, K, allowed=allowed, ef_search=ef)
    assert np.isin(labels[labels >= 0], allowed).all()
    assert recall(labels, exact(QUERIES, LABELS[mask], DATA[mask], K)[1]) >= 0.9


@pytest.mark.parametrize("fraction", [0.1, 0.01, 0.001])
def test_ivfpq_allowed_returns_only_allowed(full: dict[str, VectorIndex], fraction: float) -> None:
    allowed = np.random.default_rng(7).choice(LABELS, int(N * fraction), replace=False)
    mask = np.isin(LABELS, allowed)
    labels = rescored(full["ivfpq"], QUERIES, K, allowed=allowed)
    assert np.isin(labels[labels >= 0], allowed).all()
    assert recall(labels, exact(QUERIES, LABELS[mask], DATA[mask], K)[1]) >= 0.8


@pytest.mark.parametrize("kind", KINDS)
def test_allowed_with_unknown_or_removed_labels(kind: str, make: Make) -> None:
    index = make(kind, DATA[:100], LABELS[:100])
    index.remove(LABELS[:50])
    _, labels = index.search(QUERIES[:3], 5, allowed=np.concatenate([LABELS[:60], [123456789]]))
    assert set(labels[labels >= 0].tolist()) <= set(LABELS[50:60].tolist())
    assert (labels >= 0).all()
    _, none = index.search(QUERIES[:3], 5, allowed=np.array([], np.int64))
    assert (none == -1).all()


def test_a_reused_read_only_allowed_array_follows_removals_and_adds(make: Make) -> None:
    index = make("hnsw", DATA[:3000], LABELS[:3000])
    allowed = LABELS[:1500].copy()
    allowed.flags.writeable = False  # what the catalog's filter cache hands out
    first = index.search(QUERIES[:20], 10, allowed=allowed, ef_search=16)[1]
    assert set(first[first >= 0].tolist()) <= set(allowed.tolist())
    gone = np.unique(first[first >= 0])
    index.remove(gone)
    again = index.search(QUERIES[:20], 10, allowed=allowed, ef_search=16)[1]
    assert not set(again[again >= 0].tolist()) & set(gone.tolist())
    assert set(again[again >= 0].tolist()) <= set(allowed.tolist())
    index.add(gone[:5], QUERIES[:5])  # back, each now exactly on a query
    back = index.search(QUERIES[:5], 1, allowed=allowed, ef_search=16)[1]
    assert back[:, 0].tolist() == gone[:5].tolist()


def test_hnsw_allowed_slots_stand_in_for_labels(make: Make) -> None:
    index = make("hnsw", DATA[:3000], LABELS[:3000])
    index.remove(LABELS[100:400])
    index.add(LABELS[200:300], DATA[3000:3100])  # updated: new slots at the end
    rng = np.random.default_rng(8)
    allowed = np.sort(rng.choice(LABELS[:3000], 1500, replace=False))
    table = index.slot_table()  # type: ignore[attr-defined]
    slots = table[allowed]
    slots = slots[slots >= 0]  # removed labels have no slot
    for ef in (16, 128):
        by_label = index.search(QUERIES, K, allowed=allowed, ef_search=ef)
        by_slot = index.search(QUERIES, K, allowed_slots=slots,  # type: ignore[call-arg]
                               ef_search=ef)
        assert np.array_equal(by_label[1], by_slot[1])
        assert np.array_equal(by_label[0], by_slot[0])
    found = by_slot[1][by_slot[1] >= 0]
    assert np.isin(found, allowed).all() and not np.isin(found, LABELS[300:400]).any()


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_round_trip(kind: str, tmp_path: Path, make: Make) -> None:
    index = make(kind)
    index.remove(LABELS[::7])
    path = tmp_path / f"{kind}.idx"
    index.save(path, journal_seq=42)
    loaded, seq = load_index(path)
    assert seq == 42 and loaded.kind == kind and loaded.dim == DIM
    assert len(loaded) == len(index) and loaded.tombstones == index.tombstones
    for kw in ({}, {"allowed": LABELS[:300]}):
        want = index.search(QUERIES, K, **kw)  # type: ignore[arg-type]
        got = loaded.search(QUERIES, K, **kw)  # type: ignore[arg-type]
        np.testing.assert_array_equal(got[1], want[1])
        np.testing.assert_array_equal(got[0], want[0])
    loaded.add(np.array([10**9]), QUERIES[:1])  # a loaded index keeps working
    vectors = dict(zip(LABELS.tolist(), DATA, strict=True)) | {10**9: QUERIES[0]}
    assert best(loaded, QUERIES[0], 1, vectors) == [10**9]
    assert not list(tmp_path.glob(".*tmp")), "no temporary file may be left behind"


@pytest.mark.parametrize("ahead", [False, True], ids=["in-place", "read-ahead"])
@pytest.mark.parametrize("damage", ["truncate", "flip", "missing", "garbage", "empty"])
def test_damaged_index_file_raises_collection_error(damage: str, ahead: bool, tmp_path: Path,
                                                    make: Make) -> None:
    path = tmp_path / "i.idx"
    make("hnsw", DATA[:300], LABELS[:300]).save(path, journal_seq=1)
    raw = bytearray(path.read_bytes())
    if damage == "truncate":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "flip":
        raw[len(raw) // 3] ^= 0x10
        path.write_bytes(raw)
    elif damage == "missing":
        path.unlink()
    elif damage == "garbage":
        path.write_bytes(b"not an index" * 100)
    else:
        path.write_bytes(b"")
    if ahead:
        early.read_ahead(path)
    with pytest.raises(CollectionError, match=r"i\.idx"):
        load_index(path)


@pytest.mark.parametrize("kind", KINDS)
def test_a_file_read_ahead_loads_as_one_read_in_place(kind: str, tmp_path: Path,
                                                      make: Make) -> None:
    index = make(kind)
    index.remove(LABELS[::5])
    path = tmp_path / f"{kind}.idx"
    index.save(path, journal_seq=7)
    in_place, _ = load_index(path)
    early.read_ahead(path)
    early.read_ahead(path)  # asked twice: read once
    ahead, seq = load_index(path)
    assert seq == 7 and ahead.kind == kind and len(ahead) == len(in_place) == len(index)
    for kw in ({}, {"allowed": LABELS[:300]}):
        want = in_place.search(QUERIES, K, **kw)  # type: ignore[arg-type]
        got = ahead.search(QUERIES, K, **kw)  # type: ignore[arg-type]
        np.testing.assert_array_equal(got[1], want[1])
        np.testing.assert_array_equal(got[0], want[0])


def test_a_file_replaced_after_it_was_read_ahead_is_read_again(tmp_path: Path,
                                                               make: Make) -> None:
    path = tmp_path / "i.idx"
    make("flat", DATA[:10], LABELS[:10]).save(path, journal_seq=1)
    early.read_ahead(path)
    make("flat", DATA[:20], LABELS[:20]).save(path, journal_seq=2)
    loaded, seq = load_index(path)
    assert seq == 2 and len(loaded) == 20


@pytest.mark.parametrize("ahead", [False, True], ids=["in-place", "read-ahead"])
def test_a_newer_format_is_refused_even_with_a_good_checksum(ahead: bool, tmp_path: Path,
                                                             make: Make) -> None:
    path = tmp_path / "i.idx"
    make("flat", DATA[:10], LABELS[:10]).save(path, journal_seq=1)
    raw = bytearray(path.read_bytes()[: -early.DIGEST_SIZE])
    raw[8:12] = (99).to_bytes(4, "little")  # the format version, after the magic
    path.write_bytes(bytes(raw) + hashlib.sha256(raw).digest())
    if ahead:
        early.read_ahead(path)
    with pytest.raises(SchemaVersionError, match="format version 99"):
        load_index(path)


def test_save_replaces_an_existing_file_atomically(tmp_path: Path, make: Make) -> None:
    path = tmp_path / "i.idx"
    make("flat", DATA[:10], LABELS[:10]).save(path, journal_seq=1)
    make("flat", DATA[:20], LABELS[:20]).save(path, journal_seq=2)
    loaded, seq = load_index(path)
    assert seq == 2 and len(loaded) == 20


@pytest.mark.parametrize(("kind", "option"), [("hnsw", "ef_search"), ("ivfpq", "nprobe")])
def test_concurrent_searches_with_different_parameters(full: dict[str, VectorIndex], kind: str,
                                                       option: str) -> None:
    index = full[kind]
    values = [1, 4, 16, 128] * 4
    sequential = [index.search(QUERIES, K, **{option: v}) for v in values]  # type: ignore[arg-type]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(lambda v: index.search(QUERIES, K, **{option: v}), values))
    for (s_scores, s_labels), (p_scores, p_labels) in zip(sequential, parallel, strict=True):
        np.testing.assert_array_equal(p_labels, s_labels)
        np.testing.assert_array_equal(p_scores, s_scores)
    assert not all(np.array_equal(sequential[0][1], s[1]) for s in sequential[1:4]), (
        "the parameter should change something, or this test proves nothing")


@pytest.mark.parametrize("kind", KINDS)
def test_k_larger_than_the_index_pads(kind: str, make: Make) -> None:
    index = make(kind, DATA[:5], LABELS[:5])
    scores, labels = index.search(QUERIES[:2], 8)
    assert labels.shape == (2, 8) and scores.dtype == np.float32 and labels.dtype == np.int64
    assert (np.sort(labels[:, :5], axis=1) == np.sort(LABELS[:5])).all()
    assert (labels[:, 5:] == -1).all() and np.isneginf(scores[:, 5:]).all()
    empty = make(kind, DATA[:0], LABELS[:0])
    assert (empty.search(QUERIES[:1], 3)[1] == -1).all() and len(empty) == 0


def test_hnsw_tombstones_and_compaction(make: Make) -> None:
    index = make("hnsw", DATA[:1000], LABELS[:1000])
    index.remove(LABELS[:300])
    assert index.tombstones == 300 and len(index) == 700
    assert index.needs_compaction(0.2) and not index.needs_compaction(0.5)
    before = index.search(QUERIES, K, ef_search=256)
    compacted = index.compact()
    assert compacted.tombstones == 0 and len(compacted) == 700
    np.testing.assert_array_equal(np.sort(compacted.labels()), LABELS[300:1000])
    after = compacted.search(QUERIES, K, ef_search=256)
    assert recall(after[1], before[1]) >= 0.95
    truth = exact(QUERIES, LABELS[300:1000], DATA[300:1000], K)[1]
    assert recall(after[1], truth) >= 0.95


@pytest.mark.parametrize("kind", KINDS)
def test_random_adds_and_removes_track_a_model(kind: str, make: Make) -> None:
    """Labels out of order, re-adds and many removals keep labels() and search consistent."""
    rng = np.random.default_rng(11)
    index = make(kind, DATA[:0], LABELS[:0])
    model: dict[int, int] = {}
    for _ in range(30):
        labels = np.unique(rng.integers(0, 3000, 150))
        rows = rng.integers(0, N, len(labels))
        index.add(labels, DATA[rows])
        model.update(zip(labels.tolist(), rows.tolist(), strict=True))
        gone = rng.choice(np.fromiter(model, np.int64), 60, replace=False)
        assert index.remove(gone) == 60
        for g in gone.tolist():
            del model[g]
    np.testing.assert_array_equal(np.sort(index.labels()), sorted(model))
    assert len(index) == len(model)
    if kind == "flat":
        labels = np.fromiter(model, np.int64)
        rows = np.array([model[int(x)] for x in labels])
        want = exact(QUERIES, labels, DATA[rows], K)
        np.testing.assert_allclose(index.search(QUERIES, K)[0], want[0], atol=1e-5)


def test_bad_inputs_raise_specific_errors() -> None:
    with pytest.raises(InvalidInputError, match="training"):
        build_index("ivfpq", DIM, IndexParams())
    with pytest.raises(InvalidInputError, match="unknown index kind"):
        build_index("annoy", DIM, IndexParams())
    index = build_index("flat", DIM, IndexParams())
    with pytest.raises(InvalidInputError, match=r"\(n, 64\)"):
        index.add(np.array([1]), np.zeros((1, 32), np.float32))
    with pytest.raises(InvalidInputError, match="labels"):
        index.add(np.array([1, 2]), DATA[:1])
    with pytest.raises(InvalidInputError, match="same label"):
        index.add(np.array([1, 1]), DATA[:2])
    with pytest.raises(InvalidQueryError, match="k must"):
        index.search(QUERIES, 0)


def test_ivfpq_parameters_are_derived_from_the_data() -> None:
    index = build_index("ivfpq", DIM, IndexParams(), training=DATA)
    assert index.params.pq_m == DIM // 4 and DIM % index.params.pq_m == 0
    assert index.params.nlist is not None and 1 <= index.params.nlist <= N // 39
    odd = build_index("ivfpq", 60, IndexParams(), training=DATA[:2000, :60])
    assert odd.params.pq_m is not None and 60 % odd.params.pq_m == 0


def test_choose_index_kind_by_size_and_override() -> None:
    settings = Settings(flat_max=100, hnsw_max=1000)
    assert [choose_index_kind(n, settings) for n in (0, 100, 101, 1000, 1001)] == [
        "flat", "flat", "hnsw", "hnsw", "ivfpq"]
    assert choose_index_kind(10**9, settings.replace(index_type="hnsw")) == "hnsw"
    with pytest.raises(InvalidInputError, match="index_type"):
        choose_index_kind(10, settings.replace(index_type="annoy"))
    budget = settings.replace(hnsw_max=20_000_000, memory_budget_mb=4096)
    assert [choose_index_kind(n, budget, 512) for n in (50, 10**6, 3 * 10**6, 10**7)] == [
        "flat", "hnsw", "hnsw_sq8", "ivfpq"]
    assert choose_index_kind(10**9, budget, 512) == "ivfpq"  # nothing fits: the smallest
    assert estimated_bytes("hnsw_sq8", 10**6, 512, budget) < 0.4 * estimated_bytes(
        "hnsw", 10**6, 512, budget)
    params = params_from_settings(Settings(hnsw_m=16, hnsw_ef_search=50, ivf_nprobe=8))
    assert (params.hnsw_m, params.ef_search, params.nprobe) == (16, 50, 8)


@pytest.mark.parametrize("spread", [1, 1 << 40])  # dense labels (array mirror), sparse ones
def test_label_map_follows_a_model(spread: int) -> None:
    from imgsearch.index.base import LabelMap

    rng = np.random.default_rng(spread % 97)
    labels_map, model = LabelMap(), {}
    universe = np.arange(0, 4000, dtype=np.int64) * spread
    next_slot = 0
    for _ in range(60):
        absent = np.setdiff1d(universe, np.fromiter(model, np.int64, count=len(model)))
        add = rng.choice(absent, size=min(len(absent), int(rng.integers(1, 200))),
                         replace=False)
        slots = np.arange(next_slot, next_slot + len(add), dtype=np.int64)
        next_slot += len(add)
        labels_map.insert(add, slots)
        model.update(zip(add.tolist(), slots.tolist(), strict=True))
        if model:
            gone = rng.choice(np.fromiter(model, np.int64, count=len(model)),
                              size=int(rng.integers(0, min(len(model), 150) + 1)), replace=False)
            labels_map.delete(gone)
            for label in gone.tolist():
                del model[label]
        probe = np.concatenate([rng.choice(universe, 300), [-5, universe[-1] + 1]])
        expected = [model.get(int(p), -1) for p in probe]
        assert labels_map.lookup(probe).tolist() == expected
        assert len(labels_map) == len(model)


def test_ivf_lists_follow_the_size_until_adding_would_cost_too_much() -> None:
    assert ivf_lists(1_000) == 1_000 // 39  # each list trained on 39 vectors or more
    assert ivf_lists(1_000_000) == 4_000  # 4·√n
    assert ivf_lists(2_000_000) == IVF_MAX_LISTS
    assert ivf_lists(10_000_000) == IVF_ADD_WORK // 10_000_000 == 2_000
    assert all(ivf_lists(n) * n <= IVF_ADD_WORK for n in (10**5, 10**6, 10**7, 10**8))


def test_rescore_depth_takes_a_share_of_the_codes_scanned_where_lists_are_long() -> None:
    assert rescore_depth(64, 10, 1_000_000, 4_000, 64) == 640  # 16,000 codes scanned
    assert rescore_depth(64, 10, 10_000_000, 2_000, 64) == 1_280  # 0.4 % of 320,000
    assert rescore_depth(64, 10, 10_000_000, 2_000, 128) == 2_560
    assert rescore_depth(64, 10, 10_000_000, 20, 32) == 40_000  # every list probed
    assert rescore_depth(64, 10, 10_000_000, None, 32) == 640  # no lists (hnsw_sq8)
    assert rescore_depth(10, 0, 500, 4, 2) == 10  # never fewer than asked for


def test_ivfpq_removals_leave_every_other_code_intact(make: Make) -> None:
    """Codes kept, and codes added after a removal, score exactly as before it."""
    index = make("ivfpq")
    every = {"nprobe": index.params.nlist}

    def scores() -> dict[int, float]:
        found_scores, found = index.search(DATA[5:6], len(index), **every)  # type: ignore[arg-type]
        return dict(zip(found[0].tolist(), found_scores[0].tolist(), strict=True))

    before = scores()
    gone = LABELS[::3]
    assert index.remove(gone) == len(gone)
    index.add(LABELS[:1], DATA[:1])  # removed above, back with the same vector
    index.add(np.array([10**9]), DATA[1:2])  # a copy of a kept vector under a new label
    after = scores()
    assert len(after) == N - len(gone) + 2
    assert after[int(LABELS[0])] == pytest.approx(before[int(LABELS[0])], abs=1e-6)
    assert after[10**9] == pytest.approx(before[int(LABELS[1])], abs=1e-6)
    kept = [int(label) for label in LABELS if int(label) in after and label != LABELS[0]]
    assert [after[label] for label in kept] == pytest.approx(
        [before[label] for label in kept], abs=1e-6)


def test_an_ivfpq_file_of_one_byte_codes_still_loads_searches_and_deletes(
        tmp_path: Path) -> None:
    """Index files written before fast-scan hold a plain ``IndexIVFPQ``."""
    plain = faiss.IndexIVFPQ(faiss.IndexFlatIP(DIM), DIM, 32, DIM // 8, 8,
                             faiss.METRIC_INNER_PRODUCT)
    plain.train(DATA)
    old = IVFPQIndex(DIM, IndexParams(nlist=32, pq_m=DIM // 8), plain)
    old.add(LABELS, DATA)
    old.save(tmp_path / "old.idx", journal_seq=3)
    loaded, seq = load_index(tmp_path / "old.idx")
    assert seq == 3 and loaded.kind == "ivfpq" and len(loaded) == N
    vectors = dict(zip(LABELS.tolist(), DATA, strict=True))
    assert best(loaded, DATA[7], 1, vectors) == [int(LABELS[7])]
    assert loaded.remove(LABELS[7:8]) == 1
    assert int(LABELS[7]) not in best(loaded, DATA[7], 10, vectors)
