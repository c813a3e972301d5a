"""Batch writes, browsing by filters alone, the near filter and click feedback through an
HTTP node on each backend (tests/searchnodes.py): the same answers on a local collection,
on Milvus Lite and on the standalone Milvus 2.3.5 server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from apihelp import assert_error, b64, batch_operations
from fastapi.testclient import TestClient

from imagegen import jpeg_bytes
from imgsearch.web.limits import Limits
from searchnodes import SearchNode

BATCH = [
    *batch_operations(),
    {"op": "upsert", "item": {"id": "batch-a", "title": "second"},
     "image_base64": b64(jpeg_bytes(208))},
    {"op": "upsert", "item": {"id": "batch-e", "title": "no image"}},  # none stored
]


def test_batch_answers_each_operation_alike_on_every_backend(node: SearchNode) -> None:
    client = node.client
    assert client.put("/v1/items/batch-old", json={"image_base64": b64(jpeg_bytes(204))}
                      ).status_code == 201
    response = client.post("/v1/items:batch", json={"operations": BATCH})
    assert response.status_code == 200, response.text
    body = response.json()
    answers = [(r["index"], r["op"], r["id"], r["status"],
                r["error"]["code"] if r["error"] else None) for r in body["results"]]
    assert answers == [
        (0, "upsert", "batch-a", "added", None),
        (1, "upsert", "batch-b", "failed", "invalid_input"),
        (2, "upsert", "batch-c", "failed", "validation_error"),
        (3, "delete", "batch-old", "deleted", None),
        (4, "delete", "never-existed", "failed", "item_not_found"),
        (5, "rename", "x", "failed", "validation_error"),
        (6, "upsert", "batch-d", "failed", "blocked_url"),
        (7, "upsert", "batch-e", "added", None),
        (8, "upsert", "batch-a", "updated", None),
        (9, "upsert", "batch-e", "failed", "invalid_input"),
    ], node.backend
    assert body["succeeded"] == 4 and body["failed"] == 6
    assert client.get("/v1/items/batch-a").json()["title"] == "second"
    for gone in ("batch-old", "batch-b", "batch-c", "batch-d"):
        assert_error(client.get(f"/v1/items/{gone}"), 404, "item_not_found")
    top = client.post("/v1/search", json={"image_base64": b64(jpeg_bytes(207))}).json()
    assert top["results"][0]["id"] == "batch-e"
    for written in ("batch-a", "batch-e"):
        assert client.delete(f"/v1/items/{written}").status_code in (200, 204)


def test_batch_over_the_cap_is_refused_whole(node: SearchNode) -> None:
    cap = Limits().max_batch + 1
    response = node.client.post("/v1/items:batch", json={"operations": [
        {"op": "delete", "id": f"none-{i}"} for i in range(cap)]})
    assert_error(response, 400, "invalid_input")


@contextmanager
def second_node(node: SearchNode) -> Iterator[TestClient]:
    """Another node on the same collection: for Milvus a node of its own (another
    process would see the same), for a local collection the same one."""
    if node.backend == "local":
        yield node.client
        return
    from imgsearch.engine.backends.milvus import MilvusBackend
    from imgsearch.engine.remote import RemoteEngine
    from imgsearch.web.remote_app import create_remote_app

    engine = RemoteEngine(MilvusBackend.open(node.engine.uri, create=False),
                          node.engine.settings)
    with TestClient(create_remote_app(engine, owns_engine=True)) as client:
        yield client


def test_a_click_through_one_node_counts_in_the_report_of_another(node: SearchNode
                                                                  ) -> None:
    node.require("feedback")
    since = time.time()
    with second_node(node) as other:
        assert other.get(f"/v1/report?since={since}").json().get("all", {}).get(
            "searches", 0) == 0
        search = node.client.post("/v1/search", json={"similar_to": "p1", "limit": 3}).json()
        clicked = search["results"][1]["id"]
        assert node.client.post("/v1/feedback/click", json={
            "search_id": search["search_id"], "item_id": clicked, "position": 2}
        ).json() == {"recorded": True}
        report = other.get(f"/v1/report?since={since}").json()
    assert report["all"]["searches"] == 1, node.backend
    assert report["all"]["click_through_rate"] == 1.0
    assert report["all"]["mrr_of_clicks"] == 0.5
    assert report["item"]["searches"] == 1
    assert_error(node.client.post("/v1/feedback/click", json={
        "search_id": search["search_id"], "item_id": clicked, "position": 0}),
        422, "validation_error")
