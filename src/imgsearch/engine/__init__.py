"""The composition root: the Engine facade and the work it wires together.

``core`` holds the Engine, a facade: ``opening`` builds it and its collaborators —
``indexes`` (a FAISS index per space, calibrations, the readers–writer lock of
``locking``), ``writer`` (the write path), ``query_encoder`` (encoders, query vectors),
``derived`` (what is made from the collection until the next write) — and ``overview``
answers facets, info and the search log's report. ``pipeline`` turns items into stored
rows (decode, enrich, encode); ``ingest`` walks sources incrementally; the searcher
(``search.searcher``, wired by ``opening``) turns a Query into signals and hits. The CLI
and the web app import ``Engine`` (and ``Duplicate``, what ``Engine.duplicates`` lists)
from here, ``requests`` to build a ``Query`` from what a caller asked and ``items`` to
check the items they are given.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from imgsearch.engine.core import Engine
    from imgsearch.search.dedup import Duplicate

__all__ = ["Duplicate", "Engine"]


def __getattr__(name: str) -> Any:
    # Loaded on first use, so that importing a light module of this package (display,
    # requests) does not load faiss and the stages behind the engine.
    if name == "Engine":
        from imgsearch.engine.core import Engine

        return Engine
    if name == "Duplicate":
        from imgsearch.search.dedup import Duplicate

        return Duplicate
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
