"""The timeline page over HTTP: months newest first, undated last, pages, and the
places facet when the collection knows places."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import imagegen as gen
from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.engine.timeline import month_label, month_of, timeline
from imgsearch.types import Item
from imgsearch.web import timeline as timeline_page

DATES = {"june-a": "2019-06-03", "june-b": "2019-06-28T18:30:00+02:00",
         "may": "2019-05-10T08:00:00Z", "new-year": "2021-01-01", "dec": "2020-12-31T23:59:59"}
PLACES = [{"value": "Portugal", "count": 3,
           "cities": [{"value": "Lisbon", "count": 2}, {"value": "Porto", "count": 1}]},
          {"value": "Japan", "count": 1, "cities": [{"value": "Kyoto", "count": 1}]}]
SECTION = re.compile(r'<section class="month" id="month-([\w-]+)"')
CARD = re.compile(r'<li class="card" data-id="([^"]+)"')


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    root = Path(tmp_path_factory.mktemp("timeline"))
    settings = Settings(image_encoder="descriptor", text_encoder="fake", ingest_workers=2)
    with Engine.open(root / "collection", settings) as opened:
        items = [(Item(id=name, title=f"photo {name}", created_at=date), gen.jpeg_bytes(i))
                 for i, (name, date) in enumerate(DATES.items())]
        items.append((Item(id="no-date", title="uploaded without a date"), gen.jpeg_bytes(9)))
        assert opened.ingest_items(items).ok
        # a folder photo has no created_at: its file's time places it
        folder = root / "photos"
        gen.write_image(folder / "from-file.jpg", 20)
        stamp = 1_500_000_000.0  # 2017-07-14 (UTC; the same month in any time zone)
        os.utime(folder / "from-file.jpg", (stamp, stamp))
        assert opened.ingest(folder).ok
        yield opened


@pytest.fixture(scope="module")
def client(engine: Engine) -> Iterator[TestClient]:
    from imgsearch.web import create_app

    with TestClient(create_app(engine)) as test_client:
        yield test_client


def _sections(html: str) -> list[tuple[str, list[str]]]:
    """(month, item ids) per month section, in page order."""
    parts = SECTION.split(html)[1:]
    return [(parts[i], CARD.findall(parts[i + 1].split("</section>")[0]))
            for i in range(0, len(parts), 2)]


def test_months_newest_first_with_their_photos(client: TestClient) -> None:
    page = client.get("/timeline")
    assert page.status_code == 200
    assert _sections(page.text) == [
        ("2021-01", ["new-year"]), ("2020-12", ["dec"]), ("2019-06", ["june-b", "june-a"]),
        ("2019-05", ["may"]), ("2017-07", ["from-file.jpg"]), ("undated", ["no-date"])]
    assert "June 2019" in page.text and "Undated" in page.text
    assert "7 items, newest first: 1–7." in page.text
    assert 'rel="next"' not in page.text


def test_pages_go_on_where_the_last_ended(client: TestClient,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(timeline_page, "PAGE_SIZE", 3)
    first = client.get("/timeline").text
    assert [m for m, _ in _sections(first)] == ["2021-01", "2020-12", "2019-06"]
    assert 'href="/timeline?offset=3" rel="next">Older →' in first
    second = client.get("/timeline", params={"offset": "3"}).text
    assert _sections(second) == [("2019-06", ["june-a"]), ("2019-05", ["may"]),
                                 ("2017-07", ["from-file.jpg"])]
    assert 'href="/timeline" rel="prev">← Newer' in second
    last = client.get("/timeline", params={"offset": "6"}).text
    assert _sections(last) == [("undated", ["no-date"])] and 'rel="next"' not in last
    beyond = client.get("/timeline", params={"offset": "60"})
    assert beyond.status_code == 200 and "No more items." in beyond.text


def test_a_bad_offset_is_a_clear_error(client: TestClient) -> None:
    page = client.get("/timeline", params={"offset": "soon"})
    assert page.status_code == 400
    assert "offset must be a whole number, got &#39;soon&#39;" in page.text


def test_timeline_follows_writes(client: TestClient, engine: Engine) -> None:
    engine.upsert(Item(id="later", title="a later photo", created_at="2024-02-29"),
                  gen.jpeg_bytes(30))
    try:
        assert _sections(client.get("/timeline").text)[0] == ("2024-02", ["later"])
    finally:
        engine.delete("later")
    assert _sections(client.get("/timeline").text)[0] == ("2021-01", ["new-year"])


def test_places_facet_lists_countries_and_cities_that_filter(
        client: TestClient, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    assert 'id="places"' not in client.get("/timeline").text  # no places known: no facet
    facets = engine.facets

    def with_places(*args: Any, **kwargs: Any) -> dict[str, Any]:
        return {**facets(*args, **kwargs), "places": PLACES}

    monkeypatch.setattr(engine, "facets", with_places)
    client.app.state.ui_facets = None  # type: ignore[attr-defined]  # the page's cache
    try:
        for path in ("/timeline", "/"):
            html = client.get(path).text
            nav = html.split('<nav class="places" id="places"', 1)[1].split("</nav>", 1)[0]
            countries = re.findall(r'data-country="([^"]+)"', nav)
            cities = re.findall(r'data-city="([^"]+)"><a href="([^"]+)">[^<]+</a>\s*'
                                r'<span class="count">(\d+)</span>', nav)
            assert countries == ["Portugal", "Japan"]
            assert cities == [("Lisbon", "/?place=Lisbon", "2"),
                              ("Porto", "/?place=Porto", "1"),
                              ("Kyoto", "/?place=Kyoto", "1")]
            assert '<a href="/?place=Portugal">Portugal</a>' in nav
    finally:
        client.app.state.ui_facets = None  # type: ignore[attr-defined]


@pytest.mark.parametrize(("date", "month"), [
    ("2019-06-03", "2019-06"), ("2019-06-30T23:59:59+14:00", "2019-06"),
    ("2019-06-30T23:00:00Z", "2019-06"), ("20190603", "2019-06"), (None, "undated"),
    ("", "undated"), ("not a date", "undated")])
def test_month_of_any_iso_date(date: str | None, month: str) -> None:
    assert month_of(date) == month


def test_month_labels() -> None:
    assert month_label("2019-06") == "June 2019"
    assert month_label("undated") == "Undated"


def test_a_photo_is_placed_by_the_date_its_exif_says_it_was_taken(tmp_path: Path) -> None:
    import photogen

    folder = tmp_path / "photos"
    photogen.write_photo(folder / "taken.jpg", 3, taken="2015:03:10 09:00:00")
    gen.write_image(folder / "no-exif.jpg", 4)
    stamp = 1_500_000_000.0  # 2017-07-14: both files' modification time
    for name in ("taken.jpg", "no-exif.jpg"):
        os.utime(folder / name, (stamp, stamp))
    settings = Settings(image_encoder="descriptor", text_encoder="fake", ingest_workers=2)
    with Engine.open(tmp_path / "collection", settings) as opened:
        assert opened.ingest(folder).ok
        page = timeline(opened)
    assert [(g.month, [h.id for h in g.hits]) for g in page.groups] == [
        ("2017-07", ["no-exif.jpg"]), ("2015-03", ["taken.jpg"])]
