"""The one validation of item fields that catalog rows and API bodies share."""

from __future__ import annotations

import pytest

from imgsearch.errors import InvalidFieldError
from imgsearch.ingest import fields


@pytest.mark.parametrize(("values", "field"), [
    ({"price": -1}, "price"), ({"price": "-3"}, "price"), ({"price": float("inf")}, "price"),
    ({"price": "79,99"}, "price"), ({"rating": "high"}, "rating"),
    ({"popularity": "1e999"}, "popularity"),
    ({"created_at": "not a date"}, "created_at"), ({"created_at": 1e20}, "created_at"),
])
def test_bad_values_name_their_field(values: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidFieldError) as caught:
        fields.item_fields(values, "item 'x'")
    assert caught.value.field == field and caught.value.status == 422
    assert field in caught.value.message and "item 'x'" in caught.value.message


def test_values_are_normalised() -> None:
    got = fields.item_fields({"title": " t ", "price": "$1,234.50", "rating": "4.5",
                              "created_at": "2024-05-01", "tags": "a, b;a"}, "item")
    assert got["title"] == "t" and got["price"] == 1234.5 and got["rating"] == 4.5
    assert got["created_at"] == "2024-05-01" and got["tags"] == ("a", "b")


def test_undecodable_text_is_made_storable() -> None:
    name = b"caf\xe9".decode("utf-8", "surrogateescape")
    assert fields.name_text(name) == "caf\\xe9"
    assert fields.safe_text(name) == "caf\ufffd"
    assert fields.item_fields({"title": name}, "item")["title"] == "caf\ufffd"
    with pytest.raises(InvalidFieldError, match="not valid Unicode"):
        fields.item_id(name)
    assert fields.item_id(12.0) == "12"
