"""Items uploaded through the API (JSON base64, multipart, batch) are re-encoded from the
bytes the collection kept when the collection moves to another encoder."""

from __future__ import annotations

from apihelp import b64
from fastapi.testclient import TestClient

from imagegen import jpeg_bytes
from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.types import Query
from imgsearch.web import create_app


def test_uploaded_items_are_reembedded_from_their_originals(tmp_path) -> None:
    settings = Settings(image_encoder="descriptor", text_encoder="fake", ingest_workers=1)
    collection = tmp_path / "c"
    engine = Engine.open(collection, settings)
    with TestClient(create_app(engine)) as client:
        assert client.put("/v1/items/json", json={"image_base64": b64(jpeg_bytes(31))}
                          ).status_code == 201
        assert client.put("/v1/items/multi", files={"file": ("x.jpg", jpeg_bytes(32))},
                          data={"metadata": "{}"}).status_code == 201
        batch = client.post("/v1/items:batch", json={"operations": [
            {"op": "upsert", "item": {"id": "batch"}, "image_base64": b64(jpeg_bytes(33))}]})
        assert batch.status_code == 200, batch.text
    engine.close()
    with Engine.open(collection, settings, image_encoder="fake", reembed=True) as eng:
        assert eng.reembed_report is not None and eng.reembed_report.updated == 3
        for item_id, seed in (("json", 31), ("multi", 32), ("batch", 33)):
            vector = eng.catalog.vector_of("image", eng.catalog.key_of(item_id) or -1)
            assert vector is not None and vector.shape == (32,), item_id
            hits = eng.search(Query(images=[jpeg_bytes(seed)], limit=1, min_confidence=0))
            assert hits.hits[0].id == item_id
