"""What the searcher reads, each as narrow as its use (see ``search.searcher``).

The searcher ranks a ``Query`` against these and nothing else: the catalog's reads, the
query encoder, what is derived from the collection as it stands (known values, the
vocabulary, the Hamming index, the write version), a readers' lock, result caches and
a search-log sink. The engine passes in its own objects; a test passes in small fakes.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from imgsearch.encode.base import Encoder
from imgsearch.ingest.decode import DecodedImage
from imgsearch.search.understand import Vocabulary
from imgsearch.store.logs import SearchRecord
from imgsearch.types import Filters, ImageInput, Item, SearchResult


class CatalogReads(Protocol):
    """The catalog's reads a search makes."""

    def count(self) -> int: ...

    def is_empty(self) -> bool: ...

    def has_text(self) -> bool: ...

    def key_of(self, item_id: str) -> int | None: ...

    def newest_keys(self, offset: int, limit: int) -> list[int]: ...

    def filter_keys(self, filters: Filters) -> NDArray[np.int64]: ...

    def items_by_key(self, keys: Iterable[int]) -> dict[int, Item]: ...

    def ids_of(self, keys: Sequence[int]) -> dict[int, str]: ...

    def hits_by_key(self, keys: Sequence[int] | NDArray[np.int64]) -> dict[int, Any]: ...

    def category_and_brand(self, key: int) -> tuple[str | None, str | None]: ...

    def phashes(self) -> tuple[NDArray[np.int64], NDArray[np.int64]]: ...

    def phashes_of(self, keys: NDArray[np.int64]
                   ) -> tuple[NDArray[np.int64], NDArray[np.bool_]]: ...

    def keyword_search(self, text: str, limit: int, weights: Sequence[float],
                       filters: Filters | None = None
                       ) -> tuple[NDArray[np.int64], NDArray[np.float32]]: ...

    def term_coverage(self, text: str, keys: NDArray[np.int64]) -> NDArray[np.float32]: ...

    def field_matches(self, text: str, keys: NDArray[np.int64]
                      ) -> dict[str, NDArray[np.float32]]: ...

    def iter_words(self) -> Iterator[str]: ...

    def keys_matching_any(self, words: Sequence[str]) -> NDArray[np.int64]: ...


class ImageDecoder(Protocol):
    def decode(self, value: ImageInput | None, source: str) -> DecodedImage: ...


class QueryEncoding(Protocol):
    """Query texts and images into vectors (cached by the engine's query encoder)."""

    @property
    def preparer(self) -> ImageDecoder: ...

    def encoder(self, space: str) -> Encoder: ...

    def embed_query_text(self, space: str, text: str) -> NDArray[np.float32]: ...

    def embed_query_image(self, value: ImageInput) -> NDArray[np.float32]: ...

    def look_at(self, value: ImageInput,
                decoded: Callable[[DecodedImage], None] | None = None
                ) -> tuple[DecodedImage, NDArray[np.float32]]: ...


class CollectionState(Protocol):
    """What is made from the collection as it stands, and the write version that says
    when it was made (a write makes it stale)."""

    @property
    def write_version(self) -> int: ...

    def known_values(self, column: str) -> tuple[list[str], frozenset[str]]: ...

    def is_empty(self) -> bool: ...

    def vocabulary(self) -> Vocabulary: ...

    def hamming_index(self, build: Callable[[], Any]) -> Any: ...

    def has_hamming_index(self) -> bool: ...


class ReadLock(Protocol):
    """Searches read under ``read()``; a write goes in whole outside it."""

    def read(self) -> AbstractContextManager[Any]: ...


class ResultCache(Protocol):
    def get(self, key: Hashable) -> Any | None: ...

    def put(self, key: Hashable, value: Any) -> None: ...


class SharedResults(Protocol):
    """Results shared between processes (Redis), keyed without the write version."""

    def get_result(self, key: Hashable) -> SearchResult | None: ...

    def put_result(self, key: Hashable, result: SearchResult) -> None: ...


class SearchLogSink(Protocol):
    def log_search(self, record: SearchRecord | Callable[[], SearchRecord]) -> str: ...


__all__ = ["CatalogReads", "CollectionState", "ImageDecoder", "QueryEncoding",
           "ReadLock", "ResultCache", "SearchLogSink", "SharedResults"]
