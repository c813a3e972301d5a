"""Verified copies, thumbnails and the web page on every backend: an HTTP node over the
same generated pictures on a local collection, on Milvus Lite and on the standalone
Milvus 2.3.5 server (tests/searchnodes.py)."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageOps

import searchnodes
from imagegen import jpeg_of as jpeg
from imagegen import textured
from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.types import Item
from searchnodes import SearchNode

SETTINGS = Settings(image_encoder="descriptor", text_encoder="fake", ingest_workers=2)
SIZE = (320, 240)


def pictures(n: int = 12) -> list[tuple[Item, bytes]]:
    return [(Item(id=f"pic{i}", title=f"picture number {i}", category="art"),
             jpeg(textured(i, SIZE), 90)) for i in range(n)]


def _crop70(image: Image.Image) -> Image.Image:
    w, h = image.size
    return image.crop((int(w * 0.15), int(h * 0.15), int(w * 0.85), int(h * 0.85)))


EDITS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "crop70": _crop70,
    "grey": lambda image: ImageOps.grayscale(image).convert("RGB"),
    "mirror": ImageOps.mirror,
}


@pytest.fixture(scope="module", params=searchnodes.BACKENDS)
def node(request: pytest.FixtureRequest,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[SearchNode]:
    backend = str(request.param)
    if backend == "local":
        def fill(engine: Engine) -> None:
            assert engine.ingest_items(pictures()).ok

        yield from searchnodes.local_node(
            Path(tmp_path_factory.mktemp("copies")) / "c", SETTINGS, fill)
        return
    address = request.getfixturevalue(
        "milvus_lite_address" if backend == "milvus-lite" else "milvus_server_address")
    yield from searchnodes.milvus_node(address, SETTINGS, backend, pictures())


def search(node: SearchNode, image: bytes, **options: object) -> dict[str, object]:
    answer = node.client.post("/v1/search", json={
        "image_base64": base64.b64encode(image).decode(), "limit": 5, **options})
    assert answer.status_code == 200, answer.text
    found: dict[str, object] = answer.json()
    return found


@pytest.mark.parametrize("edit", list(EDITS))
def test_an_edited_copy_comes_first_as_a_verified_copy_with_its_evidence(
        node: SearchNode, edit: str) -> None:
    query = jpeg(EDITS[edit](textured(5, SIZE)), 80)
    top = search(node, query)["results"][0]  # type: ignore[index]
    assert top["id"] == "pic5" and top["match"] == "copy", top
    assert top["evidence"].get("inliers", 0) > 0 or top["evidence"].get("aligned", 0) > 0
    assert 0.9 <= top["confidence"] < 1.0


def test_a_verified_copy_is_shown_whatever_the_minimum(node: SearchNode) -> None:
    query = jpeg(_crop70(textured(7, SIZE)), 80)
    results = search(node, query, min_confidence=1.0)["results"]
    assert [(h["id"], h["match"]) for h in results] == [("pic7", "copy")]  # type: ignore[index]


def test_an_unrelated_picture_is_no_copy(node: SearchNode) -> None:
    answer = search(node, jpeg(textured(99, SIZE), 85), min_confidence=0.0)
    assert answer["results"] and all(h["match"] == "similar"  # type: ignore[index]
                                     for h in answer["results"])  # type: ignore[attr-defined]


def test_the_thumbnail_of_a_hit_is_served(node: SearchNode) -> None:
    top = search(node, jpeg(textured(3, SIZE), 90))["results"][0]  # type: ignore[index]
    assert top["id"] == "pic3" and top["thumbnail"] == "/v1/thumbnails/pic3"
    answer = node.client.get(top["thumbnail"])
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(answer.content)) as thumbnail:
        assert thumbnail.format == "JPEG" and thumbnail.size == SIZE  # under 512 px: as is
    again = node.client.get(top["thumbnail"], headers={"If-None-Match": answer.headers["etag"]})
    assert again.status_code == 304
    assert node.client.get("/v1/thumbnails/nobody").status_code == 404


def test_the_web_page_searches_by_image_and_shows_thumbnails(node: SearchNode) -> None:
    home = node.client.get("/")
    assert home.status_code == 200 and 'id="search"' in home.text
    assert '<option value="art"' in home.text  # the category filter offers what it holds
    query = jpeg(ImageOps.mirror(textured(5, SIZE)), 80)
    page = node.client.post("/", files={"image": ("q.jpg", query, "image/jpeg")})
    assert page.status_code == 200, page.text
    assert 'data-id="pic5"' in page.text and "match-copy" in page.text
    assert 'src="/v1/thumbnails/pic5"' in page.text
    item = node.client.get("/items/pic5")
    assert item.status_code == 200 and "/v1/thumbnails/pic5" in item.text


def test_a_refused_feature_is_explained_on_the_page_never_a_500(node: SearchNode) -> None:
    reason = node.refuses("browse")
    if reason is None:
        pytest.skip(f"{node.backend} browses by filters alone")
    home = node.client.get("/")
    assert 'id="overview-note"' in home.text and "browsing" in home.text
    assert 'href="/timeline"' not in home.text
    browsed = node.client.get("/?category=art")
    assert browsed.status_code == 400 and "Could not search" in browsed.text
    assert "browsing" in browsed.text


def test_a_search_reads_only_the_thumbnails_it_verifies(node: SearchNode,
                                                        monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    """Thumbnails are read from the backend only for the candidates verification looks
    at: none for the same bytes (exact by content hash), one for a copy found first."""
    if node.backend == "local":
        pytest.skip("a local collection reads its thumbnails from files")
    read: list[list[str]] = []
    backend = node.engine.backend
    original = backend.thumbnails
    monkeypatch.setattr(backend, "thumbnails", lambda ids, expected=None: read.append(
        list(ids)) or original(ids, expected))
    assert search(node, jpeg(textured(2, SIZE), 90))["results"][0]["match"] == "exact"  # type: ignore[index]
    assert read == []
    node.engine.feature_cache.clear()
    query = jpeg(ImageOps.mirror(textured(4, SIZE)), 80)
    assert search(node, query)["results"][0]["match"] == "copy"  # type: ignore[index]
    assert read == [["pic4"]]
