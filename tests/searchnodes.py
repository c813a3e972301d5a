"""One search test, every backend: an HTTP node over the same seeded items on a local
collection, on Milvus Lite and on the standalone Milvus 2.3.5 server.

A test asks for the node it runs against (``node`` in tests/web/conftest.py); where it
needs a feature, ``node.require(feature)`` skips it on a backend that declares the
feature unsupported, with the backend's own reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import backendkit as kit
from imgsearch.config import Settings
from imgsearch.types import ImageInput, Item

BACKENDS = ("local", "milvus-lite", "milvus-server")


@dataclass
class SearchNode:
    """An HTTP client, the engine behind it (``Engine`` or ``RemoteEngine``) and the
    backend's name."""

    backend: str
    client: TestClient
    engine: Any

    def refuses(self, feature: str) -> str | None:
        """Why this node's backend does not have ``feature``; None when it does."""
        refuses = getattr(self.engine, "refuses", None)
        return None if refuses is None else refuses(feature)

    def require(self, *features: str) -> None:
        for feature in features:
            reason = self.refuses(feature)
            if reason is not None:
                pytest.skip(f"{self.backend}: {reason}")


def milvus_settings(settings: Settings, backend: str) -> Settings:
    """The settings a node over ``backend`` runs with: the standalone 2.3.5 server holds
    one vector field per collection, so there the collection has the image space only."""
    return settings.replace(text_encoder="none") if backend == "milvus-server" else settings


def local_node(directory: Path, settings: Settings, fill: Callable[[Any], None]
               ) -> Iterator[SearchNode]:
    """A node over a local collection made in ``directory`` and written by ``fill``."""
    from imgsearch.engine import Engine
    from imgsearch.web import create_app

    engine = Engine.open(directory, settings)
    fill(engine)
    with TestClient(create_app(engine)) as client:
        yield SearchNode("local", client, engine)
    engine.close()


def milvus_node(address: str, settings: Settings, backend: str,
                items: Sequence[tuple[Item, ImageInput | None]]) -> Iterator[SearchNode]:
    """A stateless node over a fresh milvus collection holding ``items``, written through
    the node's own write path."""
    from imgsearch.engine.backends.milvus import MilvusBackend
    from imgsearch.engine.remote import RemoteEngine, spaces_for
    from imgsearch.web.remote_app import create_remote_app

    settings = milvus_settings(settings, backend)
    uri = f"milvus://{address}/{kit.collection_name('search')}"
    engine = RemoteEngine(MilvusBackend.open(uri, spaces_for(settings)), settings)
    written = engine.upsert_many([(replace(item), image) for item, image in items])
    assert all(isinstance(w, str) for w in written), written
    with TestClient(create_remote_app(engine, owns_engine=True)) as client:
        yield SearchNode(backend, client, engine)
