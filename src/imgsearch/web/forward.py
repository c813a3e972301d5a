"""Several server processes over one collection: writes go to the one that holds it.

A collection has one writer. With ``imgsearch serve --workers N`` every process answers
searches from an engine of its own; the process holding the writer lock also listens on
a private loopback port and says where in ``<collection>/serve-writer.json``. The other
processes open the collection read-only and hand each write request (item PUT and
DELETE, ``POST /v1/items:batch``) to that port unchanged, then relay the answer. Their
engines take in every committed write before their next read (``Engine.refresh``), so a
write acknowledged through any process is seen by the next search through any other.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imgsearch.web.limits import send_error

WRITER_FILE = "serve-writer.json"
# headers that describe one hop, not the request: never passed on
_HOP = {b"host", b"connection", b"keep-alive", b"transfer-encoding", b"content-length",
        b"te", b"trailer", b"upgrade", b"proxy-connection"}
_OWN = {b"date", b"server", b"x-request-id"}
# checked by the process that received the request (web.security) against its own Host;
# the writer sees the loopback hop's Host instead, so it is not passed on
_CHECKED_HERE = {b"origin"}


def is_write(method: str, path: str) -> bool:
    """The API's writes: item PUT and DELETE, and the batch of upserts and deletes."""
    if path == "/v1/items:batch":
        return method == "POST"
    return method in ("PUT", "DELETE") and path.startswith("/v1/items/")


def publish_writer(collection: Path, url: str) -> None:
    """Say where the writer listens (atomically: readers never see half a file)."""
    path = collection / WRITER_FILE
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"url": url, "pid": os.getpid()}))
    os.replace(tmp, path)


def withdraw_writer(collection: Path) -> None:
    path = collection / WRITER_FILE
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass


def writer_url(collection: Path) -> str | None:
    """Where the writer listens; None when no live process says so (a writer killed
    without withdrawing leaves a file naming a pid that is gone)."""
    try:
        data = json.loads((collection / WRITER_FILE).read_text())
        url, pid = data.get("url"), int(data.get("pid"))
    except (OSError, ValueError, AttributeError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, someone else's
    return url if isinstance(url, str) and url.startswith("http://127.0.0.1:") else None


class WriteForwardMiddleware:
    """In a read-only process: relay the API's writes to the writer process."""

    def __init__(self, app: ASGIApp, collection: Path, timeout_s: float = 120.0) -> None:
        self.app = app
        self.collection = collection
        self.timeout_s = timeout_s
        self._client: httpx.AsyncClient | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_write(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        body = bytearray()
        while True:  # the body limit outside this middleware has already capped it
            message: Message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        url = writer_url(self.collection)
        if url is None:
            await _unavailable(send, "no process holds this collection's writer lock yet")
            return
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout_s)
        headers = [(k, v) for k, v in scope["headers"]
                   if k.lower() not in _HOP and k.lower() not in _CHECKED_HERE
                   and k.lower() != b"x-request-id"]
        request_id = scope.get("state", {}).get("request_id")
        if request_id:  # the writer logs the write under the id this process gave it
            headers.append((b"x-request-id", request_id.encode("latin-1")))
        target = url + scope.get("raw_path", scope["path"].encode()).decode("latin-1")
        if scope.get("query_string"):
            target += "?" + scope["query_string"].decode("latin-1")
        try:
            answer = await self._client.request(scope["method"], target, headers=headers,
                                                content=bytes(body))
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            await _unavailable(send, f"the collection's writer did not answer "
                                     f"({type(exc).__name__})")
            return
        # this process's own server and access log add date and request id again
        out: list[Any] = [(k.lower(), v) for k, v in answer.headers.raw
                          if k.lower() not in _HOP and k.lower() not in _OWN]
        out.append((b"content-length", str(len(answer.content)).encode()))
        await send({"type": "http.response.start", "status": answer.status_code,
                    "headers": out})
        await send({"type": "http.response.body", "body": answer.content})

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


async def _unavailable(send: Send, why: str) -> None:
    await send_error(send, 503, "writer_unavailable", f"{why}; retry in a moment",
                     [(b"retry-after", b"1")])


__all__ = ["WRITER_FILE", "WriteForwardMiddleware", "is_write", "publish_writer",
           "withdraw_writer", "writer_url"]
