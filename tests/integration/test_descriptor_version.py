"""A collection built with an older ``descriptor`` is refused, or re-encoded when asked.

The old collection is made the way an older imgsearch left it: the manifest names the
old model id and dimension for the image space.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from imagegen import make_photo_folder, picture
from imgsearch.config import Settings
from imgsearch.encode.descriptor import DIM, DescriptorEncoder
from imgsearch.engine import Engine
from imgsearch.errors import EncoderMismatchError
from imgsearch.types import Query

OLD_ID, OLD_DIM = "descriptor-v1", 576


def make_old_collection(directory: Path, folder: Path, settings: Settings) -> list[str]:
    ids = make_photo_folder(folder, 6, seed=11)
    with Engine.open(directory, settings) as engine:
        engine.ingest(folder)
    manifest_path = directory / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["spaces"]["image"].update(model_id=OLD_ID, dim=OLD_DIM)
    manifest_path.write_text(json.dumps(manifest))
    return ids


def test_the_model_id_names_the_current_version() -> None:
    encoder = DescriptorEncoder()
    assert encoder.model_id != OLD_ID and encoder.model_id.startswith("descriptor-v")
    assert encoder.dim == DIM


def test_an_old_descriptor_collection_is_refused_with_a_clear_message(
        tmp_path: Path, settings: Settings) -> None:
    make_old_collection(tmp_path / "c", tmp_path / "photos", settings)
    for readonly in (False, True):
        with pytest.raises(EncoderMismatchError) as caught:
            Engine.open(tmp_path / "c", settings, readonly=readonly)
        message = caught.value.message
        assert OLD_ID in message and DescriptorEncoder.model_id in message
        assert "--reembed" in message and "cannot be searched together" in message
    # refusing changed nothing: the manifest still names the old vectors
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert manifest["spaces"]["image"]["model_id"] == OLD_ID


def test_an_old_descriptor_collection_is_reembedded_when_asked(
        tmp_path: Path, settings: Settings) -> None:
    folder = tmp_path / "photos"
    ids = make_old_collection(tmp_path / "c", folder, settings)
    with Engine.open(tmp_path / "c", settings, reembed=True) as engine:
        space = engine.manifest.spaces["image"]
        assert (space.model_id, space.dim) == (DescriptorEncoder.model_id, DIM)
        assert len(engine.spaces["image"]) == len(ids)
        hits = engine.search(Query(images=[folder / ids[2]], limit=1, min_confidence=0.0)).hits
        assert [h.id for h in hits] == [ids[2]]
    with Engine.open(tmp_path / "c", settings, readonly=True) as engine:
        assert engine.manifest.spaces["image"].model_id == DescriptorEncoder.model_id


def test_the_cli_refuses_an_old_collection_then_reembeds_it(
        tmp_path: Path, settings: Settings) -> None:
    folder = tmp_path / "photos"
    ids = make_old_collection(tmp_path / "c", folder, settings)
    query = tmp_path / "query.png"
    picture(3).save(query)

    def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "imgsearch.cli", *map(str, args)],
                              capture_output=True, text=True, timeout=300,
                              env=dict(os.environ, IMGSEARCH_TEXT_ENCODER="fake"))

    refused = cli("search", "-c", tmp_path / "c", "--image", query)
    assert refused.returncode == 4, refused.stderr
    assert OLD_ID in refused.stderr and "--reembed" in refused.stderr
    redone = cli("index", folder, "-c", tmp_path / "c", "--reembed", "--quiet")
    assert redone.returncode == 0, redone.stderr
    found = cli("search", "-c", tmp_path / "c", "--image", folder / ids[0], "--json",
                "--limit", "1", "--min-confidence", "0")
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["results"][0]["id"] == ids[0]

