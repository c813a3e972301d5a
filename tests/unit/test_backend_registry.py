"""Which backend a collection name means, and that a new backend is one registry entry."""

from __future__ import annotations

from pathlib import Path

import pytest

from imgsearch.engine.backends import registry
from imgsearch.errors import InvalidInputError


def test_paths_are_local_and_uris_name_their_backend() -> None:
    assert registry.backend_name("./shop") == "local"
    assert registry.backend_name(Path("/data/shop")) == "local"
    assert registry.backend_name("milvus://db:19530/shop") == "milvus"
    with pytest.raises(InvalidInputError, match=r"unknown collection backend 'qdrant'.*milvus"):
        registry.backend_name("qdrant://db:6333/shop")


def test_a_third_backend_is_one_registry_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[tuple[str, object]] = []

    def other(where, settings, spaces, create, encoders):  # type: ignore[no-untyped-def]
        opened.append((where, spaces))
        return "a backend"

    monkeypatch.setitem(registry.BACKENDS, "other", other)
    assert registry.open_backend("other://x/y", spaces={"image": 4}) == "a backend"
    assert opened == [("other://x/y", {"image": 4})]


def test_the_command_line_knows_a_remote_collection_given_as_a_path() -> None:
    from imgsearch.cli import _remote

    assert _remote(Path("milvus://db:19530/shop")) == "milvus://db:19530/shop"
    assert _remote(Path("./shop")) is None
    assert _remote(Path("weird:/folder")) is None  # not a backend's scheme: a directory
