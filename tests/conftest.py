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
