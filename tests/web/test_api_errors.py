"""Bad input answers its own 4xx with the JSON error shape, and never a 500.

The module's client re-raises any server error, so a 500 would fail the test itself.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest
from apihelp import assert_error, b64
from fastapi.testclient import TestClient

from imagegen import (
    decompression_bomb_png,
    jpeg_bytes,
    svg_bytes,
    text_file,
    truncated_jpeg,
)

BAD_IMAGES = [
    pytest.param(text_file(), 415, "unsupported_format", id="text"),
    pytest.param(svg_bytes(), 415, "unsupported_format", id="svg"),
    pytest.param(decompression_bomb_png(), 413, "image_too_large", id="bomb"),
    pytest.param(truncated_jpeg(), 422, "corrupt_image", id="truncated"),
    pytest.param(b"", 422, "corrupt_image", id="empty"),
]


@pytest.mark.parametrize(("data", "status", "code"), BAD_IMAGES)
def test_bad_uploads(client: TestClient, data: bytes, status: int, code: str) -> None:
    upload = client.post("/v1/search/image", files={"file": ("x.jpg", data, "image/jpeg")})
    assert_error(upload, status, code)
    as_json = client.post("/v1/search", json={"image_base64": b64(data) or "AA=="}) \
        if data else None
    if as_json is not None:
        assert_error(as_json, status, code)
    put = client.put("/v1/items/bad-upload", files={"file": ("x.jpg", data)})
    assert_error(put, status, code)
    assert_error(client.get("/v1/items/bad-upload"), 404, "item_not_found")


@pytest.mark.parametrize("value", ["not base64 at all!", "abc$", "data:image/png;base64,@@"])
def test_bad_base64(client: TestClient, value: str) -> None:
    error = assert_error(client.post("/v1/search", json={"image_base64": value}),
                         400, "invalid_input")
    assert "base64" in error["message"]
    assert_error(client.post("/v1/search", json={"images": [value]}), 400, "invalid_input")
    assert_error(client.put("/v1/items/b64", json={"image_base64": value}), 400,
                 "invalid_input")


@pytest.fixture
def no_connections(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Records (and refuses) every outgoing connection attempt."""
    attempts: list[Any] = []

    def refuse(_sock: socket.socket, address: Any) -> None:
        attempts.append(address)
        raise OSError("connection attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


PRIVATE_URLS = ["http://127.0.0.1/a.jpg", "http://10.0.0.1/", "http://169.254.169.254/latest/",
                "HTTP://127.0.0.1:8080/x.png", "http://[::1]/a.jpg", "http://2130706433/"]


@pytest.mark.parametrize("url", PRIVATE_URLS)
def test_private_urls_are_blocked_without_connecting(
        client: TestClient, no_connections: list[Any], url: str) -> None:
    assert_error(client.post("/v1/search", json={"image_url": url}), 422, "blocked_url")
    assert_error(client.post("/v1/search", json={"images": [url]}), 422, "blocked_url")
    assert_error(client.put("/v1/items/from-url", json={"image_url": url}), 422, "blocked_url")
    assert no_connections == []


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/a.jpg",
                                 "gopher://127.0.0.1/"])
def test_other_schemes_are_blocked(client: TestClient, no_connections: list[Any],
                                   url: str) -> None:
    assert_error(client.post("/v1/search", json={"images": [url]}), 422, "blocked_url")
    assert_error(client.post("/v1/search", json={"image_url": url}), 422, "blocked_url")
    assert no_connections == []


def test_a_path_is_never_read_as_an_image(client: TestClient) -> None:
    # a plain string is base64 or nothing: "/etc/hostname" must not open a local file
    assert_error(client.post("/v1/search", json={"images": ["/etc/hostname"]}), 400,
                 "invalid_input")
    assert_error(client.put("/v1/items/local", json={"image_url": "/etc/hostname"}), 400,
                 "invalid_input")


@pytest.mark.parametrize("path", ["/v1/items/nope", "/v1/items/nope/similar",
                                  "/v1/items/nope/duplicates", "/v1/thumbnails/nope"])
def test_unknown_id(client: TestClient, path: str) -> None:
    assert_error(client.get(path), 404, "item_not_found")


def test_unknown_id_elsewhere(client: TestClient) -> None:
    assert_error(client.delete("/v1/items/nope"), 404, "item_not_found")
    assert_error(client.post("/v1/search", json={"similar_to": "nope"}), 404, "item_not_found")


def test_bad_filter_values(client: TestClient) -> None:
    assert_error(client.post("/v1/search", json={
        "text": "hat", "filters": {"price_min": 50, "price_max": 10}}), 400, "invalid_filter")
    assert_error(client.get("/v1/search/text", params={
        "q": "hat", "price_min": 50, "price_max": 10}), 400, "invalid_filter")
    assert_error(client.post("/v1/search", json={
        "text": "hat", "filters": {"orientation": "diagonal"}}), 422, "validation_error")
    assert_error(client.get("/v1/search/text", params={"q": "hat", "orientation": "round"}),
                 422, "validation_error")
    assert_error(client.get("/v1/search/text", params={"q": "hat", "price_min": "cheap"}),
                 422, "validation_error")
    assert_error(client.post("/v1/search", json={
        "text": "hat", "filters": {"colour": ["red"]}}), 422, "validation_error")
    assert_error(client.get("/v1/items/p1/similar", params={"min_width": -5}), 422,
                 "validation_error")


@pytest.mark.parametrize("limit", [0, -1, 1001, 10**12])
def test_limit_out_of_range(client: TestClient, limit: int) -> None:
    assert_error(client.post("/v1/search", json={"text": "hat", "limit": limit}), 400,
                 "invalid_query")
    assert_error(client.get("/v1/search/text", params={"q": "hat", "limit": limit}), 400,
                 "invalid_query")


def test_other_bad_query_values(client: TestClient) -> None:
    assert_error(client.get("/v1/search/text", params={"q": "hat", "limit": "ten"}), 422,
                 "validation_error")
    assert_error(client.get("/v1/search/text"), 422, "validation_error")
    # an empty body browses the collection; its page values are checked all the same
    assert client.post("/v1/search", json={}).json()["query_kind"] == "browse"
    assert_error(client.post("/v1/search", json={"offset": -1}), 400, "invalid_query")
    assert_error(client.post("/v1/search", json={"text": "   "}), 400, "invalid_query")
    assert_error(client.post("/v1/search", json={"text": "hat", "offset": -3}), 400,
                 "invalid_query")
    assert_error(client.post("/v1/search", json={"text": "hat", "image_weight": 3}), 400,
                 "invalid_query")
    assert_error(client.post("/v1/search", json={"text": "hat", "boosts": {"luck": 0.5}}),
                 400, "invalid_query")
    assert_error(client.post("/v1/search", json={"images": [b64(jpeg_bytes(1))] * 17}), 400,
                 "invalid_query")
    assert_error(client.post("/v1/search", json={"text": ["a"]}), 422, "validation_error")
    assert_error(client.post("/v1/search", json=[1, 2]), 422, "validation_error")


@pytest.mark.parametrize("body", [b"{bad", b'{"text": "hat",}', b"\xff\xfe", b"[1, 2"])
def test_malformed_json(client: TestClient, body: bytes) -> None:
    headers = {"content-type": "application/json"}
    assert_error(client.post("/v1/search", content=body, headers=headers), 400, "invalid_json")
    assert_error(client.put("/v1/items/j", content=body, headers=headers), 400, "invalid_json")
    assert_error(client.post("/v1/items:batch", content=body, headers=headers), 400,
                 "invalid_json")


def test_non_finite_numbers_are_refused(client: TestClient) -> None:
    headers = {"content-type": "application/json"}
    for body in (b'{"text": "hat", "filters": {"price_min": NaN}}',
                 b'{"text": "hat", "image_weight": Infinity}'):
        assert_error(client.post("/v1/search", content=body, headers=headers), 422,
                     "validation_error")
    assert_error(client.put("/v1/items/nan", content=b'{"price": NaN, "image_base64": "AA"}',
                            headers=headers), 422, "validation_error")


def test_put_refuses_other_bodies(client: TestClient) -> None:
    assert_error(client.put("/v1/items/x", content=b"hello",
                            headers={"content-type": "text/plain"}),
                 415, "unsupported_media_type")
    assert_error(client.put("/v1/items/x", files={"file": ("a.jpg", jpeg_bytes(1))},
                            data={"metadata": "{not json"}), 422, "validation_error")
    assert_error(client.put("/v1/items/x", files={"file": ("a.jpg", jpeg_bytes(1))},
                            data={"metadata": '{"price": "free"}'}), 422, "validation_error")
    assert_error(client.put("/v1/items/x", json={"image_base64": b64(jpeg_bytes(1)),
                                                 "image_url": "https://example.com/a.jpg"}),
                 400, "invalid_input")
    assert_error(client.put("/v1/items/x", json={"unknown_field": 1,
                                                 "image_base64": b64(jpeg_bytes(1))}),
                 422, "validation_error")


def test_batch_refuses_only_a_malformed_envelope(client: TestClient) -> None:
    assert_error(client.post("/v1/items:batch", json={"operations": []}), 422,
                 "validation_error")
    assert_error(client.post("/v1/items:batch", json=[{"op": "delete", "id": "a"}]), 422,
                 "validation_error")
    results = client.post("/v1/items:batch", json={"operations": [None, "x", [], {}]}).json()
    assert [r["status"] for r in results["results"]] == ["failed"] * 4


def test_routing_errors_have_the_same_shape(client: TestClient) -> None:
    assert_error(client.get("/v1/nothing-here"), 404, "not_found")
    assert_error(client.patch("/v1/search"), 405, "method_not_allowed")
    assert_error(client.post("/v1/search/image", data={"limit": "3"}), 422, "validation_error")


def test_the_connection_guard_sees_public_urls(client: TestClient,
                                               no_connections: list[Any]) -> None:
    # the check above would pass vacuously if the guard saw nothing: a public address
    # is tried (and refused by the fixture), which answers fetch_failed
    assert_error(client.post("/v1/search", json={"image_url": "http://93.184.216.34/a.jpg"}),
                 422, "fetch_failed")
    assert no_connections
