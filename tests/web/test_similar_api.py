"""More like this over HTTP uses the item's image, text and category."""

from __future__ import annotations

from searchnodes import SearchNode


def test_similar_route_fuses_image_text_and_category(node: SearchNode) -> None:
    node.require("fused_similar")
    client = node.client
    body = client.get("/v1/items/p0/similar", params={"limit": 5}).json()
    hits = body["results"]
    assert len(hits) == 5 and "p0" not in [h["id"] for h in hits]
    spaces = {"image", "text"} & set(node.engine.spaces)  # the 2.3.5 server: image alone
    assert spaces and all(spaces <= set(h["matched_by"]) for h in hits)
    assert any("category" in h["matched_by"] for h in hits)
    assert "fused" in body["plan"]
    same = client.post("/v1/search", json={"similar_to": "p0", "limit": 5}).json()
    assert [h["id"] for h in same["results"]] == [h["id"] for h in hits]
