"""The network side of safe downloads: a transport that connects only to checked addresses.

Split from ``fetch`` so that httpx and httpcore load with the first download rather than
with every command that merely imports the engine (see ``fetch`` for the whole design).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterable
from typing import Any

import anyio.to_thread
import httpcore
import httpx

# (host, port, what for) -> the checked addresses to connect to; ``fetch`` supplies it
AddressCheck = Callable[[str, int, str], list[str]]


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Connects only to addresses it has resolved and checked itself (see module doc)."""

    def __init__(self, check: AddressCheck) -> None:
        self._check = check
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await anyio.to_thread.run_sync(
            self._check, host, port, f"connecting to {host}:{port}")
        last_error: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(address, port, timeout, local_address,
                                                     socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        raise httpcore.ConnectError(f"cannot connect to {host}:{port} ({last_error})")

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not used for downloads")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_transport(check: AddressCheck,
                      ssl_context: ssl.SSLContext) -> httpx.AsyncHTTPTransport:
    transport = httpx.AsyncHTTPTransport(verify=ssl_context, trust_env=False)
    # httpx offers no public hook for the network backend; its transport is a thin
    # wrapper around this pool, so swapping the pool keeps its request/response mapping.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=ssl_context,
        max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0,
        network_backend=GuardedBackend(check))
    return transport
