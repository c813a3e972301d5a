"""The query encoder: a collection's encoders, loaded on first use, the item preparer
built on them, and query texts and images turned into vectors — cached by content and,
under concurrent load, encoded in micro-batches.

``QueryEncoder`` is what a searcher asks of it; ``CachedQueryEncoder`` is the one an
embedded collection uses (a remote engine's checks each encoder against the dimensions
its backend holds, and is the second implementation this protocol is for).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from imgsearch.config import Settings
from imgsearch.encode.base import Encoder
from imgsearch.encode.registry import get_encoder
from imgsearch.engine.batching import LRUCache, MicroBatcher
from imgsearch.engine.pipeline import Preparer
from imgsearch.engine.shared_cache import RedisCache
from imgsearch.ingest.decode import DecodedImage
from imgsearch.ingest.fetch import Fetcher
from imgsearch.search.timing import load_model, stage
from imgsearch.search.verify import LARGE_SIDE
from imgsearch.store.manifest import Manifest
from imgsearch.types import ImageInput


class QueryEncoder(Protocol):
    """Encoders by space, and query vectors in them."""

    @property
    def preparer(self) -> Preparer: ...

    def encoder(self, space: str) -> Encoder: ...

    def text_encoder(self) -> Encoder | None: ...

    def embed_query_text(self, space: str, text: str) -> NDArray[np.float32]: ...

    def embed_query_image(self, value: ImageInput) -> NDArray[np.float32]: ...

    def look_at(self, value: ImageInput,
                decoded: Callable[[DecodedImage], None] | None = None
                ) -> tuple[DecodedImage, NDArray[np.float32]]: ...

    def close(self) -> None: ...


class CachedQueryEncoder:
    """The encoders ``manifest.spaces`` names (read when first used), with the embedding
    cache and, where configured, the cache shared between processes."""

    def __init__(self, settings: Settings, manifest: Manifest, fetcher: Fetcher,
                 embedding_cache: LRUCache[NDArray[np.float32]],
                 shared_cache: RedisCache | None) -> None:
        self.settings = settings
        self.manifest = manifest
        self.fetcher = fetcher
        self.embedding_cache = embedding_cache
        self.shared_cache = shared_cache
        self._encoders: dict[str, Encoder] = {}
        self._encoder_lock = threading.Lock()
        self._batchers: dict[str, MicroBatcher[Any]] = {}
        self._preparer: Preparer | None = None

    # -- encoders --------------------------------------------------------------------
    def encoder(self, space: str) -> Encoder:
        with self._encoder_lock:
            if space not in self._encoders:
                self._encoders[space] = get_encoder(self.manifest.spaces[space].encoder,
                                                    self.settings)
            return self._encoders[space]

    def _batcher(self, key: str, encode: Callable[[Any], Any]) -> MicroBatcher[Any]:
        with self._encoder_lock:
            batcher = self._batchers.get(key)
            if batcher is None:
                s = self.settings
                batcher = self._batchers[key] = MicroBatcher(
                    encode, max_batch=s.micro_batch_max,
                    max_wait_s=s.micro_batch_wait_ms / 1000.0, name=f"encode-{key}")
            return batcher

    def embed_query_text(self, space: str, text: str) -> NDArray[np.float32]:
        """A query text's vector in ``space`` ("text", or "image" for CLIP), cached and,
        under concurrent load, encoded in micro-batches."""
        key = ("text", space, self.manifest.spaces[space].model_id, text)
        cached = self._cached_vector(key)
        if cached is not None:
            return cached
        encoder = self.encoder(space)
        load_model(encoder)
        if self.settings.micro_batch:
            vector = self._batcher(f"{space}-text", encoder.embed_texts).encode(text)
        else:
            vector = encoder.embed_text(text)
        self._store_vector(key, vector)
        return vector

    def embed_query_image(self, value: ImageInput) -> NDArray[np.float32]:
        """A query image's vector, cached by the hash of its content."""
        return self.look_at(value)[1]

    def look_at(self, value: ImageInput,
                decoded: Callable[[DecodedImage], None] | None = None
                ) -> tuple[DecodedImage, NDArray[np.float32]]:
        """A query image as decoded (its pixels serve verification) and its vector;
        ``decoded`` is told of the image as soon as it is decoded, before it is encoded."""
        with stage("decode"):
            image = self.preparer.decode(value, value if isinstance(value, str)
                                         else "<query image>", longer_at_least=LARGE_SIDE)
        if decoded is not None:
            decoded(image)
        return image, self._vector_of(image)

    def _vector_of(self, decoded: DecodedImage) -> NDArray[np.float32]:
        key = ("image", self.manifest.spaces["image"].model_id, decoded.content_hash)
        cached = self._cached_vector(key)
        if cached is not None:
            return cached
        encoder = self.encoder("image")
        load_model(encoder)
        if self.settings.micro_batch:
            vector = self._batcher("image", encoder.embed_images).encode(decoded.image)
        else:
            vector = encoder.embed_image(decoded.image)
        self._store_vector(key, vector)
        return vector

    def _cached_vector(self, key: tuple[Any, ...]) -> NDArray[np.float32] | None:
        vector = self.embedding_cache.get(key)
        if vector is None and self.shared_cache is not None:
            vector = self.shared_cache.get_vector(key)
            if vector is not None:
                self.embedding_cache.put(key, vector)
        return vector

    def _store_vector(self, key: tuple[Any, ...], vector: NDArray[np.float32]) -> None:
        self.embedding_cache.put(key, vector)
        if self.shared_cache is not None:
            self.shared_cache.put_vector(key, vector)

    def text_encoder(self) -> Encoder | None:
        return self.encoder("text") if "text" in self.manifest.spaces else None

    @property
    def preparer(self) -> Preparer:
        if self._preparer is None:
            self._preparer = Preparer(self.settings, self.encoder("image"),
                                      self.text_encoder, self.fetcher)
        return self._preparer

    def close(self) -> None:
        """Stop the preparer's workers and the micro-batchers' threads."""
        if self._preparer is not None:
            self._preparer.close()
        for batcher in self._batchers.values():
            batcher.close()


__all__ = ["CachedQueryEncoder", "QueryEncoder"]
