"""Who may ask what: API keys, the Host allow-list, CORS and security headers.

The policy, from the settings and the address the server listens on:

- **Host allow-list** (Starlette's ``TrustedHostMiddleware``): ``localhost``,
  ``127.0.0.1``, ``[::1]``, the listening address and ``--allowed-host`` names; any
  other ``Host`` answers 400 ``invalid_host``. A web page that re-points its own domain
  at 127.0.0.1 (DNS rebinding) still sends its own name, so it is refused.
- **Keys** (``web.keys``): writes (item PUT/DELETE, ``POST /v1/items:batch``) need a
  ``write`` key and ``/metrics`` and ``/v1/report`` an ``admin`` key whenever the server
  listens beyond loopback or any key exists. On loopback without keys they stay open,
  as for local development. Reads need a ``read`` key only with ``require_read_key``;
  ``/health`` and ``/ready`` never do. A key that is sent is always checked: a wrong
  one answers 401 even where none is needed.
- **Origin**: a browser's cross-site write or admin request (an ``Origin`` that is not
  the server itself nor a configured CORS origin) answers 403, key or not.
- **CORS** off unless origins are configured (Starlette's ``CORSMiddleware``).
- **Headers** on every answer: ``Content-Security-Policy``, ``X-Content-Type-Options:
  nosniff``, ``X-Frame-Options: DENY``, ``Referrer-Policy: same-origin``.

The header-level middleware (Host, CORS, headers) is in ``web.headers``; the keys file in
``web.keys``; :func:`install` puts it all on an app.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from imgsearch.config import Settings
from imgsearch.errors import InvalidInputError
from imgsearch.web.forward import is_write
from imgsearch.web.headers import (
    KEY_HEADERS,
    HostAllowList,
    JsonCORSMiddleware,
    SecurityHeadersMiddleware,
)
from imgsearch.web.keys import KeysFileError, KeyStore, allows
from imgsearch.web.limits import send_error

logger = logging.getLogger("imgsearch.web")

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
ADMIN_PATHS = frozenset({"/metrics", "/v1/report"})
OPEN_PATHS = frozenset({"/health", "/ready"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a bind address or name) reaches this machine only."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _host_pattern(name: str) -> str:
    host = name.strip().lower()
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address, as a Host header writes it
    if "*" in host[1:] or (host.startswith("*") and host != "*"
                           and not host.startswith("*.")):
        raise InvalidInputError(f"allowed host {name!r}: a wildcard must be the whole name "
                                f"('*') or lead a domain ('*.example.com')")
    return host


def _origin(value: str) -> str:
    if value == "*":
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or \
            parts.path not in ("", "/") or parts.query or parts.fragment:
        raise InvalidInputError(f"CORS origin {value!r} is not scheme://host[:port] "
                                f"(for example https://shop.example.com) or '*'")
    return f"{parts.scheme}://{parts.netloc}".lower()


@dataclass(frozen=True)
class AccessPolicy:
    """What the security middleware enforces; built once per app by :meth:`build`."""

    keys: KeyStore
    public: bool  # listens beyond loopback: writes and admin need a key
    require_read_key: bool = False
    allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS
    cors_origins: tuple[str, ...] = ()
    listen_host: str | None = None
    # An app built in-process without a listening address (tests, embedding) also takes
    # single-label names such as ``testserver``, which test clients send: a page that
    # rebinds DNS does so for a domain of its own, which has a dot. ``imgsearch serve``
    # always knows its address and never does.
    single_label_hosts: bool = False

    @classmethod
    def build(cls, settings: Settings, collection: Path, listen_host: str | None = None
              ) -> AccessPolicy:
        """The policy for an app over ``collection``. ``listen_host`` is the address the
        server binds (None: an app used in-process, treated as loopback)."""
        hosts = list(LOOPBACK_HOSTS)
        if listen_host is not None and listen_host not in ("0.0.0.0", "::", ""):
            # a wildcard address names no host
            hosts.append(listen_host)
        hosts += _split(settings.allowed_hosts)
        policy = cls(keys=KeyStore.for_collection(collection, settings.api_keys_file),
                     public=listen_host is not None and not is_loopback(listen_host),
                     require_read_key=settings.require_read_key,
                     allowed_hosts=tuple(dict.fromkeys(_host_pattern(h) for h in hosts)),
                     cors_origins=tuple(dict.fromkeys(
                         _origin(o) for o in _split(settings.cors_origins))),
                     listen_host=listen_host, single_label_hosts=listen_host is None)
        policy.keys.current()  # a damaged keys file stops the server here, not per request
        return policy

    def keys_required(self, peer: str | None = None) -> bool:
        """Writes and admin need a key: beyond loopback, or once any key exists. An app
        that was not told where it listens judges by the request's peer instead: one
        from a network address that is not loopback counts as beyond loopback (a test
        client's peer is no address at all)."""
        if self.public or self.keys.current():
            return True
        return self.listen_host is None and peer is not None and _is_address(peer) \
            and not is_loopback(peer)

    def startup_warning(self) -> str | None:
        """What an operator should know when the server starts, if anything."""
        keys = self.keys.current()
        if self.require_read_key and not keys:
            return (f"--require-read-key with no keys in {self.keys.path}: every request "
                    f"but /health and /ready is refused until one exists ({_CREATE_HINT})")
        if self.public and not any(allows(k.scope, "write") for k in keys):
            return (f"listening on {self.listen_host} with no write key in "
                    f"{self.keys.path}: writes are refused until one exists "
                    f"({_CREATE_HINT}); reads are open")
        return None


_CREATE_HINT = ("create one with `imgsearch keys create -c COLLECTION --scope write` "
                "and send it as `Authorization: Bearer TOKEN`")


def needed_scope(method: str, path: str) -> str | None:
    """The scope a request needs before anything else; None: open to all."""
    if path in OPEN_PATHS:
        return None
    if path in ADMIN_PATHS:
        return "admin"
    if is_write(method, path):
        return "write"
    return "read"


def _presented(headers: Headers) -> str | None:
    auth = headers.get("authorization")
    if auth is not None:
        kind, _, token = auth.partition(" ")
        return token.strip() if kind.lower() == "bearer" else ""
    return headers.get("x-api-key")


class AuthMiddleware:
    """Checks the key of every request against the policy (before any body is read)."""

    def __init__(self, app: ASGIApp, policy: AccessPolicy) -> None:
        self.app = app
        self.policy = policy
        self.cross_site_origins = {o for o in policy.cors_origins if o != "*"}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        needed = needed_scope(scope["method"], scope["path"])
        if needed in ("write", "admin") and not self._same_site(headers):
            await send_error(send, 403, "forbidden", "a browser page of another site may "
                             "not write to or administer this server; add its origin with "
                             "--cors-origin if it should")
            return
        token = _presented(headers)
        client = scope.get("client")
        try:
            refusal = self._check(needed, token, client[0] if client else None)
        except KeysFileError as exc:
            await send_error(send, 503, "keys_unavailable", exc.message,
                             [(b"retry-after", b"5")])
            return
        if refusal is not None:
            status, code, message = refusal
            extra = [(b"www-authenticate", b'Bearer realm="imgsearch"')] if status == 401 \
                else []
            await send_error(send, status, code, message, extra)
            return
        await self.app(scope, receive, send)

    def _same_site(self, headers: Headers) -> bool:
        origin = headers.get("origin")
        if origin is None:
            return True  # not sent by a browser's cross-site request
        host = headers.get("host", "").lower()
        parts = urlsplit(origin.lower())
        return parts.netloc == host or f"{parts.scheme}://{parts.netloc}" \
            in self.cross_site_origins

    def _check(self, needed: str | None, token: str | None, peer: str | None
               ) -> tuple[int, str, str] | None:
        policy = self.policy
        if token is not None:
            key = policy.keys.verify(token)
            if key is None:
                return 401, "unauthorized", ("the API key is not valid (unknown, revoked or "
                                             "mistyped); send `Authorization: Bearer TOKEN` "
                                             "with a key from `imgsearch keys create`")
            if needed is not None and not allows(key.scope, needed):
                return 403, "forbidden", (f"the API key {key.name!r} has scope "
                                          f"{key.scope!r}; this request needs {needed!r}")
            return None
        if needed is None:
            return None
        if needed == "read" and not policy.require_read_key:
            return None
        if needed != "read" and not policy.keys_required(peer):
            return None  # loopback development without keys: open, as before keys
        if needed == "write" and not any(allows(k.scope, "write")
                                         for k in policy.keys.current()):
            return 401, "unauthorized", (f"writes need an API key and this server has no "
                                         f"write key: {_CREATE_HINT}")
        return 401, "unauthorized", (f"this request needs an API key with scope {needed!r}; "
                                     f"send `Authorization: Bearer TOKEN` (or X-API-Key)")


def _document_keys(app: Any) -> None:
    """Declare the bearer key in the OpenAPI schema, so that /docs can send one."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return dict[str, Any](app.openapi_schema)
        schema: dict[str, Any] = build()
        schema.setdefault("components", {}).setdefault("securitySchemes", {})["apiKey"] = {
            "type": "http", "scheme": "bearer",
            "description": "A token from `imgsearch keys create`. Writes need scope write "
                           "and /metrics, /v1/report scope admin whenever the server "
                           "listens beyond loopback or any key exists."}
        schema["security"] = [{}, {"apiKey": []}]  # optional unless the request needs one
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                if needed_scope(method.upper(), path) in ("write", "admin"):
                    operation["security"] = [{"apiKey": []}]
        return schema

    app.openapi = openapi


def install(app: Any, policy: AccessPolicy) -> None:
    """Add the security middleware to ``app`` (outermost last, as add_middleware wraps)."""
    _document_keys(app)
    app.add_middleware(AuthMiddleware, policy=policy)
    if policy.cors_origins:
        app.add_middleware(JsonCORSMiddleware, allow_origins=list(policy.cors_origins),
                           allow_methods=["GET", "POST", "PUT", "DELETE"],
                           allow_headers=list(KEY_HEADERS), expose_headers=["X-Request-ID"],
                           allow_credentials=False, max_age=600)
    app.add_middleware(HostAllowList, allowed_hosts=policy.allowed_hosts,
                       single_label=policy.single_label_hosts)
    app.add_middleware(SecurityHeadersMiddleware)
    warning = policy.startup_warning()
    if warning:
        logger.warning(warning)


__all__ = ["ADMIN_PATHS", "LOOPBACK_HOSTS", "OPEN_PATHS", "AccessPolicy", "AuthMiddleware",
           "install", "is_loopback", "needed_scope"]
