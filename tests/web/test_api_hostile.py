"""Input that used to answer 500 answers its own 4xx; ids with route-like tails work.

The module's client re-raises any server error, so a 500 fails the test itself.
"""

from __future__ import annotations

import json

import pytest
from apihelp import assert_error, b64
from fastapi.testclient import TestClient

from imagegen import jpeg_bytes, jpeg_claiming_more_pixels, progressive_scan_bomb

DEEP = 100_000


def _deep_json() -> str:
    return '{"title": ' + "[" * DEEP + "]" * DEEP + "}"


def test_deeply_nested_json_on_put_is_invalid_json(client: TestClient) -> None:
    answer = client.put("/v1/items/deep", content=_deep_json(),
                        headers={"content-type": "application/json"})
    error = assert_error(answer, 400, "invalid_json")
    assert "nested too deeply" in error["message"]
    multipart = client.put("/v1/items/deep", data={"metadata": _deep_json()},
                           files={"file": ("x.jpg", jpeg_bytes(40))})
    error = assert_error(multipart, 422, "validation_error")
    assert "metadata" in error["message"] and "nested too deeply" in error["message"]
    assert client.get("/v1/items/deep").status_code == 404


@pytest.mark.parametrize("path", ["/v1/search", "/v1/items:batch", "/v1/feedback/click"])
def test_deeply_nested_json_elsewhere_is_a_4xx(client: TestClient, path: str) -> None:
    answer = client.post(path, content=_deep_json(),
                         headers={"content-type": "application/json"})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] in ("bad_request", "invalid_json")


@pytest.mark.parametrize("position", ["1e20", "100000000000000000000", str(10**30)])
def test_click_position_out_of_range(client: TestClient, position: str) -> None:
    body = '{"search_id": "s", "item_id": "p1", "position": ' + position + "}"
    answer = client.post("/v1/feedback/click", content=body,
                         headers={"content-type": "application/json"})
    error = assert_error(answer, 422, "validation_error")
    assert "position" in error["message"]


@pytest.mark.parametrize("body", [
    {"text": "hat", "offset": 1e20},
    {"text": "hat", "filters": {"min_width": 10**20}},
    {"text": "hat", "max_per_category": 10**20},
])
def test_huge_integers_in_a_search_are_refused(client: TestClient,
                                                body: dict[str, object]) -> None:
    assert_error(client.post("/v1/search", json=body), 422, "validation_error")


@pytest.mark.parametrize(("fields", "field"), [
    ({"price": -5}, "price"),
    ({"created_at": "not a date"}, "created_at"),
])
def test_put_validates_fields_as_catalogs_do(client: TestClient, fields: dict[str, object],
                                             field: str) -> None:
    body = {"image_base64": b64(jpeg_bytes(41)), **fields}
    error = assert_error(client.put("/v1/items/badfield", json=body), 422, "invalid_field")
    assert error["details"][0]["field"] == field and field in error["message"]
    multipart = client.put("/v1/items/badfield", data={"metadata": json.dumps(fields)},
                           files={"file": ("x.jpg", jpeg_bytes(41))})
    assert_error(multipart, 422, "invalid_field")
    batch = client.post("/v1/items:batch", json={"operations": [
        {"op": "upsert", "item": {"id": "badfield", **fields},
         "image_base64": b64(jpeg_bytes(41))}]}).json()
    assert batch["results"][0]["error"]["code"] == "invalid_field"
    assert client.get("/v1/items/badfield").status_code == 404


def test_put_normalises_fields_as_catalogs_do(client: TestClient) -> None:
    body = {"image_base64": b64(jpeg_bytes(42)), "title": "  spaced  ",
            "created_at": "2024-05-01", "tags": [" a ", "a", "b"]}
    assert client.put("/v1/items/normalised", json=body).status_code == 201
    item = client.get("/v1/items/normalised").json()
    assert item["title"] == "spaced" and item["tags"] == ["a", "b"]
    assert client.delete("/v1/items/normalised").status_code == 200


def test_batch_refuses_an_id_that_is_not_valid_unicode(client: TestClient) -> None:
    body = '{"operations": [{"op": "upsert", "item": {"id": "bad\\ud800"}, ' \
           f'"image_base64": "{b64(jpeg_bytes(43))}"}}]}}'
    answer = client.post("/v1/items:batch", content=body,
                         headers={"content-type": "application/json"}).json()
    assert answer["results"][0]["error"]["code"] == "validation_error"
    assert answer["results"][0]["id"] == "bad\ufffd"


@pytest.mark.parametrize("suffix", ["similar", "duplicates"])
def test_ids_ending_like_a_route_can_be_fetched(client: TestClient, suffix: str) -> None:
    item_id = f"shoe/{suffix}"
    put = client.put(f"/v1/items/shoe%2F{suffix}",
                     json={"image_base64": b64(jpeg_bytes(44)), "title": "tricky"})
    assert put.status_code in (200, 201), put.text
    got = client.get(f"/v1/items/shoe%2F{suffix}")
    assert got.status_code == 200 and got.json()["id"] == item_id
    assert got.json()["title"] == "tricky"
    # the literal suffix still asks the route: items like "shoe" (which does not exist)
    assert_error(client.get(f"/v1/items/shoe/{suffix}"), 404, "item_not_found")
    # and the route works on that item as on any other
    assert client.get(f"/v1/items/shoe%2F{suffix}/{suffix}").status_code == 200
    assert client.delete(f"/v1/items/shoe%2F{suffix}").status_code == 200


@pytest.mark.parametrize("body", [
    '{"similar_to": "p\\ud800"}',
    '{"text": "hat", "filters": {"categories": ["\\udc00"]}}',
    '{"text": "hat", "filters": {"attributes": {"\\udc00": "x"}}}',
])
def test_lone_surrogates_in_json_are_refused(client: TestClient, body: str) -> None:
    answer = client.post("/v1/search", content=body, headers={"content-type":
                                                              "application/json"})
    assert_error(answer, 422, "validation_error")


@pytest.mark.parametrize(("data", "status", "code"), [
    (progressive_scan_bomb(3000), 413, "image_too_large"),
    (jpeg_claiming_more_pixels((7000, 7000)), 422, "corrupt_image"),
])
def test_jpeg_decode_bombs_are_refused(client: TestClient, data: bytes, status: int,
                                       code: str) -> None:
    upload = client.post("/v1/search/image", files={"file": ("x.jpg", data, "image/jpeg")})
    assert_error(upload, status, code)
    put = client.put("/v1/items/bomb", files={"file": ("x.jpg", data)})
    assert_error(put, status, code)
