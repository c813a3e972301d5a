"""``local``: the collection as a directory (SQLite catalog + FAISS indexes), the
default. A thin face over ``Engine``: what it writes and searches is what ``Engine``
writes and searches, so every other path (ingest, serve) keeps today's behaviour."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from imgsearch.config import Settings
from imgsearch.engine.backends.base import BackendCapabilities, Hit, Row, ranked
from imgsearch.engine.core import Engine
from imgsearch.engine.pipeline import Prepared
from imgsearch.errors import InvalidQueryError, UnsupportedOnBackendError
from imgsearch.types import Filters, Item, VectorSpace

_CAPABILITIES = BackendCapabilities(filters=True, bm25=True, hybrid=False,
                                    read_your_writes=True, thumbnails=True)


def _restricts(filters: Filters | None) -> bool:
    return filters is not None and not filters.is_empty()


class LocalBackend:
    """A collection directory, through the ``Engine`` that holds it open."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, path: str | Path, settings: Settings | None = None, *,
             image_encoder: str | None = None, text_encoder: str | None = None,
             create: bool = True, readonly: bool = False) -> LocalBackend:
        return cls(Engine.open(path, settings, image_encoder=image_encoder,
                               text_encoder=text_encoder, create=create, readonly=readonly))

    @property
    def uri(self) -> str:
        return str(self.engine.directory)

    @property
    def capabilities(self) -> BackendCapabilities:
        return _CAPABILITIES

    def spaces(self) -> dict[str, int]:
        return {name: index.space.dim for name, index in self.engine.spaces.items()}

    def encoders(self) -> dict[str, VectorSpace]:
        return dict(self.engine.manifest.spaces)

    def upsert(self, rows: Sequence[Row]) -> None:
        size = max(1, self.engine.settings.ingest_batch_size)
        for start in range(0, len(rows), size):
            self.engine.commit([Prepared(r.item, dict(r.vectors), r.thumbnail or b"")
                                for r in rows[start:start + size]])

    def delete(self, ids: Sequence[str]) -> int:
        return self.engine.delete_many(ids)

    def _ids(self, keys: NDArray[np.int64], scores: NDArray[np.float32], k: int) -> list[Hit]:
        names = self.engine.catalog.ids_of([int(key) for key in keys])
        return ranked([(names[int(key)], float(score)) for key, score in zip(
            keys, scores, strict=True) if int(key) in names], k)

    def search(self, space: str, vector: NDArray[np.float32], k: int,
               filters: Filters | None = None, params: Mapping[str, int] | None = None
               ) -> list[Hit]:
        self.engine.refresh()
        index = self.engine.spaces.get(space)
        if index is None:
            raise InvalidQueryError(f"collection {self.uri} has no {space!r} space; it has "
                                    f"{', '.join(sorted(self.engine.spaces)) or 'none'}")
        allowed = (self.engine.catalog.filter_keys(filters)
                   if filters is not None and _restricts(filters) else None)
        if allowed is not None and len(allowed) == 0:
            return []
        with self.engine.lock.read():
            keys, scores, _plan = index.search(np.asarray(vector, np.float32), k, allowed,
                                               params or {})
        return self._ids(keys, scores, k)

    def keyword_search(self, text: str, k: int, filters: Filters | None = None) -> list[Hit]:
        self.engine.refresh()
        keys, scores = self.engine.catalog.keyword_search(
            text, k, self.engine.settings.keyword_weights(), filters)
        return self._ids(keys, scores, k)

    def hybrid_search(self, vectors: Mapping[str, NDArray[np.float32]], text: str | None,
                      k: int, filters: Filters | None = None, rrf_k: int = 60) -> list[Hit]:
        raise UnsupportedOnBackendError(
            "the local backend fuses in the engine (Engine.search), not in the store")

    def fetch_vectors(self, space: str, ids: Sequence[str]
                      ) -> dict[str, NDArray[np.float32]]:
        self.engine.refresh()
        catalog, found = self.engine.catalog, {}
        for item_id in ids:
            key = catalog.key_of(item_id)
            vector = None if key is None else catalog.vector_of(space, key)
            if vector is not None:
                found[item_id] = vector
        return found

    def get(self, ids: Sequence[str]) -> dict[str, Item]:
        self.engine.refresh()
        items = (self.engine.catalog.get(i) for i in ids)
        return {item.id: item for item in items if item is not None}

    def thumbnails(self, ids: Sequence[str], expected: Mapping[str, str] | None = None
                   ) -> dict[str, bytes]:
        found = {}
        for item in self.get(ids).values():
            data = self.thumbnail_of(item)
            if data:
                found[item.id] = data
        return found

    def thumbnail_of(self, item: Item) -> bytes | None:
        """The bytes of ``item``'s thumbnail file; None when it has none (or it is gone)."""
        if not item.thumbnail:
            return None
        root = self.engine.directory.resolve()
        path = (root / item.thumbnail).resolve()
        if not path.is_relative_to(root):
            return None
        try:
            return path.read_bytes()
        except OSError:
            return None

    def newest(self, filters: Filters | None, offset: int, limit: int
               ) -> tuple[int, list[str]]:
        self.engine.refresh()
        catalog = self.engine.catalog
        if filters is not None and _restricts(filters):
            keys = catalog.filter_keys(filters)
            passing, page = len(keys), keys[::-1][offset:offset + limit].tolist()
        else:
            passing, page = catalog.count(), catalog.newest_keys(offset, limit)
        names = catalog.ids_of([int(key) for key in page])
        return passing, [names[int(key)] for key in page if int(key) in names]

    def count(self) -> int:
        self.engine.refresh()
        return self.engine.catalog.count()

    def distinct_values(self, field: str, limit: int) -> list[str] | None:
        if self.count() > limit:
            return None
        return [v for v, _n in self.engine.catalog.distinct_values(field, limit)]

    def rows(self, batch: int = 1000, source: str | None = None) -> Iterator[list[Row]]:
        spaces = sorted(self.engine.spaces)
        out: list[Row] = []
        for item in self.engine.catalog.iter_items(batch):
            if source is not None and item.source != source:
                continue
            vectors = self.fetch_vectors_of(item.id, spaces)
            out.append(Row(item, vectors, self.thumbnail_of(item)))
            if len(out) >= batch:
                yield out
                out = []
        if out:
            yield out

    def ids(self, batch: int = 10_000) -> Iterator[list[str]]:
        page: list[str] = []
        for item in self.engine.catalog.iter_items(batch):
            page.append(item.id)
            if len(page) >= batch:
                yield page
                page = []
        if page:
            yield page

    def items(self, batch: int = 1000) -> Iterator[list[Item]]:
        page: list[Item] = []
        for item in self.engine.catalog.iter_items(batch):
            page.append(item)
            if len(page) >= batch:
                yield page
                page = []
        if page:
            yield page

    def filter_ids(self, ids: Sequence[str], filters: Filters) -> set[str]:
        self.engine.refresh()
        catalog = self.engine.catalog
        allowed = None if filters.is_empty() else set(catalog.filter_keys(filters).tolist())
        return {i for i in ids if (key := catalog.key_of(i)) is not None
                and (allowed is None or key in allowed)}

    def fetch_vectors_of(self, item_id: str, spaces: Sequence[str]
                         ) -> dict[str, NDArray[np.float32]]:
        catalog = self.engine.catalog
        key = catalog.key_of(item_id)
        if key is None:
            return {}
        vectors = {space: catalog.vector_of(space, key) for space in spaces}
        return {space: v for space, v in vectors.items() if v is not None}

    def close(self) -> None:
        self.engine.close()


__all__ = ["LocalBackend"]
