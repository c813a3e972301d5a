"""Errors become HTTP responses here, and only here.

Every error answer has one shape, ``{"error": {"code": ..., "message": ...}}``:

- an ``ImgSearchError`` answers its own ``status`` and ``code``;
- request validation (FastAPI/pydantic) answers 422 ``validation_error``, or 400
  ``invalid_json`` when the body is not JSON at all;
- Starlette's HTTP errors (unknown route, wrong method, ...) keep their status;
- the ASGI limits (body size, overload, deadline) build their answers with
  :func:`error_response` as well;
- the operating system's and SQLite's errors for a full disk (507
  ``insufficient_storage``), read-only storage or a damaged database answer as the
  imgsearch errors they are (``errors.storage_fault``), wherever they were raised;
- anything else is a bug and answers 500 ``internal_error`` without details.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from imgsearch.errors import ImgSearchError, InvalidFieldError, storage_fault

logger = logging.getLogger("imgsearch.web")

_CODE_BY_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    408: "request_timeout",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
    503: "unavailable",
    504: "deadline_exceeded",
    507: "insufficient_storage",
}
_MAX_DETAILS = 20


class BodyTooLargeError(HTTPException):
    """Raised by the body-size guard while the request body is being read.

    An ``HTTPException`` on purpose: FastAPI lets those through its body parsing
    untouched, so the answer is 413 rather than a generic parse error.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is over the limit of {limit} bytes; "
                              f"send a smaller image or fewer items per request")


class OverloadedError(HTTPException):
    """Too many requests are being handled: 503 with ``Retry-After``.

    Raised while a request body is being read (the gate admits a request once its body
    has arrived), so it is an ``HTTPException`` for the reason given above.
    """

    code = "overloaded"

    def __init__(self, limit: int, retry_after_s: int) -> None:
        super().__init__(503, f"the server is busy ({limit} requests in flight); retry "
                              f"after {retry_after_s} s",
                         headers={"Retry-After": str(retry_after_s)})


class BodyTimeoutError(HTTPException):
    """The client stopped sending its request body: 408, and the connection closed."""

    code = "request_timeout"

    def __init__(self, timeout_s: float) -> None:
        super().__init__(408, f"no part of the request body arrived for {timeout_s:g} s; "
                              f"send the body without pausing",
                         headers={"Connection": "close"})


def error_body(code: str, message: str, details: Sequence[dict[str, Any]] | None = None
               ) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = list(details)
    return {"error": error}


def error_response(status: int, code: str, message: str, *,
                   headers: dict[str, str] | None = None,
                   details: Sequence[dict[str, Any]] | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, message, details), status_code=status,
                        headers=headers)


def error_bytes(code: str, message: str) -> bytes:
    """The JSON error body, for the ASGI guards that answer without a Response object."""
    return json.dumps(error_body(code, message), separators=(",", ":")).encode()


def _location(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "form")]
    return ".".join(parts) or "body"


def _validation_details(errors: Sequence[Any]) -> list[dict[str, Any]]:
    details = []
    for err in list(errors)[:_MAX_DETAILS]:
        loc = err.get("loc", ()) if isinstance(err, dict) else ()
        msg = err.get("msg", "invalid value") if isinstance(err, dict) else str(err)
        details.append({"field": _location(loc), "message": str(msg)})
    return details


async def _imgsearch_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ImgSearchError)
    if exc.status >= 500:
        logger.error("request failed: %s: %s", exc.code, exc.message)
    details = ([{"field": exc.field, "message": exc.message}]
               if isinstance(exc, InvalidFieldError) else None)
    return error_response(exc.status, exc.code, exc.message, details=details)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(isinstance(e, dict) and e.get("type") == "json_invalid" for e in errors):
        reason = next((e.get("ctx", {}).get("error") for e in errors
                       if isinstance(e, dict) and isinstance(e.get("ctx"), dict)), None)
        return error_response(400, "invalid_json", "the request body is not valid JSON"
                              + (f" ({reason})" if reason else "")
                              + "; send a JSON object with Content-Type: application/json")
    details = _validation_details(errors)
    summary = "; ".join(f"{d['field']}: {d['message']}" for d in details[:5])
    return error_response(422, "validation_error", f"invalid request: {summary}",
                          details=details)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    code = getattr(exc, "code", None) or _CODE_BY_STATUS.get(status, "error")
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    return error_response(status, code, message,
                          headers=dict(exc.headers) if exc.headers else None)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    fault = storage_fault(exc)
    if fault is not None:
        return await _imgsearch_error(request, fault)
    logger.exception("unexpected error while answering a request", exc_info=exc)
    return error_response(500, "internal_error",
                          "an unexpected error occurred; it has been logged")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ImgSearchError, _imgsearch_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)


def validation_error(field: str, message: str) -> RequestValidationError:
    """A validation error for input checked by hand (multipart metadata, batch items)."""
    return RequestValidationError([{"type": "value_error", "loc": ("body", field),
                                    "msg": message, "input": None}])


def from_pydantic(exc: ValidationError, prefix: str = "body") -> RequestValidationError:
    """A validation error for a pydantic model validated by hand."""
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    return RequestValidationError([{**e, "loc": (prefix, *e["loc"])} for e in errors])


def invalid_json(reason: str) -> RequestValidationError:
    return RequestValidationError([{"type": "json_invalid", "loc": ("body",),
                                    "msg": "JSON decode error", "input": None,
                                    "ctx": {"error": reason}}])


__all__ = [
    "BodyTimeoutError",
    "BodyTooLargeError",
    "OverloadedError",
    "error_body",
    "error_bytes",
    "error_response",
    "from_pydantic",
    "install_error_handlers",
    "invalid_json",
    "validation_error",
]
