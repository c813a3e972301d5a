"""Safe downloads. The only sockets these tests open are on 127.0.0.1: every other
address is either refused before any connection, or served by an in-memory transport."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from imagegen import jpeg_bytes
from imgsearch.config import Settings
from imgsearch.errors import BlockedURLError, DownloadTooLargeError, FetchError
from imgsearch.ingest.fetch import Fetcher, check_url

IMAGE = jpeg_bytes(7)
CAP = 200_000


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
              ) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path
        self.server.hits[path] += 1
        self.server.hosts.append(self.headers.get("Host", ""))
        route, _, _ = path.partition("?")
        # the client hangs up on purpose when it hits the byte cap or its timeout
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._route(route, self.server.hits[path])

    def _route(self, route: str, hit: int) -> None:
        if route == "/image.jpg":
            self._send(200, IMAGE, {"Content-Type": "image/jpeg"})
        elif route == "/redirect":
            self._send(302, headers={"Location": "/image.jpg"})
        elif route.startswith("/chain/"):
            left = int(route.rsplit("/", 1)[1])
            target = "/image.jpg" if left == 0 else f"/chain/{left - 1}"
            self._send(302, headers={"Location": target})
        elif route == "/redirect-to-file":
            self._send(302, headers={"Location": "file:///etc/passwd"})
        elif route == "/flaky":
            if hit == 1:
                self._send(500, b"try again")
            else:
                self._send(200, IMAGE)
        elif route == "/always-503":
            self._send(503, b"down")
        elif route == "/missing":
            self._send(404, b"no")
        elif route == "/slow":
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline and not self.server.stopping:
                time.sleep(0.02)
            self._send(200, IMAGE)
        elif route == "/huge-declared":
            self.send_response(200)
            self.send_header("Content-Length", str(50 * 1024 * 1024))
            self.end_headers()
            self.wfile.write(b"\0" * 65536)
        elif route == "/huge-chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = b"\0" * 16384
            for _ in range(200):  # 3 MB at most, far over the cap
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self._send(404)


class _Server(ThreadingHTTPServer):
    hits: Counter[str]
    hosts: list[str]
    stopping: bool


def serving() -> Iterator[_Server]:
    """A loopback HTTP server counting its hits, running until the generator closes."""
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.hits, httpd.hosts, httpd.stopping = Counter(), [], False
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.stopping = True
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def server() -> Iterator[_Server]:
    yield from serving()


def _base(server: _Server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def _settings(**changes: Any) -> Settings:
    values: dict[str, Any] = {"allow_private_urls": True, "max_download_bytes": CAP,
                              "download_timeout_s": 5.0, "download_retries": 2}
    values.update(changes)
    return Settings(**values)


def _fetcher(**changes: Any) -> Fetcher:
    return Fetcher(_settings(**changes), backoff_s=0.01)


def _resolver(table: dict[str, list[str]], calls: list[str]) -> Callable[[str, int], list[str]]:
    def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        if host not in table:
            raise OSError(f"unknown host {host}")  # what a failed lookup looks like
        return table[host]
    return resolve


def _refusing_transport(seen: list[str]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, content=IMAGE)
    return httpx.MockTransport(handler)


# ---- legitimate downloads from the loopback server -----------------------------------


def test_downloads_an_image(server: _Server) -> None:
    assert _fetcher().fetch_one(f"{_base(server)}/image.jpg") == IMAGE


def test_follows_redirects_and_rechecks_each_hop(server: _Server) -> None:
    assert _fetcher().fetch_one(f"{_base(server)}/redirect") == IMAGE
    assert _fetcher().fetch_one(f"{_base(server)}/chain/4") == IMAGE


def test_too_many_redirects_is_an_error(server: _Server) -> None:
    with pytest.raises(FetchError, match="redirects") as caught:
        _fetcher().fetch_one(f"{_base(server)}/chain/9")
    assert "/chain/9" in caught.value.message
    assert caught.value.url.endswith("/chain/9")


def test_redirect_to_a_forbidden_scheme_is_blocked(server: _Server) -> None:
    with pytest.raises(BlockedURLError, match="only http and https"):
        _fetcher().fetch_one(f"{_base(server)}/redirect-to-file")


def test_server_error_is_retried_then_succeeds(server: _Server) -> None:
    url = f"{_base(server)}/flaky?key=retry-once"
    assert _fetcher().fetch_one(url) == IMAGE
    assert server.hits["/flaky?key=retry-once"] == 2


def test_persistent_server_error_gives_up_after_the_retries(server: _Server) -> None:
    with pytest.raises(FetchError, match="HTTP 503") as caught:
        _fetcher(download_retries=2).fetch_one(f"{_base(server)}/always-503?key=a")
    assert "after 3 tries" in caught.value.message
    assert server.hits["/always-503?key=a"] == 3


def test_client_error_is_not_retried(server: _Server) -> None:
    with pytest.raises(FetchError, match="HTTP 404"):
        _fetcher(download_retries=3).fetch_one(f"{_base(server)}/missing?key=b")
    assert server.hits["/missing?key=b"] == 1


def test_slow_server_times_out(server: _Server) -> None:
    with pytest.raises(FetchError, match="timed out"):
        _fetcher(download_timeout_s=0.3, download_retries=0).fetch_one(f"{_base(server)}/slow")


def test_declared_length_over_the_cap_is_refused_early(server: _Server) -> None:
    with pytest.raises(DownloadTooLargeError, match="announces") as caught:
        _fetcher().fetch_one(f"{_base(server)}/huge-declared")
    assert "/huge-declared" in caught.value.message


def test_chunked_body_over_the_cap_is_cut_off(server: _Server) -> None:
    with pytest.raises(DownloadTooLargeError, match=f"limit of {CAP} bytes"):
        _fetcher().fetch_one(f"{_base(server)}/huge-chunked")


def test_fetch_many_reports_each_url(server: _Server) -> None:
    good = f"{_base(server)}/image.jpg"
    missing = f"{_base(server)}/missing?key=many"
    results = _fetcher(download_concurrency=2).fetch_many([good, missing, good, "ftp://x/y"])
    assert list(results) == [good, missing, "ftp://x/y"]
    assert results[good] == IMAGE
    assert isinstance(results[missing], FetchError)
    assert isinstance(results["ftp://x/y"], BlockedURLError)


def test_fetch_one_works_inside_a_running_event_loop(server: _Server) -> None:
    async def inside() -> bytes:
        return _fetcher().fetch_one(f"{_base(server)}/image.jpg")

    assert asyncio.run(inside()) == IMAGE


def test_connects_to_the_address_our_resolver_gave(server: _Server) -> None:
    calls: list[str] = []
    port = server.server_address[1]
    fetcher = Fetcher(_settings(), resolve=_resolver({"images.test": ["127.0.0.1"]}, calls))
    assert fetcher.fetch_one(f"http://images.test:{port}/image.jpg") == IMAGE
    assert "images.test" in calls
    assert server.hosts[-1] == f"images.test:{port}"  # the Host header keeps the name


# ---- refusals: nothing is connected to ---------------------------------------------


BLOCKED_LITERALS = [
    "http://127.0.0.1/x", "http://127.0.0.1:8080/", "http://10.0.0.1/",
    "http://169.254.169.254/latest/meta-data", "http://[::1]/", "http://0.0.0.0/",
    "http://[::]/", "http://172.16.5.4/", "http://192.168.1.1/", "http://100.64.0.1/",
    "http://224.0.0.1/", "http://240.0.0.1/", "http://[fe80::1]/", "http://[fc00::1]/",
    "http://[::ffff:127.0.0.1]/", "http://[::ffff:a9fe:a9fe]/", "http://[64:ff9b::a00:1]/",
    "http://2130706433/", "http://0x7f.0.0.1/", "http://127.1/",
]


@pytest.mark.parametrize("url", BLOCKED_LITERALS)
def test_non_public_addresses_are_blocked_without_resolving(url: str) -> None:
    calls: list[str] = []
    with pytest.raises(BlockedURLError, match="refused"):
        check_url(url, allow_private=False, resolve=_resolver({}, calls))
    assert calls == []


@pytest.mark.parametrize("url", ["ftp://x/", "file:///etc/passwd", "gopher://a/",
                                 "javascript:alert(1)", "http:///nohost", "http://[::1/"])
def test_other_schemes_and_bad_urls_are_blocked_even_when_private_is_allowed(url: str) -> None:
    with pytest.raises(BlockedURLError):
        check_url(url, allow_private=True, resolve=_resolver({}, []))


def test_every_resolved_address_must_be_public() -> None:
    table = {"shop.example": ["93.184.216.34"],
             "mixed.example": ["93.184.216.34", "10.1.2.3"],
             "internal.example": ["10.1.2.3"]}
    check_url("https://shop.example/a.jpg", allow_private=False, resolve=_resolver(table, []))
    check_url("http://93.184.216.34/a.jpg", allow_private=False, resolve=_resolver(table, []))
    for host in ("mixed.example", "internal.example"):
        with pytest.raises(BlockedURLError, match=r"resolves to 10\.1\.2\.3"):
            check_url(f"http://{host}/", allow_private=False, resolve=_resolver(table, []))


def test_allow_private_permits_loopback() -> None:
    check_url("http://127.0.0.1:8080/x", allow_private=True, resolve=_resolver({}, []))


@pytest.mark.parametrize("url", [*BLOCKED_LITERALS[:7], "ftp://x", "file:///etc/passwd",
                                 "http://internal.example/img.jpg"])
def test_fetcher_refuses_before_any_request(url: str) -> None:
    seen: list[str] = []
    fetcher = Fetcher(_settings(allow_private_urls=False),
                      resolve=_resolver({"internal.example": ["10.1.2.3"]}, []),
                      transport=_refusing_transport(seen))
    with pytest.raises(BlockedURLError) as caught:
        fetcher.fetch_one(url)
    assert seen == []
    assert caught.value.url == url


@pytest.mark.parametrize("target", ["http://internal.example/secret",
                                    "http://169.254.169.254/latest/meta-data",
                                    "http://[::1]:8080/admin"])
def test_redirect_to_a_blocked_address_is_refused_before_connecting(target: str) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if request.url.host == "shop.example":
            return httpx.Response(302, headers={"Location": target})
        return httpx.Response(200, content=b"secret")

    table = {"shop.example": ["93.184.216.34"], "internal.example": ["10.1.2.3"]}
    fetcher = Fetcher(_settings(allow_private_urls=False), resolve=_resolver(table, []),
                      transport=httpx.MockTransport(handler))
    with pytest.raises(BlockedURLError):
        fetcher.fetch_one("http://shop.example/item")
    assert seen == ["http://shop.example/item"]


def test_dns_rebinding_is_caught_at_connect_time(server: _Server) -> None:
    # The first lookup (the check) sees a public address, the next one (the connection)
    # sees loopback: the connection must be refused, not made.
    answers = iter([["93.184.216.34"]])
    calls: list[str] = []

    def rebinding(host: str, port: int) -> list[str]:
        calls.append(host)
        return next(answers, ["127.0.0.1"])

    port = server.server_address[1]
    before = sum(server.hits.values())
    fetcher = Fetcher(_settings(allow_private_urls=False), resolve=rebinding)
    with pytest.raises(BlockedURLError, match="loopback"):
        fetcher.fetch_one(f"http://rebind.test:{port}/image.jpg")
    assert calls == ["rebind.test", "rebind.test"]
    assert sum(server.hits.values()) == before


def test_loopback_server_is_blocked_by_default(server: _Server) -> None:
    before = sum(server.hits.values())
    with pytest.raises(BlockedURLError, match="loopback"):
        Fetcher(_settings(allow_private_urls=False)).fetch_one(f"{_base(server)}/image.jpg")
    assert sum(server.hits.values()) == before


def test_rate_limit_is_retried() -> None:
    answers = iter([httpx.Response(429, headers={"Retry-After": "0"}),
                    httpx.Response(200, content=IMAGE)])
    fetcher = Fetcher(_settings(allow_private_urls=False),
                      resolve=_resolver({"cdn.example": ["93.184.216.34"]}, []),
                      transport=httpx.MockTransport(lambda request: next(answers)),
                      backoff_s=0.01)
    assert fetcher.fetch_one("https://cdn.example/a.jpg") == IMAGE


def test_unresolvable_host_is_a_fetch_error() -> None:
    fetcher = Fetcher(_settings(allow_private_urls=False), resolve=_resolver({}, []),
                      transport=_refusing_transport([]))
    with pytest.raises(FetchError, match="cannot resolve"):
        fetcher.fetch_one("http://nowhere.example/a.jpg")
