"""Honest answers through the HTTP API of every backend's node: a noise image is no
match, the same bytes are an exact match at full confidence, and a text query is read
as the local engine reads it, its interpretation in the answer."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from imagegen import jpeg_bytes
from searchnodes import SearchNode


def _noise() -> bytes:
    pixels = np.random.default_rng(3).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_noise_upload_is_no_match(node: SearchNode) -> None:
    response = node.client.post("/v1/search/image",
                                files={"file": ("noise.png", _noise(), "image/png")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["results"] == [] and body["empty_reason"] == "no_match"


def test_an_indexed_picture_is_exact_at_full_confidence(node: SearchNode) -> None:
    response = node.client.post("/v1/search/image",
                                files={"file": ("p3.jpg", jpeg_bytes(3), "image/jpeg")})
    results = response.json()["results"]
    assert results[0]["id"] == "p3" and results[0]["match"] == "exact"
    assert results[0]["confidence"] == 1.0
    assert all(h["confidence"] < 1.0 for h in results[1:])


def test_a_text_query_is_understood_as_locally(node: SearchNode) -> None:
    node.require("text")
    response = node.client.post("/v1/search", json={
        "text": "zenith number under $70", "min_confidence": 0, "limit": 20})
    body = response.json()
    assert body["interpretation"]["filters"]["price_max"] == 70.0
    assert [b.casefold() for b in body["interpretation"]["filters"]["brands"]] == ["zenith"]
    assert body["results"] and all(h["brand"] == "zenith" and h["price"] <= 70
                         for h in body["results"])
