"""Thumbnails in Milvus rows (milvus schema 3): what they hold, what a collection made
before them still does (on Milvus Lite and the 2.3.5 server), and that ``migrate``
carries them (Milvus Lite)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageOps

import backendkit as kit
from imagegen import jpeg_of as jpeg
from imagegen import textured
from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.engine.backends import milvus_thumbnails
from imgsearch.engine.backends.milvus import MilvusBackend
from imgsearch.engine.migrate import migrate
from imgsearch.engine.remote import RemoteEngine, encoders_for, spaces_for
from imgsearch.types import Item, Query

SETTINGS = Settings(image_encoder="descriptor", text_encoder="fake", ingest_workers=2)
SIZE = (320, 240)


def pictures(n: int = 8) -> list[tuple[Item, bytes]]:
    return [(Item(id=f"pic{i}", title=f"picture {i}"), jpeg(textured(i, SIZE)))
            for i in range(n)]


def mirrored(seed: int) -> bytes:
    return jpeg(ImageOps.mirror(textured(seed, SIZE)), 80)


def test_a_thumbnail_over_the_varchar_limit_is_saved_again_to_fit() -> None:
    noisy = Image.fromarray(np.random.default_rng(3).integers(0, 256, (512, 512, 3),
                                                              dtype=np.uint8))
    big = jpeg(noisy, 85)
    assert len(big) > milvus_thumbnails.MAX_RAW  # a busy 512 px thumbnail does not fit
    field = milvus_thumbnails.to_field(big)
    assert len(field) <= milvus_thumbnails.MAX_THUMBNAIL
    stored = milvus_thumbnails.from_field(field)
    assert stored is not None and stored != big
    with Image.open(io.BytesIO(stored)) as image:
        assert image.format == "JPEG" and max(image.size) <= 512
    small = jpeg(textured(1, SIZE))
    assert milvus_thumbnails.from_field(milvus_thumbnails.to_field(small)) == small
    assert milvus_thumbnails.to_field(None) == "" and milvus_thumbnails.from_field("") is None
    assert milvus_thumbnails.from_field("not base64!") is None


@pytest.fixture(params=["milvus-lite", "milvus-server"])
def old_collection(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
                   ) -> Iterator[RemoteEngine]:
    """A collection made as milvus schema 2 made them (no thumbnail field), written and
    searched by this version."""
    from pymilvus import CollectionSchema

    from searchnodes import milvus_settings

    address = request.getfixturevalue(
        "milvus_lite_address" if request.param == "milvus-lite" else "milvus_server_address")
    settings = milvus_settings(SETTINGS, request.param)

    add_field = CollectionSchema.add_field

    def without_thumbnail(self: Any, field_name: str, *args: Any, **kwargs: Any) -> Any:
        return self if field_name == "thumbnail" else add_field(self, field_name, *args,
                                                                **kwargs)

    uri = f"milvus://{address}/{kit.collection_name('old')}"
    with monkeypatch.context() as patched:
        patched.setattr(CollectionSchema, "add_field", without_thumbnail)
        MilvusBackend.open(uri, spaces_for(settings)).close()
    engine = RemoteEngine(MilvusBackend.open(uri, spaces_for(settings)), settings)
    written = engine.upsert_many(pictures())
    assert all(isinstance(w, str) for w in written), written
    yield engine
    engine.close()


def test_a_collection_made_before_thumbnails_is_searched_and_says_why_it_has_no_copies(
        old_collection: RemoteEngine) -> None:
    from imgsearch.web.remote_app import create_remote_app

    engine = old_collection
    assert not engine.backend.capabilities.thumbnails
    for feature in ("copies", "thumbnails"):
        assert "migrate" in (engine.refuses(feature) or "")
    assert engine.backend.thumbnails(["pic3"]) == {}
    same = engine.search(Query(images=[pictures()[3][1]])).hits
    assert same[0].id == "pic3" and same[0].match == "exact" and same[0].thumbnail is None
    edited = engine.search(Query(images=[mirrored(3)], min_confidence=0.0)).hits
    assert "pic3" in [h.id for h in edited] and all(h.match != "copy" for h in edited)
    with TestClient(create_remote_app(engine)) as client:
        answer = client.get("/v1/thumbnails/pic3")
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert error["code"] == "not_supported_on_backend"
        assert "schema 3" in error["message"] and "migrate" in error["message"]
        page = client.post("/", files={"image": ("q.jpg", pictures()[3][1], "image/jpeg")})
        assert page.status_code == 200 and 'data-id="pic3"' in page.text
        assert "no preview" in page.text


def test_migrate_carries_thumbnails_so_the_migrated_collection_verifies_copies(
        tmp_path: Path, milvus_lite_address: str) -> None:
    local = Engine.open(tmp_path / "shop", SETTINGS)
    assert local.ingest_items(pictures()).ok
    stored = {i: (local.directory / str(local.get(i).thumbnail)).read_bytes()
              for i in ("pic1", "pic6")}
    local.close()
    uri = f"milvus://{milvus_lite_address}/{kit.collection_name('migrated')}"
    assert migrate(tmp_path / "shop", uri, SETTINGS).copied == 8
    engine = RemoteEngine(MilvusBackend.open(uri, encoders=encoders_for(SETTINGS)), SETTINGS)
    try:
        assert engine.backend.thumbnails(list(stored)) == stored  # the same bytes
        # read without waiting where the row holds the thumbnail the item names, read
        # again at the collection's consistency where it does not
        marks = {i: str(engine.get(i).thumbnail) for i in stored}
        backend: Any = engine.backend
        levels: list[str | None] = []
        get = backend._get
        backend._get = lambda ids, fields, level=None: levels.append(level) or get(
            ids, fields, level)
        assert engine.backend.thumbnails(list(stored), marks) == stored
        assert levels == ["Eventually"]
        assert engine.backend.thumbnails(["pic1"], {"pic1": "in-row:stale"}) == \
            {"pic1": stored["pic1"]}
        assert levels == ["Eventually", "Eventually", None]  # None: the collection's own
        backend._get = get
        assert str(engine.get("pic6").thumbnail).startswith(milvus_thumbnails.MARK)
        top = engine.search(Query(images=[mirrored(6)])).hits[0]
        assert top.id == "pic6" and top.match == "copy" and top.evidence["mirrored"] == 1.0
    finally:
        engine.close()
