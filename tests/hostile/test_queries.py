"""Bad query parameters over HTTP and the CLI: limits, offsets, weights, filters,
unknown fields, bad ids and batch envelopes. Each answers its own code and changes
nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from apihelp import assert_error, b64
from fastapi.testclient import TestClient

from hostile.checks import KNOWN, assert_intact, cli
from imagegen import jpeg_bytes
from imgsearch.engine import Engine

TEXT = {"text": "known"}
BAD_BODIES = [
    # (body, status, code)
    ({**TEXT, "offset": 10**12}, 422, "validation_error"),  # past any integer a page takes
    ({**TEXT, "offset": 10_001}, 400, "invalid_query"),
    ({**TEXT, "offset": -1}, 400, "invalid_query"),
    ({**TEXT, "limit": 0}, 400, "invalid_query"),
    ({**TEXT, "limit": 1001}, 400, "invalid_query"),
    ({**TEXT, "limit": 5.5}, 422, "validation_error"),
    ({**TEXT, "limit": "many"}, 422, "validation_error"),
    ({**TEXT, "image_weight": -0.1}, 400, "invalid_query"),
    ({**TEXT, "image_weight": 1.1}, 400, "invalid_query"),
    ({**TEXT, "image_weight": "half"}, 422, "validation_error"),
    ({**TEXT, "min_confidence": 2}, 422, "validation_error"),
    ({**TEXT, "min_confidence": -0.1}, 422, "validation_error"),
    ({**TEXT, "mmr_lambda": 1.5}, 422, "validation_error"),
    ({**TEXT, "max_per_category": 0}, 422, "validation_error"),
    ({**TEXT, "boosts": {"popularity": 0.9, "rating": 0.9}}, 400, "invalid_query"),
    ({**TEXT, "boosts": {"popularity": -1}}, 400, "invalid_query"),
    ({**TEXT, "boosts": {"luck": 0.5}}, 400, "invalid_query"),
    ({**TEXT, "boosts": {c: 0.1 for c in "abcdefghi"}}, 422, "validation_error"),
    ({**TEXT, "multi_image": "median"}, 422, "validation_error"),
    ({**TEXT, "collapse_duplicates": "maybe"}, 422, "validation_error"),
    ({**TEXT, "unknown": 1}, 422, "validation_error"),
    ({**TEXT, "filters": {"size": 1}}, 422, "validation_error"),
    ({**TEXT, "filters": []}, 422, "validation_error"),
    ({**TEXT, "filters": {"categories": ["a"] * 101}}, 422, "validation_error"),
    ({**TEXT, "filters": {"attributes": {"a": {"b": 1}}}}, 422, "validation_error"),
    ({**TEXT, "filters": {"min_width": -1}}, 422, "validation_error"),
    ({**TEXT, "filters": {"price_min": "cheap"}}, 422, "validation_error"),
    ({**TEXT, "filters": {"price_min": 50, "price_max": 10}}, 400, "invalid_filter"),
    ({**TEXT, "filters": {"tags": [""]}}, 400, "invalid_filter"),
    ({**TEXT, "filters": {"orientation": "LANDSCAPE"}}, 422, "validation_error"),
    ({"text": "x" * 2001}, 422, "validation_error"),
    ({"similar_to": ""}, 400, "invalid_query"),
    ({"negative_images": [b64(jpeg_bytes(1))]}, 400, "invalid_query"),
    ({"similar_to": "no-such-item"}, 404, "item_not_found"),
    ({"images": [b64(jpeg_bytes(1))] * 17}, 400, "invalid_query"),
]


@pytest.mark.parametrize(("body", "status", "code"), BAD_BODIES,
                         ids=[str(b)[:40] for b, _s, _c in BAD_BODIES])
def test_bad_search_bodies(client: TestClient, body: dict[str, Any], status: int,
                           code: str) -> None:
    assert_error(client.post("/v1/search", json=body), status, code)


BAD_PARAMS = [
    # (path, params, status, code)
    ("/v1/search/text", {"q": "known", "offset": -1}, 400, "invalid_query"),
    ("/v1/search/text", {"q": "known", "offset": "x"}, 422, "validation_error"),
    ("/v1/search/text", {"q": "known", "limit": "1e3"}, 422, "validation_error"),
    ("/v1/search/text", {"q": "known", "limit": 0}, 400, "invalid_query"),
    ("/v1/search/text", {"q": ""}, 422, "validation_error"),
    ("/v1/search/text", {"q": "x" * 2001}, 422, "validation_error"),
    ("/v1/search/text", {"q": "known", "min_confidence": "2"}, 422, "validation_error"),
    ("/v1/search/text", {"q": "known", "orientation": "round"}, 422, "validation_error"),
    ("/v1/search/text", {"q": "known", "category": ["a"] * 101}, 422, "validation_error"),
    ("/v1/search/text", {"q": "known", "min_width": "-1"}, 422, "validation_error"),
    ("/v1/search/text", {"q": "known", "collapse_duplicates": "m"}, 422, "validation_error"),
    ("/v1/search/text", {"q": "known", "price_min": "nan"}, 422, "validation_error"),
    ("/v1/search/text", {"q": "known", "price_max": "inf"}, 422, "validation_error"),
    ("/v1/search/text", {"q": "known", "price_min": 9, "price_max": 1}, 400, "invalid_filter"),
    ("/v1/items/k0/similar", {"limit": 0}, 400, "invalid_query"),
    ("/v1/items/k0/similar", {"limit": 100_000}, 400, "invalid_query"),
    ("/v1/items/k0/similar", {"offset": -2}, 400, "invalid_query"),
    ("/v1/items/k0/similar", {"price_min": 5, "price_max": 1}, 400, "invalid_filter"),
    ("/v1/items/no-such-item/similar", {}, 404, "item_not_found"),
    ("/v1/items/no-such-item/duplicates", {}, 404, "item_not_found"),
    ("/v1/report", {"since": "yesterday"}, 422, "validation_error"),
    ("/v1/items/" + "a" * 10_000, {}, 404, "item_not_found"),
    ("/v1/items/%00", {}, 404, "item_not_found"),
    ("/v1/items/..%2f..%2fetc%2fpasswd", {}, 404, "item_not_found"),
    ("/v1/thumbnails/%2e%2e/%2e%2e/etc/passwd", {}, 404, "item_not_found"),
    ("/v1/thumbnails/../../etc/passwd", {}, 404, "not_found"),
]


@pytest.mark.parametrize(("path", "params", "status", "code"), BAD_PARAMS,
                         ids=[f"{p[:30]}-{str(q)[:30]}" for p, q, _s, _c in BAD_PARAMS])
def test_bad_query_strings_and_ids(client: TestClient, path: str, params: dict[str, Any],
                                   status: int, code: str) -> None:
    assert_error(client.get(path, params=params), status, code)


BAD_CLICKS = [
    ({}, 422, "validation_error"),
    ({"search_id": "s"}, 422, "validation_error"),
    ({"search_id": "s", "item_id": "k0", "position": 0}, 422, "validation_error"),
    ({"search_id": "s", "item_id": "k0", "position": -1}, 422, "validation_error"),
    ({"search_id": "s", "item_id": "k0", "position": "first"}, 422, "validation_error"),
    ({"search_id": "s" * 10_000, "item_id": "k0", "position": 1}, 422, "validation_error"),
    ({"search_id": "s", "item_id": "k0", "position": 1, "extra": 1}, 422,
     "validation_error"),
]


@pytest.mark.parametrize(("body", "status", "code"), BAD_CLICKS,
                         ids=[str(b)[:40] for b, _s, _c in BAD_CLICKS])
def test_bad_clicks(client: TestClient, body: dict[str, Any], status: int, code: str) -> None:
    assert_error(client.post("/v1/feedback/click", json=body), status, code)


BAD_OPERATIONS = [
    ({"op": "upsert", "item": {"id": "x" * 1001}}, "validation_error"),
    ({"op": "nuke", "id": "k0"}, "validation_error"),
    ({"op": "delete", "id": ""}, "validation_error"),
    ({"op": "delete"}, "validation_error"),
    ({"op": "delete", "id": "no-such-item"}, "item_not_found"),
    ({"op": "upsert", "item": {"id": "b1"}, "image_base64": "AA=="}, "corrupt_image"),
    ({"op": "upsert", "item": {"id": "b2"}, "image_base64": "not base64!"}, "invalid_input"),
    ({"op": "upsert", "item": {"id": "b3"}}, "invalid_input"),
    ({"op": "upsert", "item": {"id": "b4", "owner": "x"}, "image_base64": "AA=="},
     "validation_error"),
    ({"op": "upsert", "item": {"id": "b5"}, "image_url": "http://10.0.0.1/a.jpg"},
     "blocked_url"),
]


@pytest.mark.parametrize(("operation", "code"), BAD_OPERATIONS,
                         ids=[str(o)[:40] for o, _c in BAD_OPERATIONS])
def test_bad_batch_operations_fail_alone(client: TestClient, operation: dict[str, Any],
                                         code: str) -> None:
    good = {"op": "upsert", "item": {"id": "batch-good"},
            "image_base64": b64(jpeg_bytes(70))}
    response = client.post("/v1/items:batch", json={"operations": [operation, good]})
    assert response.status_code == 200, response.text
    first, second = response.json()["results"]
    assert first["status"] == "failed" and first["error"]["code"] == code, first
    assert second["status"] == "added", second
    assert client.delete("/v1/items/batch-good").status_code == 200
    assert_intact(client)


def test_an_oversized_batch_is_refused_whole(client: TestClient) -> None:
    operations = [{"op": "delete", "id": f"x{i}"} for i in range(1001)]
    error = assert_error(client.post("/v1/items:batch", json={"operations": operations}),
                         400, "invalid_input")
    assert "at most 1000" in error["message"]


# (a blank id is refused like a catalog row's: see test_a_blank_id_is_refused)
ODD_IDS = ["a" * 5000, "a\x00b", "..", "\u202e", "../../etc/passwd", "a?b#c", "100%"]


def test_a_blank_id_is_refused(client: TestClient) -> None:
    error = assert_error(client.put("/v1/items/%20", json={"image_base64": b64(jpeg_bytes(71))}),
                         422, "invalid_field")
    assert "empty id" in error["message"]
    assert_intact(client)


def test_an_empty_query_browses(client: TestClient) -> None:
    for body in ({"text": ""}, {"images": []}, {}):
        response = client.post("/v1/search", json=body)
        assert response.status_code == 200 and response.json()["query_kind"] == "browse"


@pytest.mark.parametrize("item_id", ODD_IDS, ids=lambda i: repr(i)[:16])
def test_odd_ids_round_trip_without_touching_anything_else(
        client: TestClient, known_engine: Engine, item_id: str) -> None:
    path = "/v1/items/" + quote(item_id, safe="").replace(".", "%2E")
    put = client.put(path, json={"image_base64": b64(jpeg_bytes(71))})
    assert put.status_code == 201 and put.json()["id"] == item_id, put.text
    assert client.get(path).json()["id"] == item_id
    created = {p.name for p in Path(known_engine.directory).iterdir()}
    assert "passwd" not in created and item_id not in created
    assert client.delete(path).json() == {"id": item_id, "deleted": True}
    assert_intact(client)


@pytest.fixture(scope="module")
def collection(known_engine: Engine) -> Iterator[Path]:
    # the CLI opens the module's collection read-only next to the engine that writes it
    yield Path(known_engine.directory)


SEARCH = ["search", "--text", "known"]
BAD_CLI_QUERIES = [
    # (arguments, exit code, fragment of stderr)
    ([*SEARCH, "--limit", "0"], 2, "limit must be between 1 and 1000"),
    ([*SEARCH, "--limit", "100000"], 2, "limit must be between 1 and 1000"),
    ([*SEARCH, "--limit", "ten"], 2, "Invalid value for '--limit'"),
    ([*SEARCH, "--offset", "-1"], 2, "offset must be between 0 and 10000"),
    ([*SEARCH, "--image-weight", "2"], 2, "image_weight must be between 0 and 1"),
    ([*SEARCH, "--image-weight", "abc"], 2, "Invalid value for '--image-weight'"),
    ([*SEARCH, "--boost", "popularity"], 2, "--boost takes SIGNAL=WEIGHT"),
    ([*SEARCH, "--boost", "luck=0.5"], 2, "unknown boost 'luck'"),
    ([*SEARCH, "--boost", "popularity=lots"], 2, "--boost takes SIGNAL=WEIGHT"),
    ([*SEARCH, "--boost", "popularity=0.8", "--boost", "rating=0.8"], 2, "sum to at most 1"),
    ([*SEARCH, "--attr", "noequals"], 2, "--attr takes NAME=VALUE"),
    ([*SEARCH, "--attr", "=x"], 2, "--attr takes NAME=VALUE"),
    ([*SEARCH, "--orientation", "diagonal"], 2, "orientation must be one of"),
    ([*SEARCH, "--mmr", "3"], 2, "mmr_lambda must be between 0 and 1"),
    ([*SEARCH, "--multi-image", "median"], 2, "multi_image must be 'average' or 'rrf'"),
    ([*SEARCH, "--price-min", "50", "--price-max", "10"], 2, "greater than price_max"),
    ([*SEARCH, "--price-min", "cheap"], 2, "Invalid value for '--price-min'"),
    ([*SEARCH, "--min-width", "-5"], 2, "min_width must be a non-negative integer"),
    ([*SEARCH, "--tag", ""], 2, "tag filter values must be non-empty"),
    (["search", "--text", "   "], 2, "text query is empty"),
    (["search", "--not-image", "{image}"], 2, "negative images need at least one"),
    (["search", "--image", "no-such.jpg"], 2, "no-such.jpg: no such file"),
    (["search", "--image", "{collection}"], 2, "is a folder, not an image file"),
    (["search", "--image", "http://127.0.0.1/x.jpg"], 6, "loopback"),
    (["search", "--image", "http://[::ffff:10.0.0.1]/x.jpg"], 6, "private"),
    (["similar", "no-such-item"], 3, "no item with id 'no-such-item'"),
    (["similar", "k0", "--limit", "0"], 2, "limit must be between 1 and 1000"),
    (["dedup", "--min-tier", "bogus"], 2, "unknown duplicate tier 'bogus'"),
    (["dedup", "--item", "no-such-item"], 3, "no item with id 'no-such-item'"),
    (["eval"], 2, "eval needs a QRELS file, --ann or --explain"),
    (["eval", "no-such.jsonl"], 2, "does not exist"),
    (["eval", "{qrels}"], 2, "line 1: not valid JSON"),
    (["eval", "--k", "a,b", "--ann"], 2, "--k takes numbers separated by commas"),
    (["eval", "--ann-queries", "-1", "--ann"], 2, "must be at least 1"),
    (["report", "--days", "abc"], 2, "Invalid value for '--days'"),
]


@pytest.mark.parametrize(("arguments", "code", "fragment"), BAD_CLI_QUERIES,
                         ids=[" ".join(a)[:40] for a, _c, _f in BAD_CLI_QUERIES])
def test_bad_cli_queries(collection: Path, tmp_path: Path, arguments: list[str], code: int,
                         fragment: str) -> None:
    (tmp_path / "q.jpg").write_bytes(jpeg_bytes(KNOWN["k0"]))
    (tmp_path / "qrels.jsonl").write_text("{bad\n")
    values = {"image": str(tmp_path / "q.jpg"), "collection": str(collection),
              "qrels": str(tmp_path / "qrels.jsonl")}
    run = cli(*[a.format(**values) for a in arguments], "-c", collection)
    assert run.code == code, run
    assert fragment in " ".join(run.stderr.split()), run.stderr


@pytest.mark.parametrize("arguments", [["--min-confidence", "5"], ["--min-confidence", "-1"],
                                       ["--max-per-category", "0"]])
def test_cli_refuses_out_of_range_ranking_options(collection: Path,
                                                  arguments: list[str]) -> None:
    run = cli(*SEARCH, *arguments, "-c", collection)
    assert run.code == 2 and run.stderr.startswith("error: "), run
