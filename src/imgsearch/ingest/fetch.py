"""Safe downloads of image URLs: SSRF protection, byte and time caps, retries.

Protection against server-side request forgery works at two points:

1. :func:`check_url` runs before every request and every redirect hop: only http(s),
   and (unless ``allow_private_urls``) every address the host resolves to must be a
   public one. Refused URLs never reach the network.
2. DNS can answer differently a moment later ("DNS rebinding"), so the connection
   itself goes through ``transport.GuardedBackend``, an httpcore network backend that
   resolves the host once more, checks those addresses, and connects to one of the
   checked IPs itself. TLS still verifies the certificate against the host name,
   because httpcore hands the original name to ``start_tls``.
"""

from __future__ import annotations

import concurrent.futures
import functools
import ipaddress
import random
import re
import socket
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from imgsearch.config import Settings
from imgsearch.errors import (
    BlockedURLError,
    DownloadTooLargeError,
    FetchError,
    InvalidInputError,
    PortNotAllowedError,
)

# httpx, httpcore, asyncio and anyio load with the first download, not with every start
if TYPE_CHECKING:
    import ssl

    import httpx

Resolver = Callable[[str, int], list[str]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_REDIRECTS = 5
# services that answer on a public host and must not be reached through an image URL;
# refused inside a range of ``url_ports``, allowed when that setting names them alone
SERVICE_PORTS = frozenset({
    1080, 1433, 1521, 2049, 2375, 2376, 2379, 2380, 3306, 3389, 4369, 5432, 5601,
    5672, 5900, 5984, 6379, 6443, 7001, 8086, 8500, 9000, 9042, 9092, 9200, 9300, 10250,
    11211, 15672, 27017, 27018, 28017})
DEFAULT_URL_PORTS = "80,443,8080,8443,1024-65535"
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_LEGACY_IPV4 = re.compile(r"^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}$", re.IGNORECASE)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_HEADERS = {"User-Agent": "imgsearch/0.1", "Accept": "image/*",
            # a compressed body could expand far beyond the byte cap inside one chunk
            "Accept-Encoding": "identity"}
_T = TypeVar("_T")


def default_resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, in the resolver's order, without duplicates."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _ip_literal(host: str) -> IPAddress | None:
    """The address a host names directly, including legacy forms like ``2130706433``."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    if _LEGACY_IPV4.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def blocked_reason(address: IPAddress) -> str | None:
    """Why connecting to ``address`` is refused, or None for a public address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if address in _NAT64 or (embedded is None and int(address) >> 32 == 0 and
                                 int(address) > 1):  # NAT64 and IPv4-compatible forms
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return blocked_reason(embedded)
    checks = (
        ("unspecified", address.is_unspecified), ("loopback", address.is_loopback),
        ("link-local", address.is_link_local), ("multicast", address.is_multicast),
        ("private", address.is_private), ("reserved", address.is_reserved),
        ("carrier-grade NAT", address in _CGNAT),
        ("site-local", isinstance(address, ipaddress.IPv6Address) and address.is_site_local),
        ("non-public", not address.is_global),
    )
    return next((name for name, hit in checks if hit), None)


def _checked_addresses(host: str, port: int, allow_private: bool, resolve: Resolver,
                       url: str) -> list[str]:
    literal = _ip_literal(host)
    if literal is not None:
        addresses = [str(literal)]
    else:
        try:
            addresses = resolve(host, port)
        except (OSError, UnicodeError) as exc:
            raise FetchError(f"{url}: cannot resolve host {host!r} ({exc})", url=url) from None
        if not addresses:
            raise FetchError(f"{url}: host {host!r} has no address", url=url)
    if not allow_private:
        for text in addresses:
            try:
                reason = blocked_reason(ipaddress.ip_address(text))
            except ValueError:
                reason = "unparsable"
            if reason is not None:
                names = "is" if literal is not None else f"resolves to {text}, which is"
                raise BlockedURLError(
                    f"{url}: refused, {host!r} {names} a {reason} address; only "
                    "public addresses are allowed (set allow_private_urls to permit it)",
                    url=url)
    return addresses


def _split(url: str) -> tuple[str, int]:
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise BlockedURLError(f"{url}: not a valid URL ({exc})", url=url) from None
    if scheme not in ("http", "https"):
        raise BlockedURLError(f"{url}: only http and https URLs can be downloaded", url=url)
    if not host:
        raise BlockedURLError(f"{url}: the URL has no host", url=url)
    return host, port or (443 if scheme == "https" else 80)


@functools.lru_cache(maxsize=8)
def _port_policy(spec: str) -> tuple[frozenset[int], tuple[tuple[int, int], ...]]:
    """(ports named alone, ranges) of a ``url_ports`` value like ``80,443,1024-65535``."""
    alone: set[int] = set()
    ranges: list[tuple[int, int]] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        low, _, high = part.partition("-")
        try:
            first, last = int(low), int(high or low)
        except ValueError:
            raise InvalidInputError(f"url_ports: {part!r} is neither a port nor a range "
                                    f"like 1024-65535") from None
        if not 1 <= first <= last <= 65535:
            raise InvalidInputError(f"url_ports: {part!r} is not within 1-65535")
        if high:
            ranges.append((first, last))
        else:
            alone.add(first)
    return frozenset(alone), tuple(ranges)


def port_allowed(port: int, spec: str = DEFAULT_URL_PORTS) -> bool:
    alone, ranges = _port_policy(spec)
    return port in alone or (port not in SERVICE_PORTS
                             and any(lo <= port <= hi for lo, hi in ranges))


def check_url(url: str, *, allow_private: bool, resolve: Resolver = default_resolve,
              ports: str = DEFAULT_URL_PORTS) -> None:
    """Raise :class:`BlockedURLError` unless ``url`` may be downloaded."""
    host, port = _split(url)
    if not allow_private:
        _checked_addresses(host, port, allow_private, resolve, url)
    if not port_allowed(port, ports):
        raise PortNotAllowedError(
            f"{url}: refused, port {port} is not one images are fetched from (it may be "
            f"another service's); allowed: {ports} except well-known service ports "
            f"(setting url_ports)", url=url)


class _Transient(Exception):
    """A failure worth retrying; ``wait`` is the server's Retry-After, if any."""

    def __init__(self, reason: str, wait: float = 0.0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.wait = wait


class Fetcher:
    """Downloads image URLs within the limits of ``settings``."""

    def __init__(
        self,
        settings: Settings,
        *,
        resolve: Resolver = default_resolve,
        transport: httpx.AsyncBaseTransport | None = None,
        backoff_s: float = 0.5,
    ) -> None:
        self._settings = settings
        self._resolve = resolve
        self._transport = transport
        self._backoff_s = backoff_s
        self._ssl_context: ssl.SSLContext | None = None

    def _client(self) -> httpx.AsyncClient:
        import httpx

        from imgsearch.ingest.transport import guarded_transport

        transport = self._transport
        if transport is None:
            if self._ssl_context is None:  # loading the CA bundle costs milliseconds
                self._ssl_context = httpx.create_ssl_context(trust_env=False)
            allow, resolve = self._settings.allow_private_urls, self._resolve

            def check(host: str, port: int, url: str) -> list[str]:
                return _checked_addresses(host, port, allow, resolve, url)

            transport = guarded_transport(check, self._ssl_context)
        # trust_env=False: an environment proxy would connect on our behalf, unchecked.
        return httpx.AsyncClient(transport=transport, follow_redirects=False, trust_env=False,
                                 timeout=self._settings.download_timeout_s, headers=_HEADERS)

    async def fetch(self, url: str) -> bytes:
        async with self._client() as client:
            return await self._fetch(client, url)

    def fetch_one(self, url: str) -> bytes:
        return _run(self.fetch(url))

    def fetch_many(self, urls: Sequence[str]) -> dict[str, bytes | FetchError]:
        """Download every URL, at most ``download_concurrency`` at a time."""
        return _run(self._fetch_all(list(dict.fromkeys(urls))))

    async def _fetch_all(self, urls: list[str]) -> dict[str, bytes | FetchError]:
        import asyncio

        gate = asyncio.Semaphore(max(1, self._settings.download_concurrency))
        results: dict[str, bytes | FetchError] = {}

        async def one(client: httpx.AsyncClient, url: str) -> None:
            async with gate:
                try:
                    results[url] = await self._fetch(client, url)
                except FetchError as exc:
                    results[url] = exc

        async with self._client() as client:
            await asyncio.gather(*(one(client, url) for url in urls))
        return {url: results[url] for url in urls}

    async def _fetch(self, client: httpx.AsyncClient, url: str) -> bytes:
        import asyncio

        import httpx

        retries = max(0, self._settings.download_retries)
        for attempt in range(retries + 1):
            try:
                async with asyncio.timeout(self._settings.download_timeout_s):
                    return await self._attempt(client, url)
            except (TimeoutError, httpx.TimeoutException):
                failure = _Transient(f"timed out after {self._settings.download_timeout_s} s")
            except (httpx.TransportError, httpx.RemoteProtocolError) as exc:
                if isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError):
                    raise FetchError(f"{url}: cannot request this URL ({exc})", url=url
                                     ) from None
                failure = _Transient(f"network error: {exc or type(exc).__name__}")
            except _Transient as exc:
                failure = exc
            except httpx.InvalidURL as exc:
                raise BlockedURLError(f"{url}: not a valid URL ({exc})", url=url) from None
            if attempt == retries:
                tries = f" (after {retries + 1} tries)" if retries else ""
                raise FetchError(f"{url}: {failure.reason}{tries}", url=url)
            delay = self._backoff_s * 2**attempt
            await asyncio.sleep(max(failure.wait, random.uniform(delay / 2, delay)))
        raise AssertionError("unreachable")

    async def _attempt(self, client: httpx.AsyncClient, url: str) -> bytes:
        import anyio.to_thread

        settings = self._settings
        current = url
        for _hop in range(MAX_REDIRECTS + 1):
            await anyio.to_thread.run_sync(functools.partial(
                check_url, current, allow_private=settings.allow_private_urls,
                ports=settings.url_ports,
                resolve=self._resolve))
            request = client.build_request("GET", current)
            try:
                response = await client.send(request, stream=True)
            except FetchError as exc:  # refused by the guarded backend at connect time
                raise type(exc)(f"{current}: {exc.message}", url=url) from None
            try:
                status = response.status_code
                if status in _REDIRECT_STATUSES and "location" in response.headers:
                    current = str(response.url.join(response.headers["location"]))
                    continue
                if status == 429 or status >= 500:
                    raise _Transient(f"server answered HTTP {status}", _retry_after(response))
                if status >= 400:
                    raise FetchError(f"{url}: server answered HTTP {status}", url=url)
                return await self._read_body(response, url)
            finally:
                await response.aclose()
        raise FetchError(f"{url}: more than {MAX_REDIRECTS} redirects", url=url)

    async def _read_body(self, response: httpx.Response, url: str) -> bytes:
        cap = self._settings.max_download_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            raise DownloadTooLargeError(
                f"{url}: the server announces {declared} bytes, over the limit of {cap} bytes",
                url=url)
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > cap:
                raise DownloadTooLargeError(f"{url}: the body is over the limit of {cap} bytes",
                                            url=url)
        return bytes(body)


def _retry_after(response: httpx.Response) -> float:
    value = response.headers.get("retry-after", "")
    return min(float(value), 30.0) if value.isdigit() else 0.0


def _run(coroutine: Coroutine[Any, Any, _T]) -> _T:
    """Run a coroutine to completion from sync code, even inside a running event loop."""
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
