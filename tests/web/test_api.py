"""Every endpoint of the HTTP API v1, on a small generated catalog."""

from __future__ import annotations

import os
import re

import pytest
from apihelp import SEEDED, SLASH_ID, assert_error, b64, batch_operations
from fastapi.testclient import TestClient

from imagegen import jpeg_bytes
from imgsearch.engine import Engine
from imgsearch.web import create_app
from searchnodes import SearchNode


def ids(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [hit["id"] for hit in response.json()["results"]]


def test_health_ready_and_docs(client: TestClient) -> None:
    me = {"role": "writer", "pid": os.getpid()}  # the test client serves in this process
    assert client.get("/health").json() == {"status": "ok", **me}
    assert client.get("/ready").json() == {"status": "ready", **me}
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/v1/search", "/v1/search/image", "/v1/search/text", "/v1/items:batch",
                 "/v1/items/{item_id}", "/v1/thumbnails/{item_id}", "/v1/stats",
                 "/v1/feedback/click", "/metrics"):
        assert path in paths, path


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_api_docs_load_their_assets_from_the_server_itself(client: TestClient, page: str
                                                           ) -> None:
    html = client.get(page).text
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', html)
    assert assets, html
    for url in assets:
        assert url.startswith("/"), f"{page} loads {url} from elsewhere"
        response = client.get(url)
        assert response.status_code == 200 and len(response.content) > 10_000, url
    assert "cdn." not in html and "fonts.googleapis" not in html


def test_web_page_has_a_favicon(client: TestClient) -> None:
    assert 'rel="icon"' in client.get("/").text
    icon = client.get("/static/favicon.svg")
    assert icon.status_code == 200 and icon.text.startswith("<svg")


def test_image_upload_takes_limit_from_the_query_string(node: SearchNode) -> None:
    client = node.client
    upload = {"file": ("q.jpg", jpeg_bytes(3))}
    response = client.post("/v1/search/image?limit=3", files=upload,
                           data={"min_confidence": "0"})
    assert response.status_code == 200
    assert len(response.json()["results"]) == 3
    paged = client.post("/v1/search/image?limit=2&offset=1", files=upload,
                        data={"min_confidence": "0"}).json()["results"]
    assert [hit["id"] for hit in paged] == ids(response)[1:3]


def test_uploaded_image_finds_itself_first(node: SearchNode) -> None:
    client = node.client
    response = client.post("/v1/search/image", files={"file": ("q.jpg", jpeg_bytes(3))},
                           data={"limit": "3"})
    body = response.json()
    assert ids(response)[0] == "p3"
    assert body["count"] == len(body["results"]) <= 3
    top = body["results"][0]
    if node.refuses("thumbnails") is None:
        assert top["thumbnail"] == "/v1/thumbnails/p3"
    else:
        assert top["thumbnail"] is None
    assert top["title"] == "shoe number 3" and top["category"] == "shoes"
    assert "image" in top["matched_by"]
    assert body["query_kind"] == "image"
    assert bool(body["search_id"]) is (node.refuses("feedback") is None)
    assert body["query_time_ms"] >= 0


def test_image_upload_takes_filters_as_form_fields(node: SearchNode) -> None:
    client = node.client
    response = client.post("/v1/search/image", files={"file": ("q.jpg", jpeg_bytes(3))},
                           data={"category": ["bags"], "min_confidence": "0"})
    found = ids(response)
    assert found and "p3" not in found  # p3 is a shoe
    assert all(hit["category"] == "bags" for hit in response.json()["results"])


@pytest.mark.parametrize("encode", [b64, lambda d: "data:image/jpeg;base64," + b64(d)])
def test_json_search_by_base64_image(node: SearchNode, encode) -> None:
    client = node.client
    response = client.post("/v1/search", json={"image_base64": encode(jpeg_bytes(4)),
                                               "limit": 2})
    assert ids(response)[0] == "p4"


def test_json_search_several_images_and_a_negative(node: SearchNode) -> None:
    client = node.client
    response = client.post("/v1/search", json={
        "images": [b64(jpeg_bytes(5)), b64(jpeg_bytes(6))],
        "negative_images": [b64(jpeg_bytes(7))], "min_confidence": 0, "limit": 5})
    found = ids(response)
    assert found and "p7" not in found[:1]
    assert response.json()["query_kind"] == "multi_image"


def test_text_search_with_filters_in_the_query_string(node: SearchNode) -> None:
    node.require("text")
    client = node.client
    response = client.get("/v1/search/text", params={
        "q": "number", "category": ["shoes", "bags"], "price_max": 80, "min_confidence": 0,
        "limit": 20})
    results = response.json()["results"]
    assert ids(response)
    assert all(h["category"] in ("shoes", "bags") and h["price"] <= 80 for h in results)


def test_json_search_with_filters_and_interpretation(node: SearchNode) -> None:
    node.require("text")
    client = node.client
    response = client.post("/v1/search", json={
        "text": "number", "filters": {"brands": ["acme"], "tags": ["sale"]},
        "min_confidence": 0})
    found = ids(response)
    assert found and set(found) <= {"p0", "p2"}  # acme = even, sale = first four
    body = response.json()
    assert isinstance(body["interpretation"], dict) and body["plan"]


def test_pagination_has_no_overlap(node: SearchNode) -> None:
    client = node.client
    def page(offset: int) -> list[str]:
        return ids(client.post("/v1/search", json={
            "similar_to": "p0", "limit": 4, "offset": offset, "collapse_duplicates": False}))

    first, second = page(0), page(4)
    assert len(first) == 4 and second
    assert not set(first) & set(second)


def test_get_item_including_ids_with_slashes(client: TestClient) -> None:
    item = client.get("/v1/items/p3").json()
    assert item["id"] == "p3" and item["category"] == "shoes" and item["price"] == 40.0
    assert item["width"] == 160 and item["orientation"] == "landscape"
    assert len(item["phash"]) == 16 and item["thumbnail"] == "/v1/thumbnails/p3"
    assert client.get(f"/v1/items/{SLASH_ID}").json()["id"] == SLASH_ID
    assert client.get(f"/v1/thumbnails/{SLASH_ID}").status_code == 200


def test_similar_excludes_the_item_and_takes_filters(node: SearchNode) -> None:
    client = node.client
    found = ids(client.get("/v1/items/p3/similar", params={"limit": 5}))
    assert found and "p3" not in found
    same_category = client.get("/v1/items/p3/similar", params={"category": "hats"})
    assert all(h["category"] == "hats" for h in same_category.json()["results"])
    assert ids(client.get(f"/v1/items/{SLASH_ID}/similar"))


def test_duplicates_lists_a_copy(node: SearchNode) -> None:
    client = node.client
    put = client.put("/v1/items/copy-of-p5", json={"image_base64": b64(jpeg_bytes(5))})
    assert put.status_code == 201
    body = client.get("/v1/items/p5/duplicates").json()
    assert body["id"] == "p5"
    copies = [d for d in body["duplicates"] if d["id"] == "copy-of-p5"]
    assert copies and copies[0]["tier"] == "exact"
    assert copies[0]["thumbnail"] == "/v1/thumbnails/copy-of-p5"


def test_thumbnail_is_a_cacheable_jpeg(client: TestClient) -> None:
    response = client.get("/v1/thumbnails/p1")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    assert response.content[:3] == b"\xff\xd8\xff"
    assert "max-age" in response.headers["cache-control"]
    etag = response.headers["etag"]
    again = client.get("/v1/thumbnails/p1", headers={"If-None-Match": etag})
    assert again.status_code == 304 and not again.content


def test_put_is_searchable_at_once_and_updates(node: SearchNode) -> None:
    client = node.client
    image = b64(jpeg_bytes(201))
    put = client.put("/v1/items/fresh-1", json={"title": "fresh thing", "price": 12.5,
                                                 "image_base64": image})
    assert put.status_code == 201 and put.json() == {"id": "fresh-1", "status": "added"}
    assert ids(client.post("/v1/search", json={"image_base64": image}))[0] == "fresh-1"
    again = client.put("/v1/items/fresh-1", json={"title": "renamed", "image_base64": image})
    assert again.status_code == 200 and again.json()["status"] == "updated"
    assert client.get("/v1/items/fresh-1").json()["title"] == "renamed"


def test_put_multipart_with_file_and_metadata(client: TestClient) -> None:
    response = client.put("/v1/items/multi/part-1",
                          files={"file": ("x.jpg", jpeg_bytes(202), "image/jpeg")},
                          data={"metadata": '{"title": "uploaded", "tags": ["a", "b"]}'})
    assert response.status_code == 201, response.text
    item = client.get("/v1/items/multi/part-1").json()
    assert item["title"] == "uploaded" and item["tags"] == ["a", "b"]
    top = ids(client.post("/v1/search/image", files={"file": ("q.jpg", jpeg_bytes(202))}))
    assert top[0] == "multi/part-1"


def test_metadata_only_put_needs_a_stored_image_reference(client: TestClient) -> None:
    assert_error(client.put("/v1/items/p2", json={"title": "no image"}), 400, "invalid_input")
    assert client.get("/v1/items/p2").json()["title"] != "no image"


def test_delete_then_it_never_comes_back(node: SearchNode) -> None:
    client = node.client
    image = b64(jpeg_bytes(203))
    assert client.put("/v1/items/doomed", json={"image_base64": image}).status_code == 201
    assert client.delete("/v1/items/doomed").json() == {"id": "doomed", "deleted": True}
    assert_error(client.get("/v1/items/doomed"), 404, "item_not_found")
    found = ids(client.post("/v1/search", json={"image_base64": image, "min_confidence": 0,
                                                "limit": 50}))
    assert "doomed" not in found
    if node.refuses("thumbnails") is None:
        assert_error(client.get("/v1/thumbnails/doomed"), 404, "item_not_found")
    assert_error(client.delete("/v1/items/doomed"), 404, "item_not_found")


def test_batch_reports_each_operation(client: TestClient) -> None:
    assert client.put("/v1/items/batch-old", json={"image_base64": b64(jpeg_bytes(204))}
                      ).status_code == 201
    response = client.post("/v1/items:batch", json={"operations": batch_operations()})
    assert response.status_code == 200, response.text
    body = response.json()
    statuses = [(r["index"], r["id"], r["status"]) for r in body["results"]]
    assert statuses == [(0, "batch-a", "added"), (1, "batch-b", "failed"),
                        (2, "batch-c", "failed"), (3, "batch-old", "deleted"),
                        (4, "never-existed", "failed"), (5, "x", "failed"),
                        (6, "batch-d", "failed"), (7, "batch-e", "added")]
    codes = [r["error"]["code"] if r["error"] else None for r in body["results"]]
    assert codes == [None, "invalid_input", "validation_error", None, "item_not_found",
                     "validation_error", "blocked_url", None]
    assert body["succeeded"] == 3 and body["failed"] == 5
    assert client.get("/v1/items/batch-a").json()["title"] == "first"
    assert_error(client.get("/v1/items/batch-old"), 404, "item_not_found")
    top = ids(client.post("/v1/search", json={"image_base64": b64(jpeg_bytes(207))}))
    assert top[0] == "batch-e"


def test_stats(client: TestClient) -> None:
    stats = client.get("/v1/stats").json()
    assert stats["items"] >= SEEDED + 1
    assert stats["spaces"]["image"]["vectors"] >= SEEDED + 1
    assert "/" not in stats["collection"]


def test_click_feedback_is_recorded(client: TestClient, web_engine: Engine) -> None:
    search = client.post("/v1/search", json={"similar_to": "p1", "limit": 3}).json()
    clicked = search["results"][1]["id"]
    response = client.post("/v1/feedback/click", json={
        "search_id": search["search_id"], "item_id": clicked, "position": 2})
    assert response.json() == {"recorded": True}
    assert client.get("/v1/report").status_code == 200
    assert_error(client.post("/v1/feedback/click", json={
        "search_id": search["search_id"], "item_id": clicked, "position": 0}),
        422, "validation_error")


def test_metrics_count_requests_and_zero_results(client: TestClient) -> None:
    empty = client.post("/v1/search", json={"text": "number",
                                            "filters": {"categories": ["shoes"],
                                                        "price_max": 1}})
    assert empty.json()["results"] == [] and empty.json()["empty_reason"] == "filtered_out"
    client.get("/v1/items/p0")
    text = client.get("/metrics").text
    assert 'imgsearch_http_requests_total{endpoint="/v1/search",method="POST",status="200"}' \
        in text
    assert 'endpoint="/v1/items/{item_id:path}"' in text  # templates, not raw ids
    assert 'endpoint="/v1/items/p0"' not in text
    assert 'imgsearch_search_zero_results_total{kind="text",reason="filtered_out"}' in text
    assert "imgsearch_http_request_duration_seconds_bucket" in text
    assert "imgsearch_items " in text


def test_several_apps_in_one_process_keep_their_own_metrics(web_engine: Engine) -> None:
    first, second = TestClient(create_app(web_engine)), TestClient(create_app(web_engine))
    first.get("/v1/stats")
    assert 'endpoint="/v1/stats"' in first.get("/metrics").text
    assert 'endpoint="/v1/stats"' not in second.get("/metrics").text


def test_metrics_have_search_stages_and_cache_lookups(client: TestClient) -> None:
    from imagegen import jpeg_bytes

    upload = {"file": ("q.jpg", jpeg_bytes(3), "image/jpeg")}
    first = client.post("/v1/search/image", files=upload).json()
    client.post("/v1/search/image", files={"file": ("q.jpg", jpeg_bytes(3), "image/jpeg")})
    assert {"decode", "encode", "ann", "rerank", "fetch"} <= set(first["stage_ms"])
    text = client.get("/metrics").text
    for stage_name in ("decode", "encode", "ann", "rerank", "fetch"):
        assert f'imgsearch_search_stage_seconds_count{{stage="{stage_name}"}}' in text
    assert 'imgsearch_cache_lookups_total{cache="results",outcome="hit"}' in text
    assert 'imgsearch_cache_lookups_total{cache="embeddings",outcome="miss"}' in text


def test_request_id_is_returned_and_logged(client: TestClient, caplog) -> None:
    import logging

    with caplog.at_level(logging.INFO, logger="imgsearch.access"):
        given = client.get("/health", headers={"X-Request-ID": "abc-123"})
        fresh = client.get("/health")
        hostile = client.get("/health", headers={"X-Request-ID": "bad id\nwith newline"})
    assert given.headers["x-request-id"] == "abc-123"
    assert len(fresh.headers["x-request-id"]) == 32
    assert hostile.headers["x-request-id"] != "bad id\nwith newline"
    fields = [r.fields for r in caplog.records if r.name == "imgsearch.access"]
    assert any(f["request_id"] == "abc-123" and f["status"] == 200 and f["path"] == "/health"
               for f in fields)


@pytest.mark.parametrize(("currency", "shown"), [("€", "€10.00"), ("CHF", "10.00 CHF"),
                                                 ("", "10.00")])
def test_the_page_shows_prices_in_the_collections_currency(web_engine: Engine, currency: str,
                                                           shown: str) -> None:
    settings = web_engine.settings.replace(currency=currency)
    with TestClient(create_app(web_engine, settings=settings)) as priced:
        item_page = priced.get("/items/p0").text
        results = priced.get("/?category=shoes").text
    assert f'<p class="price big">{shown}</p>' in item_page
    assert f'<span class="price">{shown}</span>' in results


def test_filters_alone_browse_newest_first(node: SearchNode) -> None:
    node.require("browse")
    client = node.client
    response = client.post("/v1/search", json={"filters": {"categories": ["hats"]}})
    body = response.json()
    assert response.status_code == 200 and body["query_kind"] == "browse"
    found = ids(response)
    assert found and all(hit["category"] == "hats" for hit in body["results"])
    assert found == sorted(found, key=lambda i: -int(i[1:]))  # p10 was added after p1
