"""The timeline page in a real browser (Playwright driving Debian's chromium): months in
order, paging to older photos, opening a photo, the places facet, a phone's width.

Skipped, saying why, without the ``playwright`` package or a ``chromium`` binary.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest

import browserkit
from imagegen import picture
from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.types import Item
from photogen import photo_exif, photo_jpeg

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="browser tests need the playwright package (pip install "
                                  "playwright); its own browser download is not needed")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("browser tests need chromium (apt-get install chromium)",
                allow_module_level=True)
uvicorn = pytest.importorskip("uvicorn")

LISBON = (38.7223, -9.1393)
PLACES = [{"value": "Portugal", "count": 2, "cities": [{"value": "Lisbon", "count": 2}]}]
# 130 photos over 13 months of 2019-2020 (10 a month): more than one page of 120
MONTHS = [f"{2019 + (m // 12)}-{m % 12 + 1:02d}" for m in range(13)]


def _items() -> Iterator[tuple[Item, Any]]:
    for i in range(130):
        month = MONTHS[i // 10]
        title = "tram in Lisbon" if i in (3, 4) else f"photo {i}"
        # two photos taken in Lisbon (GPS in their EXIF): the place filter's answer
        image = photo_jpeg(i, photo_exif(gps=LISBON), (96, 72)) if i in (3, 4) else \
            picture(i, (96, 72))
        yield (Item(id=f"photo-{i:03d}", title=title, tags=("Portugal",) if i in (3, 4) else (),
                    created_at=f"{month}-{i % 10 + 10}T12:00:00"), image)


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    engine = Engine.open(tmp_path_factory.mktemp("browser-timeline") / "collection",
                         Settings(text_encoder="fake", ingest_workers=2))
    report = engine.ingest_items(_items())
    assert report.ok, report.failed
    facets = engine.facets
    # the places facet as it comes once photos carry their places (GPS + geocoding)
    engine.facets = lambda *a, **k: {**facets(*a, **k), "places": PLACES}  # type: ignore
    yield from browserkit.serve(engine)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    assert CHROMIUM is not None
    yield from browserkit.launch(CHROMIUM)


@pytest.fixture
def page(browser: Any, base_url: str, request: pytest.FixtureRequest) -> Iterator[Any]:
    yield from browserkit.opened_page(browser, base_url, request.node.name,
                                      viewport={"width": 1200, "height": 900})


@pytest.fixture
def phone(browser: Any, base_url: str, request: pytest.FixtureRequest) -> Iterator[Any]:
    yield from browserkit.opened_page(browser, base_url, request.node.name,
                                      viewport={"width": 390, "height": 844},
                                      is_mobile=True, has_touch=True)


def _months(page: Any) -> list[str]:
    return [str(v) for v in page.locator("section.month").evaluate_all(
        "sections => sections.map(s => s.dataset.month)")]


def test_the_timeline_shows_months_newest_first_and_pages_on(page: Any) -> None:
    page.goto("/")
    with page.expect_navigation():
        page.locator("#timeline-link").click()
    assert _months(page) == MONTHS[::-1][:12]  # 120 photos: the 12 newest months
    newest = page.locator("section.month").first
    sync_api.expect(newest.locator("h2")).to_contain_text("January 2020")
    assert newest.locator(".card").count() == 10
    with page.expect_navigation():
        page.get_by_role("link", name="Older →").click()
    assert _months(page) == ["2019-01"]
    assert page.locator("section.month .card").count() == 10
    with page.expect_navigation():
        page.get_by_role("link", name="← Newer").click()
    assert _months(page)[0] == "2020-01"


def test_a_photo_in_the_timeline_opens_its_page(page: Any) -> None:
    page.goto("/timeline")
    month = page.locator('section.month[data-month="2019-12"]')
    with page.expect_navigation():
        month.locator(".card .title").first.click()
    sync_api.expect(page.locator("article.item")).to_have_attribute("data-id", "photo-119")


def test_a_place_shows_the_photos_taken_there(page: Any) -> None:
    page.goto("/timeline")
    places = page.locator("#places")
    sync_api.expect(places).to_contain_text("Portugal")
    with page.expect_navigation():
        places.get_by_role("link", name="Lisbon").click()
    ids = page.locator("ol.grid > .card").evaluate_all("cards => cards.map(c => c.dataset.id)")
    assert sorted(ids) == ["photo-003", "photo-004"]  # a filter: only the photos taken there
    sync_api.expect(page.locator("#place-filter")).to_contain_text("Lisbon")


def test_the_timeline_fits_a_phone(phone: Any) -> None:
    phone.goto("/timeline")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    assert phone.locator("section.month").count() == 12
