"""The web page in a real browser: Playwright driving Debian's chromium over a live server.

Each test leaves a screenshot in ``test-artifacts/``. Without the ``playwright`` package
or a ``chromium`` binary the module is skipped (``make test`` installs both).
"""

from __future__ import annotations

import base64
import io
import shutil
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from PIL import Image

import browserkit
from imagegen import jpeg_bytes, picture, text_file
from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.types import Item

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="browser tests need the playwright package (pip install "
                                  "playwright); its own browser download is not needed")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("browser tests need chromium (apt-get install chromium)",
                allow_module_level=True)
uvicorn = pytest.importorskip("uvicorn")

ADJECTIVES = ["red", "blue", "wooden", "silver", "striped", "vintage", "leather", "cotton"]
NOUNS = ["lamp", "chair", "mug", "wallet", "backpack", "watch", "shirt", "vase"]
BRANDS = ["acme", "zenith", "orbit"]


def _items() -> Iterator[tuple[Item, Image.Image]]:
    # 64 distinct pictures: enough for the collection to calibrate its "no match" bar.
    for i in range(len(ADJECTIVES) * len(NOUNS)):
        adjective, noun = ADJECTIVES[i // len(NOUNS)], NOUNS[i % len(NOUNS)]
        yield (Item(id=f"item-{i}", title=f"{adjective} {noun}", category=noun,
                    brand=BRANDS[i % len(BRANDS)], price=5.0 * (i + 1)), picture(i))
    yield Item(id="dup-a", title="sunset poster", category="poster", price=12.0), picture(500)
    yield (Item(id="dup-b", title="sunset poster, smaller", category="poster", price=9.5),
           picture(500).resize((150, 112)))


def _title(i: int) -> str:
    return f"{ADJECTIVES[i // len(NOUNS)]} {NOUNS[i % len(NOUNS)]}"


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    engine = Engine.open(tmp_path_factory.mktemp("browser") / "collection",
                         Settings(text_encoder="fake", ingest_workers=2))
    report = engine.ingest_items(_items())
    assert report.ok, report.failed
    yield from browserkit.serve(engine)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    assert CHROMIUM is not None
    yield from browserkit.launch(CHROMIUM)


@pytest.fixture
def page(browser: Any, base_url: str, request: pytest.FixtureRequest) -> Iterator[Any]:
    yield from browserkit.opened_page(browser, base_url, request.node.name,
                                      viewport={"width": 1200, "height": 900})


def _card_ids(page: Any) -> list[str]:
    return [str(v) for v in page.locator("ol.grid > .card").evaluate_all(
        "cards => cards.map(c => c.dataset.id)")]


def _search_for(page: Any, text: str) -> None:
    page.goto("/")
    page.fill("#q", text)
    with page.expect_navigation():
        page.get_by_role("button", name="Search", exact=True).click()


def _noise_png() -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_text_query_shows_a_grid_of_results(page: Any) -> None:
    _search_for(page, "striped vase")
    first = page.locator("ol.grid > .card").first
    sync_api.expect(first.locator(".title")).to_have_text("striped vase")
    assert page.url.endswith("/?q=striped+vase")
    sync_api.expect(first.locator(".score")).to_contain_text("% match")
    sync_api.expect(first.locator(".badge")).to_have_text("Similar")
    shown = [int(t.split("%")[0]) for t in page.locator("ol.grid .score").all_inner_texts()]
    assert shown and all(0 <= p <= 99 for p in shown)  # 100 % is for the same image only
    sync_api.expect(first.locator("img")).to_have_attribute("src", "/v1/thumbnails/item-39")
    assert first.locator("img").evaluate("img => img.naturalWidth") > 0


def test_an_uploaded_image_finds_itself_first(page: Any) -> None:
    page.goto("/")
    page.set_input_files("#image", files=[{"name": "query.jpg", "mimeType": "image/jpeg",
                                           "buffer": jpeg_bytes(7)}])
    with page.expect_navigation():
        page.get_by_role("button", name="Search", exact=True).click()
    assert _card_ids(page)[0] == "item-7"
    sync_api.expect(page.locator("#query-image img")).to_be_visible()


def test_image_search_pages_on_with_the_same_image(page: Any) -> None:
    # Only item 7 clears the "no match" bar for its own picture: one hit per page shows
    # it on page 1, an honest end on page 2, and it again on the way back.
    page.goto("/?limit=1")
    page.set_input_files("#image", files=[{"name": "query.jpg", "mimeType": "image/jpeg",
                                           "buffer": jpeg_bytes(7)}])
    with page.expect_navigation():
        page.get_by_role("button", name="Search", exact=True).click()
    assert _card_ids(page) == ["item-7"]
    with page.expect_navigation():
        page.get_by_role("button", name="Next →").click()
    sync_api.expect(page.locator("#empty")).to_contain_text("No more results")
    sync_api.expect(page.locator(".pages")).to_contain_text("Page 2")
    sync_api.expect(page.locator("#query-image img")).to_be_visible()
    with page.expect_navigation():
        page.get_by_role("button", name="← Previous").click()
    assert _card_ids(page) == ["item-7"]


def test_more_like_this_shows_neighbours_without_the_item(page: Any) -> None:
    _search_for(page, "vintage mug")
    card = page.locator("ol.grid > .card").first
    assert card.get_attribute("data-id") == "item-42"
    with page.expect_navigation():
        card.get_by_role("link", name="More like this").click()
    sync_api.expect(page.locator("#results-heading")).to_contain_text("More like vintage mug")
    ids = _card_ids(page)
    assert ids and "item-42" not in ids


def test_a_price_filter_keeps_only_matching_prices(page: Any) -> None:
    page.goto("/")
    page.fill("#q", "lamp chair mug")
    page.fill("#price_min", "50")
    page.fill("#price_max", "150")
    with page.expect_navigation():
        page.get_by_role("button", name="Apply filters").click()
    prices = [float(p) for p in page.locator("ol.grid > .card").evaluate_all(
        "cards => cards.map(c => c.dataset.price)")]
    assert prices and all(50 <= p <= 150 for p in prices)
    sync_api.expect(page.locator("#price_min")).to_have_value("50")


def test_an_unrelated_image_says_no_match(page: Any) -> None:
    page.goto("/")
    page.set_input_files("#image", files=[{"name": "noise.png", "mimeType": "image/png",
                                           "buffer": _noise_png()}])
    with page.expect_navigation():
        page.get_by_role("button", name="Search", exact=True).click()
    sync_api.expect(page.locator("#empty")).to_contain_text("No match")
    sync_api.expect(page.locator("#empty")).to_contain_text("minimum")
    assert page.locator("ol.grid > .card").count() == 0


def test_a_file_that_is_not_an_image_gets_a_clear_error(page: Any) -> None:
    page.goto("/")
    page.set_input_files("#image", files=[{"name": "notes.jpg", "mimeType": "image/jpeg",
                                           "buffer": text_file()}])
    with page.expect_navigation():
        page.get_by_role("button", name="Search", exact=True).click()
    sync_api.expect(page.get_by_role("alert")).to_contain_text("not accepted")


def test_keyboard_only_search(page: Any) -> None:
    page.goto("/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "q"
    page.keyboard.type("leather chair")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert _card_ids(page)[0] == "item-49"
    sync_api.expect(page.locator("ol.grid > .card .title").first).to_have_text(_title(49))


def test_dropping_or_pasting_an_image_searches_with_it(page: Any) -> None:
    page.goto("/")
    send = """([kind, data]) => {
        const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], "query.jpg", {type: "image/jpeg"}));
        const event = kind === "drop"
            ? new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true})
            : new ClipboardEvent("paste", {clipboardData: transfer, bubbles: true,
                                           cancelable: true});
        document.getElementById(kind === "drop" ? "drop" : "q").dispatchEvent(event);
    }"""
    with page.expect_navigation():
        page.evaluate(send, ["drop", base64.b64encode(jpeg_bytes(12)).decode()])
    assert _card_ids(page)[0] == "item-12"
    with page.expect_navigation():
        page.evaluate(send, ["paste", base64.b64encode(jpeg_bytes(30)).decode()])
    assert _card_ids(page)[0] == "item-30"


def test_the_weight_slider_shows_only_with_text_and_an_image(page: Any) -> None:
    page.goto("/")
    slider = page.locator("#image_weight")
    sync_api.expect(slider).to_be_hidden()
    page.fill("#q", "silver watch")
    sync_api.expect(slider).to_be_hidden()
    page.set_input_files("#image", files=[{"name": "query.jpg", "mimeType": "image/jpeg",
                                           "buffer": jpeg_bytes(29)}])
    sync_api.expect(slider).to_be_visible()
    with page.expect_navigation():
        page.get_by_role("button", name="Search", exact=True).click()
    assert _card_ids(page)[0] == "item-29"  # "silver watch" is also item 29's title
    sync_api.expect(slider).to_be_visible()
    page.fill("#q", "")
    sync_api.expect(slider).to_be_hidden()


def test_text_results_page_with_links(page: Any) -> None:
    page.goto("/?q=lamp&limit=4")
    first_page = _card_ids(page)
    assert len(first_page) == 4
    with page.expect_navigation():
        page.get_by_role("link", name="Next →").click()
    second_page = _card_ids(page)
    assert second_page and not set(second_page) & set(first_page)
    with page.expect_navigation():
        page.get_by_role("link", name="← Previous").click()
    assert _card_ids(page) == first_page


def test_the_item_page_lists_its_near_duplicates(page: Any) -> None:
    page.goto("/items/dup-a")
    sync_api.expect(page.get_by_role("heading", level=1)).to_have_text("sunset poster")
    duplicate = page.locator("#duplicates .card[data-id='dup-b']")
    sync_api.expect(duplicate).to_contain_text("near-exact")
    with page.expect_navigation():
        duplicate.get_by_role("link", name="sunset poster, smaller").click()
    sync_api.expect(page.get_by_role("heading", level=1)).to_have_text("sunset poster, smaller")
    sync_api.expect(page.locator("#duplicates .card[data-id='dup-a']")).to_be_visible()


def test_an_unknown_item_says_so(page: Any) -> None:
    response = page.goto("/items/no-such-item")
    assert response.status == 404
    sync_api.expect(page.get_by_role("alert")).to_contain_text("no-such-item")


@pytest.fixture
def phone(browser: Any, base_url: str, request: pytest.FixtureRequest) -> Iterator[Any]:
    yield from browserkit.opened_page(browser, base_url, request.node.name,
                                      viewport={"width": 390, "height": 844}, is_mobile=True,
                                      has_touch=True)


def _overflowing(page: Any) -> list[str]:
    """Elements whose right edge passes the viewport's (what makes a phone page scroll
    sideways)."""
    return list(page.evaluate("""() => {
        const width = document.documentElement.clientWidth;
        return [...document.querySelectorAll('body *')]
            .filter(e => e.offsetParent !== null && e.getBoundingClientRect().right > width + 1)
            .map(e => e.tagName + (e.id ? '#' + e.id : '') + '.' + e.className);
    }"""))


def test_the_home_page_says_what_the_collection_holds(page: Any) -> None:
    page.goto("/")
    overview = page.locator("#overview")
    sync_api.expect(overview).to_contain_text("66 items in 9 categories")
    assert overview.locator(".card").count() == 12
    with page.expect_navigation():
        overview.get_by_role("link", name="poster", exact=True).click()
    assert sorted(_card_ids(page)) == ["dup-a", "dup-b"]  # browsing by category alone
    sync_api.expect(page.locator("#results-heading")).to_contain_text("newest first")


@pytest.mark.parametrize("path", ["/", "/?q=wooden+lamp", "/items/item-3"],
                         ids=["home", "results", "item"])
def test_the_page_fits_a_phone(phone: Any, path: str) -> None:
    phone.goto(path)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    assert _overflowing(phone) == []
    if path != "/items/item-3":
        box = phone.get_by_role("button", name="Search", exact=True).bounding_box()
        assert box is not None and box["x"] + box["width"] <= 390


def test_a_phone_can_search_by_text_and_open_an_item(phone: Any) -> None:
    _search_for(phone, "leather chair")
    assert _card_ids(phone)[0] == "item-49"
    with phone.expect_navigation():
        phone.locator("ol.grid > .card .title").first.click()
    sync_api.expect(phone.locator("h1")).to_have_text(_title(49))


def test_an_error_keeps_what_was_typed(page: Any) -> None:
    page.goto("/?q=wooden+lamp&price_min=cheap")
    sync_api.expect(page.get_by_role("alert")).to_contain_text("Min price must be a number")
    sync_api.expect(page.locator("#q")).to_have_value("wooden lamp")


def test_the_chosen_image_is_named_and_shown(page: Any) -> None:
    page.goto("/")
    sync_api.expect(page.locator("#image-name")).to_have_text("No image yet")
    page.set_input_files("#image", files=[{"name": "query.jpg", "mimeType": "image/jpeg",
                                           "buffer": jpeg_bytes(7)}])
    sync_api.expect(page.locator("#image-name")).to_have_text("Using query.jpg")
    sync_api.expect(page.locator("#image-preview")).to_be_visible()
    with page.expect_navigation():
        page.get_by_role("button", name="Search", exact=True).click()
    sync_api.expect(page.locator("#image-name")).to_have_text("Searching with the image shown")
    assert _card_ids(page)[0] == "item-7"


def test_no_match_offers_the_closest_items(page: Any) -> None:
    page.goto("/")
    page.set_input_files("#image", files=[{"name": "noise.png", "mimeType": "image/png",
                                           "buffer": _noise_png()}])
    with page.expect_navigation():
        page.get_by_role("button", name="Search", exact=True).click()
    sync_api.expect(page.locator("#empty")).to_contain_text("No match")
    with page.expect_navigation():
        page.locator("#show-closest").click()
    assert len(_card_ids(page)) == 24


def test_a_colour_in_the_text_is_marked_on_its_swatch(page: Any) -> None:
    _search_for(page, "red lamp")
    red = page.locator("label.swatch", has=page.locator("input[value=red]"))
    sync_api.expect(red).to_have_class("swatch understood")
    blue = page.locator("label.swatch", has=page.locator("input[value=blue]"))
    sync_api.expect(blue).to_have_class("swatch")

def test_the_page_works_under_its_content_security_policy(page: Any) -> None:
    violations: list[str] = []
    page.on("console", lambda message: violations.append(message.text)
            if "Content Security Policy" in message.text else None)
    page.add_init_script("document.addEventListener('securitypolicyviolation', e => "
                         "console.error('Content Security Policy: ' + e.violatedDirective))")
    response = page.goto("/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    # colour swatches take their colour from a style attribute
    red = page.locator(".swatch input[value='red'] + .chip")
    assert red.evaluate("chip => getComputedStyle(chip).backgroundColor") == "rgb(220, 30, 40)"
    page.set_input_files("#image", files=[{"name": "query.jpg", "mimeType": "image/jpeg",
                                           "buffer": jpeg_bytes(7)}])
    with page.expect_navigation():
        page.get_by_role("button", name="Search", exact=True).click()
    assert _card_ids(page)[0] == "item-7"
    # the query image comes back as a data: URL, thumbnails from the server
    assert page.locator("#query-image img").evaluate("img => img.naturalWidth") > 0
    assert page.locator("ol.grid > .card img").first.evaluate("i => i.naturalWidth") > 0
    page.goto("/items/dup-a")
    sync_api.expect(page.locator("#duplicates .card[data-id='dup-b']")).to_be_visible()
    assert violations == []


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_the_api_docs_render_offline(page: Any, path: str) -> None:
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text)
            if message.type == "error" else None)
    # nothing but this server can be reached, as on a machine without internet
    page.route("**/*", lambda route: route.continue_()
               if route.request.url.startswith("http://127.0.0.1:") else route.abort())
    page.goto(path)
    if path == "/docs":
        sync_api.expect(page.locator(".swagger-ui .info .title")).to_contain_text("imgsearch")
        sync_api.expect(page.get_by_text("/v1/search/image").first).to_be_visible()
    else:
        sync_api.expect(page.locator("redoc, [class*=redoc]").first).to_be_attached()
        sync_api.expect(page.locator("h2", has_text="Search by an uploaded image")
                        ).to_be_visible()
    # ReDoc's own "powered by" logo comes from its CDN: blocked, and nothing else is
    assert not [e for e in errors if "Content Security Policy" in e
                and "cdn.redoc.ly/redoc/logo-mini.svg" not in e], errors
