"""uvicorn's httptools protocol with limits on the request line and headers.

httptools buffers headers of any size and uvicorn waits for them as long as the client
likes, so a client can hold a connection (and memory) by sending a huge header or
sending its headers slowly. Here the bytes that arrive before the headers are complete
are counted, up to the blank line that ends them, not the body that may follow in the
same read (431 past ``max_header_bytes``, the cap h11 applies by itself through
``h11_max_incomplete_event_size``), and the headers must be complete within
``header_timeout_s`` of the connection opening or of the request's first byte (408).
Either way the connection is closed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from imgsearch.web.errors import error_bytes
from imgsearch.web.limits import Limits


class GuardedHttpTools(HttpToolsProtocol):
    max_header_bytes = Limits().max_header_bytes
    header_timeout_s = Limits().header_timeout_s

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_headers = True
        self._header_bytes = 0
        self._tail = b""  # the last bytes of headers read so far: the blank line may span reads
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_headers:
            seen = self._tail + data
            end = seen.find(b"\r\n\r\n")
            # only what comes before the end of the headers counts: a body sent in the
            # same packet as its headers is the body's limits' business
            self._header_bytes += len(data) if end < 0 else max(end + 4 - len(self._tail), 0)
            self._tail = seen[-3:]
            if self._header_bytes > self.max_header_bytes:
                self._refuse(431, "Request Header Fields Too Large", "headers_too_large",
                             f"the request line and headers are over the limit of "
                             f"{self.max_header_bytes} bytes")
                return
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
        self._header_bytes = 0
        self._tail = b""
        if self._header_timer is None:
            self._arm()

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._disarm()
        super().on_headers_complete()

    def _arm(self) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _too_slow(self) -> None:
        self._header_timer = None
        if self._in_headers and not self.transport.is_closing():
            self._refuse(408, "Request Timeout", "request_timeout",
                         f"the request line and headers did not arrive within "
                         f"{self.header_timeout_s:g} s")

    def _refuse(self, status: int, reason: str, code: str, message: str) -> None:
        self._in_headers = False
        self._disarm()
        body = error_bytes(code, message)
        self.transport.write(f"HTTP/1.1 {status} {reason}\r\n".encode()
                             + b"content-type: application/json\r\nconnection: close\r\n"
                             + b"content-length: " + str(len(body)).encode() + b"\r\n\r\n"
                             + body)
        self.transport.close()


def guarded_protocol(limits: Limits) -> type[GuardedHttpTools]:
    """The protocol class with ``limits``' header cap and header timeout."""
    return type("GuardedHttpTools", (GuardedHttpTools,), {
        "max_header_bytes": limits.max_header_bytes,
        "header_timeout_s": limits.header_timeout_s})


__all__ = ["GuardedHttpTools", "guarded_protocol"]
