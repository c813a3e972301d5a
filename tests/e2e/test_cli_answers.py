"""Honest answers from the command line and the HTTP API: no match for noise in a small
collection, match kinds in the JSON."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

import backendkit as kit
from imagegen import textured
from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.web.app import create_app
from searchnodes import BACKENDS

ENV = dict(os.environ, IMGSEARCH_TEXT_ENCODER="none")


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "imgsearch.cli", *map(str, args)],
                          capture_output=True, text=True, env=ENV, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc


@dataclass
class Ten:
    """Ten pictures and a noise image, indexed by the command line on ``backend``."""

    root: Path
    folder: Path
    where: str
    backend: str

    def require(self, feature: str) -> None:
        if self.backend == "local":
            return
        from imgsearch.engine.remote import open_remote

        with open_remote(self.where, Settings(text_encoder="none")) as engine:
            reason = engine.refuses(feature)
        if reason:
            pytest.skip(f"{self.backend}: {reason}")


@pytest.fixture(scope="module", params=BACKENDS)
def ten(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Ten:
    root = tmp_path_factory.mktemp("ten")
    folder = root / "pictures"
    folder.mkdir()
    for i in range(10):
        textured(i, (320, 240)).save(folder / f"{i}.jpg", quality=90)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
                    ).save(root / "noise.png")
    backend = str(request.param)
    where = str(root / "c")
    if backend != "local":
        address = request.getfixturevalue(
            "milvus_lite_address" if backend == "milvus-lite" else "milvus_server_address")
        where = f"milvus://{address}/{kit.collection_name('ten')}"
    run("index", folder, "--collection", where)
    return Ten(root, folder, where, backend)


def test_noise_gets_no_match_on_a_ten_item_collection(ten: Ten) -> None:
    out = run("search", "--collection", ten.where, "--image", ten.root / "noise.png")
    assert out.stdout.startswith("no results")
    assert "minimum" in out.stdout
    answer = json.loads(run("search", "--collection", ten.where, "--image",
                            ten.root / "noise.png", "--json").stdout)
    assert answer["results"] == [] and answer["empty_reason"] == "no_match"


def test_a_picture_of_the_collection_is_an_exact_match(ten: Ten) -> None:
    answer = json.loads(run("search", "--collection", ten.where, "--image",
                            ten.folder / "3.jpg", "--json").stdout)
    top = answer["results"][0]
    assert top["id"] == "3.jpg" and top["match"] == "exact"
    assert all(h["match"] != "exact" for h in answer["results"][1:])
    assert top["confidence"] == 1.0
    assert all(h["confidence"] < 1.0 for h in answer["results"][1:])


def test_the_api_says_which_kind_of_match_and_why(ten: Ten) -> None:
    ten.require("copies")
    picture = textured(4, (320, 240))
    w, h = picture.size
    crop = picture.crop((w // 10, h // 10, w - w // 10, h - h // 10))
    buffer = io.BytesIO()
    crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(buffer, format="JPEG", quality=80)
    if ten.backend == "local":
        with Engine.open(ten.where, Settings(), readonly=True) as engine:
            client = TestClient(create_app(engine=engine))
            answer = client.post("/v1/search/image", files={
                "file": ("copy.jpg", buffer.getvalue(), "image/jpeg")})
    else:  # a node over the collection the command line indexed
        from imgsearch.engine.remote import open_remote
        from imgsearch.web.remote_app import create_remote_app

        with TestClient(create_remote_app(open_remote(ten.where, Settings(
                text_encoder="none")), owns_engine=True)) as client:
            answer = client.post("/v1/search/image", files={
                "file": ("copy.jpg", buffer.getvalue(), "image/jpeg")})
    assert answer.status_code == 200, answer.text
    top = answer.json()["results"][0]
    assert top["id"] == "4.jpg" and top["match"] == "copy"
    assert top["evidence"]["inliers"] >= 15 and top["evidence"]["mirrored"] == 1.0
