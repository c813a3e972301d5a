"""Retrieval metrics over one ranked list of ids and its relevance judgements.

Notation: the run is the ranked list of returned ids (rank 1 first); ``grades`` maps
each relevant id to its grade (> 0; 1 when the qrels give none); R is the number of
relevant ids; rel(i) is 1 when the id at rank i is relevant, else 0. An id returned
twice counts only at its first rank. Every metric is in [0, 1].

- ``recall@K``    = (relevant ids in the top K) / R.
- ``precision@K`` = (relevant ids in the top K) / K, also when fewer than K results
  were returned (missing results count as misses).
- ``map@K``       = AP@K, averaged over queries (per query it is that query's AP@K):
  AP@K = sum over ranks i <= K with rel(i) = 1 of precision@i, divided by min(R, K).
  Dividing by min(R, K) rather than R means a perfect top K scores 1 even when more
  than K ids are relevant (trec_eval's map_cut divides by R instead).
- ``mrr``         = reciprocal rank, averaged over queries: 1 / (rank of the first
  relevant id) among all returned results (the run is fetched to the largest K), 0 when
  none is returned.
- ``ndcg@K``      = DCG@K / IDCG@K with linear gain (gain = grade, not 2^grade - 1) and
  a log2(rank + 1) discount: DCG@K = sum over i <= K of grade(id at i) / log2(i + 1);
  IDCG@K is the same sum over the grades sorted in descending order (the best possible
  top K).

Overall numbers are plain means over the queries that could be scored; a query with no
relevant ids cannot be and is reported as an error instead of counting as zero.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from imgsearch.errors import InvalidInputError

DEFAULT_KS: tuple[int, ...] = (1, 5, 10, 20, 100)

# Metric families whose names take "@K"; "mrr" has none.
AT_K_FAMILIES: tuple[str, ...] = ("recall", "precision", "map", "ndcg")

_DEFINITIONS: dict[str, str] = {
    "recall@K": "relevant ids in the top K / number of relevant ids",
    "precision@K": "relevant ids in the top K / K (missing results count as misses)",
    "map@K": "mean over queries of AP@K = sum of precision@i at each relevant hit at "
             "rank i <= K, divided by min(number of relevant ids, K)",
    "mrr": "mean over queries of 1 / rank of the first relevant result among all returned "
           "results (0 when none is returned)",
    "ndcg@K": "DCG@K / ideal DCG@K, with linear gain (gain = grade; default grade 1) and "
              "discount log2(rank + 1); the ideal DCG ranks the grades in descending order",
}


def definitions() -> dict[str, str]:
    """Each metric's name (with K as a placeholder) and its definition in one line."""
    return dict(_DEFINITIONS)


def metric_names(ks: Sequence[int] = DEFAULT_KS) -> list[str]:
    """Metric names in reporting order: recall@K, precision@K, map@K, ndcg@K, mrr."""
    return [f"{family}@{k}" for family in AT_K_FAMILIES for k in ks] + ["mrr"]


def _hits(ranked: Sequence[str], relevant: Iterable[str]) -> list[bool]:
    """rel(i) for every rank; a repeated id is relevant only at its first rank."""
    wanted = set(relevant)
    seen: set[str] = set()
    hits = []
    for item_id in ranked:
        hits.append(item_id in wanted and item_id not in seen)
        seen.add(item_id)
    return hits


def _check(k: int, relevant_count: int) -> None:
    if k < 1:
        raise InvalidInputError(f"K must be at least 1, got {k}")
    if relevant_count < 1:
        raise InvalidInputError("a query needs at least one relevant id to be scored; "
                                "list its relevant ids in the qrels")


def recall_at(ranked: Sequence[str], relevant: Iterable[str], k: int) -> float:
    wanted = set(relevant)
    _check(k, len(wanted))
    return sum(_hits(ranked[:k], wanted)) / len(wanted)


def precision_at(ranked: Sequence[str], relevant: Iterable[str], k: int) -> float:
    wanted = set(relevant)
    _check(k, len(wanted))
    return sum(_hits(ranked[:k], wanted)) / k


def average_precision_at(ranked: Sequence[str], relevant: Iterable[str], k: int) -> float:
    wanted = set(relevant)
    _check(k, len(wanted))
    found = 0
    total = 0.0
    for rank, hit in enumerate(_hits(ranked[:k], wanted), start=1):
        if hit:
            found += 1
            total += found / rank
    return total / min(len(wanted), k)


def reciprocal_rank(ranked: Sequence[str], relevant: Iterable[str]) -> float:
    wanted = set(relevant)
    _check(1, len(wanted))
    for rank, hit in enumerate(_hits(ranked, wanted), start=1):
        if hit:
            return 1.0 / rank
    return 0.0


def ndcg_at(ranked: Sequence[str], grades: Mapping[str, float], k: int) -> float:
    _check(k, len(grades))
    seen: set[str] = set()
    dcg = 0.0
    for rank, item_id in enumerate(ranked[:k], start=1):
        if item_id not in seen:
            dcg += grades.get(item_id, 0.0) / math.log2(rank + 1)
        seen.add(item_id)
    ideal = sorted(grades.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(rank + 1) for rank, g in enumerate(ideal, start=1))
    return dcg / idcg


def query_metrics(ranked: Sequence[str], grades: Mapping[str, float],
                  ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """Every metric of one query, keyed as :func:`metric_names` lists them.

    ``grades`` maps each relevant id to its grade (> 0). Raises InvalidInputError when
    it is empty (such a query cannot be scored) or holds a grade <= 0.
    """
    if any(g <= 0 for g in grades.values()):
        raise InvalidInputError("relevance grades must be greater than 0")
    relevant = set(grades)
    out: dict[str, float] = {}
    for k in ks:
        out[f"recall@{k}"] = recall_at(ranked, relevant, k)
    for k in ks:
        out[f"precision@{k}"] = precision_at(ranked, relevant, k)
    for k in ks:
        out[f"map@{k}"] = average_precision_at(ranked, relevant, k)
    for k in ks:
        out[f"ndcg@{k}"] = ndcg_at(ranked, grades, k)
    out["mrr"] = reciprocal_rank(ranked, relevant)
    return out


def mean_metrics(per_query: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """The mean of each metric over queries (an empty input gives an empty result)."""
    if not per_query:
        return {}
    names = list(per_query[0])
    return {name: sum(q[name] for q in per_query) / len(per_query) for name in names}
