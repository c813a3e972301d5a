"""CLI misuse: unknown flags and commands, missing arguments, wrong types, missing or
wrong collections, unknown or mismatched encoders, bad settings in the environment.

Each exits with its documented code (2 bad input, 3 not found, 4 collection problem,
5 model unavailable, 6 other error) and says what was wrong; the collection it was
pointed at keeps its known items.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from hostile.checks import KNOWN, cli, hostile_settings, known_items, reopen_and_check
from imagegen import jpeg_bytes
from imgsearch.engine import Engine


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    base = tmp_path_factory.mktemp("misuse")
    collection = base / "collection"
    with Engine.open(collection, hostile_settings()) as engine:
        assert engine.ingest_items(known_items()).ok
    (base / "query.jpg").write_bytes(jpeg_bytes(KNOWN["k0"]))
    (base / "a-file").write_text("not a collection")
    (base / "photos").mkdir()
    (base / "photos" / "one.jpg").write_bytes(jpeg_bytes(5))
    yield {"c": str(collection), "base": str(base), "q": str(base / "query.jpg"),
           "file": str(base / "a-file"), "photos": str(base / "photos"),
           "new": str(base / "new-collection"), "missing": str(base / "no-such-collection")}
    reopen_and_check(collection)


MISUSE: list[tuple[list[str], dict[str, str], int, str]] = [
    # (arguments, environment, exit code, fragment of stderr or stdout)
    (["--bogus"], {}, 2, "No such option"),
    (["frobnicate"], {}, 2, "No such command"),
    (["search"], {}, 2, "Missing option '--collection'"),
    (["info"], {}, 2, "Missing option '--collection'"),
    (["info", "-c", "{c}", "extra"], {}, 2, "unexpected extra argument"),
    (["remove", "-c", "{c}"], {}, 2, "Missing argument"),
    (["similar", "-c", "{c}"], {}, 2, "Missing argument"),
    (["index", "-c", "{new}"], {}, 2, "Missing argument"),
    (["add", "{q}", "-c", "{c}", "--price", "cheap"], {}, 2, "Invalid value for '--price'"),
    (["search", "-c", "{c}", "--text", "known", "--min-width", "wide"], {}, 2,
     "Invalid value for '--min-width'"),
    (["serve", "-c", "{c}", "--workers", "0"], {}, 2, "Invalid value for '--workers'"),
    (["serve", "-c", "{c}", "--port", "http"], {}, 2, "Invalid value for '--port'"),
    (["search", "-c", "{missing}", "--text", "known"], {}, 3, "no collection at"),
    (["similar", "k0", "-c", "{missing}"], {}, 3, "no collection at"),
    (["info", "-c", "{missing}"], {}, 3, "no collection at"),
    (["remove", "k0", "-c", "{missing}"], {}, 3, "no collection at"),
    (["dedup", "-c", "{missing}"], {}, 3, "no collection at"),
    (["report", "-c", "{missing}"], {}, 3, "no collection at"),
    (["eval", "--ann", "-c", "{missing}"], {}, 3, "no collection at"),
    (["search", "-c", "{file}", "--text", "known"], {}, 3, "no collection at"),
    (["info", "-c", "{file}"], {}, 3, "no collection at"),
    (["remove", "no-such-item", "-c", "{c}"], {}, 3, "not found: no-such-item"),
    (["index", "{missing}", "-c", "{new}"], {}, 2, "no such file or folder"),
    (["index", "{file}", "-c", "{new}"], {}, 6, "cannot tell what this file is"),
    # (an image given to `index` is added: tests/e2e/test_cli.py)
    (["index", "{photos}", "-c", "{new}", "--image-encoder", "bogus"], {}, 5,
     "no encoder named 'bogus'"),
    (["index", "{photos}", "-c", "{new}", "--text-encoder", "bogus"], {}, 5,
     "no encoder named 'bogus'"),
    (["index", "{photos}", "-c", "{c}", "--image-encoder", "fake"], {}, 4,
     "was built with image encoder 'descriptor'"),
    (["add", "{missing}.jpg", "-c", "{c}"], {}, 2, "no such file"),
    (["add", "{photos}", "-c", "{c}"], {}, 2, "is a folder, not an image file"),
    (["add", "http://127.0.0.1/x.jpg", "-c", "{c}"], {}, 6, "loopback"),
    (["add", "http://169.254.169.254/latest/", "-c", "{c}"], {}, 6, "link-local"),
    (["add", "ftp://example.com/a.jpg", "-c", "{c}"], {}, 2, "no such file"),
    (["info", "-c", "{c}"], {"IMGSEARCH_MAX_PIXELS": "lots"}, 2,
     "IMGSEARCH_MAX_PIXELS='lots' is not a valid int"),
    (["info", "-c", "{c}"], {"IMGSEARCH_ALLOW_PRIVATE_URLS": "maybe"}, 2,
     "is not a valid bool"),
    (["info", "-c", "{c}"], {"IMGSEARCH_INDEX_TYPE": "bogus"}, 2, "index_type 'bogus'"),
    (["index", "{photos}", "-c", "{new}"], {"IMGSEARCH_INDEX_TYPE": "bogus"}, 2,
     "index_type 'bogus'"),
]


def _fill(arguments: list[str], place: dict[str, str]) -> list[str]:
    return [a.format(**place) for a in arguments]


@pytest.mark.parametrize(("arguments", "env", "code", "fragment"), MISUSE,
                         ids=[" ".join(a)[:40] + (f" {e}" if e else "")
                              for a, e, _c, _f in MISUSE])
def test_misuse_exits_with_its_code(place: dict[str, str], arguments: list[str],
                                    env: dict[str, str], code: int, fragment: str) -> None:
    run = cli(*_fill(arguments, place), env=env)
    assert run.code == code, run
    said = " ".join((run.stderr + run.stdout).split())
    assert fragment in said, said
    assert "Traceback" not in said


BROKEN_PLACES: list[tuple[list[str], dict[str, Any]]] = [
    (["add", "{q}", "-c", "{file}"], {}),
    (["index", "{photos}", "-c", "{file}"], {}),
    (["index", "{photos}", "-c", "{file}/sub"], {}),
    (["search", "-c", "{c}", "--text", "known"], {"IMGSEARCH_FUSION": "bogus"}),
]


@pytest.mark.parametrize(("arguments", "env"), BROKEN_PLACES,
                         ids=[" ".join(a)[:40] + (f" {e}" if e else "")
                              for a, e in BROKEN_PLACES])
def test_bad_places_and_settings_get_a_one_line_error(place: dict[str, str],
                                                      arguments: list[str],
                                                      env: dict[str, str]) -> None:
    run = cli(*_fill(arguments, place), env=env)
    assert run.code in (2, 3, 4) and run.stderr.startswith("error: "), run
