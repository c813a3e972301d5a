"""Query understanding over a remote collection: the local engine's own reading of a
text query ("red nike shoes under $80": colour words as boosts, brands, categories,
cameras, prices and dates as filters, pushed down to the backend), with the brands,
categories and cameras the collection holds as its vocabulary.

The one place the remote path borrows from ``engine.query``: its validation and its
``interpret``, which read only ``vocabulary()`` and ``settings`` of the engine they are
given, so a ``RemoteEngine`` answers for one.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, cast

from imgsearch.engine.backends.base import CollectionBackend
from imgsearch.engine.query import interpret as _interpret
from imgsearch.engine.query import validate
from imgsearch.search.understand import Vocabulary
from imgsearch.types import Query

if TYPE_CHECKING:
    from imgsearch.engine.core import Engine
    from imgsearch.engine.remote import RemoteEngine

VOCABULARY_TTL_S = 30.0  # another node's writes show in this node's vocabulary by then
FIELDS = ("brand", "category", "camera")


class RemoteVocabulary:
    """The collection's distinct brands, categories and cameras, read from the backend
    (as the backend keeps them: trimmed and case-folded) and kept ``VOCABULARY_TTL_S``
    seconds; empty over a collection larger than ``limit`` items (not read after every
    write), where only prices, colours and dates are understood."""

    def __init__(self, backend: CollectionBackend, limit: int) -> None:
        self.backend, self.limit = backend, limit
        self._held: tuple[float, Vocabulary] | None = None
        self._lock = threading.Lock()

    def get(self) -> Vocabulary:
        with self._lock:
            now = time.monotonic()
            if self._held is None or now - self._held[0] > VOCABULARY_TTL_S:
                values = {f: self.backend.distinct_values(f, self.limit) for f in FIELDS}
                self._held = (now, Vocabulary(values["brand"] or (), values["category"] or (),
                                              values["camera"] or ()))
            return self._held[1]


def interpret(engine: RemoteEngine, query: Query) -> tuple[Query, dict[str, Any]]:
    """The query with what was understood of its text merged into its filters and
    colour preference, and the interpretation to report (``engine.query.interpret``)."""
    return _interpret(cast("Engine", engine), query)


__all__ = ["FIELDS", "RemoteVocabulary", "interpret", "validate"]
