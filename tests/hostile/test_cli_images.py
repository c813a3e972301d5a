"""Checklist B through the command line: a folder full of hostile files is indexed with
each bad file reported under its own code, and ``add`` / ``search --image`` refuse each
one with exit code 2 and a message naming the file.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hostile.cases import ACCEPTED, REFUSED
from hostile.checks import KNOWN, cli, reopen_and_check
from imagegen import jpeg_bytes

FOLDER_KNOWN = {f"{item_id}.jpg": seed for item_id, seed in KNOWN.items()}
# what each error code says, in the words of its message
FRAGMENT = {"corrupt_image": ("empty", "damaged", "cannot read", "not a recognisable"),
            "unsupported_format": ("not accepted",),
            "image_too_large": ("pixels",),
            "image_too_small": ("smaller", "too small", "px")}


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("cli-images")
    photos = root / "photos"
    for name, seed in FOLDER_KNOWN.items():
        (photos / name).parent.mkdir(parents=True, exist_ok=True)
        (photos / name).write_bytes(jpeg_bytes(seed))
    for name, make, _status, _code in REFUSED:
        path = photos / "bad" / f"{name}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(make())
    collection = root / "collection"
    run = cli("index", photos, "-c", collection, "--json", "--quiet")
    yield {"root": root, "photos": photos, "collection": collection, "run": run,
           "report": json.loads(run.stdout)}
    reopen_and_check(collection, FOLDER_KNOWN)


def test_folder_with_hostile_files_indexes_the_rest(indexed: dict[str, Any]) -> None:
    run, report = indexed["run"], indexed["report"]
    assert run.code == 1  # some items failed, the rest were indexed
    assert report["added"] == len(FOLDER_KNOWN)
    # an image too small to describe is skipped, not failed
    small = [n for n, _m, _s, code in REFUSED if code == "image_too_small"]
    assert len(report["failed"]) == len(REFUSED) - len(small)
    assert {Path(f["source"]).stem for f in report["skipped"]} == set(small)
    assert f"failed {len(REFUSED) - len(small)}" in run.stderr


@pytest.mark.parametrize(("name", "code"), [pytest.param(n, c, id=n)
                                            for n, _m, _s, c in REFUSED])
def test_folder_reports_each_file_with_its_code(indexed: dict[str, Any], name: str,
                                               code: str) -> None:
    failures = {Path(f["source"]).name: f
                for f in indexed["report"]["failed"] + indexed["report"]["skipped"]}
    failure = failures[f"{name}.jpg"]
    assert failure["code"] == code, failure
    assert any(word in failure["reason"] for word in FRAGMENT[code]), failure


@pytest.mark.parametrize(("make", "code"), [pytest.param(m, c, id=n)
                                            for n, m, _s, c in REFUSED])
def test_add_and_search_refuse_with_exit_2(indexed: dict[str, Any], tmp_path: Path,
                                           make: Callable[[], bytes], code: str) -> None:
    path = tmp_path / "hostile.jpg"
    path.write_bytes(make())
    added = cli("add", path, "-c", indexed["collection"], "--id", "hostile")
    assert added.code == 2, added
    assert added.stderr.startswith("error: ") and "hostile.jpg" in added.stderr
    assert any(word in added.stderr for word in FRAGMENT[code]), added.stderr
    searched = cli("search", "-c", indexed["collection"], "--image", path)
    assert searched.code == 2 and "hostile.jpg" in searched.stderr, searched
    missing = cli("remove", "hostile", "-c", indexed["collection"])
    assert missing.code == 3 and "not found: hostile" in missing.stdout


@pytest.mark.parametrize("make", [pytest.param(m, id=n) for n, m in ACCEPTED])
def test_add_accepts_odd_but_valid_files(indexed: dict[str, Any], tmp_path: Path,
                                         make: Callable[[int], bytes]) -> None:
    # (the HTTP module sends every encoding; the command line shares its decoder)
    path = tmp_path / "odd.img"
    path.write_bytes(make(KNOWN["k2"]))
    added = cli("add", path, "-c", indexed["collection"], "--id", "odd", "--json")
    assert added.code == 0 and json.loads(added.stdout) == {"id": "odd", "status": "added"}
    removed = cli("remove", "odd", "-c", indexed["collection"], "--json")
    assert removed.code == 0 and json.loads(removed.stdout)["removed"] == 1
