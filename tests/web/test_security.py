"""Who may ask what: API keys and scopes, the Host allow-list, CORS, Origin and the
security headers.

Each app here keeps its keys in a file of its own test, so the shared collection's
loopback behaviour (open writes, no keys) stays what the other modules rely on.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from apihelp import assert_error
from fastapi.testclient import TestClient

from imagegen import jpeg_bytes
from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.web import create_app
from imgsearch.web.keys import KeysFileError, KeyStore

PUBLIC = "0.0.0.0"


def _put_body(seed: int) -> dict[str, Any]:
    return {"title": "keyed", "image_base64": base64.b64encode(jpeg_bytes(seed)).decode()}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    return tmp_path / "keys" / "api_keys.json"


def _client(engine: Engine, settings: Settings, keys_file: Path, listen_host: str | None,
            **changes: Any) -> TestClient:
    # TestClient sends Host: testserver, which only in-process apps allow by default
    hosts = ",".join(h for h in ("testserver" if listen_host is not None else "",
                                 changes.pop("allowed_hosts", "")) if h)
    app = create_app(engine, listen_host=listen_host, settings=settings.replace(
        api_keys_file=str(keys_file), allowed_hosts=hosts, **changes))
    return TestClient(app)


@pytest.fixture
def public(web_engine: Engine, web_settings: Settings, keys_file: Path
           ) -> Iterator[TestClient]:
    """The app as `imgsearch serve --host 0.0.0.0` builds it."""
    with _client(web_engine, web_settings, keys_file, PUBLIC) as client:
        yield client


def test_writes_beyond_loopback_without_a_write_key_answer_401_saying_how(public: TestClient
                                                                          ) -> None:
    for response in (public.put("/v1/items/k-none", json=_put_body(40)),
                     public.delete("/v1/items/p0"),
                     public.post("/v1/items:batch",
                                 json={"operations": [{"op": "delete", "id": "p0"}]})):
        error = assert_error(response, 401, "unauthorized")
        assert "imgsearch keys create" in error["message"]
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert public.get("/v1/items/p0").status_code == 200  # nothing was deleted
    assert public.get("/v1/items/k-none").status_code == 404
    # reads stay open
    assert public.get("/v1/search/text", params={"q": "shoe"}).status_code == 200
    assert public.get("/").status_code == 200


def test_scopes_read_write_admin(public: TestClient, keys_file: Path) -> None:
    store = KeyStore(keys_file)
    _, read = store.create("read", "reader")
    _, write = store.create("write", "writer")
    _, admin = store.create("admin", "ops")

    error = assert_error(public.put("/v1/items/k-scoped", json=_put_body(41),
                                    headers=_bearer(read)), 403, "forbidden")
    assert "'reader'" in error["message"] and "'write'" in error["message"]
    assert public.put("/v1/items/k-scoped", json=_put_body(41), headers=_bearer(write)
                      ).status_code == 201
    assert public.get("/v1/items/k-scoped", headers=_bearer(read)).status_code == 200
    # X-API-Key works as well as Authorization: Bearer
    assert public.delete("/v1/items/k-scoped", headers={"X-API-Key": write}
                         ).status_code == 200

    for path in ("/metrics", "/v1/report"):
        assert_error(public.get(path), 401, "unauthorized")
        assert_error(public.get(path, headers=_bearer(write)), 403, "forbidden")
        assert public.get(path, headers=_bearer(admin)).status_code == 200
    # admin implies write
    assert public.put("/v1/items/k-admin", json=_put_body(42), headers=_bearer(admin)
                      ).status_code == 201
    assert public.delete("/v1/items/k-admin", headers=_bearer(admin)).status_code == 200


def test_a_wrong_key_answers_401_even_where_none_is_needed(public: TestClient,
                                                           keys_file: Path) -> None:
    KeyStore(keys_file).create("write")
    for token in ("isk_00000000_nope", "not-even-a-token", ""):
        response = public.get("/v1/search/text", params={"q": "shoe"},
                              headers=_bearer(token))
        assert_error(response, 401, "unauthorized")
    assert_error(public.get("/v1/stats", headers={"Authorization": "Basic dTpw"}), 401,
                 "unauthorized")
    # probes never need one
    assert public.get("/health").status_code == 200


def test_the_keys_file_holds_hashes_only_and_is_private(keys_file: Path) -> None:
    store = KeyStore(keys_file)
    key, token = store.create("write", "ci")
    raw = keys_file.read_text()
    secret = token.rsplit("_", 1)[1]
    assert token not in raw and secret not in raw
    assert json.loads(raw)["keys"][0]["hash"].startswith("sha256:")
    assert stat.S_IMODE(os.stat(keys_file).st_mode) == 0o600
    assert store.verify(token) == key
    assert store.verify(token[:-1] + ("A" if token[-1] != "A" else "B")) is None


def test_a_revoked_key_is_refused_at_its_next_request(public: TestClient, keys_file: Path
                                                      ) -> None:
    store = KeyStore(keys_file)
    _, token = store.create("write", "temporary")
    assert public.put("/v1/items/k-revoked", json=_put_body(43), headers=_bearer(token)
                      ).status_code == 201
    revoked = store.revoke("temporary")
    assert [k.name for k in revoked] == ["temporary"]
    assert_error(public.delete("/v1/items/k-revoked", headers=_bearer(token)), 401,
                 "unauthorized")
    assert public.get("/v1/items/k-revoked").status_code == 200


def test_on_loopback_writes_stay_open_until_a_key_exists(web_engine: Engine,
                                                         web_settings: Settings,
                                                         keys_file: Path) -> None:
    with _client(web_engine, web_settings, keys_file, "127.0.0.1") as local:
        assert local.put("/v1/items/k-local", json=_put_body(44)).status_code == 201
        assert local.get("/metrics").status_code == 200
        _, token = KeyStore(keys_file).create("read")
        assert_error(local.delete("/v1/items/k-local"), 401, "unauthorized")
        assert_error(local.get("/metrics"), 401, "unauthorized")
        assert_error(local.delete("/v1/items/k-local", headers=_bearer(token)), 403,
                     "forbidden")
        KeyStore(keys_file).revoke(KeyStore(keys_file).current()[0].id)
        assert local.delete("/v1/items/k-local").status_code == 200


def test_an_app_not_told_where_it_listens_wants_keys_from_network_peers(
        web_engine: Engine) -> None:
    # create_app(engine) served by someone's own uvicorn on 0.0.0.0: a peer from the
    # network is beyond loopback, a loopback peer and the test client are not
    app = create_app(web_engine)
    with TestClient(app, client=("203.0.113.5", 40000)) as remote:
        assert_error(remote.delete("/v1/items/p4"), 401, "unauthorized")
        assert_error(remote.get("/metrics"), 401, "unauthorized")
        assert remote.get("/v1/items/p4").status_code == 200
    with TestClient(app, client=("127.0.0.1", 40000)) as local:
        assert local.get("/metrics").status_code == 200


def test_require_read_key_covers_searches_and_the_page_but_not_probes(
        web_engine: Engine, web_settings: Settings, keys_file: Path) -> None:
    _, token = KeyStore(keys_file).create("read")
    with _client(web_engine, web_settings, keys_file, PUBLIC, require_read_key=True) as app:
        for path in ("/v1/search/text?q=shoe", "/v1/items/p1", "/", "/v1/stats"):
            assert_error(app.get(path), 401, "unauthorized")
            assert app.get(path, headers=_bearer(token)).status_code == 200
        assert app.get("/health").status_code == 200
        assert app.get("/ready").status_code == 200


def test_a_damaged_keys_file_stops_the_app_and_later_refuses_keyed_requests(
        web_engine: Engine, web_settings: Settings, keys_file: Path) -> None:
    keys_file.parent.mkdir(parents=True)
    keys_file.write_text("{not json")
    with pytest.raises(KeysFileError, match="damaged"):
        _client(web_engine, web_settings, keys_file, PUBLIC)
    keys_file.unlink()
    with _client(web_engine, web_settings, keys_file, PUBLIC) as app:
        keys_file.write_text('{"format": 1, "keys": [{"id": "x"}]}')
        assert_error(app.delete("/v1/items/p0"), 503, "keys_unavailable")
        assert app.get("/v1/items/p0").status_code == 200  # open reads go on


# --- Host allow-list ---------------------------------------------------------------


def test_a_foreign_host_answers_400_in_the_json_shape(client: TestClient) -> None:
    error = assert_error(client.get("/v1/stats", headers={"host": "attacker.example"}),
                         400, "invalid_host")
    assert "attacker.example" in error["message"]
    for host in ("localhost:8000", "127.0.0.1", "[::1]:8000", "LOCALHOST"):
        assert client.get("/v1/stats", headers={"host": host}).status_code == 200, host


def test_allowed_hosts_add_names_and_the_bind_address_is_one(
        web_engine: Engine, web_settings: Settings, keys_file: Path) -> None:
    with _client(web_engine, web_settings, keys_file, "10.1.2.3",
                 allowed_hosts="search.example.com,*.shop.example") as app:
        for host in ("search.example.com", "a.shop.example:8443", "10.1.2.3:8000",
                     "testserver"):
            assert app.get("/health", headers={"host": host}).status_code == 200, host
        assert_error(app.get("/health", headers={"host": "evil.example"}), 400,
                     "invalid_host")


@pytest.fixture
def live(web_engine: Engine) -> Iterator[str]:
    """The app on a real loopback socket, as `imgsearch serve` (127.0.0.1) runs it."""
    sock = socket.create_server(("127.0.0.1", 0))
    app = create_app(web_engine, listen_host="127.0.0.1")
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(10)
    sock.close()


def test_the_dns_rebinding_delete_is_refused(live: str) -> None:
    # what a page at attacker.example sends once its name points at 127.0.0.1
    refused = httpx.delete(f"{live}/v1/items/p2", headers={"Host": "attacker.example"})
    assert_error(refused, 400, "invalid_host")
    assert httpx.get(f"{live}/v1/items/p2").status_code == 200  # still there
    assert_error(httpx.get(f"{live}/v1/items/p2", headers={"Host": "testserver"}), 400,
                 "invalid_host")  # the test client's name is not one a server allows


# --- Origin and CORS ---------------------------------------------------------------


def test_a_cross_site_page_may_not_write_even_on_open_loopback(client: TestClient) -> None:
    error = assert_error(client.delete("/v1/items/p3",
                                       headers={"Origin": "https://evil.example"}),
                         403, "forbidden")
    assert "--cors-origin" in error["message"]
    assert client.get("/v1/items/p3").status_code == 200
    # the page's own origin may
    put = client.put("/v1/items/k-same-site", json=_put_body(45),
                     headers={"Origin": "http://testserver"})
    assert put.status_code == 201, put.text
    assert client.delete("/v1/items/k-same-site").status_code == 200


def test_cors_is_off_by_default(client: TestClient) -> None:
    preflight = client.options("/v1/items/p1", headers={
        "Origin": "https://shop.example", "Access-Control-Request-Method": "DELETE"})
    assert preflight.status_code >= 400
    assert "access-control-allow-origin" not in preflight.headers
    get = client.get("/v1/stats", headers={"Origin": "https://shop.example"})
    assert "access-control-allow-origin" not in get.headers


def test_cors_allows_a_configured_origin_only(web_engine: Engine, web_settings: Settings,
                                              keys_file: Path) -> None:
    _, token = KeyStore(keys_file).create("write")
    with _client(web_engine, web_settings, keys_file, PUBLIC,
                 cors_origins="https://shop.example") as app:
        preflight = app.options("/v1/items/p1", headers={
            "Origin": "https://shop.example", "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "authorization, content-type"})
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://shop.example"
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
        refused = app.options("/v1/items/p1", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "PUT"})
        assert_error(refused, 400, "cors_refused")
        put = app.put("/v1/items/k-cors", json=_put_body(46), headers={
            **_bearer(token), "Origin": "https://shop.example"})
        assert put.status_code == 201, put.text
        assert put.headers["access-control-allow-origin"] == "https://shop.example"
        assert app.delete("/v1/items/k-cors", headers=_bearer(token)).status_code == 200


def test_bad_hosts_and_origins_in_the_settings_are_refused(
        web_engine: Engine, web_settings: Settings, keys_file: Path) -> None:
    from imgsearch.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="wildcard"):
        _client(web_engine, web_settings, keys_file, PUBLIC, allowed_hosts="shop.*.example")
    with pytest.raises(InvalidInputError, match="scheme://host"):
        _client(web_engine, web_settings, keys_file, PUBLIC, cors_origins="shop.example")


# --- headers -----------------------------------------------------------------------


def _assert_security_headers(response: Any) -> str:
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "same-origin"
    return str(response.headers["content-security-policy"])


def test_security_headers_on_the_page_the_api_and_refusals(client: TestClient) -> None:
    page = _assert_security_headers(client.get("/"))
    assert "script-src 'self';" in page and "frame-ancestors 'none'" in page
    assert "unsafe-inline" not in page.split("script-src")[1].split(";")[0]
    assert "'self'" in _assert_security_headers(client.get("/items/p1"))
    api = _assert_security_headers(client.get("/v1/stats"))
    assert api.startswith("default-src 'none'")
    _assert_security_headers(client.get("/static/ui.js"))
    _assert_security_headers(client.get("/v1/thumbnails/p1"))
    _assert_security_headers(client.get("/v1/stats", headers={"host": "evil.example"}))
    docs_csp = _assert_security_headers(client.get("/docs"))
    assert "script-src 'self' 'unsafe-inline'" in docs_csp and "https:" not in docs_csp


def test_the_page_has_no_inline_script(client: TestClient) -> None:
    for path in ("/", "/?q=shoe", "/items/p1"):
        html = client.get(path).text
        assert "<script>" not in html and "<script " in html
        assert " on" + "click=" not in html and "javascript:" not in html
        assert "<style" not in html


def test_every_route_that_changes_items_needs_a_write_key(client: TestClient) -> None:
    from imgsearch.web.security import needed_scope

    # POSTs that only read (a query in the body) or log a click
    reads = {("POST", "/v1/search"), ("POST", "/v1/search/image"),
             ("POST", "/v1/feedback/click")}
    checked = 0
    for path, operations in client.get("/openapi.json").json()["paths"].items():
        concrete = path.replace("{item_id}", "some/id")
        for method in {m.upper() for m in operations} - {"GET", "HEAD"}:
            expected = "read" if (method, path) in reads else "write"
            assert needed_scope(method, concrete) == expected, (method, path)
            checked += 1
    assert checked >= 6


def test_the_openapi_schema_declares_the_key(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    assert schema["paths"]["/v1/items/{item_id}"]["delete"]["security"] == [{"apiKey": []}]
    assert schema["paths"]["/metrics"]["get"]["security"] == [{"apiKey": []}]
    assert "security" not in schema["paths"]["/v1/search"]["post"]


def test_the_server_says_at_start_when_writes_or_everything_are_closed(
        web_settings: Settings, keys_file: Path, tmp_path: Path) -> None:
    from imgsearch.web.security import AccessPolicy

    settings = web_settings.replace(api_keys_file=str(keys_file))
    public = AccessPolicy.build(settings, tmp_path, listen_host="0.0.0.0")
    assert "no write key" in (public.startup_warning() or "")
    closed = AccessPolicy.build(settings.replace(require_read_key=True), tmp_path, "::1")
    assert "--require-read-key" in (closed.startup_warning() or "")
    assert AccessPolicy.build(settings, tmp_path, "127.0.0.1").startup_warning() is None
    KeyStore(keys_file).create("write")
    assert public.startup_warning() is None
