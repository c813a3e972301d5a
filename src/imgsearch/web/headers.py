"""Header-level guards: the Host allow-list, CORS, and the security headers of answers.

- :class:`HostAllowList` lets Starlette's ``TrustedHostMiddleware`` decide and answers a
  refused ``Host`` with 400 ``invalid_host`` in the JSON error shape.
- :class:`JsonCORSMiddleware` is Starlette's ``CORSMiddleware`` with refused preflights
  in the JSON shape as well.
- :class:`SecurityHeadersMiddleware` adds ``Content-Security-Policy`` (one for the web
  page, one for the API, one for FastAPI's /docs and /redoc), ``X-Content-Type-Options``,
  ``X-Frame-Options`` and ``Referrer-Policy`` to every answer.

What is allowed is decided by ``web.security.AccessPolicy``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imgsearch.web.errors import error_response
from imgsearch.web.limits import send_error

DOCS_PATHS = frozenset({"/docs", "/redoc", "/docs/oauth2-redirect"})
KEY_HEADERS = ("Authorization", "X-API-Key", "Content-Type", "X-Request-ID")

# The page has no inline script and loads everything from itself. Style attributes stay
# allowed (colour swatches set a CSS variable in one); they cannot run script, and every
# url() they could name is held to img-src / the default of 'none'.
PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; "
            "style-src-attr 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; "
            "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
API_CSP = "default-src 'none'; frame-ancestors 'none'"
# /docs and /redoc load Swagger UI / ReDoc from the server itself (web.docs) and start it
# with an inline script of the app's own (no request data in it).
DOCS_CSP = ("default-src 'none'; script-src 'self' 'unsafe-inline'; "
            "style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            "connect-src 'self'; worker-src blob:; base-uri 'none'; frame-ancestors 'none'")


class HostAllowList:
    """Starlette's TrustedHostMiddleware deciding, answering refusals in the JSON shape."""

    _ACCEPTED = "imgsearch.host_accepted"

    def __init__(self, app: ASGIApp, allowed_hosts: Iterable[str],
                 single_label: bool = False) -> None:
        self.app = app
        self.allowed_hosts = list(allowed_hosts)
        self.single_label = single_label
        self._check = TrustedHostMiddleware(self._accept, allowed_hosts=self.allowed_hosts,
                                            www_redirect=False)

    @classmethod
    async def _accept(cls, scope: Scope, _receive: Receive, _send: Send) -> None:
        scope[cls._ACCEPTED] = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        await self._check(scope, receive, _discard)
        given = Headers(scope=scope).get("host", "")
        if scope.pop(self._ACCEPTED, False) or (
                self.single_label and _SINGLE_LABEL.fullmatch(given) is not None):
            await self.app(scope, receive, send)
            return
        given = given[:100]
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await send_error(send, 400, "invalid_host",
                         f"this server does not answer to the Host {given!r}; its operator "
                         f"can allow it with --allowed-host (IMGSEARCH_ALLOWED_HOSTS)")


_SINGLE_LABEL = re.compile(r"[A-Za-z0-9-]{1,63}(:[0-9]{1,5})?")


async def _discard(_message: Message) -> None:
    return None


class JsonCORSMiddleware(CORSMiddleware):
    """Starlette's CORS, with its refused preflights in the JSON error shape."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code == 200:
            return response
        headers = {k: v for k, v in response.headers.items()
                   if k.lower() not in ("content-type", "content-length")}
        return error_response(response.status_code, "cors_refused",
                              bytes(response.body).decode() + " for this server's CORS "
                              "settings (--cors-origin)", headers=headers)


class SecurityHeadersMiddleware:
    """Adds the security headers to every answer that does not set them itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        docs = scope["path"] in DOCS_PATHS

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                html = any(k.lower() == b"content-type" and v.startswith(b"text/html")
                           for k, v in headers)
                csp = DOCS_CSP if docs else PAGE_CSP if html else API_CSP
                for name, value in ((b"content-security-policy", csp.encode()),
                                    (b"x-content-type-options", b"nosniff"),
                                    (b"x-frame-options", b"DENY"),
                                    (b"referrer-policy", b"same-origin")):
                    if name not in names:
                        headers.append((name, value))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


__all__ = ["API_CSP", "DOCS_CSP", "KEY_HEADERS", "PAGE_CSP", "HostAllowList",
           "JsonCORSMiddleware", "SecurityHeadersMiddleware"]
