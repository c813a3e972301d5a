"""Query understanding over a remote collection: the local engine's own reading of a
text query ("red nike shoes under $80": colour words as boosts, brands, categories,
cameras, prices and dates as filters, pushed down to the backend), with the brands,
categories and cameras the collection holds as its vocabulary.

The one place the remote path borrows from the local searcher (``search.searcher``):
its validation, its ``interpret`` and the check of filter values against those the
collection holds, which read only ``vocabulary()``, ``known_values()`` and ``settings``
of the engine they are given, so a ``RemoteEngine`` answers for one.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, cast

from imgsearch.engine.backends.base import CollectionBackend
from imgsearch.errors import InvalidFilterError
from imgsearch.search.protocols import CollectionState
from imgsearch.search.searcher import check_known_values as _check_known
from imgsearch.search.searcher import interpret as _interpret
from imgsearch.search.understand import Vocabulary
from imgsearch.search.validation import validate
from imgsearch.types import Filters, Query

if TYPE_CHECKING:
    from imgsearch.engine.remote import RemoteEngine

VOCABULARY_TTL_S = 30.0  # another node's writes show in this node's vocabulary by then
FIELDS = ("brand", "category", "camera")


class RemoteVocabulary:
    """The collection's distinct brands, categories and cameras, read from the backend
    (as the backend keeps them: trimmed and case-folded, most common first) and kept
    ``VOCABULARY_TTL_S`` seconds; none over a collection larger than ``limit`` items
    (not read after every write), where only prices, colours and dates are understood
    and no filter value is refused."""

    def __init__(self, backend: CollectionBackend, limit: int) -> None:
        self.backend, self.limit = backend, limit
        self._held: tuple[float, dict[str, list[str]]] | None = None
        self._lock = threading.Lock()

    def values(self, fresh: bool = False) -> dict[str, list[str]]:
        """Each field's values; ``fresh``: read again now (another node may just have
        written a new one)."""
        with self._lock:
            now = time.monotonic()
            if fresh or self._held is None or now - self._held[0] > VOCABULARY_TTL_S:
                self._held = (now, {f: self.backend.distinct_values(f, self.limit) or []
                                    for f in FIELDS})
            return self._held[1]

    def get(self) -> Vocabulary:
        values = self.values()
        return Vocabulary(values["brand"], values["category"], values["camera"])

    def known_values(self, column: str, fresh: bool = False
                     ) -> tuple[list[str], frozenset[str]]:
        """As ``Engine.known_values``: the values, and the same case-folded."""
        found = self.values(fresh).get(column, [])
        return found, frozenset(v.strip().casefold() for v in found)


def check_known_values(engine: RemoteEngine, filters: Filters) -> None:
    """A category, brand or camera filter on a value no item has is refused with the
    values the collection holds, as locally (``search.known``); read again once before
    refusing, so that a value another node has just written is not refused."""
    try:
        _check_known(cast("CollectionState", engine), filters)
    except InvalidFilterError:
        engine.known_vocabulary.values(fresh=True)
        _check_known(cast("CollectionState", engine), filters)


def interpret(engine: RemoteEngine, query: Query) -> tuple[Query, dict[str, Any]]:
    """The query with what was understood of its text merged into its filters and
    colour preference, and the interpretation to report (``search.searcher.interpret``)."""
    return _interpret(query, engine.vocabulary, engine.settings)


__all__ = ["FIELDS", "RemoteVocabulary", "check_known_values", "interpret", "validate"]
