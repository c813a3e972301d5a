"""The operator's faults over HTTP: a full disk answers 507 ``insufficient_storage``
(not 400 blaming the image, not 500); a read-only collection serves searches and answers
writes 503 ``collection_read_only``."""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

import pytest
from apihelp import assert_error
from fastapi.testclient import TestClient

import imgsearch.engine.writer as writer
from faultkit import FAST, build, read_only_view
from imagegen import jpeg_bytes
from imgsearch.engine import Engine
from imgsearch.web import create_app


@pytest.fixture
def writable(tmp_path: Path):
    build(tmp_path / "c", n=6)
    engine = Engine.open(tmp_path / "c", FAST)
    with TestClient(create_app(engine), raise_server_exceptions=False) as client:
        yield engine, client
    engine.close()


def _enospc(*_args: object, **_kwargs: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def _sqlite_full(*_args: object, **_kwargs: object) -> None:
    raise sqlite3.OperationalError("database or disk is full")


def test_put_on_a_full_disk_answers_507(writable, monkeypatch):
    engine, client = writable
    monkeypatch.setattr(writer, "write_thumbnail", _enospc)
    answer = client.put("/v1/items/new", files={"file": ("x.jpg", jpeg_bytes(40))})
    error = assert_error(answer, 507, "insufficient_storage")
    assert "image" not in error["message"].split("(")[0]  # the disk, not the image
    monkeypatch.undo()
    assert "new" not in engine


def test_put_and_delete_with_sqlite_full_answer_507(writable, monkeypatch):
    engine, client = writable
    monkeypatch.setattr(engine.catalog, "upsert", _sqlite_full)
    monkeypatch.setattr(engine.catalog, "delete", _sqlite_full)
    assert_error(client.put("/v1/items/new", files={"file": ("x.jpg", jpeg_bytes(41))}),
                 507, "insufficient_storage")
    assert_error(client.delete("/v1/items/item-1"), 507, "insufficient_storage")
    monkeypatch.undo()
    assert client.get("/v1/items/item-1").status_code == 200
    assert client.delete("/v1/items/item-1").status_code == 200


def test_enospc_raised_anywhere_in_a_request_answers_507(writable, monkeypatch):
    engine, client = writable
    monkeypatch.setattr(engine, "facets", _enospc)  # as if a temp file could not be made
    answer = client.get("/")
    assert_error(answer, 507, "insufficient_storage")


def test_a_read_only_collection_serves_searches_and_refuses_writes(tmp_path, monkeypatch):
    build(tmp_path / "c", n=6)
    with read_only_view(tmp_path / "c") as view:
        if view is None:
            view = tmp_path / "c"
            monkeypatch.setattr(os, "access", lambda path, mode: mode != 2)
        app = create_app(collection=view, settings=FAST)
        with TestClient(app, raise_server_exceptions=False) as client:
            assert client.get("/v1/items/item-2/similar").status_code == 200
            assert client.get("/v1/search/text", params={"q": "thing"}).status_code == 200
            assert_error(client.put("/v1/items/x", files={"file": ("x.jpg", jpeg_bytes(3))}),
                         503, "collection_read_only")
            assert_error(client.delete("/v1/items/item-2"), 503, "collection_read_only")
