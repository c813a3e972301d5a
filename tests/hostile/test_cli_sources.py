"""Checklist D and bad catalogs through ``imgsearch index``: symlinks out of the folder,
link loops, 4 KB paths, broken rows, unreadable catalog files.

A folder or catalog is indexed once per module; each hostile entry is then checked
for its own failure code in the report, and the good entries for being indexed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hostile.checks import KNOWN, check_known, cli, hostile_settings, reopen_and_check
from imagegen import jpeg_bytes
from imgsearch.engine import Engine

FOLDER_KNOWN = {f"{item_id}.jpg": seed for item_id, seed in KNOWN.items()}


def _index(source: Path, collection: Path) -> tuple[Any, dict[str, Any]]:
    run = cli("index", source, "-c", collection, "--json", "--quiet")
    return run, json.loads(run.stdout)


def _deep_folder(root: Path, levels: int = 18, name: str = "d" * 240) -> str:
    """A file under more than 4 KB of path; returns its id. Built relative to each level,
    as no single call may name a path that long."""
    directory = os.open(root, os.O_RDONLY)
    try:
        for _ in range(levels):
            os.mkdir(name, dir_fd=directory)
            inner = os.open(name, os.O_RDONLY, dir_fd=directory)
            os.close(directory)
            directory = inner
        handle = os.open("deep.jpg", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=directory)
        os.write(handle, jpeg_bytes(77))
        os.close(handle)
    finally:
        os.close(directory)
    return "/".join([name] * levels) + "/deep.jpg"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("folders")
    photos, outside = base / "photos", base / "outside"
    photos.mkdir()
    outside.mkdir()
    for name, seed in FOLDER_KNOWN.items():
        (photos / name).write_bytes(jpeg_bytes(seed))
    (outside / "secret.jpg").write_bytes(jpeg_bytes(90))
    (photos / "escape.jpg").symlink_to(outside / "secret.jpg")
    (photos / "escape-relative.jpg").symlink_to("../outside/secret.jpg")
    (photos / "escape-folder").symlink_to(outside)
    (photos / "etc-passwd.jpg").symlink_to("/etc/passwd")
    (photos / "dangling.jpg").symlink_to("/nonexistent/x.jpg")
    (photos / "self-loop.jpg").symlink_to("self-loop.jpg")
    (photos / "loop-to-root").symlink_to(photos)
    (photos / "sub").mkdir()
    (photos / "sub" / "up").symlink_to("..")
    (photos / "inside-link.jpg").symlink_to("k0.jpg")
    (photos / "folder.jpg").mkdir()
    (photos / "notes.txt").write_text("not an image extension")
    (photos / ".hidden.jpg").write_bytes(jpeg_bytes(91))
    (photos / "__MACOSX").mkdir()
    (photos / "__MACOSX" / "k0.jpg").write_bytes(jpeg_bytes(92))
    (photos / ("n" * 251 + ".jpg")).write_bytes(jpeg_bytes(93))
    deep = _deep_folder(photos)
    collection = base / "collection"
    run, report = _index(photos, collection)
    yield {"photos": photos, "collection": collection, "run": run, "report": report,
           "deep": deep, "failed": {f["source"]: f for f in report["failed"]}}
    reopen_and_check(collection, {**FOLDER_KNOWN, "inside-link.jpg": KNOWN["k0"],
                                  "n" * 251 + ".jpg": 93})


FOLDER_FAILURES = [
    ("escape.jpg", "symlink_escape", "escapes the folder root"),
    ("escape-relative.jpg", "symlink_escape", "escapes the folder root"),
    ("escape-folder", "symlink_escape", "escapes the folder root"),
    ("etc-passwd.jpg", "symlink_escape", "/etc/passwd"),
    ("dangling.jpg", "broken_symlink", "does not exist"),
    ("self-loop.jpg", "symlink_loop", "loop"),
]


@pytest.mark.parametrize(("source", "code", "fragment"), FOLDER_FAILURES)
def test_folder_entries_reported(folder: dict[str, Any], source: str, code: str,
                                 fragment: str) -> None:
    failure = folder["failed"][source]
    assert failure["code"] == code and fragment in failure["reason"], failure


def test_a_path_over_4_kb_is_reported_not_fatal(folder: dict[str, Any]) -> None:
    deep = [f for f in folder["report"]["failed"] if f["source"].startswith("ddd")]
    assert len(deep) == 1 and deep[0]["code"] == "unreadable", deep
    assert "too long" in deep[0]["reason"]
    assert len(folder["deep"]) > 4096


def test_folder_indexes_exactly_the_good_files(folder: dict[str, Any]) -> None:
    # loops end, hidden and system folders, folders named .jpg and other suffixes
    # are skipped silently; a link that stays inside the root is followed
    run, report = folder["run"], folder["report"]
    assert run.code == 1
    assert report["added"] == len(FOLDER_KNOWN) + 2
    assert len(report["failed"]) == len(FOLDER_FAILURES) + 1
    found = json.loads(cli("search", "-c", folder["collection"], "--image",
                           folder["photos"] / "escape.jpg", "--json", "--limit", "20",
                           "--min-confidence", "0").stdout)
    assert not any("secret" in hit["id"] or "escape" in hit["id"] for hit in found["results"])


def test_reindexing_the_folder_changes_nothing(folder: dict[str, Any]) -> None:
    run, report = _index(folder["photos"], folder["collection"])
    assert run.code == 1 and report["added"] == 0 and report["removed"] == 0
    assert report["unchanged"] == len(FOLDER_KNOWN) + 2
    assert len(report["failed"]) == len(FOLDER_FAILURES) + 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_and_folder_are_reported(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    (photos / "closed").mkdir(parents=True)
    (photos / "ok.jpg").write_bytes(jpeg_bytes(1))
    (photos / "locked.jpg").write_bytes(jpeg_bytes(2))
    (photos / "locked.jpg").chmod(0)
    (photos / "closed").chmod(0)
    try:
        run, report = _index(photos, tmp_path / "collection")
    finally:
        (photos / "closed").chmod(0o755)
    assert run.code == 1 and report["added"] == 1
    codes = {Path(f["source"]).name: f["code"] for f in report["failed"]}
    assert codes["closed"] == "unreadable" and "locked.jpg" in codes


# ---- catalogs ------------------------------------------------------------------------

GOOD_ROWS = [f"{item_id},img/{item_id}.jpg,known item,{10 + seed}"
             for item_id, seed in KNOWN.items()]
BAD_ROWS = [
    # (row, failure code, fragment of the reason)
    (",img/k0.jpg,no id,5", "missing_id", "missing or empty id"),
    ("   ,img/k0.jpg,blank id,5", "missing_id", "missing or empty id"),
    ("k1,img/k1.jpg,duplicate id,5", "duplicate_id", "duplicate id 'k1'"),
    ("p-word,img/k0.jpg,t,cheap", "bad_value", "cannot read price 'cheap'"),
    ("p-negative,img/k0.jpg,t,-5", "bad_value", "price '-5'"),
    ("p-nan,img/k0.jpg,t,nan", "bad_value", "price 'nan'"),
    ("p-inf,img/k0.jpg,t,inf", "bad_value", "price 'inf'"),
    ("p-overflow,img/k0.jpg,t,1e400", "bad_value", "price '1e400'"),
    ('p-comma,img/k0.jpg,t,"1,5"', "bad_value", "price '1,5'"),
    ("no-image,,t,5", "missing_image", "missing or empty image"),
    ("ftp-image,ftp://example.com/a.jpg,t,5", "bad_image_ref", "neither a path nor"),
    ("file-url,file:///etc/passwd,t,5", "bad_image_ref", "neither a path nor"),
    ("no-such-file,img/nope.jpg,t,5", "invalid_input", "no such file"),
    ("image-is-folder,img,t,5", "invalid_input", "is a folder"),
    ("not-an-image,img/notes.jpg,t,5", "unsupported_format", "text files are not accepted"),
    ("etc-passwd,/etc/passwd,t,5", "unsupported_format", "text files are not accepted"),
    ("traversal,../../../../../../etc/hostname,t,5", "unsupported_format", "not accepted"),
    ("loopback-url,http://127.0.0.1/a.jpg,t,5", "blocked_url", "loopback"),
    ("metadata-url,http://169.254.169.254/latest/,t,5", "blocked_url", "link-local"),
    ("private-url,http://10.0.0.1/a.jpg,t,5", "blocked_url", "private"),
    ("mapped-url,http://[::ffff:127.0.0.1]/a.jpg,t,5", "blocked_url", "loopback"),
    ("decimal-url,http://2130706433/a.jpg,t,5", "blocked_url", "loopback"),
    ("javascript,javascript:alert(1),t,5", "invalid_input", "no such file"),
]
ACCEPTED_ROWS = {
    "huge-title": "huge-title,img/k0.jpg," + "x" * 100_000 + ",5",
    "I" * 5000: "I" * 5000 + ",img/k0.jpg,very long id,5",
    "dollar-price": "dollar-price,img/k0.jpg,t,$12.50",
}


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("catalogs")
    (base / "img").mkdir()
    for item_id, seed in KNOWN.items():
        (base / "img" / f"{item_id}.jpg").write_bytes(jpeg_bytes(seed))
    (base / "img" / "notes.jpg").write_text("plain text")
    rows = [*GOOD_ROWS, *(row for row, _c, _f in BAD_ROWS), *ACCEPTED_ROWS.values()]
    (base / "products.csv").write_text("id,image,title,price\n" + "\n".join(rows) + "\n")
    collection = base / "collection"
    run, report = _index(base / "products.csv", collection)
    yield {"base": base, "collection": collection, "run": run, "report": report}
    with Engine.open(collection, hostile_settings(), create=False) as engine:
        check_known(engine, extra_ids=set(ACCEPTED_ROWS))


def _failure_for(catalog: dict[str, Any], row: str) -> dict[str, Any]:
    """The report's failure for ``row``: by row number, or by the image it names."""
    number = [*GOOD_ROWS, *(r for r, _c, _f in BAD_ROWS)].index(row) + 1
    image = row.split(",")[1]
    where = {f"products.csv row {number}", image, str((catalog["base"] / image).resolve())}
    # a row is named "products.csv row N", with " (id X)" once its id is known
    matching = [f for f in catalog["report"]["failed"]
                if f["source"] in where or f["source"].endswith(f".csv row {number}")
                or f["source"].startswith(f"products.csv row {number} (id ")]
    assert len(matching) == 1, (row, matching)
    return dict(matching[0])


@pytest.mark.parametrize(("row", "code", "fragment"), BAD_ROWS, ids=[r[:24] for r, *_ in BAD_ROWS])
def test_bad_catalog_rows_are_reported_and_skipped(catalog: dict[str, Any], row: str,
                                                   code: str, fragment: str) -> None:
    failure = _failure_for(catalog, row)
    assert failure["code"] == code and fragment in failure["reason"], failure
    item_id = row.split(",", 1)[0].strip()
    if item_id and item_id not in KNOWN:
        shown = cli("similar", item_id, "-c", catalog["collection"])
        assert shown.code == 3 and "no item" in shown.stderr, shown


def test_catalog_run_indexes_the_rest(catalog: dict[str, Any]) -> None:
    run, report = catalog["run"], catalog["report"]
    assert run.code == 1
    assert report["added"] == len(KNOWN) + len(ACCEPTED_ROWS)
    assert len(report["failed"]) == len(BAD_ROWS)
    assert f"failed {len(BAD_ROWS)}" in run.stderr


def test_rerunning_the_catalog_changes_nothing(catalog: dict[str, Any]) -> None:
    run, report = _index(catalog["base"] / "products.csv", catalog["collection"])
    assert run.code == 1 and report["added"] == 0 and report["updated"] == 0
    assert len(report["failed"]) == len(BAD_ROWS)


CATALOG_FILES = [
    # (file name, content, exit code, fragment of the message on stderr)
    ("empty.csv", b"", 6, "missing required column(s) id, image"),
    ("no-image-column.csv", b"id,title\nA,t\n", 6, "missing required column(s) image"),
    ("no-id-column.csv", b"image,title\nimg/k0.jpg,t\n", 6, "missing required column(s) id"),
    ("latin-1.csv", "id,image,title\nA,img/k0.jpg,caf\xe9\n".encode("latin-1"), 6,
     "not UTF-8"),
    ("latin-1.jsonl", '{"id": "A", "image": "img/k0.jpg", "t": "\xe9"}\n'.encode("latin-1"),
     6, "not UTF-8"),
    ("huge-field.csv", b"id,image,title\nA,img/k0.jpg," + b"x" * 200_000 + b"\n", 6,
     "field larger than field limit"),
    ("garbage.parquet", b"PAR1garbage", 6, "not a readable Parquet file"),
    ("empty.parquet", b"", 6, "not a readable Parquet file"),
    ("sheet.xlsx", b"PK\x03\x04", 6, "cannot tell what this file is"),
    ("header-only.csv", b"id,image\n", 0, "added 0"),
    ("ragged.csv", b"id,image,title\nA,img/k0.jpg\nB,img/k1.jpg,t,extra,extra\n", 1,
     "more fields than the header"),
    ("bad-line.jsonl", b'{"id": "A", "image": "img/k0.jpg"}\n{bad json\n', 1,
     "not valid JSON"),
    ("array-line.jsonl", b'[1, 2]\n{"id": "A", "image": "img/k0.jpg"}\n', 1,
     "not a JSON object"),
    ("string-line.jsonl", b'"hi"\n', 1, "not a JSON object"),
    ("null-id.jsonl", b'{"id": null, "image": "img/k0.jpg"}\n', 1, "missing or empty id"),
    ("object-price.jsonl", b'{"id": "A", "image": "img/k0.jpg", "price": {"a": 1}}\n', 1,
     "cannot read price"),
    ("bad-dates-and-numbers.csv",
     b"id,image,created_at,rating,popularity\nA,img/k0.jpg,not a date,1,1\n"
     b"B,img/k0.jpg,2020-01-01,five,1\nC,img/k0.jpg,2020-01-01,1,inf\n", 1,
     "is not an ISO 8601 date"),
    ("urls.txt", b"not a url\nftp://x/y\nhttp://127.0.0.1/a.jpg\n", 1,
     "not an http(s) URL"),
    ("blocked-urls.txt", b"http://[::1]/a.jpg\nhttp://0x7f.1/b.jpg\n", 1, "loopback"),
]


@pytest.mark.parametrize(("name", "content", "code", "fragment"), CATALOG_FILES,
                         ids=[c[0] for c in CATALOG_FILES])
def test_catalog_files(catalog: dict[str, Any], tmp_path: Path, name: str, content: bytes,
                       code: int, fragment: str) -> None:
    source = catalog["base"] / name
    source.write_bytes(content)
    run = cli("index", source, "-c", tmp_path / "collection", "--quiet")
    assert run.code == code, run
    assert fragment in run.stderr, run.stderr
    if code == 6:
        assert run.stderr.startswith("error: ") and name in run.stderr


def test_nul_byte_in_an_image_path_is_a_row_failure(catalog: dict[str, Any],
                                                    tmp_path: Path) -> None:
    source = catalog["base"] / "nul.jsonl"
    source.write_bytes(b'{"id": "A", "image": "img/k0.jpg"}\n'
                       b'{"id": "B", "image": "img/k1.jpg\\u0000.png"}\n')
    run, report = _index(source, tmp_path / "collection")
    assert run.code == 1 and report["added"] == 1
    assert len(report["failed"]) == 1 and "B" in json.dumps(report["failed"])
    assert report["failed"][0]["code"] == "bad_image_path", report["failed"]
