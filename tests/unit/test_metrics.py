"""Retrieval metrics: hand-computed cases, then agreement with trec_eval on random runs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from imgsearch.errors import InvalidInputError
from imgsearch.evaluate.metrics import (
    DEFAULT_KS,
    average_precision_at,
    definitions,
    mean_metrics,
    metric_names,
    ndcg_at,
    precision_at,
    query_metrics,
    recall_at,
    reciprocal_rank,
)

# Run: x a y b z ; relevant: a (grade 2), b, c (grade 1). R = 3.
RUN = ["x", "a", "y", "b", "z"]
GRADES = {"a": 2.0, "b": 1.0, "c": 1.0}


def test_recall_and_precision_by_hand():
    # top 1: x -> 0 relevant ; top 2: x a -> 1 ; top 5: a, b -> 2
    assert recall_at(RUN, GRADES, 1) == 0.0
    assert recall_at(RUN, GRADES, 2) == pytest.approx(1 / 3)
    assert recall_at(RUN, GRADES, 5) == pytest.approx(2 / 3)
    assert precision_at(RUN, GRADES, 2) == pytest.approx(1 / 2)
    assert precision_at(RUN, GRADES, 5) == pytest.approx(2 / 5)
    # precision divides by K even when fewer results came back: 2 hits / 10
    assert precision_at(RUN, GRADES, 10) == pytest.approx(0.2)


def test_average_precision_divides_by_min_of_relevant_and_k():
    # hits at ranks 2 and 4: precision@2 = 1/2, precision@4 = 2/4
    # AP@5 = (1/2 + 1/2) / min(3, 5) = 1/3
    assert average_precision_at(RUN, GRADES, 5) == pytest.approx(1 / 3)
    # AP@2 = (1/2) / min(3, 2) = 1/4
    assert average_precision_at(RUN, GRADES, 2) == pytest.approx(1 / 4)
    # a perfect top 2 with 3 relevant: (1/1 + 2/2) / min(3, 2) = 1
    assert average_precision_at(["a", "b", "x"], GRADES, 2) == pytest.approx(1.0)
    assert average_precision_at(["x", "y"], GRADES, 2) == 0.0


def test_reciprocal_rank_looks_at_every_returned_result():
    assert reciprocal_rank(RUN, GRADES) == pytest.approx(1 / 2)  # first hit at rank 2
    assert reciprocal_rank(["x"] * 30 + ["c"], GRADES) == pytest.approx(1 / 31)
    assert reciprocal_rank(["x", "y"], GRADES) == 0.0


def test_ndcg_uses_linear_gain_and_log2_discount():
    # DCG@5 = 2/log2(3) + 1/log2(5)  (a at rank 2, b at rank 4)
    # IDCG@5 = 2/log2(2) + 1/log2(3) + 1/log2(4)  (grades sorted 2, 1, 1)
    dcg = 2 / math.log2(3) + 1 / math.log2(5)
    idcg = 2 + 1 / math.log2(3) + 1 / 2
    assert ndcg_at(RUN, GRADES, 5) == pytest.approx(dcg / idcg)  # about 0.5406
    assert ndcg_at(RUN, GRADES, 5) == pytest.approx(0.5405857679450102)
    # @2: DCG = 2/log2(3); IDCG = 2 + 1/log2(3)
    assert ndcg_at(RUN, GRADES, 2) == pytest.approx((2 / math.log2(3)) / (2 + 1 / math.log2(3)))
    # linear gain: grade 3 at rank 1, then grade 1 -> perfect order gives 1, swapped does not
    graded = {"p": 3.0, "q": 1.0}
    assert ndcg_at(["p", "q"], graded, 2) == pytest.approx(1.0)
    # swapped: DCG = 1 + 3/log2(3) ; IDCG = 3 + 1/log2(3)
    assert ndcg_at(["q", "p"], graded, 2) == pytest.approx(
        (1 + 3 / math.log2(3)) / (3 + 1 / math.log2(3)))


def test_a_repeated_id_counts_once():
    run = ["a", "a", "a"]
    assert recall_at(run, GRADES, 3) == pytest.approx(1 / 3)
    assert precision_at(run, GRADES, 3) == pytest.approx(1 / 3)
    # DCG = 2 (only rank 1); IDCG@3 = 2 + 1/log2(3) + 1/2
    assert ndcg_at(run, GRADES, 3) == pytest.approx(2 / (2 + 1 / math.log2(3) + 0.5))


def test_query_metrics_names_and_means():
    m = query_metrics(RUN, GRADES)
    assert list(m) == metric_names(DEFAULT_KS)
    assert {"recall@1", "precision@10", "map@10", "mrr", "ndcg@10", "ndcg@100"} <= set(m)
    assert m["map@10"] == pytest.approx(1 / 3)
    perfect = query_metrics(["a", "b", "c"], GRADES)
    means = mean_metrics([m, perfect])
    assert means["mrr"] == pytest.approx((0.5 + 1.0) / 2)
    assert means["recall@5"] == pytest.approx((2 / 3 + 1.0) / 2)
    assert mean_metrics([]) == {}


def test_definitions_cover_every_metric_family():
    defs = definitions()
    assert set(defs) == {"recall@K", "precision@K", "map@K", "mrr", "ndcg@K"}
    assert "min(" in defs["map@K"] and "linear" in defs["ndcg@K"]


def test_unscorable_input_is_refused():
    with pytest.raises(InvalidInputError, match="relevant"):
        query_metrics(RUN, {})
    with pytest.raises(InvalidInputError, match="greater than 0"):
        query_metrics(RUN, {"a": 0.0})
    with pytest.raises(InvalidInputError, match="K must"):
        recall_at(RUN, GRADES, 0)


# -- agreement with trec_eval (pytrec_eval) ---------------------------------------------

def _random_case(rng: np.random.Generator):
    pool = [f"d{i}" for i in range(60)]
    n_rel = int(rng.integers(1, 25))
    relevant = rng.choice(pool, n_rel, replace=False)
    grades = {str(d): float(rng.integers(1, 4)) for d in relevant}
    run = [str(d) for d in rng.choice(pool, int(rng.integers(0, 60)), replace=False)]
    return run, grades


def test_agrees_with_trec_eval_on_random_runs():
    pytrec_eval = pytest.importorskip("pytrec_eval")
    rng = np.random.default_rng(7)
    ks = (1, 5, 10, 20, 100)
    cut = ",".join(map(str, ks))
    measures = {f"recall.{cut}", f"P.{cut}", f"map_cut.{cut}", f"ndcg_cut.{cut}",
                "recip_rank"}
    qrels, runs, ours = {}, {}, {}
    for q in range(150):
        run, grades = _random_case(rng)
        name = f"q{q}"
        qrels[name] = {d: int(g) for d, g in grades.items()}
        # strictly decreasing scores so that trec_eval keeps our order
        runs[name] = {d: float(len(run) - i) for i, d in enumerate(run)}
        ours[name] = (query_metrics(run, grades, ks), len(grades))
    theirs = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(runs)
    checked_ap = 0
    for name, (m, n_rel) in ours.items():
        t = theirs.get(name)
        if t is None:  # an empty run: trec_eval skips the query; every metric is 0
            assert all(v == 0.0 for v in m.values())
            continue
        assert m["mrr"] == pytest.approx(t["recip_rank"])
        for k in ks:
            assert m[f"recall@{k}"] == pytest.approx(t[f"recall_{k}"]), (name, k)
            assert m[f"precision@{k}"] == pytest.approx(t[f"P_{k}"]), (name, k)
            assert m[f"ndcg@{k}"] == pytest.approx(t[f"ndcg_cut_{k}"]), (name, k)
            # trec_eval's map_cut divides by R, ours by min(R, K): the same sums
            assert m[f"map@{k}"] * min(n_rel, k) == pytest.approx(
                t[f"map_cut_{k}"] * n_rel), (name, k)
            if n_rel <= k:
                assert m[f"map@{k}"] == pytest.approx(t[f"map_cut_{k}"])
                checked_ap += 1
    assert checked_ap > 100
