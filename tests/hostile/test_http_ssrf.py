"""Checklist C over HTTP: image URLs that point inward are refused before any request.

The engine's fetcher gets a resolver stub (names never reach real DNS) and an
in-memory transport that records every request it would have sent; the DNS-rebinding
case uses the real connection guard against the fetch tests' loopback server. No
traffic leaves 127.0.0.0/8.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from apihelp import assert_error
from fastapi.testclient import TestClient
from test_fetch import _resolver, _Server, serving

from hostile.checks import KNOWN, assert_intact
from imagegen import jpeg_bytes
from imgsearch.engine import Engine
from imgsearch.ingest.fetch import default_resolve

PUBLIC = "93.184.216.34"
IMAGE = jpeg_bytes(KNOWN["k3"])
NAMES = {"shop.example": [PUBLIC], "localhost": ["127.0.0.1"], "localhost.": ["127.0.0.1"],
         "metadata.google.internal": ["169.254.169.254"], "internal.example": ["10.1.2.3"],
         "mixed.example": [PUBLIC, "10.1.2.3"], "v6.internal.example": ["fd00::5"],
         "mapped.example": ["::ffff:127.0.0.1"]}


def _upstream(request: httpx.Request) -> httpx.Response:
    """What shop.example would answer; every other host is unreachable by design."""
    path = request.url.path
    if request.url.host != "shop.example":
        return httpx.Response(200, content=b"inside the network")
    if path == "/image.jpg":
        return httpx.Response(200, content=IMAGE, headers={"content-type": "image/jpeg"})
    if path.startswith("/to/"):
        return httpx.Response(302, headers={"location": path[len("/to/"):].replace(
            "SCHEME-", "").replace("_", "/")})
    if path.startswith("/chain/"):
        left = int(path.rsplit("/", 1)[1])
        return httpx.Response(302, headers={"location": "/image.jpg" if left == 0
                                            else f"/chain/{left - 1}"})
    if path == "/html-as-jpeg":
        return httpx.Response(200, content=b"<!DOCTYPE html><html>hello</html>",
                              headers={"content-type": "image/jpeg"})
    if path == "/huge":
        return httpx.Response(200, content=b"\0" * 10, headers={"content-length": "50000000"})
    status = int(path.strip("/")) if path.strip("/").isdigit() else 404
    return httpx.Response(status, content=b"upstream says no")


class Sent:
    def __init__(self) -> None:
        self.urls: list[str] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.urls.append(str(request.url))
        return _upstream(request)


@pytest.fixture
def sent(known_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Sent:
    record = Sent()
    calls: list[str] = []
    stub = _resolver(NAMES, calls)

    def resolve(host: str, port: int) -> list[str]:
        # numeric hosts in other spellings resolve locally, as the system resolver
        # would (no query leaves the machine); names come only from the table
        if host not in NAMES and not any(c.isalpha() for c in host if c.isascii()):
            return default_resolve(host, port)
        return stub(host, port)

    monkeypatch.setattr(known_engine.fetcher, "_resolve", resolve)
    monkeypatch.setattr(known_engine.fetcher, "_transport", httpx.MockTransport(record.handler))
    return record


BLOCKED = [
    # C1 loopback
    "http://127.0.0.1/a.jpg", "http://127.0.0.2/", "http://127.255.255.254/",
    "http://localhost/a.jpg", "HTTP://LOCALHOST/", "http://localhost./", "http://[::1]/",
    "http://[0:0:0:0:0:0:0:1]/", "http://0.0.0.0/", "http://0/", "http://[::]/",
    # C2 cloud metadata
    "http://169.254.169.254/latest/meta-data/", "http://169.254.170.2/",
    "http://[fd00:ec2::254]/", "http://metadata.google.internal/computeMetadata/v1/",
    # C3 private, shared, reserved, multicast, broadcast, documentation ranges
    "http://10.0.0.1/", "http://10.255.255.255/", "http://172.16.0.1/",
    "http://172.31.255.255/", "http://192.168.0.1/", "http://100.64.0.1/",
    "http://100.127.255.254/", "http://198.18.0.1/", "http://198.19.255.255/",
    "http://224.0.0.1/", "http://239.255.255.250/", "http://255.255.255.255/",
    "http://240.0.0.1/", "http://192.0.0.1/", "http://192.0.2.1/", "http://198.51.100.7/",
    "http://203.0.113.5/", "http://[fc00::1]/", "http://[fd12:3456::1]/", "http://[fe80::1]/",
    "http://[ff02::1]/",
    # C4 encoded IPv4
    "http://2130706433/", "http://0x7f000001/", "http://0x7f.1/", "http://017700000001/",
    "http://0177.0.0.1/", "http://127.1/", "http://127.0.1/", "http://0x7f.0x0.0x0.0x1/",
    "http://167772161/", "http://3232235777/", "http://127\u30020\u30020\u30021/",
    # C5 IPv4 inside IPv6
    "http://[::ffff:127.0.0.1]/", "http://[::ffff:7f00:1]/", "http://[::ffff:10.0.0.1]/",
    "http://[::ffff:169.254.169.254]/", "http://[64:ff9b::7f00:1]/",
    "http://[2002:7f00:1::]/", "http://[::127.0.0.1]/", "http://[::1%25eth0]/",
    # C6 names that resolve inward (all of their addresses are checked)
    "http://internal.example/a.jpg", "http://mixed.example/a.jpg",
    "http://v6.internal.example/", "http://mapped.example/",
    # C10 userinfo: the host is what follows the last @
    "http://shop.example@127.0.0.1/", "http://93.184.216.34@10.0.0.1/",
    "http://user:pass@[::1]/", "http://shop.example\\@127.0.0.1/",
    # C11 ports on inward hosts
    "http://127.0.0.1:22/", "http://10.0.0.1:6379/", "http://[::1]:5432/",
    # C9 other schemes
    "ftp://shop.example/a.jpg", "gopher://127.0.0.1:70/", "dict://127.0.0.1:11211/",
    "ldap://shop.example/", "ws://127.0.0.1/", "file:///etc/passwd", "FILE:///etc/passwd",
    "http://shop.example:99999/",
]
NOT_URLS = ["//127.0.0.1/a.jpg", "data:image/png;base64,AAAA", "/etc/passwd",
            "127.0.0.1/a.jpg", "shop.example/a.jpg"]
# "scheme:" without "//": no URL to fetch, refused as such (web/convert.py url_input)
OPAQUE_URLS = ["javascript:alert(1)", "jar:http://shop.example/a.jar!/", "mailto:a@shop.example",
               "urn:isbn:0451450523", "data:text/html,<script>alert(1)</script>"]


def _routes(client: TestClient, url: str) -> list[httpx.Response]:
    return [client.post("/v1/search", json={"image_url": url}),
            client.post("/v1/search", json={"images": [url]}),
            client.put("/v1/items/from-url", json={"image_url": url})]


@pytest.mark.parametrize("url", BLOCKED)
def test_inward_urls_are_blocked_before_any_request(client: TestClient, sent: Sent,
                                                    url: str) -> None:
    for response in _routes(client, url):
        assert_error(response, 422, "blocked_url")
    batch = client.post("/v1/items:batch", json={"operations": [
        {"op": "upsert", "item": {"id": "from-url"}, "image_url": url}]}).json()
    assert batch["results"][0]["error"]["code"] == "blocked_url", batch
    assert sent.urls == []
    assert_error(client.get("/v1/items/from-url"), 404, "item_not_found")


@pytest.mark.parametrize("value", NOT_URLS)
def test_values_that_are_not_web_urls_are_refused(client: TestClient, sent: Sent,
                                                  value: str) -> None:
    assert_error(client.post("/v1/search", json={"image_url": value}), 400, "invalid_input")
    assert_error(client.put("/v1/items/from-url", json={"image_url": value}), 400,
                 "invalid_input")
    assert sent.urls == []


@pytest.mark.parametrize("value", OPAQUE_URLS)
def test_opaque_urls_are_refused_as_not_web_urls(client: TestClient, sent: Sent,
                                                 value: str) -> None:
    assert_error(client.post("/v1/search", json={"image_url": value}), 400, "invalid_input")
    assert_error(client.put("/v1/items/from-url", json={"image_url": value}), 400,
                 "invalid_input")
    assert sent.urls == []


@pytest.mark.parametrize("url", ["http://unknown.example/a.jpg", "http://ex ample.com/",
                                 "http://%31%32%37.0.0.1/", "http://" + "b" * 300 + ".example/"])
def test_unresolvable_hosts_fail_without_a_request(client: TestClient, sent: Sent,
                                                   url: str) -> None:
    for response in _routes(client, url):
        assert_error(response, 422, "fetch_failed")
    assert sent.urls == []


@pytest.mark.parametrize("url", ["http://127.0.0.1\\@shop.example/image.jpg",
                                 "http://127.0.0.1%2f@shop.example/image.jpg",
                                 "https://shop.example:443/image.jpg",
                                 "HTTP://SHOP.EXAMPLE/image.jpg"])
def test_tricky_spellings_of_a_public_url_go_where_they_were_checked(
        client: TestClient, sent: Sent, url: str) -> None:
    # C10: the address checked is the one connected to, however the URL is spelt
    found = client.post("/v1/search", json={"image_url": url, "limit": 1})
    assert found.status_code == 200, found.text
    assert found.json()["results"][0]["id"] == "k3"
    assert sent.urls and all(httpx.URL(u).host == "shop.example" for u in sent.urls)


REDIRECTS = [
    ("/to/http:__10.0.0.1_", 422, "blocked_url"),
    ("/to/http:__127.0.0.1:8080_admin", 422, "blocked_url"),
    ("/to/http:__169.254.169.254_latest_meta-data", 422, "blocked_url"),
    ("/to/http:__[::ffff:127.0.0.1]_", 422, "blocked_url"),
    ("/to/http:__internal.example_secret", 422, "blocked_url"),
    ("/to/http:__localhost_", 422, "blocked_url"),
    ("/to/file:___etc_passwd", 422, "blocked_url"),
    ("/to/gopher:__shop.example_", 422, "blocked_url"),
    ("/chain/9", 422, "fetch_failed"),
]


@pytest.mark.parametrize(("path", "status", "code"), REDIRECTS)
def test_every_redirect_hop_is_checked(client: TestClient, sent: Sent, path: str,
                                       status: int, code: str) -> None:
    # C8: only shop.example is ever asked; the inward hop is refused before its request
    error = assert_error(client.post("/v1/search", json={
        "image_url": f"http://shop.example{path}"}), status, code)
    assert all(httpx.URL(u).host == "shop.example" for u in sent.urls), sent.urls
    if path.startswith("/chain/"):
        assert "redirects" in error["message"]


def test_a_short_redirect_chain_is_followed(client: TestClient, sent: Sent) -> None:
    found = client.post("/v1/search", json={"image_url": "http://shop.example/chain/3",
                                            "limit": 1})
    assert found.status_code == 200 and found.json()["results"][0]["id"] == "k3"
    assert len(sent.urls) == 5


UPSTREAM = [
    ("/html-as-jpeg", 415, "unsupported_format", "HTML"),  # C13: sniffed, not trusted
    ("/huge", 413, "download_too_large", "announces"),  # C12
    ("/404", 422, "fetch_failed", "404"),  # C14
    ("/500", 422, "fetch_failed", "500"),
    ("/403", 422, "fetch_failed", "403"),
]


@pytest.mark.parametrize(("path", "status", "code", "fragment"), UPSTREAM)
def test_upstream_failures(client: TestClient, sent: Sent, path: str, status: int, code: str,
                           fragment: str) -> None:
    for response in _routes(client, f"http://shop.example{path}"):
        error = assert_error(response, status, code)
        assert fragment in error["message"]
    assert_error(client.get("/v1/items/from-url"), 404, "item_not_found")
    assert_intact(client)


@pytest.mark.parametrize("port", [22, 25, 6379, 5432, 9200])
def test_service_ports_of_public_hosts_are_refused(client: TestClient, sent: Sent,
                                                   port: int) -> None:
    response = client.post("/v1/search", json={"image_url": f"http://shop.example:{port}/"})
    assert response.status_code in (400, 422), response.text
    assert response.json()["error"]["code"] == "port_not_allowed"
    assert f"port {port}" in response.json()["error"]["message"]
    assert sent.urls == []


# ---- C7: DNS rebinding, through the real connection guard -------------------------------


@pytest.fixture(scope="module")
def loopback_server() -> Iterator[_Server]:
    yield from serving()


@pytest.mark.parametrize("second_answer", ["127.0.0.1", "::ffff:127.0.0.1"])
def test_dns_rebinding_is_refused_at_connect_time(client: TestClient, known_engine: Engine,
                                                  loopback_server: _Server,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  second_answer: str) -> None:
    answers: list[list[str]] = [[PUBLIC]]

    def rebinding(host: str, port: int) -> list[str]:
        assert host == "rebind.test"  # nothing else is ever looked up
        return answers.pop() if answers else [second_answer]

    attempts: list[Any] = []
    real_connect = socket.socket.connect

    def watch(sock: socket.socket, address: Any) -> Any:
        attempts.append(address)
        return real_connect(sock, address)

    monkeypatch.setattr(known_engine.fetcher, "_resolve", rebinding)
    monkeypatch.setattr(known_engine.fetcher, "_transport", None)
    monkeypatch.setattr(socket.socket, "connect", watch)
    before = sum(loopback_server.hits.values())
    port = loopback_server.server_address[1]
    for response in _routes(client, f"http://rebind.test:{port}/image.jpg"):
        assert_error(response, 422, "blocked_url")
        answers[:] = [[PUBLIC]]
    assert sum(loopback_server.hits.values()) == before
    assert attempts == []
