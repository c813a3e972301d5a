"""`imgsearch eval` building blocks: qrels checking, runs on a real collection, comparison
of two configurations, report tables, and ANN recall against exact search."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from imagegen import picture
from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.errors import InvalidInputError
from imgsearch.evaluate.ann import ann_recall
from imgsearch.evaluate.metrics import definitions
from imgsearch.evaluate.report import (
    format_ann,
    format_comparison,
    format_definitions,
    format_run,
)
from imgsearch.evaluate.runner import (
    EvalConfig,
    compare,
    load_qrels,
    run_eval,
    without_parsing,
)
from imgsearch.types import Item, Query, SearchHit, SearchResult

SIZE = (64, 48)
TITLES = ["zebra lamp", "oak table", "blue chair", "zebra rug", "steel kettle", "linen sofa"]


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory):
    """12 items; zebras are sku0, sku3, sku6, sku9; odd ids are category cat1."""
    directory = tmp_path_factory.mktemp("eval") / "collection"
    eng = Engine.open(directory, Settings(text_encoder="fake", ingest_workers=2))
    eng.ingest_items((Item(id=f"sku{i}", title=f"{TITLES[i % 6]} {i}", category=f"cat{i % 2}"),
                      picture(i, SIZE)) for i in range(12))
    yield eng
    eng.close()


def _write_qrels(folder: Path, rows: list[dict | str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "qrels.jsonl"
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def _qrels_for_shop(tmp_path: Path) -> Path:
    (tmp_path / "q" / "img").mkdir(parents=True)
    picture(3, SIZE).save(tmp_path / "q" / "img" / "sku3.png")
    return _write_qrels(tmp_path / "q", [
        # the picture of sku3 finds sku3 first; "gone" is never returned
        {"id": "by-image", "image": "img/sku3.png", "relevant": ["sku3", "gone"],
         "grades": {"sku3": 2}},
        # more like sku3 never returns sku3 itself
        {"id": "by-item", "item": "sku3", "relevant": ["sku3"]},
        # zebras in cat1 are sku3 and sku9; sku0 is a zebra in cat0, filtered out
        {"id": "by-text", "text": "zebra", "filters": {"categories": ["cat1"]},
         "relevant": ["sku3", "sku9", "sku0"]},
        "",
        {"id": "unknown-item", "item": "nope", "relevant": ["sku1"]},
        {"id": "nothing-relevant", "text": "lamp", "relevant": []},
    ])


def test_run_on_a_collection_gives_hand_computed_numbers(tmp_path, shop):
    queries = load_qrels(_qrels_for_shop(tmp_path))
    assert [q.line for q in queries] == [1, 2, 3, 5, 6]
    run = run_eval(queries, EvalConfig("default", shop))
    by_id = {o.qrels.id: o for o in run.outcomes}

    image = by_id["by-image"].metrics
    assert image is not None
    # sku3 at rank 1, R = 2 ("gone" never comes back)
    assert image["recall@1"] == 0.5 and image["precision@1"] == 1.0
    assert image["precision@5"] == pytest.approx(1 / 5)
    assert image["map@5"] == pytest.approx(1 / 2)  # (1/1) / min(2, 5)
    assert image["mrr"] == 1.0
    assert image["ndcg@1"] == 1.0  # grade 2 at rank 1 / ideal grade 2 at rank 1
    assert image["ndcg@5"] == pytest.approx(2 / (2 + 1 / math.log2(3)))

    item = by_id["by-item"]
    assert "sku3" not in item.returned and len(item.returned) == 11
    assert item.metrics is not None and item.metrics["recall@100"] == 0.0
    assert item.metrics["mrr"] == 0.0

    text = by_id["by-text"].metrics
    assert text is not None
    assert set(by_id["by-text"].returned[:2]) == {"sku3", "sku9"}
    assert text["recall@5"] == pytest.approx(2 / 3) and text["precision@1"] == 1.0
    assert text["precision@5"] == pytest.approx(2 / 5)
    assert text["recall@100"] == pytest.approx(2 / 3)
    assert text["map@10"] == pytest.approx(2 / 3)  # (1/1 + 2/2) / min(3, 10)
    assert text["ndcg@10"] == pytest.approx((1 + 1 / math.log2(3))
                                            / (1 + 1 / math.log2(3) + 1 / 2))

    assert "nope" in (by_id["unknown-item"].error or "")
    assert "no relevant ids" in (by_id["nothing-relevant"].error or "")
    assert len(run.scored) == 3 and len(run.errors) == 2
    # means over the three scored queries only
    assert run.overall["mrr"] == pytest.approx((1 + 0 + 1) / 3)
    assert run.overall["recall@1"] == pytest.approx((1 / 2 + 0 + 1 / 3) / 3)

    data = json.loads(json.dumps(run.to_dict()))
    assert {"recall@1", "precision@10", "map@10", "mrr", "ndcg@10"} <= set(data["overall"])
    assert data["errors"] == 2 and len(data["per_query"]) == 5
    assert data["per_query"][1]["id"] == "by-item" and "metrics" in data["per_query"][1]
    assert "error" in data["per_query"][3]

    table = format_run(run)
    assert "recall" in table and "@100" in table and "ndcg" in table
    assert "error: unknown-item (line 5), item nope" in table
    assert "by-text" in format_run(run, per_query=True)


def test_parse_on_and_off_compare_on_the_same_collection(tmp_path, shop):
    queries = load_qrels(_qrels_for_shop(tmp_path))
    run_a = run_eval(queries, EvalConfig("parse on", shop))
    run_b = run_eval(queries, EvalConfig("parse off", shop, without_parsing))
    result = compare(run_a, run_b)
    assert len(result.paired) == 3
    for name, (a, b, diff) in result.overall.items():
        assert a == pytest.approx(run_a.overall[name]) and diff == pytest.approx(b - a)
    assert "parse off" in format_comparison(result)


class _Fixed:
    """A searcher returning fixed ids per query text, recording what it was asked."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.asked: list[Query] = []

    def search(self, query: Query) -> SearchResult:
        self.asked.append(query)
        hits = [SearchHit(id=i, score=1.0) for i in self.answers[query.text or ""]]
        return SearchResult(hits=hits, query_kind="text", query_time_ms=0.0)


def test_compare_reports_b_minus_a_over_queries_both_scored(tmp_path):
    queries = load_qrels(_write_qrels(tmp_path, [
        {"text": "one", "relevant": ["a"]},
        {"text": "two", "relevant": ["b", "c"]},
    ]))
    a = _Fixed({"one": ["x", "a"], "two": ["b", "c"]})
    b = _Fixed({"one": ["a"], "two": ["x", "y", "b"]})
    run_a = run_eval(queries, EvalConfig("A", a), ks=(1, 5))
    run_b = run_eval(queries, EvalConfig("B", b.search), ks=(5, 1))
    assert all(q.limit == 5 and q.parse for q in a.asked)
    result = compare(run_a, run_b)
    # mrr: A = (1/2 + 1) / 2 = 0.75 ; B = (1 + 1/3) / 2 = 2/3
    mrr_a, mrr_b, diff = result.overall["mrr"]
    assert (mrr_a, mrr_b) == (pytest.approx(0.75), pytest.approx(2 / 3))
    assert diff == pytest.approx(2 / 3 - 0.75)
    # recall@5: A = (1 + 1) / 2 = 1 ; B = (1 + 1/2) / 2 = 0.75
    assert result.overall["recall@5"] == (pytest.approx(1.0), pytest.approx(0.75),
                                          pytest.approx(-0.25))
    data = result.to_dict()
    assert data["a"] == "A" and data["overall"]["mrr"]["diff"] == pytest.approx(-1 / 12,
                                                                                abs=1e-6)
    assert "-0.2500" in format_comparison(result)

    # a query that fails in B only is left out of both sides' means
    broken = _Fixed({"one": ["a"]})
    run_c = run_eval(queries, EvalConfig("C", lambda q: broken.search(q)
                                         if q.text == "one" else _raise()), ks=(1, 5))
    only_first = compare(run_a, run_c)
    assert len(only_first.paired) == 1
    assert only_first.overall["mrr"] == (pytest.approx(0.5), pytest.approx(1.0),
                                         pytest.approx(0.5))
    with pytest.raises(InvalidInputError, match="cannot be compared"):
        compare(run_a, run_eval(queries[:1], EvalConfig("short", a), ks=(1, 5)))


def _raise() -> SearchResult:
    raise InvalidInputError("this query cannot be run")


@pytest.mark.parametrize(("line", "message"), [
    ("{not json", "not valid JSON"),
    ('["text"]', "JSON object"),
    ('{"relevant": ["a"]}', "no query"),
    ('{"text": "x", "filters": {"colour": "red"}, "relevant": ["a"]}', "unknown filter field"),
    ('{"text": "x", "filters": {"price_max": "cheap"}, "relevant": ["a"]}', "price_max"),
    ('{"text": "x"}', 'missing "relevant"'),
    ('{"text": "x", "relevant": "a"}', "must be a list"),
    ('{"text": "x", "relevant": ["a"], "grades": {"b": 2}}', "not in"),
    ('{"text": "x", "relevant": ["a"], "grades": {"a": 0}}', "greater than 0"),
    ('{"image": "missing.png", "relevant": ["a"]}', "does not exist"),
    ('{"item": "a", "text": "x", "relevant": ["b"]}', "cannot be combined"),
    ('{"txt": "x", "relevant": ["a"]}', "unknown key"),
])
def test_bad_qrels_lines_name_their_line(tmp_path, line, message):
    path = _write_qrels(tmp_path, [{"text": "fine", "relevant": ["a"]}, line])
    with pytest.raises(InvalidInputError, match=message) as info:
        load_qrels(path)
    assert "line 2" in info.value.message


def test_qrels_values_become_query_fields(tmp_path):
    (tmp_path / "pic.png").write_bytes(b"")
    [q] = load_qrels(_write_qrels(tmp_path, [{
        "id": 7, "image": str(tmp_path / "pic.png"), "text": "red",
        "filters": {"brands": "acme", "price_max": 80, "orientation": "square",
                    "attributes": {"size": "M"}},
        "relevant": ["a", 12], "grades": {"a": 3}}]))
    assert q.id == "7" and q.query.images == [str(tmp_path / "pic.png")]
    assert q.query.text == "red" and q.query.filters.brands == ("acme",)
    assert q.query.filters.price_max == 80 and q.query.filters.attributes == {"size": "M"}
    assert dict(q.grades) == {"a": 3.0, "12": 1.0}
    with pytest.raises(InvalidInputError, match="holds no queries"):
        load_qrels(_write_qrels(tmp_path / "empty", ["", "  "]))
    with pytest.raises(InvalidInputError, match="does not exist"):
        load_qrels(tmp_path / "absent.jsonl")


def test_definitions_print_one_per_line():
    text = format_definitions(definitions())
    assert len(text.splitlines()) == 5 and "log2(rank + 1)" in text


# -- ANN recall --------------------------------------------------------------------------

def test_ann_recall_of_an_exact_index_is_one(shop):
    result = ann_recall(shop.spaces["image"], n_queries=200, k=10)
    assert (result.space, result.index_kind, result.vectors) == ("image", "flat", 12)
    assert result.queries == 12 and result.k == 10 and result.recall == 1.0
    assert "flat" in format_ann([result]) and "1.0000 @10" in format_ann([result])


class _Catalog:
    def __init__(self, vids: np.ndarray, vectors: np.ndarray) -> None:
        self.vids, self.vectors = vids, vectors

    def count_vectors(self, space: str) -> int:
        return len(self.vids)

    def iter_vectors(self, space: str, dim: int, batch: int = 7):
        for start in range(0, len(self.vids), batch):  # small batches: merging is exercised
            end = start + batch
            yield self.vids[start:end], self.vids[start:end], self.vectors[start:end]


class _DropsLast:
    """Exact search, except that the k-th result is replaced by a far-away vector."""

    kind = "lossy"

    def __init__(self, vids: np.ndarray, vectors: np.ndarray) -> None:
        self.vids, self.vectors = vids, vectors

    def __len__(self) -> int:
        return len(self.vids)

    def search(self, queries, k, *, allowed=None, ef_search=None, nprobe=None):
        scores = queries @ self.vectors.T
        order = np.argsort(-scores, axis=1)
        labels = self.vids[order[:, :k]].copy()
        labels[:, -1] = self.vids[order[:, -1]]  # the worst match instead of the k-th
        return np.take_along_axis(scores, order[:, :k], axis=1), labels


class _Space:
    def __init__(self, vids: np.ndarray, vectors: np.ndarray) -> None:
        from imgsearch.types import VectorSpace

        self.space = VectorSpace("image", "fake", "fake", vectors.shape[1], "image")
        self.catalog = _Catalog(vids, vectors)
        self.index = _DropsLast(vids, vectors)


def test_ann_recall_counts_misses_against_streamed_exact_search():
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(50, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    vids = np.arange(10, 160, 3, dtype=np.int64)  # sparse, increasing vids like the catalog's
    space = _Space(vids, vectors)
    # each query finds 9 of its exact top 10: recall = 9/10
    result = ann_recall(space, n_queries=20, k=10, seed=1)
    assert result.queries == 20 and result.recall == pytest.approx(0.9)
    assert ann_recall(space, n_queries=20, k=1, seed=1).recall == 0.0


class _TwinFirst(_DropsLast):
    """Exact search that breaks score ties towards the larger vid."""

    def search(self, queries, k, *, allowed=None, ef_search=None, nprobe=None):
        scores = np.round(queries @ self.vectors.T, 5)
        order = np.stack([np.lexsort((-self.vids, -row)) for row in scores])[:, :k]
        return np.take_along_axis(scores, order, axis=1), self.vids[order]


def test_ann_recall_accepts_a_tied_twin_in_place_of_the_query_itself():
    rng = np.random.default_rng(4)
    half = rng.normal(size=(20, 8)).astype(np.float32)
    half /= np.linalg.norm(half, axis=1, keepdims=True)
    vectors = np.repeat(half, 2, axis=0)  # every vector has an identical twin
    vids = np.arange(1, 41, dtype=np.int64)
    space = _Space(vids, vectors)
    space.index = _TwinFirst(vids, vectors)
    # for the lower twin the index returns the other one: a tie, so still a hit
    assert ann_recall(space, n_queries=40, k=1).recall == 1.0
