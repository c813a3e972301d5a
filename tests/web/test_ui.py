"""The web page through the test client: one confidence scale, match labels, and what
was understood from the text."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from imgsearch.engine import Engine

CARD_SCORE = re.compile(r'<span class="badge match-(\w+)">([^<]+)</span>\s*'
                        r'<span class="score"[^>]*>(\d+)% match</span>')


def _cards(html: str) -> list[tuple[str, str, int]]:
    return [(kind, label, int(percent)) for kind, label, percent in CARD_SCORE.findall(html)]


def test_cards_show_a_percentage_and_a_match_label(client: TestClient) -> None:
    page = client.get("/", params={"q": "shoe number"})
    assert page.status_code == 200
    cards = _cards(page.text)
    assert cards and all(kind == "similar" and label == "Similar" for kind, label, _ in cards)
    # a 13-item collection is too small to calibrate: its hits are not "100 %" sure
    assert all(0 <= percent <= 99 for _, _, percent in cards)
    assert "100% match" not in page.text
    assert "score 0." not in page.text  # raw scores are in the API's matched_by only


def test_only_the_same_image_shows_100_percent(client: TestClient, web_engine: Engine,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    search = web_engine.search

    def labelled(query: Any) -> Any:
        result = search(query)
        kinds = ["exact", "copy", "similar"]
        hits = [dataclasses.replace(h, confidence=1.0, match=kinds[min(i, 2)])
                for i, h in enumerate(result.hits)]
        return dataclasses.replace(result, hits=hits)

    monkeypatch.setattr(web_engine, "search", labelled)
    cards = _cards(client.get("/", params={"q": "hat number"}).text)
    assert cards[:3] == [("exact", "Same image", 100), ("copy", "Edited copy", 99),
                         ("similar", "Similar", 99)]
    item = client.get("/items/p1").text  # the item page's "Similar items" too
    assert ("exact", "Same image", 100) in _cards(item)


def test_a_colour_word_is_shown_as_preferred(client: TestClient) -> None:
    page = client.get("/", params={"q": "blue shoe number"})
    assert page.status_code == 200
    assert "preferring blue" in page.text
    assert _cards(page.text)  # the colour word did not empty the result


def test_the_understood_line_names_the_expansions(client: TestClient, web_engine: Engine,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    search = web_engine.search

    def expanded(query: Any) -> Any:
        result = search(query)
        return dataclasses.replace(result, interpretation={
            **result.interpretation,
            "expanded": {"text_feedback": {"seeds": ["p1", "p2"], "beta": 0.5},
                         "visual_feedback": {"seeds": ["p1"], "neighbours": 10,
                                             "weight": 0.25}}})

    monkeypatch.setattr(web_engine, "search", expanded)
    page = client.get("/", params={"q": "shoe number"}).text
    line = next(line for line in page.splitlines() if "Understood as:" in line)
    assert line.endswith("widened towards p1, p2, with look-alikes of p1</p>")
