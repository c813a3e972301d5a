"""``RemoteEngine``: what an API node does over a collection held by a remote backend
(``milvus://host:port/name``): it keeps nothing of its own beyond caches it may lose,
so that several nodes behind a load balancer serve one collection and any of them takes
writes.

It answers the searches and item writes the HTTP API's search and item routes ask of an
engine. The search path is ``remote_query``: the local engine's query understanding
(``remote_understand``), its calibrated confidence and minimum (``remote_confidence``)
and its ranking stages (``remote_rank``: negative images, boosts, colour preference,
diversity, near-duplicate folding) over what the backend returns, and verified copies
(``remote_matches``) over the thumbnails the backend holds; text queries are expanded as
locally (``remote_expansion``: feedback from the surest hits, the concept list of
``remote_concepts``) and "more like this" fuses the item's image, text, category and
brand (``remote_similar``). Browsing (``remote_browse``) and click feedback
(``remote_feedback``) go through the backend. What needs files or logs of the
collection's own is declared in ``REFUSED`` and answers UnsupportedOnBackendError, saying
so; so are thumbnails and verified copies on a collection made before it held thumbnails
(``OLD_SCHEMA``), and browsing and the near filter on one made before it held positions.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from imgsearch.config import Settings
from imgsearch.encode.base import Encoder
from imgsearch.encode.registry import describe_encoder, get_encoder
from imgsearch.engine import remote_pages, remote_query
from imgsearch.engine.backends.base import CollectionBackend, Row
from imgsearch.engine.backends.milvus_filters import NEAR_OLD
from imgsearch.engine.backends.milvus_positions import BROWSE_OLD
from imgsearch.engine.batching import LRUCache
from imgsearch.engine.pipeline import Prepared, Preparer
from imgsearch.engine.remote_concepts import RemoteWords
from imgsearch.engine.remote_confidence import RemoteCalibrations
from imgsearch.engine.remote_feedback import RemoteFeedback
from imgsearch.engine.remote_rank import item_duplicates
from imgsearch.engine.remote_understand import RemoteVocabulary
from imgsearch.errors import (
    ImgSearchError,
    InvalidQueryError,
    ItemNotFoundError,
)
from imgsearch.ingest.fetch import Fetcher
from imgsearch.search.dedup import Duplicate
from imgsearch.search.understand import Vocabulary
from imgsearch.search.verify import FeatureCache
from imgsearch.types import ImageInput, Item, Query, SearchResult, VectorSpace

# what a node over a remote collection does not do, and why (``RemoteEngine.refuses``):
# nothing at present; a feature a node lacks is named here with the reason
REFUSED: dict[str, str] = {}


# what a collection made without a thumbnail field (milvus schema 1-2) does not do
_AGAIN = ("make a new collection with them: migrate the local collection it came from "
          "again (imgsearch migrate ./local milvus://HOST:PORT/NEW), or index its images "
          "again into it (imgsearch index SOURCE -c milvus://HOST:PORT/NEW)")
OLD_SCHEMA = {
    "thumbnails": "thumbnails (and the web page's previews) are not served: this collection "
                  "was made before collections held them (milvus schema 3); " + _AGAIN,
    "copies": "verified copies (an edited copy told apart by local features of the "
              "stored thumbnails) are not found: this collection was made before "
              "collections held thumbnails (milvus schema 3), so a hit is exact or "
              "similar; " + _AGAIN,
}


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
        self.calibrations = RemoteCalibrations(
            backend, {name: space.model_id for name, space in backend.encoders().items()},
            self.encoder)
        self.known_vocabulary = RemoteVocabulary(backend,
                                                 settings.concept_vocabulary_max_items)
        self.concept_words = RemoteWords(backend, settings.wordnet_dir,
                                         settings.concept_vocabulary_max_items)
        self.feature_cache = FeatureCache()  # local features of verified candidates
        self.feedback = RemoteFeedback(self)

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
            self.backend.upsert([Row(_stateless(p.item), p.vectors, p.thumbnail or None)
                                 for p in prepared])
            written: list[str | ImgSearchError] = [
                "updated" if p.item.id in existing else "added" for p in prepared]
        except ImgSearchError as exc:
            written = [exc] * len(prepared)
        statuses = iter(written)
        return [next(statuses) if isinstance(a, Prepared) else a for a in answers]

    def ingest_prepared(self, prepared: Iterable[Prepared]) -> int:
        rows = [Row(_stateless(p.item), p.vectors, p.thumbnail or None) for p in prepared]
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

    def existing(self, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` the collection holds (one read for them all)."""
        return set(self.backend.get(list(ids))) if ids else set()

    def duplicates(self, item_id: str) -> list[Duplicate]:
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
        old = {"browse": (self.backend.capabilities.browse, BROWSE_OLD),
               "near": (self.backend.capabilities.near, NEAR_OLD)}.get(feature)
        if old is not None and not old[0]:
            return f"{old[1]} ({self.uri})"
        if feature in REFUSED:
            return f"{REFUSED[feature]} on the {self.kind} backend"
        if feature in OLD_SCHEMA and not self.backend.capabilities.thumbnails:
            return f"{OLD_SCHEMA[feature]} ({self.uri})"
        return None

    def thumbnail(self, item_id: str) -> tuple[bytes, str]:
        """The item's JPEG thumbnail, as the backend holds it, and its ETag
        (``remote_pages``)."""
        return remote_pages.thumbnail(self, item_id)

    def facets(self, limit: int = 200) -> dict[str, Any]:
        """What the web page's search form offers (``remote_pages``)."""
        return remote_pages.facets(self, limit)

    @property
    def kind(self) -> str:
        return self.uri.partition("://")[0] or "local"

    def vocabulary(self) -> Vocabulary:
        """Brands, categories and cameras for query understanding (``remote_understand``)."""
        return self.known_vocabulary.get()

    def known_values(self, column: str) -> tuple[list[str], frozenset[str]]:
        """A field's values (brand, category, camera) and the same case-folded."""
        return self.known_vocabulary.known_values(column)

    def embed_query_image(self, value: ImageInput) -> NDArray[np.float32]:
        return remote_query.look(self, value).vector

    def similar(self, item_id: str, limit: int = 10, **kwargs: Any) -> SearchResult:
        return self.search(Query(similar_to=item_id, limit=limit, **kwargs))

    def search(self, query: Query) -> SearchResult:
        """Answered as the local engine answers, over the backend (``remote_query``);
        logged in the log every node shares (``remote_feedback``)."""
        return self.feedback.logged(query, remote_query.search(self, query))

    def record_click(self, search_id: str, item_id: str, position: int | None = None) -> None:
        """Feedback: a result of a logged search was clicked (durable when it returns)."""
        self.feedback.record_click(search_id, item_id, position)

    def report(self, since: float | None = None) -> dict[str, Any]:
        """CTR, MRR of clicks, zero-result rate and latency per query type, over the
        searches and clicks of every node."""
        return self.feedback.report(since)

    def info(self) -> dict[str, Any]:
        caps = self.backend.capabilities
        return {"collection": self.uri, "items": self.backend.count(),
                "spaces": self.backend.spaces(),
                "capabilities": {"filters": caps.filters, "bm25": caps.bm25,
                                 "hybrid": caps.hybrid,
                                 "read_your_writes": caps.read_your_writes,
                                 "thumbnails": caps.thumbnails}}

    def warm(self, wait: bool = True) -> None:
        """Measure the image calibration ahead of the first search (seconds on a large
        collection: ``remote_confidence``); ``wait`` False: on a thread of its own. A
        failure here is left for that search to meet and report."""
        if "image" not in self.backend.spaces():
            return
        if wait:
            self.calibrations.warm()
        else:
            threading.Thread(target=self.calibrations.warm, name="imgsearch-calibrate",
                             daemon=True).start()

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
    """What the backend keeps of an item: no kept original (API nodes have no disk of
    their own to hold it); its thumbnail goes in the row, named by the backend."""
    item.thumbnail = None
    item.original = None
    return item


__all__ = ["OLD_SCHEMA", "REFUSED", "RemoteEngine", "encoders_for", "open_remote", "spaces_for"]
