"""What a stream message means, and every way one is refused (with its reason)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from imagegen import jpeg_bytes, write_image
from imgsearch.engine.stream import StreamAddress
from imgsearch.engine.stream_messages import MessageError, parse_message, unchanged
from imgsearch.errors import InvalidInputError
from imgsearch.types import Item

LIMIT = 1 << 20


def _code(message: dict[str, str], roots: list[Path] | None = None) -> str:
    with pytest.raises(MessageError) as caught:
        parse_message(message, roots or [], LIMIT)
    assert caught.value.reason  # every refusal says why
    return caught.value.code


def test_an_upsert_carries_its_fields_checked_as_catalog_rows_are():
    data = base64.b64encode(jpeg_bytes(1)).decode()
    change = parse_message({"id": " a1 ", "image_base64": data, "title": "Red shoe",
                            "price": "12.50", "tags": "x|y", "attributes": '{"size": 42}',
                            "material": "wool"}, [], LIMIT)
    assert (change.op, change.item_id) == ("upsert", "a1")
    assert change.image == jpeg_bytes(1)
    assert change.item is not None
    assert (change.item.title, change.item.price, change.item.image) == ("Red shoe", 12.5,
                                                                         None)
    assert change.item.tags == ("x", "y")
    assert change.item.attributes == {"size": 42, "material": "wool"}


def test_a_url_and_a_delete():
    change = parse_message({"id": "u", "image": "https://shop.example/a.jpg"}, [], LIMIT)
    assert (change.image, change.item and change.item.image) == (
        "https://shop.example/a.jpg", "https://shop.example/a.jpg")
    gone = parse_message({"op": "delete", "id": "u"}, [], LIMIT)
    assert (gone.op, gone.item_id, gone.item) == ("delete", "u", None)


@pytest.mark.parametrize(("message", "code"), [
    ({"op": "rename", "id": "a"}, "bad_op"),
    ({"image": "https://x.example/a.jpg"}, "missing_id"),
    ({"id": "a"}, "missing_image"),
    ({"id": "a", "image": "https://x.example/a.jpg", "image_base64": "AAAA"}, "two_images"),
    ({"id": "a", "image_base64": "not base64!"}, "bad_base64"),
    ({"id": "a", "image": "ftp://x.example/a.jpg"}, "bad_image_ref"),
    ({"id": "a", "image": "file:///etc/passwd"}, "bad_image_ref"),
    ({"id": "a", "image": "/etc/passwd"}, "path_not_allowed"),
    ({"id": "a", "image_base64": "QUJD", "attributes": "[1]"}, "bad_attributes"),
    ({"id": "a", "image_base64": "QUJD", "attributes": "{nope"}, "bad_attributes"),
])
def test_bad_messages_are_refused_with_a_code(message, code):
    assert _code(message) == code


def test_bad_field_values_are_refused_as_in_catalogs():
    assert _code({"id": "a", "image_base64": "QUJD", "price": "cheap"}) != ""
    with pytest.raises(MessageError, match="price"):
        parse_message({"id": "a", "image_base64": "QUJD", "price": "-3"}, [], LIMIT)


def test_too_many_bytes_are_refused_before_decoding():
    big = base64.b64encode(b"x" * (LIMIT + 10)).decode()
    assert _code({"id": "a", "image_base64": big}) == "image_too_large"


def test_paths_only_under_an_image_root(tmp_path):
    root = tmp_path / "images"
    inside = write_image(root / "a.png", 1)
    write_image(tmp_path / "secret.png", 2)
    (root / "link.png").symlink_to(tmp_path / "secret.png")
    change = parse_message({"id": "a", "image": "a.png"}, [root], LIMIT)
    assert change.image == inside.resolve()
    absolute = parse_message({"id": "a", "image": str(inside)}, [root], LIMIT)
    assert absolute.image == inside.resolve()
    for escape in ("../secret.png", str(tmp_path / "secret.png"), "link.png"):
        assert _code({"id": "a", "image": escape}, [root]) == "path_not_allowed", escape


def test_unchanged_needs_the_same_metadata_and_content():
    stored = Item(id="a", title="t", content_hash="h1")
    change = parse_message({"id": "a", "image_base64": "QUJD", "title": "t"}, [], LIMIT)
    assert unchanged(stored, change, "h1")
    assert not unchanged(stored, change, "h2")
    assert not unchanged(None, change, "h1")
    retitled = parse_message({"id": "a", "image_base64": "QUJD", "title": "u"}, [], LIMIT)
    assert not unchanged(stored, retitled, "h1")


@pytest.mark.parametrize("url", ["kafka://broker:9092/items", "redis://host:6379",
                                 "redis:///items", "redis://host:port/items"])
def test_stream_addresses_are_checked(url):
    with pytest.raises(InvalidInputError):
        StreamAddress.parse(url)


def test_a_stream_address():
    address = StreamAddress.parse("redis://:s%40cret@cache.internal:6380/shop:items")
    assert (address.host, address.port, address.stream) == ("cache.internal", 6380,
                                                            "shop:items")
    assert address.password == "s@cret"
    assert address.dead_letters == "shop:items:dead"
    assert "s@cret" not in str(address)
