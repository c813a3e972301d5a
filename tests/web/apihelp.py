"""Helpers shared by the web tests (plain functions, importable from any test here)."""

from __future__ import annotations

import base64
from typing import Any

SEEDED = 12  # items p0..p11 in the test collection, plus SLASH_ID
SLASH_ID = "folder/p12.jpg"

def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """The one error shape: ``{"error": {"code", "message"}}`` with the given status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]
    return dict(error)
