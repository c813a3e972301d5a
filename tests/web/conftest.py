"""A small catalog collection served by the app, shared by the tests of one module.

Tests that write use ids of their own, so that sharing the collection is safe.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from apihelp import SEEDED, SLASH_ID
from fastapi.testclient import TestClient

import searchnodes
from imagegen import jpeg_bytes
from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.types import Item
from searchnodes import SearchNode

CATEGORIES = ("shoes", "hats", "bags")
BRANDS = ("acme", "zenith")


def seed_items() -> list[tuple[Item, bytes]]:
    items = []
    for i in range(SEEDED):
        category = CATEGORIES[i % len(CATEGORIES)]
        items.append((Item(id=f"p{i}", title=f"{category[:-1]} number {i}", category=category,
                           brand=BRANDS[i % 2], price=10.0 * (i + 1),
                           tags=("sale",) if i < 4 else ()), jpeg_bytes(i)))
    items.append((Item(id=SLASH_ID, title="a picture in a folder"), jpeg_bytes(12)))
    return items


@pytest.fixture(scope="module")
def web_settings() -> Settings:
    return Settings(image_encoder="descriptor", text_encoder="fake", ingest_workers=2,
                    max_file_bytes=400_000, download_retries=0)


@pytest.fixture(scope="module")
def web_engine(tmp_path_factory: pytest.TempPathFactory, web_settings: Settings
               ) -> Iterator[Engine]:
    engine = Engine.open(Path(tmp_path_factory.mktemp("web")) / "collection", web_settings)
    report = engine.ingest_items(seed_items())
    assert report.ok, report.failed
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def client(web_engine: Engine) -> Iterator[TestClient]:
    from imgsearch.web import create_app

    with TestClient(create_app(web_engine)) as test_client:
        yield test_client


@pytest.fixture(scope="module", params=searchnodes.BACKENDS)
def node(request: pytest.FixtureRequest, web_settings: Settings) -> Iterator[SearchNode]:
    """The seeded items behind an HTTP node on each backend (see tests/searchnodes.py)."""
    backend = str(request.param)
    if backend == "local":
        yield SearchNode(backend, request.getfixturevalue("client"),
                         request.getfixturevalue("web_engine"))
        return
    address = request.getfixturevalue(
        "milvus_lite_address" if backend == "milvus-lite" else "milvus_server_address")
    yield from searchnodes.milvus_node(address, web_settings, backend, seed_items())
