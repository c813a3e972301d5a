"""One write path: ``Engine.upsert_many`` encodes a batch at once and answers per item;
``upsert`` and the batch route go through it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from imagegen import jpeg_bytes, truncated_jpeg
from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.errors import ImgSearchError
from imgsearch.types import Item
from imgsearch.web import create_app

# Decoding on threads: with decode worker processes the descriptor runs in them, one
# image at a time, and no batch reaches the encoder here to be counted.
SETTINGS = Settings(image_encoder="descriptor", text_encoder="fake", ingest_workers=2,
                    decode_processes=False)


class Counting:
    """Wraps an encoder's ``embed_images`` and records the size of each call."""

    def __init__(self, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
        encoder = engine.encoder("image")
        self.calls: list[int] = []
        inner = encoder.embed_images

        def embed_images(images: Any) -> Any:
            self.calls.append(len(images))
            return inner(images)
        monkeypatch.setattr(encoder, "embed_images", embed_images)


@pytest.fixture
def engine(tmp_path: Path) -> Any:
    with Engine.open(tmp_path / "c", SETTINGS) as opened:
        yield opened


def test_upsert_many_encodes_once_and_answers_per_item(engine: Engine,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    counting = Counting(engine, monkeypatch)
    engine.upsert(Item(id="b", title="old"), jpeg_bytes(9))
    counting.calls.clear()
    results = engine.upsert_many([(Item(id="a"), jpeg_bytes(1)),
                                  (Item(id="bad"), truncated_jpeg()),
                                  (Item(id="b", title="new"), jpeg_bytes(2))])
    assert results[0] == "added" and results[2] == "updated"
    assert isinstance(results[1], ImgSearchError) and results[1].code == "corrupt_image"
    assert counting.calls == [2]  # the two good images in one call
    assert "bad" not in engine and engine.get("b").title == "new"


def test_upsert_raises_what_upsert_many_reports(engine: Engine) -> None:
    with pytest.raises(ImgSearchError) as caught:
        engine.upsert(Item(id="bad"), truncated_jpeg())
    assert caught.value.code == "corrupt_image" and "bad" not in engine


def test_the_batch_route_writes_through_one_encoding(engine: Engine,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import base64

    counting = Counting(engine, monkeypatch)
    ops = [{"op": "upsert", "item": {"id": f"i{n}"},
            "image_base64": base64.b64encode(jpeg_bytes(n)).decode()} for n in range(4)]
    ops.insert(2, {"op": "upsert", "item": {"id": "broken"},
                   "image_base64": base64.b64encode(truncated_jpeg()).decode()})
    with TestClient(create_app(engine)) as client:
        answer = client.post("/v1/items:batch", json={"operations": ops}).json()
    statuses = [r["status"] for r in answer["results"]]
    assert statuses == ["added", "added", "failed", "added", "added"]
    assert answer["results"][2]["error"]["code"] == "corrupt_image"
    assert counting.calls == [4]


def test_with_decode_workers_the_vectors_come_from_them(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    with Engine.open(tmp_path / "w", SETTINGS.replace(decode_processes=True)) as engine:
        counting = Counting(engine, monkeypatch)
        results = engine.upsert_many([(Item(id="a"), jpeg_bytes(1)),
                                      (Item(id="bad"), truncated_jpeg()),
                                      (Item(id="b"), jpeg_bytes(2))])
        assert results[0] == results[2] == "added"
        assert isinstance(results[1], ImgSearchError) and results[1].code == "corrupt_image"
        assert counting.calls == []  # each vector was made beside its decode
        assert "a" in engine and "b" in engine and "bad" not in engine
