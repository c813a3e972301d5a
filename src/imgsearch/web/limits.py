"""Request limits as pure ASGI middleware: body size, concurrency and a deadline.

- The body-size guard counts the bytes actually received, so a chunked upload without
  ``Content-Length`` is cut off as soon as it passes the cap.
- The concurrency gate admits at most ``max_in_flight`` requests being handled; beyond
  that it answers 503 with ``Retry-After`` at once instead of queueing without bound.
  A request with a body enters the gate once its body has arrived, so connections that
  trickle half a body (slowloris) take no place from the requests being worked on; each
  wait for the next piece of a body is capped (``body_timeout_s``: 408 and the
  connection closed).
- The deadline answers 504 when a request has not started its response in time.
  Engine work runs in worker threads that cannot be interrupted, so a thread
  abandoned by the deadline keeps its place at the gate until it really ends.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imgsearch.web.errors import BodyTimeoutError, BodyTooLargeError, OverloadedError, error_bytes

_T = TypeVar("_T")

# Probes and scrapes must answer even when the server is saturated.
UNGATED_PATHS = frozenset({"/health", "/ready", "/metrics"})


@dataclass(frozen=True)
class Limits:
    """What one request may cost. ``max_body_bytes`` None: the settings' max_file_bytes."""

    max_body_bytes: int | None = None
    deadline_s: float = 30.0
    max_in_flight: int = 64
    retry_after_s: int = 1
    max_batch: int = 1000
    max_query_images: int = 16
    body_timeout_s: float = 10.0  # longest wait for the next piece of a request body
    max_header_bytes: int = 64 * 1024  # request line and headers (``web.protocol``)
    header_timeout_s: float = 10.0  # from connecting (or a request's first byte) to headers


class Gate:
    """Counts requests in flight plus engine threads still running for abandoned ones."""

    def __init__(self, limit: int, workers: int | None = None) -> None:
        self.limit = max(1, limit)
        self.requests = 0
        self.orphans = 0
        self.lock = threading.Lock()
        # Engine work is CPU-bound Python and FAISS: more threads than about two per core
        # only add contention (measured by bench/load.py), so requests queue for a few.
        self.workers = workers or 2 * (os.cpu_count() or 1)
        self.limiter: anyio.CapacityLimiter | None = None

    def try_enter(self) -> bool:
        with self.lock:
            if self.requests + self.orphans >= self.limit:
                return False
            self.requests += 1
            return True

    def leave(self) -> None:
        with self.lock:
            self.requests -= 1

    @property
    def in_flight(self) -> int:
        with self.lock:
            return self.requests + self.orphans


async def run_blocking(gate: Gate, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """Run blocking engine work in a worker thread without blocking the event loop.

    On cancellation (the deadline) the request stops waiting at once; the thread runs
    on and is counted at the gate as an orphan until it finishes.
    """
    state = {"finished": False, "abandoned": False}

    def work() -> _T:
        try:
            return fn(*args, **kwargs)
        finally:
            with gate.lock:
                state["finished"] = True
                if state["abandoned"]:
                    gate.orphans -= 1

    if gate.limiter is None:
        gate.limiter = anyio.CapacityLimiter(gate.workers)
    try:
        return await anyio.to_thread.run_sync(work, abandon_on_cancel=True,
                                              limiter=gate.limiter)
    except BaseException:
        with gate.lock:
            if not state["finished"]:
                state["abandoned"] = True
                gate.orphans += 1
        raise


async def send_error(send: Send, status: int, code: str, message: str,
                      headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = error_bytes(code, message)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                declared = value.decode("latin-1").strip()
                if declared.isdigit() and int(declared) > limit:
                    await send_error(send, 413, "body_too_large",
                                      str(BodyTooLargeError(limit).detail))
                    return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLargeError(limit)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except BodyTooLargeError as exc:
            # Only reached when the body was read outside the routes' error handling.
            if started:
                raise
            await send_error(send, 413, "body_too_large", str(exc.detail))


class DeadlineMiddleware:
    def __init__(self, app: ASGIApp, deadline_s: float) -> None:
        self.app = app
        self.deadline_s = deadline_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNGATED_PATHS:
            await self.app(scope, receive, send)
            return
        started = False

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        with anyio.move_on_after(self.deadline_s) as cancel_scope:
            await self.app(scope, receive, watched_send)
        if cancel_scope.cancelled_caught and not started:
            await send_error(send, 504, "deadline_exceeded",
                              f"the request did not finish within {self.deadline_s:g} s; "
                              f"try a smaller request or retry later")


class ConcurrencyMiddleware:
    def __init__(self, app: ASGIApp, gate: Gate, retry_after_s: int,
                 body_timeout_s: float = 10.0) -> None:
        self.app = app
        self.gate = gate
        self.retry_after_s = retry_after_s
        self.body_timeout_s = body_timeout_s

    def _overloaded(self) -> OverloadedError:
        return OverloadedError(self.gate.limit, self.retry_after_s)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNGATED_PATHS:
            await self.app(scope, receive, send)
            return
        entered = False
        body_done = not _has_body(scope)
        if body_done:
            if not self.gate.try_enter():
                await _send_http_error(send, self._overloaded())
                return
            entered = True
        started = False

        async def gated_receive() -> Message:
            nonlocal entered, body_done
            if body_done:  # afterwards, receive only waits for a disconnect
                return await receive()
            with anyio.move_on_after(self.body_timeout_s) as waiting:
                message = await receive()
            if waiting.cancelled_caught:
                raise BodyTimeoutError(self.body_timeout_s)
            if message["type"] == "http.request" and not message.get("more_body", False):
                body_done = True
                if not self.gate.try_enter():
                    raise self._overloaded()
                entered = True
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, gated_receive, watched_send)
        except (BodyTimeoutError, OverloadedError) as exc:
            # Only reached when the body was read outside the routes' error handling.
            if started:
                raise
            await _send_http_error(send, exc)
        finally:
            if entered:
                self.gate.leave()


def _has_body(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"transfer-encoding":
            return True
        if name == b"content-length":
            return value.strip() not in (b"", b"0")
    return False


async def _send_http_error(send: Send, exc: BodyTimeoutError | OverloadedError) -> None:
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1"))
               for k, v in (exc.headers or {}).items()]
    await send_error(send, exc.status_code, exc.code, str(exc.detail), headers)


__all__ = [
    "UNGATED_PATHS",
    "BodyLimitMiddleware",
    "ConcurrencyMiddleware",
    "DeadlineMiddleware",
    "Gate",
    "Limits",
    "run_blocking",
    "send_error",
]
