"""``RemoteEngine``: what an API node does over a collection held by a remote backend
(``milvus://host:port/name``): it keeps nothing of its own beyond caches it may lose,
so that several nodes behind a load balancer serve one collection and any of them takes
writes.

It answers the searches and item writes the HTTP API's search and item routes ask of an
engine; features that need the local catalog (near-duplicates, thumbnails, timeline,
click logs, query understanding, re-embedding, diversity and business boosts) answer
UnsupportedOnBackendError, saying so.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from imgsearch.config import Settings
from imgsearch.encode.base import Encoder
from imgsearch.encode.registry import get_encoder
from imgsearch.engine.backends.base import CollectionBackend, Hit, Row
from imgsearch.engine.batching import LRUCache
from imgsearch.engine.pipeline import Prepared, Preparer
from imgsearch.errors import (
    ImgSearchError,
    InvalidQueryError,
    ItemNotFoundError,
    UnsupportedOnBackendError,
)
from imgsearch.ingest.fetch import Fetcher
from imgsearch.types import ImageInput, Item, Query, SearchHit, SearchResult

_RRF_K = 60


def _unit(vector: NDArray[np.float32]) -> NDArray[np.float32]:
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm == 0:
        raise InvalidQueryError("the query vector is zero or not finite")
    return (vector / norm).astype(np.float32)


def spaces_for(settings: Settings) -> dict[str, int]:
    """The vector spaces (and dimensions) a new remote collection gets from the settings'
    encoders: image always, text unless the text encoder is "none"."""
    spaces = {"image": get_encoder(settings.image_encoder, settings).dim}
    if settings.text_encoder != "none":
        spaces["text"] = get_encoder(settings.text_encoder, settings).dim
    return spaces


class RemoteEngine:
    """Searches and writes through a ``CollectionBackend`` (see the module docstring)."""

    readonly = False

    def __init__(self, backend: CollectionBackend, settings: Settings) -> None:
        self.backend = backend
        self.settings = settings
        self.fetcher = Fetcher(settings)
        self._encoders: dict[str, Encoder] = {}
        self._lock = threading.Lock()
        self._preparer: Preparer | None = None
        self.embedding_cache: LRUCache[NDArray[np.float32]] = LRUCache(
            settings.embedding_cache_size)

    @property
    def uri(self) -> str:
        return self.backend.uri

    @property
    def spaces(self) -> dict[str, int]:
        return self.backend.spaces()

    # -- encoders --------------------------------------------------------------------
    def encoder(self, space: str) -> Encoder:
        name = self.settings.image_encoder if space == "image" else self.settings.text_encoder
        with self._lock:
            if space not in self._encoders:
                encoder = get_encoder(name, self.settings)
                have = self.backend.spaces().get(space)
                if have is not None and have != encoder.dim:
                    raise InvalidQueryError(
                        f"collection {self.uri} holds {have}-d {space} vectors, encoder "
                        f"{name!r} makes {encoder.dim}-d ones: use the encoder it was "
                        f"built with")
                self._encoders[space] = encoder
            return self._encoders[space]

    def text_encoder(self) -> Encoder | None:
        return self.encoder("text") if "text" in self.backend.spaces() else None

    @property
    def preparer(self) -> Preparer:
        if self._preparer is None:
            self._preparer = Preparer(self.settings, self.encoder("image"),
                                      self.text_encoder, self.fetcher)
        return self._preparer

    # -- writes ----------------------------------------------------------------------
    def upsert(self, item: Item, image: ImageInput | None = None) -> str:
        outcome = self.upsert_many([(item, image)])[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def upsert_many(self, entries: Sequence[tuple[Item, ImageInput | None]]
                    ) -> list[str | ImgSearchError | OSError]:
        """As ``Engine.upsert_many``: decoded, enriched and encoded here, written to the
        backend in one call; per entry "added", "updated" or the error that kept it out."""
        answers = self.preparer.prepare_each(
            [(item, image if image is not None else item.image) for item, image in entries])
        prepared = [a for a in answers if isinstance(a, Prepared)]
        existing = set(self.backend.get([p.item.id for p in prepared])) if prepared else set()
        try:
            self.backend.upsert([Row(_stateless(p.item), p.vectors) for p in prepared])
            written: list[str | ImgSearchError] = [
                "updated" if p.item.id in existing else "added" for p in prepared]
        except ImgSearchError as exc:
            written = [exc] * len(prepared)
        statuses = iter(written)
        return [next(statuses) if isinstance(a, Prepared) else a for a in answers]

    def ingest_prepared(self, prepared: Iterable[Prepared]) -> int:
        rows = [Row(_stateless(p.item), p.vectors) for p in prepared]
        self.backend.upsert(rows)
        return len(rows)

    def delete(self, item_id: str) -> bool:
        return bool(self.delete_many([item_id]))

    def delete_many(self, ids: Iterable[str]) -> int:
        return self.backend.delete(list(ids))

    # -- reads -----------------------------------------------------------------------
    def get(self, item_id: str) -> Item:
        found = self.backend.get([item_id]).get(item_id)
        if found is None:
            raise ItemNotFoundError(item_id)
        return found

    def __contains__(self, item_id: str) -> bool:
        return bool(self.backend.get([item_id]))

    def duplicates(self, item_id: str) -> Any:
        raise UnsupportedOnBackendError(
            f"near-duplicates are not supported on the {self._kind()} backend ({self.uri})")

    def _kind(self) -> str:
        return self.uri.partition("://")[0] or "local"

    def _vector_of(self, value: ImageInput) -> NDArray[np.float32]:
        decoded = self.preparer.decode(value, "query image")
        return _unit(self.encoder("image").embed_image(decoded.image))

    def _text_vector(self, text: str) -> NDArray[np.float32]:
        key = ("text", text)
        cached = self.embedding_cache.get(key)
        if cached is None:
            cached = _unit(self.encoder("text").embed_text(text))
            self.embedding_cache.put(key, cached)
        return cached

    def similar(self, item_id: str, limit: int = 10, **kwargs: Any) -> SearchResult:
        return self.search(Query(similar_to=item_id, limit=limit, **kwargs))

    def search(self, query: Query) -> SearchResult:
        """Vector searches with the filters pushed down; text and hybrid queries fused on
        the server by reciprocal rank (where it can) over the text space, BM25 and the
        image space."""
        started = time.perf_counter()
        self._refuse_local_only(query)
        want = query.offset + query.limit
        spaces = self.backend.spaces()
        vectors: dict[str, NDArray[np.float32]] = {}
        exclude: str | None = None
        text = None
        if query.similar_to is not None:
            space = "image" if "image" in spaces else "text"
            found = self.backend.fetch_vectors(space, [query.similar_to])
            if query.similar_to not in found:
                raise ItemNotFoundError(query.similar_to)
            vectors[space], exclude = found[query.similar_to], query.similar_to
        elif query.vector is not None:
            vectors[query.vector_space] = _unit(np.asarray(query.vector, np.float32))
        else:
            if query.images:
                vectors["image"] = _unit(np.mean([self._vector_of(v) for v in query.images],
                                                 axis=0))
            if query.text:
                text = query.text
                if "text" in spaces:
                    vectors["text"] = self._text_vector(query.text)
                elif self.encoder("image").supports("text"):  # CLIP: text into image space
                    vectors.setdefault("image", _unit(self.encoder("image").embed_text(text)))
        if not vectors and not text:
            raise UnsupportedOnBackendError(
                f"browsing by filters alone is not supported on the {self._kind()} backend; "
                f"give a text, an image, a vector or an item")
        k = want + (1 if exclude else 0)
        hits = self._run(vectors, text, k, query)
        hits = [h for h in hits if h.id != exclude][query.offset:want]
        items = self.backend.get([h.id for h in hits])
        return SearchResult(
            hits=[_hit(h, items[h.id]) for h in hits if h.id in items],
            query_kind=query.kind, query_time_ms=(time.perf_counter() - started) * 1000,
            total_candidates=len(hits), plan=f"{self._kind()}:{'+'.join(sorted(vectors))}"
                                             f"{'+bm25' if text and self._bm25() else ''}")

    def _bm25(self) -> bool:
        return self.backend.capabilities.bm25

    def _run(self, vectors: dict[str, NDArray[np.float32]], text: str | None, k: int,
             query: Query) -> list[Hit]:
        keyword = text if text and self._bm25() else None
        if len(vectors) + bool(keyword) > 1:
            if self.backend.capabilities.hybrid:
                return self.backend.hybrid_search(vectors, keyword, k, query.filters, _RRF_K)
            lists = [self.backend.search(s, v, k, query.filters) for s, v in vectors.items()]
            return _rrf(lists, k)
        if vectors:
            (space, vector), = vectors.items()
            return self.backend.search(space, vector, k, query.filters)
        return self.backend.keyword_search(keyword or "", k, query.filters)

    def _refuse_local_only(self, query: Query) -> None:
        asked = [name for name, value in (
            ("negative images", query.negative_images), ("boosts", query.boosts),
            ("prefer_colors", query.prefer_colors), ("max_per_category",
                                                     query.max_per_category),
            ("mmr_lambda", query.mmr_lambda), ("search_params", query.search_params))
            if value]
        if asked:
            raise UnsupportedOnBackendError(
                f"{', '.join(asked)} are not supported on the {self._kind()} backend "
                f"({self.uri})")

    def info(self) -> dict[str, Any]:
        caps = self.backend.capabilities
        return {"collection": self.uri, "items": self.backend.count(),
                "spaces": self.backend.spaces(),
                "capabilities": {"filters": caps.filters, "bm25": caps.bm25,
                                 "hybrid": caps.hybrid,
                                 "read_your_writes": caps.read_your_writes}}

    def warm(self, wait: bool = True) -> None:
        """Nothing to read ahead: the server holds the collection."""

    def close(self) -> None:
        if self._preparer is not None:
            self._preparer.close()
        self.backend.close()

    def __enter__(self) -> RemoteEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _stateless(item: Item) -> Item:
    """What the backend keeps of an item: no thumbnail or kept original (API nodes have
    no disk of their own to hold them)."""
    item.thumbnail = None
    item.original = None
    return item


def _rrf(lists: Sequence[list[Hit]], k: int) -> list[Hit]:
    scores: dict[str, float] = {}
    for hits in lists:
        for rank, hit in enumerate(hits):
            scores[hit.id] = scores.get(hit.id, 0.0) + 1.0 / (_RRF_K + rank + 1)
    return [Hit(i, s) for i, s in sorted(scores.items(), key=lambda p: (-p[1], p[0]))[:k]]


def _hit(hit: Hit, item: Item) -> SearchHit:
    return SearchHit(hit.id, hit.score, item.title, item.category, item.brand, item.price,
                     item.image)


__all__ = ["RemoteEngine", "spaces_for"]
