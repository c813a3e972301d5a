"""The CLI builds its queries with the same builder as the HTTP API and the web page:
its options give the library's answer to the same query, on a local collection and on
one held by Milvus (Lite, and the standalone 2.3.5 server)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import backendkit as kit
from imagegen import jpeg_bytes
from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.types import Item, Query
from searchnodes import BACKENDS, milvus_settings

SETTINGS = Settings(image_encoder="descriptor", text_encoder="fake")


@dataclass
class Shop:
    """Where the collection is (a directory or milvus://...), the settings it was made
    with, and the backend's name."""

    where: str
    settings: Settings
    backend: str

    def engine(self) -> AbstractContextManager[Any]:
        """The library's engine over the same collection (local or remote)."""
        if self.backend == "local":
            return Engine.open(self.where, self.settings, readonly=True)
        from imgsearch.engine.remote import open_remote

        return open_remote(self.where, self.settings)

    def env(self) -> dict[str, str]:
        return dict(os.environ, IMGSEARCH_TEXT_ENCODER=self.settings.text_encoder)

    def require(self, feature: str) -> None:
        if self.backend != "local":
            with self.engine() as engine:
                reason = engine.refuses(feature)
            if reason:
                pytest.skip(f"{self.backend}: {reason}")


def cli(shop: Shop, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "imgsearch.cli", *map(str, args)],
                          capture_output=True, text=True, env=shop.env(), timeout=300)


def cli_ids(shop: Shop, *args: str | Path) -> list[str]:
    proc = cli(shop, *args, "--json")
    assert proc.returncode == 0, proc.stderr
    return [hit["id"] for hit in json.loads(proc.stdout)["results"]]


def items() -> Iterator[tuple[Item, bytes]]:
    return ((Item(id=f"p{i}", title=f"thing {i}", category=("hats", "bags")[i % 2]),
             jpeg_bytes(i)) for i in range(10))


@contextmanager
def _milvus_shop(address: str, backend: str) -> Iterator[Shop]:
    from imgsearch.engine.backends.milvus import MilvusBackend
    from imgsearch.engine.remote import RemoteEngine, spaces_for

    settings = milvus_settings(SETTINGS, backend)
    uri = f"milvus://{address}/{kit.collection_name('options')}"
    with RemoteEngine(MilvusBackend.open(uri, spaces_for(settings)), settings) as engine:
        assert all(isinstance(w, str) for w in engine.upsert_many(list(items())))
    yield Shop(uri, settings, backend)


@pytest.fixture(scope="module", params=BACKENDS)
def shop(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Shop]:
    backend = str(request.param)
    if backend == "local":
        path = tmp_path_factory.mktemp("options") / "c"
        with Engine.open(path, SETTINGS) as engine:
            report = engine.ingest_items(items())
            assert report.ok, report.failed
        yield Shop(str(path), SETTINGS, backend)
        return
    address = request.getfixturevalue(
        "milvus_lite_address" if backend == "milvus-lite" else "milvus_server_address")
    with _milvus_shop(address, backend) as made:
        yield made


def test_similar_takes_a_preferred_colour(shop: Shop) -> None:
    plain = cli_ids(shop, "similar", "p0", "-c", shop.where, "--min-confidence", "0",
                    "--no-collapse")
    with shop.engine() as engine:
        colour = engine.get(plain[-1]).colors[0]
        expected = [h.id for h in engine.search(Query(
            similar_to="p0", min_confidence=0, collapse_duplicates=False,
            prefer_colors=(colour,))).hits]
    preferred = cli_ids(shop, "similar", "p0", "-c", shop.where, "--min-confidence", "0",
                        "--no-collapse", "--prefer-color", colour)
    assert preferred == expected
    assert preferred.index(plain[-1]) < plain.index(plain[-1])


def test_search_options_match_the_library(shop: Shop) -> None:
    shop.require("text")
    found = cli_ids(shop, "search", "-c", shop.where, "-t", "thing", "--min-confidence", "0",
                    "--max-per-category", "1", "--mmr", "0.5", "--limit", "5")
    with shop.engine() as engine:
        expected = [h.id for h in engine.search(Query(
            text="thing", min_confidence=0, max_per_category=1, mmr_lambda=0.5,
            limit=5)).hits]
    assert found == expected and len(found) == 2


def test_image_search_with_a_counter_example_matches_the_library(shop: Shop,
                                                                 tmp_path: Path) -> None:
    (tmp_path / "q.jpg").write_bytes(jpeg_bytes(3))
    (tmp_path / "not.jpg").write_bytes(jpeg_bytes(5))
    found = cli_ids(shop, "search", "-c", shop.where, "-i", tmp_path / "q.jpg",
                    "--not-image", tmp_path / "not.jpg", "--min-confidence", "0",
                    "--limit", "6")
    with shop.engine() as engine:
        expected = [h.id for h in engine.search(Query(
            images=[jpeg_bytes(3)], negative_images=[jpeg_bytes(5)], min_confidence=0,
            limit=6)).hits]
    assert found == expected and found[0] == "p3"


def test_index_parameters_reach_the_backend(shop: Shop) -> None:
    shop.require("text")
    tuned = cli_ids(shop, "search", "-c", shop.where, "-t", "thing", "--min-confidence", "0",
                    "--ef-search", "64", "--nprobe", "4", "--limit", "5")
    assert tuned == cli_ids(shop, "search", "-c", shop.where, "-t", "thing",
                            "--min-confidence", "0", "--limit", "5")  # flat: exact either way
    proc = cli(shop, "search", "-c", shop.where, "-t", "thing", "--ef-search", "0")
    assert proc.returncode == 2 and "ef_search must be a whole number" in proc.stderr
