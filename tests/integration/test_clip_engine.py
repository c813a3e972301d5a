"""A collection built with the CLIP encoder (a tiny random one, loaded from disk)."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagegen import picture
from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.types import Item, Query
from tiny_clip import make_tiny_clip


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-clip")


def test_clip_collection_searches_text_against_pixels(tmp_path, clip_dir):
    settings = Settings(image_encoder="clip", text_encoder="none", clip_model=str(clip_dir))
    with Engine.open(tmp_path / "c", settings) as engine:
        engine.ingest_items((Item(id=f"i{i}"), picture(i)) for i in range(25))
        space = engine.manifest.spaces["image"]
        assert space.encoder == "clip" and space.model_id and space.dim == 16
        assert engine.calibrations.get("clip_text") is not None
        result = engine.search(Query(text="a drawing of shapes", limit=5, min_confidence=0,
                                     parse=False))
        assert len(result.hits) == 5
        assert all("clip_text" in h.matched_by for h in result.hits)
        assert engine.search(Query(images=[picture(3)], limit=1)).hits[0].id == "i3"
    # reopened without naming the model, it uses the CLIP it was built with
    with Engine.open(tmp_path / "c", Settings(text_encoder="none"), readonly=True) as again:
        assert again.settings.clip_model == str(clip_dir)
        assert again.search(Query(images=[picture(7)], limit=1)).hits[0].id == "i7"
