"""Uploads are decoded in worker processes: a decode past its deadline is stopped.

The slow decoder is injected through ``Preparer.decode_job``/``derive_job`` (a job that
spins for a minute on marked bytes, as a decode-cost bomb would); the worker that runs it
is killed at ``decode_timeout_s`` and replaced.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from apihelp import b64
from fastapi.testclient import TestClient

import slowdecode
from imagegen import jpeg_bytes
from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.web import create_app

TIMEOUT_S = 5.0


@pytest.fixture
def engine(tmp_path) -> Iterator[Engine]:
    settings = Settings(image_encoder="descriptor", text_encoder="fake", ingest_workers=2,
                        decode_timeout_s=TIMEOUT_S)
    with Engine.open(tmp_path / "c", settings) as opened:
        assert opened.ingest_items([]).ok
        opened.preparer.decode_job = slowdecode.spinning_decode
        opened.preparer.derive_job = slowdecode.spinning_derive
        yield opened


def test_a_slow_decode_ends_at_the_deadline_and_the_next_request_succeeds(
        engine: Engine) -> None:
    bomb = jpeg_bytes(1) + slowdecode.MARKER
    with TestClient(create_app(engine)) as client:
        assert client.put("/v1/items/good", json={"image_base64": b64(jpeg_bytes(2))}
                          ).status_code == 201
        pool = engine.preparer.processes
        assert pool is not None
        before = set(pool.pids)
        assert len(before) == 2

        refused = client.post("/v1/search/image", files={"file": ("bomb.jpg", bomb)})
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["code"] == "decode_timeout"
        assert f"within {TIMEOUT_S:g} s" in refused.json()["error"]["message"]

        killed = before - set(pool.pids)
        assert len(killed) == 1 and not slowdecode.alive(killed.pop())  # stopped, burns no CPU
        assert len(pool.pids) == 2  # replaced
        found = client.post("/v1/search/image", files={"file": ("ok.jpg", jpeg_bytes(2))},
                            data={"min_confidence": "0"})
        assert found.status_code == 200, found.text
        assert found.json()["results"][0]["id"] == "good"


def test_a_slow_upload_write_is_refused_and_writes_nothing(engine: Engine) -> None:
    bomb = jpeg_bytes(3) + slowdecode.MARKER
    with TestClient(create_app(engine)) as client:
        refused = client.put("/v1/items/bomb", json={"image_base64": b64(bomb)})
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["code"] == "decode_timeout"
        assert "bomb" not in engine
        assert client.put("/v1/items/fine", json={"image_base64": b64(jpeg_bytes(4))}
                          ).status_code == 201


def test_other_requests_go_on_while_one_decode_spins(engine: Engine) -> None:
    bomb = jpeg_bytes(5) + slowdecode.MARKER
    with TestClient(create_app(engine)) as client:
        answers: dict[str, int] = {}

        def upload_bomb() -> None:
            answers["bomb"] = client.post("/v1/search/image",
                                          files={"file": ("bomb.jpg", bomb)}).status_code

        spinning = threading.Thread(target=upload_bomb)
        spinning.start()
        written = client.put("/v1/items/beside", json={"image_base64": b64(jpeg_bytes(6))})
        bomb_answered_first = "bomb" in answers
        spinning.join()
        assert written.status_code == 201, written.text
        assert not bomb_answered_first  # the write did not wait for the spinning decode
        assert answers["bomb"] == 422


def test_a_scan_bomb_found_in_a_folder_is_a_failure_not_a_hang(engine: Engine,
                                                              tmp_path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "bomb.jpg").write_bytes(jpeg_bytes(7) + slowdecode.MARKER)
    (folder / "fine.jpg").write_bytes(jpeg_bytes(8))
    engine.preparer.derive_job = slowdecode.spinning_derive_file
    report = engine.ingest(folder)
    assert report.added == 1
    assert [(f.code, f.source.endswith("bomb.jpg")) for f in report.failed] == [
        ("decode_timeout", True)]
