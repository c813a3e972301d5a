"""Shared fixtures. Tests run offline; the only sockets they open are on loopback."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The suite must never reach a model hub; set before transformers is imported anywhere.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).parent))

from imgsearch.config import Settings
from imgsearch.engine import Engine


@pytest.fixture
def settings() -> Settings:
    """Offline-default image encoder with the instant fake text encoder."""
    return Settings(image_encoder="descriptor", text_encoder="fake", ingest_workers=2)


@pytest.fixture
def engine(tmp_path: Path, settings: Settings) -> Iterator[Engine]:
    eng = Engine.open(tmp_path / "collection", settings)
    yield eng
    eng.close()


@pytest.fixture(scope="session")
def milvus_lite_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """host:port of a Milvus Lite server shared by the session (skipped without one)."""
    import milvuskit

    reason = milvuskit.lite_available()
    if reason:
        pytest.skip(reason)
    yield from milvuskit.milvus_lite(tmp_path_factory.mktemp("milvus-lite"))


@pytest.fixture(scope="session")
def milvus_server_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """host:port of a standalone Milvus 2.3.5 server shared by the session."""
    import milvuskit

    reason = milvuskit.server_available()
    if reason:
        pytest.skip(reason)
    yield from milvuskit.milvus_server(tmp_path_factory.mktemp("milvus-server"))


@pytest.fixture(scope="session")
def milvus_cluster_address() -> str:
    """host:port of the user's own Milvus (IMGSEARCH_MILVUS_URI, e.g. milvus://db:19530),
    for ``pytest -m cluster``; collections it makes are named t_... and left there."""
    uri = os.environ.get("IMGSEARCH_MILVUS_URI", "")
    if not uri:
        pytest.skip("IMGSEARCH_MILVUS_URI is not set (milvus://HOST:PORT of a cluster)")
    return uri.removeprefix("milvus://").rstrip("/")
