"""Checklist A: the upload layer. Oversized bodies (with and without Content-Length),
multipart abuse, missing and misnamed parts, hostile file names, wrong content types.

Every case answers its own status and error code, writes nothing, and leaves the known
items searchable.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from apihelp import assert_error
from fastapi.testclient import TestClient

from hostile.checks import KNOWN, assert_intact
from imagegen import jpeg_bytes
from imgsearch.engine import Engine
from imgsearch.web import create_app
from imgsearch.web.limits import Limits

CAP = 50_000
BOUNDARY = "hostileboundary"
MULTIPART = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}
IMAGE = jpeg_bytes(KNOWN["k1"])


@pytest.fixture(scope="module")
def capped(known_engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(known_engine, limits=Limits(max_body_bytes=CAP))) as client:
        yield client


def _chunks(total: int, size: int = 8192) -> Iterator[bytes]:
    for start in range(0, total, size):
        yield b"x" * min(size, total - start)


ROUTES = [
    ("POST", "/v1/search", "application/json"),
    ("POST", "/v1/search/image", MULTIPART["content-type"]),
    ("PUT", "/v1/items/oversized", "application/json"),
    ("PUT", "/v1/items/oversized", MULTIPART["content-type"]),
    ("POST", "/v1/items:batch", "application/json"),
    ("POST", "/v1/feedback/click", "application/json"),
]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize(("method", "path", "content_type"), ROUTES,
                         ids=[f"{m}-{p}-{c.split(';')[0]}" for m, p, c in ROUTES])
def test_oversized_bodies(capped: TestClient, method: str, path: str, content_type: str,
                          chunked: bool) -> None:
    # A1, A2: refused whether the size is announced or only counted while reading
    body = _chunks(CAP * 4) if chunked else b"x" * (CAP * 4)
    response = capped.request(method, path, content=body,
                              headers={"content-type": content_type})
    assert ("content-length" in response.request.headers) is not chunked
    assert_error(response, 413, "body_too_large")
    assert_error(capped.get("/v1/items/oversized"), 404, "item_not_found")
    assert_intact(capped)


def _field(name: str, value: bytes) -> bytes:
    return f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value


def _file(name: str, filename: bytes, value: bytes) -> bytes:
    return (f'Content-Disposition: form-data; name="{name}"; filename="'.encode() + filename
            + b'"\r\nContent-Type: image/jpeg\r\n\r\n' + value)


def _multipart(parts: list[bytes], before: bytes = b"", after: bytes = b"",
               boundary: str = BOUNDARY) -> bytes:
    mark = f"--{boundary}".encode()
    return (before + b"".join(mark + b"\r\n" + part + b"\r\n" for part in parts)
            + mark + b"--\r\n" + after)


FILE = _file("file", b"q.jpg", IMAGE)
SEARCH, PUT = ("POST", "/v1/search/image"), ("PUT", "/v1/items/multipart-abuse")

MULTIPART_ABUSE = [
    # A3, A4: too many parts, parts too big
    ("10000-empty-fields", SEARCH, [_field(f"f{i}", b"") for i in range(10_000)] + [FILE],
     400, "bad_request", "Too many fields"),
    ("10000-empty-files", PUT, [_file(f"f{i}", b"a.jpg", b"") for i in range(10_000)],
     400, "bad_request", "Too many files"),
    ("2mb-metadata-field", PUT, [_field("metadata", b'{"title": "' + b"a" * 2_000_000
                                        + b'"}'), FILE], 400, "bad_request", "maximum size"),
    ("2mb-text-field", SEARCH, [_field("text", b"a" * 2_000_000), FILE], 400, "bad_request",
     "maximum size"),
    # A7: missing, misnamed and mistyped parts
    ("no-parts-search", SEARCH, [], 422, "validation_error", "file"),
    ("file-under-another-name", SEARCH, [_file("image", b"q.jpg", IMAGE)], 422,
     "validation_error", "file"),
    ("file-sent-as-text", SEARCH, [_field("file", b"hello")], 422, "validation_error",
     "UploadFile"),
    ("part-without-headers", SEARCH, [b"\r\n" + IMAGE], 400, "bad_request", "name"),
    ("part-without-name", SEARCH, [b"Content-Disposition: form-data\r\n\r\n" + IMAGE], 400,
     "bad_request", "name"),
    ("no-parts-put", PUT, [], 400, "invalid_input", "needs an image"),
    ("metadata-sent-as-file", PUT, [_file("metadata", b"m.json", b"{}"), FILE], 422,
     "validation_error", "metadata"),
    ("file-sent-as-text-put", PUT, [_field("file", b"hello")], 422, "validation_error",
     "file upload"),
    ("metadata-not-json", PUT, [_field("metadata", b"{not json"), FILE], 422,
     "validation_error", "metadata"),
    ("metadata-a-list", PUT, [_field("metadata", b"[1, 2]"), FILE], 422, "validation_error",
     "dictionary"),
    ("metadata-with-an-id", PUT, [_field("metadata", b'{"id": "other"}'), FILE], 422,
     "validation_error", "id"),
    ("metadata-unknown-field", PUT, [_field("metadata", b'{"owner": "x"}'), FILE], 422,
     "validation_error", "owner"),
    ("metadata-price-a-word", PUT, [_field("metadata", b'{"price": "free"}'), FILE], 422,
     "validation_error", "price"),
    ("file-and-image-url", PUT, [_field("metadata", b'{"image_url": "https://a.example/x"}'),
                                 FILE], 400, "invalid_input", "once"),
    ("10kb-file-name", PUT, [_file("file", b"x" * 10_000 + b".jpg", IMAGE)], 400,
     "bad_request", "multipart"),
]


@pytest.mark.parametrize(("route", "parts", "status", "code", "fragment"),
                         [pytest.param(r, p, s, c, f, id=n)
                          for n, r, p, s, c, f in MULTIPART_ABUSE])
def test_multipart_abuse(client: TestClient, route: tuple[str, str], parts: list[bytes],
                         status: int, code: str, fragment: str) -> None:
    method, path = route
    response = client.request(method, path, content=_multipart(parts), headers=MULTIPART)
    error = assert_error(response, status, code)
    assert fragment in error["message"]
    assert_error(client.get("/v1/items/multipart-abuse"), 404, "item_not_found")
    assert_intact(client)


BROKEN_FRAMING = [
    ("no-boundary-parameter", {"content-type": "multipart/form-data"},
     _multipart([FILE]), "Missing boundary"),
    ("other-boundary", {"content-type": "multipart/form-data; boundary=other"},
     _multipart([FILE]), "Invalid multipart"),
    ("5000-byte-boundary", {"content-type": "multipart/form-data; boundary=" + "b" * 5000},
     _multipart([FILE], boundary="b" * 5000), "Invalid multipart"),
]


@pytest.mark.parametrize(("headers", "body", "fragment"),
                         [pytest.param(h, b, f, id=n) for n, h, b, f in BROKEN_FRAMING])
def test_broken_multipart_framing(client: TestClient, headers: dict[str, str], body: bytes,
                                  fragment: str) -> None:
    error = assert_error(client.post("/v1/search/image", content=body, headers=headers),
                         400, "bad_request")
    assert fragment in error["message"]


TOLERATED_FRAMING = [
    # A5, A6: padding around the parts and pathological parameters are parsed, not feared
    ("1mb-crlf-before-first-boundary", MULTIPART, _multipart([FILE], before=b"\r\n" * 500_000)),
    ("1mb-crlf-after-last-boundary", MULTIPART, _multipart([FILE], after=b"\r\n" * 500_000)),
    ("5000-extra-parameters", {"content-type": MULTIPART["content-type"] + "; a=b" * 5000},
     _multipart([FILE])),
    ("backslash-run-in-quoted-parameter",
     {"content-type": MULTIPART["content-type"] + '; x="' + "\\\\" * 5000},
     _multipart([FILE])),
]


@pytest.mark.parametrize(("headers", "body"),
                         [pytest.param(h, b, id=n) for n, h, b in TOLERATED_FRAMING])
def test_padded_or_odd_framing_still_finds_the_image(client: TestClient,
                                                     headers: dict[str, str],
                                                     body: bytes) -> None:
    response = client.post("/v1/search/image", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["id"] == "k1"


HOSTILE_NAMES = [b"../../etc/passwd", b"/abs/x.jpg", b"C:\\\\Windows\\\\x.jpg", b"a\x00b.jpg",
                 "\u202egpj.exe".encode(), b"..", b"", b"\r\nX-Injected: 1",
                 b"%2e%2e%2f%2e%2e%2fetc", "\u30d5\u30a1\u30a4\u30eb.jpg".encode()]


@pytest.mark.parametrize("filename", HOSTILE_NAMES, ids=lambda n: repr(n)[:24])
def test_hostile_file_names_are_never_used(client: TestClient, known_engine: Engine,
                                           filename: bytes) -> None:
    # A8: the item is stored under the id of the URL; the file name is not kept
    root = known_engine.directory.resolve()
    before = {p for p in root.parent.rglob("*")}
    response = client.put("/v1/items/named", content=_multipart([_file("file", filename,
                                                                       IMAGE)]),
                          headers=MULTIPART)
    assert response.status_code == 201 and response.json()["id"] == "named", response.text
    item = client.get("/v1/items/named").json()
    assert item["image_url"] is None
    text = repr(item)
    assert "passwd" not in text and "Windows" not in text and "gpj" not in text
    created = {p for p in root.parent.rglob("*")} - before
    assert all(Path(p).resolve().is_relative_to(root) for p in created), created
    assert client.delete("/v1/items/named").status_code == 200
    assert_intact(client)


WRONG_TYPES = [
    ("PUT", "/v1/items/typed", "application/xml", b"<a/>", 415, "unsupported_media_type"),
    ("PUT", "/v1/items/typed", None, b"{}", 415, "unsupported_media_type"),
    ("PUT", "/v1/items/typed", ";;;", b"{}", 415, "unsupported_media_type"),
    ("PUT", "/v1/items/typed", "application/x-www-form-urlencoded", b"a=b", 415,
     "unsupported_media_type"),
    ("PUT", "/v1/items/typed", f"multipart/mixed; boundary={BOUNDARY}", _multipart([FILE]),
     415, "unsupported_media_type"),
    ("PUT", "/v1/items/typed", "application/json; charset=latin-1",
     '{"title": "\xe9"}'.encode("latin-1"), 400, "invalid_json"),
    ("PUT", "/v1/items/typed", "application/json", b"", 400, "invalid_json"),
    ("PUT", "/v1/items/typed", "application/json", b'"a string"', 422, "validation_error"),
    ("PUT", "/v1/items/typed", "application/json", b"null", 422, "validation_error"),
    ("PUT", "/v1/items/typed", "application/json", b"\x1f\x8b\x08\x00gzip", 400,
     "invalid_json"),
    ("PUT", "/v1/items/typed", "application/json", '{"title": "a"}'.encode("utf-16"), 400,
     "invalid_input"),
    ("PUT", "/v1/items/typed", "application/vnd.shop+json", b'{"image_base64": "AA=="}', 422,
     "corrupt_image"),
    ("POST", "/v1/search", "text/plain", b'{"text": "known"}', 422, "validation_error"),
    ("POST", "/v1/search", None, b'{"text": "known"}', 422, "validation_error"),
    ("POST", "/v1/search", MULTIPART["content-type"], _multipart([_field("text", b"known")]),
     422, "validation_error"),
    ("POST", "/v1/search/image", "application/json", b'{"file": "x"}', 422,
     "validation_error"),
    ("POST", "/v1/items:batch", "text/plain", b'{"operations": []}', 422, "validation_error"),
    ("POST", "/v1/feedback/click", "text/plain", b"{}", 422, "validation_error"),
]


@pytest.mark.parametrize(("method", "path", "content_type", "body", "status", "code"),
                         [pytest.param(*case, id=f"{case[0]}-{case[1]}-{case[2]}-{i}")
                          for i, case in enumerate(WRONG_TYPES)])
def test_wrong_content_types(client: TestClient, method: str, path: str,
                             content_type: str | None, body: bytes, status: int,
                             code: str) -> None:
    headers = {"content-type": content_type} if content_type is not None else {}
    assert_error(client.request(method, path, content=body, headers=headers), status, code)
    assert_error(client.get("/v1/items/typed"), 404, "item_not_found")
    assert_intact(client)
