"""The searcher on in-memory fakes of what it reads: ranking without a collection on disk.

Four items with 4-d text vectors (one axis per colour word), titles for the keyword
list and categories for filters; the fakes answer exactly what ``search.protocols``
asks, so each test checks the searcher's own logic.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from imgsearch.config import Settings
from imgsearch.encode.blas import blas_threads
from imgsearch.errors import InvalidFilterError, InvalidQueryError, ItemNotFoundError
from imgsearch.search.backend import Capabilities
from imgsearch.search.searcher import Searcher
from imgsearch.search.understand import Vocabulary
from imgsearch.store.logs import SearchRecord
from imgsearch.types import Filters, Item, Query

AXES = {"red": 0, "blue": 1, "green": 2, "yellow": 3}
ITEMS = [  # key, id, title, category, text vector
    (1, "red-shirt", "red shirt", "shirts", [1.0, 0.0, 0.0, 0.0]),
    (2, "purple-shirt", "purple shirt", "shirts", [0.8, 0.6, 0.0, 0.0]),
    (3, "blue-shoe", "blue shoe", "shoes", [0.0, 1.0, 0.0, 0.0]),
    (4, "green-shoe", "green shoe", "shoes", [0.0, 0.0, 1.0, 0.0]),
]


def _unit(values: Sequence[float]) -> NDArray[np.float32]:
    vector = np.asarray(values, np.float32)
    return vector / np.float32(np.linalg.norm(vector))


class FakeSpace:
    """A flat vector space over a dict: exact inner products."""

    capabilities = Capabilities("flat")
    space = SimpleNamespace(dim=4)
    deferred = False  # held in memory from the start: nothing to read ahead

    def __init__(self, vectors: dict[int, NDArray[np.float32]]) -> None:
        self.vectors = vectors

    def __len__(self) -> int:
        return len(self.vectors)

    def search(self, vector: NDArray[np.float32], k: int, allowed: NDArray[np.int64] | None,
               params: Any) -> tuple[NDArray[np.int64], NDArray[np.float32], str]:
        keys = [key for key in self.vectors if allowed is None or key in set(allowed.tolist())]
        scores = np.asarray([self.vectors[key] @ vector for key in keys], np.float32)
        order = np.argsort(-scores, kind="stable")[:k]
        return np.asarray(keys, np.int64)[order], scores[order], "flat"

    def vectors_of_keys(self, keys: NDArray[np.int64]
                        ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        found = [int(key) for key in keys if int(key) in self.vectors]
        vectors = np.asarray([self.vectors[key] for key in found], np.float32).reshape(-1, 4)
        return np.asarray(found, np.int64), vectors

    def vector_of_key(self, key: int) -> NDArray[np.float32] | None:
        return self.vectors.get(key)


class FakeCatalog:
    def __init__(self) -> None:
        self.items = {key: Item(id=ident, title=title, category=category)
                      for key, ident, title, category, _ in ITEMS}

    def _words(self, key: int) -> list[str]:
        return (self.items[key].title or "").split()

    def count(self) -> int:
        return len(self.items)

    def is_empty(self) -> bool:
        return not self.items

    def has_text(self) -> bool:
        return True

    def key_of(self, item_id: str) -> int | None:
        return next((key for key, item in self.items.items() if item.id == item_id), None)

    def newest_keys(self, offset: int, limit: int) -> list[int]:
        return sorted(self.items, reverse=True)[offset:offset + limit]

    def filter_keys(self, filters: Filters) -> NDArray[np.int64]:
        return np.asarray([key for key, item in sorted(self.items.items())
                           if not filters.categories or item.category in filters.categories],
                          np.int64)

    def items_by_key(self, keys: Iterable[int]) -> dict[int, Item]:
        return {int(key): self.items[int(key)] for key in keys if int(key) in self.items}

    def category_and_brand(self, key: int) -> tuple[str | None, str | None]:
        item = self.items.get(key)
        return (None, None) if item is None else (item.category, item.brand)

    def hits_by_key(self, keys: Sequence[int] | NDArray[np.int64]) -> dict[int, Any]:
        return {int(key): (item.id, item.title, item.category, None, None, None, None)
                for key, item in self.items_by_key(keys).items()}

    def phashes(self) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        return np.empty(0, np.int64), np.empty(0, np.int64)

    def phashes_of(self, keys: NDArray[np.int64]
                   ) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
        return np.zeros(len(keys), np.int64), np.zeros(len(keys), bool)

    def keyword_search(self, text: str, limit: int, weights: Sequence[float],
                       filters: Filters | None = None
                       ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        allowed = set(self.filter_keys(filters or Filters()).tolist())
        found = [(key, float(sum(w in self._words(key) for w in text.split())))
                 for key in sorted(allowed)]
        found = [(key, score) for key, score in found if score > 0][:limit]
        return (np.asarray([k for k, _ in found], np.int64),
                np.asarray([s for _, s in found], np.float32))

    def term_coverage(self, text: str, keys: NDArray[np.int64]) -> NDArray[np.float32]:
        words = text.split()
        return np.asarray([sum(w in self._words(int(key)) for w in words) / len(words)
                           for key in keys], np.float32)

    def field_matches(self, text: str, keys: NDArray[np.int64]
                      ) -> dict[str, NDArray[np.float32]]:
        return {}

    def iter_words(self) -> Iterator[str]:
        for key in self.items:
            yield from self._words(key)

    def keys_matching_any(self, words: Sequence[str]) -> NDArray[np.int64]:
        return np.asarray([key for key in sorted(self.items)
                           if set(words) & set(self._words(key))], np.int64)


class FakeQueryEncoder:
    preparer = None  # no stored image is decoded in these tests

    def encoder(self, space: str) -> Any:
        return SimpleNamespace(name="fake", modalities=("image",))

    def embed_query_text(self, space: str, text: str) -> NDArray[np.float32]:
        vector = np.full(4, 0.01, np.float32)
        for word in text.split():
            if word in AXES:
                vector[AXES[word]] = 1.0
        return _unit(vector)

    def embed_query_image(self, value: Any) -> NDArray[np.float32]:
        raise AssertionError("no image query here")

    def look_at(self, value: Any, decoded: Any = None) -> Any:
        raise AssertionError("no image query here")


class FakeDerived:
    def __init__(self, catalog: FakeCatalog) -> None:
        self.catalog = catalog
        self.write_version = 0

    def known_values(self, column: str) -> tuple[list[str], frozenset[str]]:
        values = sorted({getattr(item, column) for item in self.catalog.items.values()
                         if getattr(item, column, None)})
        return values, frozenset(v.casefold() for v in values)

    def is_empty(self) -> bool:
        return self.catalog.is_empty()

    def vocabulary(self) -> Vocabulary:
        return Vocabulary([], self.known_values("category")[0])

    def hamming_index(self, build: Callable[[], Any]) -> Any:
        return build()

    def has_hamming_index(self) -> bool:
        return False


class FakeLock:
    def read(self) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()


class FakeCache:
    def __init__(self) -> None:
        self.held: dict[Hashable, Any] = {}

    def get(self, key: Hashable) -> Any | None:
        return self.held.get(key)

    def put(self, key: Hashable, value: Any) -> None:
        self.held[key] = value


class FakeLog:
    def __init__(self) -> None:
        self.records: list[SearchRecord] = []

    def log_search(self, record: SearchRecord | Callable[[], SearchRecord]) -> str:
        self.records.append(record() if callable(record) else record)
        return f"s{len(self.records)}"


@pytest.fixture
def searcher(tmp_path: Path) -> Searcher:
    catalog = FakeCatalog()
    space = FakeSpace({key: _unit(vector) for key, _, _, _, vector in ITEMS})
    settings = Settings(wordnet_dir=str(tmp_path / "no-wordnet"))
    return Searcher(settings, tmp_path, catalog, {"text": space}, {},
                    FakeLock(), FakeQueryEncoder(), FakeDerived(catalog),
                    lambda space: "fake", FakeCache(), logs=FakeLog())


def test_a_vector_query_ranks_by_similarity_and_is_logged(searcher: Searcher) -> None:
    result = searcher.search(Query(vector=[1.0, 0.0, 0.0, 0.0], vector_space="text",
                                   limit=3))
    assert [h.id for h in result.hits] == ["red-shirt", "purple-shirt", "blue-shoe"]
    assert result.hits[0].score == pytest.approx(1.0)
    assert result.hits[1].score == pytest.approx(0.8)
    assert result.search_id == "s1"
    assert searcher.logs is not None
    (record,) = searcher.logs.records
    assert record.result_ids == [h.id for h in result.hits]


def test_a_text_query_fuses_the_keyword_and_semantic_lists(searcher: Searcher) -> None:
    result = searcher.search(Query(text="red", parse=False, limit=2))
    assert result.hits[0].id == "red-shirt"
    assert {"text", "keyword"} <= set(result.hits[0].matched_by)
    assert "fused:" in result.plan and "keyword:fts5" in result.plan
    assert not result.cached
    again = searcher.search(Query(text="red", parse=False, limit=2))
    assert again.cached and [h.id for h in again.hits] == [h.id for h in result.hits]


def test_filters_narrow_the_candidates(searcher: Searcher) -> None:
    result = searcher.search(Query(vector=[1.0, 0.0, 0.0, 0.0], vector_space="text",
                                   filters=Filters(categories=("shoes",))))
    assert [h.id for h in result.hits] == ["blue-shoe", "green-shoe"]


def test_a_filter_on_an_unknown_category_is_refused_with_the_known_ones(
        searcher: Searcher) -> None:
    with pytest.raises(InvalidFilterError, match=r"unknown category 'shoez'.*shirts, shoes"):
        searcher.search(Query(text="red", filters=Filters(categories=("shoez",))))


def test_more_like_an_item_leaves_the_item_out(searcher: Searcher) -> None:
    result = searcher.search(Query(similar_to="red-shirt", limit=3))
    assert [h.id for h in result.hits][:1] == ["purple-shirt"]
    assert "red-shirt" not in [h.id for h in result.hits]
    with pytest.raises(ItemNotFoundError):
        searcher.search(Query(similar_to="nothing-such"))


def test_a_query_with_filters_only_lists_the_items_newest_first(searcher: Searcher) -> None:
    result = searcher.search(Query(filters=Filters(categories=("shirts",))))
    assert result.query_kind == "browse"
    assert [h.id for h in result.hits] == ["purple-shirt", "red-shirt"]


def test_bad_options_are_refused_before_any_search(searcher: Searcher) -> None:
    with pytest.raises(InvalidQueryError, match="limit must be between 1"):
        searcher.search(Query(text="red", limit=0))
    with pytest.raises(InvalidQueryError, match="no vector space 'image'"):
        searcher.search(Query(vector=[1.0, 0.0, 0.0, 0.0], vector_space="image"))


class ThreadsSeen(FakeSpace):
    """A space that notes the BLAS thread counts each search runs under."""

    def __init__(self, vectors: dict[int, NDArray[np.float32]], exact: bool = True) -> None:
        super().__init__(vectors)
        self.capabilities = Capabilities("flat", exact_scores=exact)
        self.seen: list[list[int]] = []

    def search(self, vector: NDArray[np.float32], k: int, allowed: NDArray[np.int64] | None,
               params: Any) -> tuple[NDArray[np.int64], NDArray[np.float32], str]:
        self.seen.append(blas_threads())
        return super().search(vector, k, allowed, params)


def test_a_query_takes_one_blas_thread_unless_it_makes_no_product_to_share(
        tmp_path: Path) -> None:
    """The search by one vector of an exactly scoring space, unfiltered, makes no product
    that BLAS would run on several threads: it leaves the count as it is. A filtered
    query, a text query and one over approximate scores (re-scored from stored vectors)
    run on one thread, and every query puts the count back."""
    outside = blas_threads()
    if max(outside, default=1) < 2:
        pytest.skip("no BLAS library here runs more than one thread: nothing to limit")
    one = [1] * len(outside)
    vectors = {key: _unit(vector) for key, _, _, _, vector in ITEMS}

    def seen(query: Query, exact: bool = True) -> list[list[int]]:
        space = ThreadsSeen(vectors, exact)
        catalog = FakeCatalog()
        searcher = Searcher(Settings(wordnet_dir=str(tmp_path / "no-wordnet")), tmp_path,
                            catalog, {"text": space}, {}, FakeLock(), FakeQueryEncoder(),
                            FakeDerived(catalog), lambda space: "fake", FakeCache())
        assert searcher.search(query).hits
        assert blas_threads() == outside
        return space.seen

    red = [1.0, 0.0, 0.0, 0.0]
    assert seen(Query(vector=red, vector_space="text")) == [outside]
    assert seen(Query(vector=red, vector_space="text",
                      filters=Filters(categories=("shirts",)))) == [one]
    assert seen(Query(vector=red, vector_space="text"), exact=False) == [one]
    assert seen(Query(text="red", parse=False)) == [one]
    # similar by id: the item's own list as a search by its vector; then, as the item
    # has a category others share, the list of that category and the fusion of the two
    assert seen(Query(similar_to="red-shirt")) == [outside, one]
