"""``RemoteEngine``: what an API node does over a collection held by a remote backend
(``milvus://host:port/name``): it keeps nothing of its own beyond caches it may lose,
so that several nodes behind a load balancer serve one collection and any of them takes
writes.

It answers the searches and item writes the HTTP API's search and item routes ask of an
engine, with the ranking stages of the local engine done here over what the backend
returns (``remote_rank``): negative images, boosts, colour preference, diversity (a cap
per category, MMR over fetched vectors), near-duplicate folding and an item's
near-duplicates (stored perceptual hashes and fetched vectors). What needs the local
catalog (thumbnails, browsing, query understanding, calibrated confidence, the near
filter) is declared in ``REFUSED`` and answers UnsupportedOnBackendError, saying so.
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
from imgsearch.encode.registry import describe_encoder, get_encoder
from imgsearch.engine.backends.base import CollectionBackend, Hit, Row
from imgsearch.engine.batching import LRUCache
from imgsearch.engine.pipeline import Prepared, Preparer
from imgsearch.engine.remote_rank import RemoteDuplicate, finish, item_duplicates
from imgsearch.errors import (
    ImgSearchError,
    InvalidQueryError,
    ItemNotFoundError,
    UnsupportedOnBackendError,
)
from imgsearch.index.base import SearchParams
from imgsearch.ingest.fetch import Fetcher
from imgsearch.search.executor import fetch_size
from imgsearch.search.validation import validate
from imgsearch.types import ImageInput, Item, Query, SearchHit, SearchResult, VectorSpace

_RRF_K = 60
_NEGATIVE_WEIGHT = 0.5  # as the local engine weighs counter-examples (engine.query)
# what a node over a remote collection does not do, and why (``RemoteEngine.refuses``)
REFUSED = {
    "thumbnails": "thumbnails (and the web page) need files of the collection's own, which "
                  "API nodes do not keep; they are not served",
    "browse": "browsing by filters alone (newest first) is not supported",
    "understanding": "query understanding (\"red shoes under $80\" as filters) needs the "
                     "catalog's known brands and categories; it is not done",
    "confidence": "calibrated confidence needs the collection's background level; hits "
                  "say 1.0 and min_confidence is not applied",
    "near": "the near (radius) filter is not supported: a Milvus expression cannot "
            "compute a distance",
    "copies": "verified copies (an edited copy told apart by local features of the "
              "stored images) are not found: hits are exact (the same bytes) or similar",
    "batch": "batch writes (/v1/items:batch) are not served",
    "feedback": "click feedback needs the collection's own log; it is not recorded",
    "fused_similar": "more like this searches the item's image space alone (the local "
                     "engine also fuses its text and category)",
}


def _unit(vector: NDArray[np.float32]) -> NDArray[np.float32]:
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm == 0:
        raise InvalidQueryError("the query vector is zero or not finite")
    return (vector / norm).astype(np.float32)


def spaces_for(settings: Settings) -> dict[str, int]:
    """The vector spaces (and dimensions) a new remote collection gets from the settings'
    encoders: image always, text unless the text encoder is "none"."""
    return {name: space.dim for name, space in encoders_for(settings).items()}


def encoders_for(settings: Settings) -> dict[str, VectorSpace]:
    """What the settings' encoders make, per space (recorded in a new remote collection
    and checked against an existing one's record)."""
    spaces = {}
    model_id, dim = describe_encoder(settings.image_encoder, settings)
    spaces["image"] = VectorSpace("image", settings.image_encoder, model_id, dim, "image")
    if settings.text_encoder != "none":
        model_id, dim = describe_encoder(settings.text_encoder, settings)
        spaces["text"] = VectorSpace("text", settings.text_encoder, model_id, dim, "text")
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

    def duplicates(self, item_id: str) -> list[RemoteDuplicate]:
        """The near-duplicates of one item, strongest first (``remote_rank``)."""
        return item_duplicates(self.backend, item_id)

    def refuses(self, feature: str) -> str | None:
        """Why ``feature`` is not available over this collection; None when it is.
        ``keyword`` (BM25) is the backend's own capability; the others are the node's."""
        if feature == "keyword" and not self.backend.capabilities.bm25:
            return (f"keyword search (BM25) is not supported by the Milvus server at "
                    f"{self.uri}: it needs Milvus 2.5 or later")
        if feature == "text" and "text" not in self.backend.spaces() \
                and not self.backend.capabilities.bm25 \
                and not self.encoder("image").supports("text"):
            return (f"text search needs a text space or BM25, and collection {self.uri} "
                    f"has neither (its server has no BM25, and it was made without a "
                    f"text encoder)")
        if feature in REFUSED:
            return f"{REFUSED[feature]} on the {self._kind()} backend"
        return None

    def _kind(self) -> str:
        return self.uri.partition("://")[0] or "local"

    def _vector_of(self, value: ImageInput, hashes: set[str] | None = None
                   ) -> NDArray[np.float32]:
        """The image's vector; its content hash goes to ``hashes`` when given."""
        decoded = self.preparer.decode(value, "query image")
        if hashes is not None and decoded.content_hash:
            hashes.add(decoded.content_hash)
        return _unit(self.encoder("image").embed_image(decoded.image))

    def embed_query_image(self, value: ImageInput) -> NDArray[np.float32]:
        return self._vector_of(value)

    def _text_vector(self, text: str) -> NDArray[np.float32]:
        key = ("text", text)
        cached = self.embedding_cache.get(key)
        if cached is None:
            cached = _unit(self.encoder("text").embed_text(text))
            self.embedding_cache.put(key, cached)
        return cached

    def similar(self, item_id: str, limit: int = 10, **kwargs: Any) -> SearchResult:
        return self.search(Query(similar_to=item_id, limit=limit, **kwargs))

    def _query_vector(self, query: Query, spaces: dict[str, int]) -> NDArray[np.float32]:
        dim = spaces.get(query.vector_space)
        if dim is None:
            raise InvalidQueryError(f"no vector space {query.vector_space!r}; this collection "
                                    f"has {', '.join(sorted(spaces))}")
        vector = np.asarray(query.vector, dtype=np.float32).reshape(-1)
        if vector.shape[0] != dim or not np.isfinite(vector).all():
            raise InvalidQueryError(f"vector must be {dim} finite numbers for space "
                                    f"{query.vector_space!r}, got {vector.shape[0]}")
        return _unit(vector)

    def _examples(self, query: Query, hashes: set[str]) -> NDArray[np.float32]:
        """The query images' vector, pushed away from its counter-examples as the local
        engine does (averages, then ``positive - 0.5 * negative``)."""
        positive = _unit(np.mean([self._vector_of(v, hashes) for v in query.images], axis=0))
        if query.negative_images:
            negative = _unit(np.mean([self._vector_of(v) for v in query.negative_images],
                                     axis=0))
            positive = _unit(positive - _NEGATIVE_WEIGHT * negative)
        return positive

    def search(self, query: Query) -> SearchResult:
        """Vector searches with the filters pushed down; text and hybrid queries fused on
        the server by reciprocal rank (where it can) over the text space, BM25 and the
        image space; then duplicates folded, boosts, colour preference and diversity
        applied over the block of candidates (``remote_rank``)."""
        started = time.perf_counter()
        validate(query, self.settings.max_limit)
        SearchParams.from_hints(query.search_params)  # refused before any work
        spaces = self.backend.spaces()
        vectors: dict[str, NDArray[np.float32]] = {}
        exclude: str | None = None
        text = None
        fused: list[Hit] | None = None
        hashes: set[str] = set()  # of the query images: the very same bytes come first
        block = fetch_size(query.offset, query.limit)
        if query.similar_to is not None:
            space = "image" if "image" in spaces else "text"
            found = self.backend.fetch_vectors(space, [query.similar_to])
            if query.similar_to not in found:
                if query.similar_to not in self:
                    raise ItemNotFoundError(query.similar_to)
                raise InvalidQueryError(f"item {query.similar_to!r} has no stored vector to "
                                        f"search with")
            vectors[space], exclude = found[query.similar_to], query.similar_to
        elif query.vector is not None:
            vectors[query.vector_space] = self._query_vector(query, spaces)
        else:
            several = len(query.images) + len(query.negative_images) > 1
            if query.images and several and not query.text and \
                    (query.multi_image or self.settings.multi_image) == "rrf":
                fused = self._fused_images(query, block, hashes)
            elif query.images:
                vectors["image"] = self._examples(query, hashes)
            if query.text:
                text = query.text
                if "text" in spaces:
                    vectors["text"] = self._text_vector(query.text)
                elif self.encoder("image").supports("text"):  # CLIP: text into image space
                    vectors.setdefault("image", _unit(self.encoder("image").embed_text(text)))
        if fused is None and not vectors and not (text and self._bm25()):
            reason = self.refuses("text") if text else None
            raise UnsupportedOnBackendError(reason or (
                f"browsing by filters alone is not supported on the {self._kind()} backend; "
                f"give a text, an image, a vector or an item"))
        k = block + (1 if exclude else 0)
        hits = fused if fused is not None else self._run(vectors, text, k, query)
        candidates = [h for h in hits if h.id != exclude][:block]
        # one list searched: a hit says its score and rank there (fused lists do not)
        single = None if fused is not None or len(vectors) + bool(text and self._bm25()) > 1 \
            else next(iter(vectors), "keyword")
        rank_of = {h.id: n for n, h in enumerate(candidates, 1)}
        # an image weighed at nothing in a hybrid query is not looked for
        matching = set() if query.text and query.image_weight == 0 else hashes
        ranked = finish(candidates, query, self.settings, self.backend, matching)
        page = slice(query.offset, query.offset + query.limit)
        hits, stands = ranked.hits[page], ranked.stands_for[page]
        items = {i: ranked.items[i] for i in (h.id for h in hits) if i in ranked.items}
        missing = [h.id for h in hits if h.id not in items]
        if missing:
            items.update(self.backend.get(missing))
        plan = (f"{self._kind()}:{'+'.join(sorted(vectors)) or 'image-rrf'}"
                f"{'+bm25' if text and self._bm25() else ''}")
        return SearchResult(
            hits=[_hit(h, items[h.id], n - 1, {} if single is None else {
                single: {"score": round(h.score, 6), "rank": rank_of[h.id]}},
                "exact" if h.id in ranked.exact else "similar")
                  for h, n in zip(hits, stands, strict=True) if h.id in items],
            query_kind=query.kind, query_time_ms=(time.perf_counter() - started) * 1000,
            total_candidates=len(candidates), plan=plan)

    def _fused_images(self, query: Query, k: int, hashes: set[str]) -> list[Hit]:
        """Several example images by per-image rank fusion, counter-examples with a
        negative weight (as the local engine's ``multi_image="rrf"``)."""
        lists: list[tuple[list[Hit], float]] = []
        for values, weight in ((query.images, 1.0), (query.negative_images,
                                                     -_NEGATIVE_WEIGHT)):
            for value in values:
                vector = self._vector_of(value, hashes if weight > 0 else None)
                lists.append((self.backend.search("image", vector, k, query.filters,
                                                  query.search_params), weight))
        return _rrf(lists, k, self.settings.rrf_k)

    def _bm25(self) -> bool:
        return self.backend.capabilities.bm25

    def _run(self, vectors: dict[str, NDArray[np.float32]], text: str | None, k: int,
             query: Query) -> list[Hit]:
        """One list, or several fused by reciprocal rank: on the server where it can and
        the lists weigh the same, else here, weighing the image list by the query's
        ``image_weight`` against the text lists (as the local engine weighs them)."""
        keyword = text if text and self._bm25() else None
        if len(vectors) + bool(keyword) > 1:
            hybrid = bool(query.images and query.text)
            texts = len(vectors) - ("image" in vectors) + bool(keyword)
            text_weight = (1.0 - query.image_weight) / max(texts, 1) if hybrid else 1.0
            weight = {"image": query.image_weight if hybrid else 1.0}
            if self.backend.capabilities.hybrid and not hybrid:
                return self.backend.hybrid_search(vectors, keyword, k, query.filters, _RRF_K)
            lists = [(self.backend.search(s, v, k, query.filters, query.search_params),
                      weight.get(s, text_weight))
                     for s, v in sorted(vectors.items())]
            if keyword:
                lists.append((self.backend.keyword_search(keyword, k, query.filters),
                              text_weight))
            return _rrf([(hits, w) for hits, w in lists if w > 0], k, _RRF_K)
        if vectors:
            (space, vector), = vectors.items()
            return self.backend.search(space, vector, k, query.filters, query.search_params)
        return self.backend.keyword_search(keyword or "", k, query.filters)


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


def open_remote(uri: str, settings: Settings) -> RemoteEngine:
    """The existing remote collection ``uri``, searched and written with the settings'
    encoders (refused when they are not those it was made with)."""
    from imgsearch.engine.backends.registry import open_backend

    return RemoteEngine(open_backend(uri, settings, encoders=encoders_for(settings),
                                     create=False), settings)


def _stateless(item: Item) -> Item:
    """What the backend keeps of an item: no thumbnail or kept original (API nodes have
    no disk of their own to hold them)."""
    item.thumbnail = None
    item.original = None
    return item


def _rrf(lists: Sequence[tuple[list[Hit], float]], k: int, rrf_k: int) -> list[Hit]:
    """Weighted reciprocal-rank fusion: ``sum(weight / (rrf_k + rank))``."""
    scores: dict[str, float] = {}
    for hits, weight in lists:
        for rank, hit in enumerate(hits):
            scores[hit.id] = scores.get(hit.id, 0.0) + weight / (rrf_k + rank + 1)
    return [Hit(i, s) for i, s in sorted(scores.items(), key=lambda p: (-p[1], p[0]))[:k]]


def _hit(hit: Hit, item: Item, duplicates: int, matched: dict[str, dict[str, float]],
         match: str) -> SearchHit:
    return SearchHit(hit.id, hit.score, item.title, item.category, item.brand, item.price,
                     item.image, None, 1.0, duplicates, matched, match)


__all__ = ["REFUSED", "RemoteEngine", "encoders_for", "open_remote", "spaces_for"]
