"""A category or brand the collection does not hold is refused, listing those it holds."""

from __future__ import annotations

import html

from apihelp import assert_error
from fastapi.testclient import TestClient


def test_search_with_an_unknown_category_lists_the_known_ones(client: TestClient) -> None:
    response = client.post("/v1/search", json={"text": "shoe",
                                               "filters": {"categories": ["shooes"]}})
    message = assert_error(response, 400, "invalid_filter")["message"]
    assert "unknown category 'shooes'" in message
    for known in ("shoes", "hats", "bags"):
        assert known in message


def test_an_unknown_brand_is_refused_when_browsing_too(client: TestClient) -> None:
    response = client.post("/v1/search", json={"filters": {"brands": ["nobody"]}})
    message = assert_error(response, 400, "invalid_filter")["message"]
    assert "unknown brand 'nobody'" in message and "acme" in message and "zenith" in message


def test_known_values_match_whatever_their_case(client: TestClient) -> None:
    response = client.post("/v1/search", json={"text": "shoe", "min_confidence": 0,
                                               "filters": {"categories": [" SHOES "]}})
    assert response.status_code == 200, response.text
    hits = response.json()["results"]
    assert hits and {h["category"] for h in hits} == {"shoes"}


def test_the_web_page_says_which_categories_there_are(client: TestClient) -> None:
    page = client.get("/", params={"q": "shoe", "category": "shooes"})
    text = html.unescape(page.text)
    assert "unknown category 'shooes'" in text and "bags" in text
