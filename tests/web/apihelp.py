"""Helpers shared by the web tests (plain functions, importable from any test here)."""

from __future__ import annotations

import base64
from typing import Any

from imagegen import jpeg_bytes

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


def batch_operations() -> list[dict[str, Any]]:
    """Good and bad operations of one ``/v1/items:batch`` request: an upsert, a bad base64
    image, a bad price, a delete of ``batch-old`` and of an unknown id, an unknown op, a
    private image URL, another upsert."""
    return [
        {"op": "upsert", "item": {"id": "batch-a", "title": "first"},
         "image_base64": b64(jpeg_bytes(205))},
        {"op": "upsert", "item": {"id": "batch-b"}, "image_base64": "not base64 !!"},
        {"op": "upsert", "item": {"id": "batch-c", "price": "cheap"},
         "image_base64": b64(jpeg_bytes(206))},
        {"op": "delete", "id": "batch-old"},
        {"op": "delete", "id": "never-existed"},
        {"op": "rename", "id": "x"},
        {"op": "upsert", "item": {"id": "batch-d"}, "image_url": "http://10.0.0.1/a.jpg"},
        {"op": "upsert", "item": {"id": "batch-e"}, "image_base64": b64(jpeg_bytes(207))},
    ]
