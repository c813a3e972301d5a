"""Every search route takes the same ranking options, and they change the answer.

The upload, text and similar routes once built their own ``Query`` and dropped boosts,
diversity (MMR, a cap per category), colour preferences and several example images;
the JSON route took no raw vector. Each test here asks the route with an option and
compares with the library's answer to the same query, and with the answer without it.
"""

from __future__ import annotations

from typing import Any

import pytest
from apihelp import assert_error, b64

from imagegen import jpeg_bytes
from imgsearch.engine import Engine
from imgsearch.errors import InvalidQueryError
from imgsearch.types import Query
from searchnodes import SearchNode


def ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [hit["id"] for hit in response.json()["results"]]


def engine_ids(engine: Engine, **fields: Any) -> list[str]:
    return [hit.id for hit in engine.search(Query(**fields)).hits]


def categories(response: Any) -> list[str]:
    return [hit["category"] for hit in response.json()["results"]]


UPLOAD = {"file": ("q.jpg", jpeg_bytes(3))}
ALL = {"min_confidence": "0", "limit": "12", "collapse_duplicates": "false"}


def test_text_route_caps_hits_per_category(node: SearchNode) -> None:
    node.require("text")
    client, web_engine = node.client, node.engine
    plain = client.get("/v1/search/text", params={"q": "number", **ALL})
    capped = client.get("/v1/search/text", params={"q": "number", "max_per_category": 1,
                                                    **ALL})
    assert len(ids(plain)) > 3
    assert len(categories(capped)) == len(set(categories(capped))) < len(ids(plain))
    assert ids(capped) == engine_ids(web_engine, text="number", min_confidence=0, limit=12,
                                     collapse_duplicates=False, max_per_category=1)


def test_upload_route_caps_hits_per_category(node: SearchNode) -> None:
    client = node.client
    plain = client.post("/v1/search/image", files=UPLOAD, data=ALL)
    capped = client.post("/v1/search/image", files=UPLOAD,
                         data={**ALL, "max_per_category": "1"})
    assert len(ids(plain)) > 3
    assert ids(capped)[0] == "p3"
    assert len(categories(capped)) == len(set(categories(capped))) < len(ids(plain))


def test_upload_route_takes_mmr(node: SearchNode) -> None:
    client, web_engine = node.client, node.engine
    plain = ids(client.post("/v1/search/image", files=UPLOAD, data=ALL))
    diverse = ids(client.post("/v1/search/image", files=UPLOAD, data={**ALL,
                                                                       "mmr_lambda": "0"}))
    expected = engine_ids(web_engine, images=[jpeg_bytes(3)], min_confidence=0, limit=12,
                          collapse_duplicates=False, mmr_lambda=0.0)
    assert diverse == expected
    assert diverse[0] == plain[0] == "p3" and diverse != plain


def test_upload_route_takes_several_images(node: SearchNode) -> None:
    client = node.client
    files = [("file", ("a.jpg", jpeg_bytes(2))), ("file", ("b.jpg", jpeg_bytes(9)))]
    response = client.post("/v1/search/image", files=files,
                           data={"multi_image": "rrf", "min_confidence": "0", "limit": "4"})
    assert set(ids(response)[:2]) == {"p2", "p9"}
    assert response.json()["query_kind"] == "multi_image"


@pytest.mark.parametrize("route", ["text", "image", "similar"])
def test_every_form_route_checks_its_boosts(node: SearchNode, route: str) -> None:
    """A boost reaches the engine, which refuses an unknown signal (it was ignored)."""
    if route == "text":
        node.require("text")
    client = node.client
    fields = {"boost": "luck=0.5"}
    if route == "text":
        response = client.get("/v1/search/text", params={"q": "hat", **fields})
    elif route == "image":
        response = client.post("/v1/search/image", files=UPLOAD, data=fields)
    else:
        response = client.get("/v1/items/p1/similar", params=fields)
    assert_error(response, 400, "invalid_query")
    malformed = client.get("/v1/search/text", params={"q": "hat", "boost": "popularity"})
    assert "SIGNAL=WEIGHT" in assert_error(malformed, 400, "invalid_query")["message"]


def test_similar_route_prefers_a_colour(node: SearchNode) -> None:
    client, web_engine = node.client, node.engine
    plain = ids(client.get("/v1/items/p0/similar", params=ALL))
    last = plain[-1]
    colour = web_engine.get(last).colors[0]
    preferred = ids(client.get("/v1/items/p0/similar", params={**ALL,
                                                                "prefer_color": colour}))
    assert preferred.index(last) < plain.index(last)
    assert preferred == engine_ids(web_engine, similar_to="p0", min_confidence=0, limit=12,
                                   collapse_duplicates=False, prefer_colors=(colour,))


def test_json_route_takes_prefer_colors(node: SearchNode) -> None:
    client, web_engine = node.client, node.engine
    body = {"image_base64": b64(jpeg_bytes(3)), "min_confidence": 0, "limit": 12,
            "collapse_duplicates": False}
    plain = ids(client.post("/v1/search", json=body))
    colour = web_engine.get(plain[-1]).colors[0]
    preferred = ids(client.post("/v1/search", json={**body, "prefer_colors": [colour]}))
    assert preferred.index(plain[-1]) < len(plain) - 1


def test_json_route_takes_a_raw_vector(node: SearchNode) -> None:
    client, web_engine = node.client, node.engine
    vector = web_engine.embed_query_image(jpeg_bytes(5))
    response = client.post("/v1/search", json={"vector": [float(v) for v in vector],
                                               "limit": 3})
    assert ids(response)[0] == "p5"
    assert response.json()["query_kind"] == "vector"
    short = client.post("/v1/search", json={"vector": [0.5, 0.5]})
    assert f"{len(vector)} finite numbers" in assert_error(short, 400,
                                                          "invalid_query")["message"]
    unknown = client.post("/v1/search", json={"vector": [0.5, 0.5], "vector_space": "sound"})
    assert "no vector space 'sound'" in assert_error(unknown, 400, "invalid_query")["message"]


def test_json_route_hands_index_parameters_to_the_backend(node: SearchNode) -> None:
    node.require("search_params")
    client, web_engine = node.client, node.engine
    body = {"image_base64": b64(jpeg_bytes(3)), "min_confidence": 0, "limit": 5}
    tuned = client.post("/v1/search", json={**body, "ef_search": 512, "nprobe": 4})
    assert ids(tuned) == ids(client.post("/v1/search", json=body))  # a flat index: exact
    assert_error(client.post("/v1/search", json={**body, "ef_search": 0}), 422,
                 "validation_error")
    with pytest.raises(InvalidQueryError, match="unknown search parameter 'efSearch'"):
        web_engine.search(Query(images=[jpeg_bytes(3)], search_params={"efSearch": 10}))
