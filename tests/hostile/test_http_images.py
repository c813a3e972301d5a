"""Checklist B over HTTP: every hostile file answers its own 4xx on every image route;
odd but valid files are accepted, stored and removed cleanly.

Each refused file is sent three ways: a multipart search upload, base64 in a JSON
search, and a multipart PUT (which must leave no item behind).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from apihelp import assert_error, b64
from fastapi.testclient import TestClient

from hostile import files as F
from hostile.cases import ACCEPTED, REFUSED, SAME_PICTURE
from hostile.checks import KNOWN, assert_intact


@pytest.mark.parametrize(("make", "status", "code"),
                         [pytest.param(m, s, c, id=n) for n, m, s, c in REFUSED])
def test_refused_on_every_image_route(client: TestClient, make: Callable[[], bytes],
                                      status: int, code: str) -> None:
    data = make()
    assert len(data) < 400_000  # small files: the bombs only claim to be big
    upload = client.post("/v1/search/image", files={"file": ("x.jpg", data, "image/jpeg")})
    assert_error(upload, status, code)
    if data:  # an empty base64 string is a different error (invalid_input)
        assert_error(client.post("/v1/search", json={"image_base64": b64(data)}), status, code)
    put = client.put("/v1/items/refused", files={"file": ("x.jpg", data)})
    assert_error(put, status, code)
    assert_error(client.get("/v1/items/refused"), 404, "item_not_found")
    assert_intact(client)


SEED = KNOWN["k2"]


def _accept_round_trip(client: TestClient, data: bytes) -> dict[str, object]:
    put = client.put("/v1/items/accepted", files={"file": ("upload.bin", data)})
    assert put.status_code == 201 and put.json() == {"id": "accepted", "status": "added"}
    item = client.get("/v1/items/accepted")
    assert item.status_code == 200, item.text
    thumb = client.get("/v1/thumbnails/accepted")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    # B14: whatever rode along in the file is never served back
    assert F.HTML_PAYLOAD not in thumb.content and b"PK\x03\x04" not in thumb.content
    assert client.delete("/v1/items/accepted").json() == {"id": "accepted", "deleted": True}
    assert_intact(client)
    return dict(item.json())


@pytest.mark.parametrize("make", [pytest.param(m, id=n) for n, m in SAME_PICTURE])
def test_odd_encodings_of_a_picture_are_found_as_it(client: TestClient,
                                                   make: Callable[[int], bytes]) -> None:
    data = make(SEED)
    found = client.post("/v1/search/image", files={"file": ("q", data)}, data={"limit": "1"})
    assert found.status_code == 200, found.text
    assert found.json()["results"][0]["id"] == "k2"
    item = _accept_round_trip(client, data)
    assert (item["width"], item["height"]) == (160, 120)  # upright after EXIF orientation


@pytest.mark.parametrize("make", [pytest.param(m, id=n) for n, m in ACCEPTED])
def test_odd_modes_and_animations_are_accepted(client: TestClient,
                                               make: Callable[[int], bytes]) -> None:
    data = make(SEED)
    # decoded and searched: with the floor off, the nearest items come back
    found = client.post("/v1/search/image", files={"file": ("q", data)},
                        data={"min_confidence": "0"})
    assert found.status_code == 200, found.text
    assert found.json()["results"], "a valid image found nothing at all"
    _accept_round_trip(client, data)
