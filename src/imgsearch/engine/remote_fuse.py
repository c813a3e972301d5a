"""The candidate lists of a remote search: one vector or keyword search, or several
fused by reciprocal rank (on the server where it can, else here), and the hits made of
them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

from imgsearch.engine.backends.base import CollectionBackend, Hit
from imgsearch.errors import InvalidQueryError
from imgsearch.types import Item, Query, SearchHit

RRF_K = 60
NEGATIVE_WEIGHT = 0.5  # as the local engine weighs counter-examples (search.searcher)


def unit(vector: NDArray[np.float32]) -> NDArray[np.float32]:
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm == 0:
        raise InvalidQueryError("the query vector is zero or not finite")
    return (vector / norm).astype(np.float32)


def fused_images(backend: CollectionBackend, positives: Sequence[NDArray[np.float32]],
                 negatives: Sequence[NDArray[np.float32]], k: int, query: Query,
                 rrf_k: int) -> list[Hit]:
    """Several example images by per-image rank fusion, counter-examples with a
    negative weight (as the local engine's ``multi_image="rrf"``)."""
    lists = [(backend.search("image", v, k, query.filters, query.search_params), weight)
             for vectors, weight in ((positives, 1.0), (negatives, -NEGATIVE_WEIGHT))
             for v in vectors]
    return rrf(lists, k, rrf_k)


def run(backend: CollectionBackend, vectors: dict[str, NDArray[np.float32]],
        keyword: str | None, k: int, query: Query) -> list[Hit]:
    """One list, or several fused by reciprocal rank: on the server where it can and
    the lists weigh the same, else here, weighing the image list by the query's
    ``image_weight`` against the text lists (as the local engine weighs them)."""
    if len(vectors) + bool(keyword) > 1:
        hybrid = bool(query.images and query.text)
        texts = len(vectors) - ("image" in vectors) + bool(keyword)
        text_weight = (1.0 - query.image_weight) / max(texts, 1) if hybrid else 1.0
        weight = {"image": query.image_weight if hybrid else 1.0}
        if backend.capabilities.hybrid and not hybrid:
            return backend.hybrid_search(vectors, keyword, k, query.filters, RRF_K)
        lists = [(backend.search(s, v, k, query.filters, query.search_params),
                  weight.get(s, text_weight)) for s, v in sorted(vectors.items())]
        if keyword:
            lists.append((backend.keyword_search(keyword, k, query.filters), text_weight))
        return rrf([(hits, w) for hits, w in lists if w > 0], k, RRF_K)
    if vectors:
        (space, vector), = vectors.items()
        return backend.search(space, vector, k, query.filters, query.search_params)
    return backend.keyword_search(keyword or "", k, query.filters)


def rrf(lists: Sequence[tuple[list[Hit], float]], k: int, rrf_k: int) -> list[Hit]:
    """Weighted reciprocal-rank fusion: ``sum(weight / (rrf_k + rank))``."""
    scores: dict[str, float] = {}
    for hits, weight in lists:
        for rank, found in enumerate(hits):
            scores[found.id] = scores.get(found.id, 0.0) + weight / (rrf_k + rank + 1)
    return [Hit(i, s) for i, s in sorted(scores.items(), key=lambda p: (-p[1], p[0]))[:k]]


Matched = dict[str, dict[str, dict[str, float]]]  # per id: per list, its score and rank


def matched_in(lists: Sequence[tuple[str, Sequence[Hit]]],
               closeness: Mapping[str, Mapping[str, float]] | None = None) -> Matched:
    """What each hit of fused ``lists`` says in ``matched_by``, as locally: its score
    and rank in each list that holds it; ``closeness``: per space, the exact similarity
    of the hits to the query there (also of those the space's list did not hold)."""
    out: Matched = {}
    for name, hits in lists:
        for rank, found in enumerate(hits, 1):
            out.setdefault(found.id, {})[name] = {"score": round(found.score, 6),
                                                  "rank": rank}
    for name, scores in (closeness or {}).items():
        for item_id, score in scores.items():
            out.setdefault(item_id, {}).setdefault(name, {})["score"] = round(score, 6)
    return out


def hit(found: Hit, item: Item, duplicates: int, matched: dict[str, dict[str, float]],
        match: str, confidence: float, evidence: dict[str, float]) -> SearchHit:
    """The item's thumbnail is named where the backend holds one (milvus schema 3)."""
    return SearchHit(found.id, found.score, item.title, item.category, item.brand,
                     item.price, item.image, item.thumbnail, confidence, duplicates, matched,
                     match,
                     dict(evidence))


__all__ = ["NEGATIVE_WEIGHT", "RRF_K", "Matched", "fused_images", "hit", "matched_in", "rrf",
           "run", "unit"]
