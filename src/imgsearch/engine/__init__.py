"""The composition root: the Engine facade and the work it wires together.

``core`` holds the Engine; ``pipeline`` turns items into stored rows (decode, enrich,
encode); ``ingest`` walks sources incrementally; ``query`` turns a Query into signals
and hits. The CLI and the web app import ``Engine`` from here, ``requests`` to build a
``Query`` from what a caller asked and ``items`` to check the items they are given.
"""

from imgsearch.engine.core import Engine

__all__ = ["Engine"]
