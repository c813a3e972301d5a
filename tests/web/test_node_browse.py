"""Browsing by filters alone and the near (radius) filter through an HTTP node on each
backend (tests/searchnodes.py): a generated, geotagged catalog written in the same order
through each node's write path gives the same ids in the same order, pages included, and
the near filter keeps exactly the items within the radius, some of them just inside and
others just outside it."""

from __future__ import annotations

import base64
import math
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import searchnodes
from imagegen import jpeg_bytes
from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.enrich.places import EARTH_KM
from imgsearch.types import Item
from photogen import photo_exif, photo_jpeg
from searchnodes import SearchNode

SETTINGS = Settings(image_encoder="fake", text_encoder="fake", ingest_workers=1)
# (latitude, longitude, radius km) of each near query; the last straddles the 180th meridian
CENTRES = [(48.8566, 2.3522, 10.0), (-33.87, 151.21, 3.0), (0.5, 179.98, 40.0)]
EXACT = {"min_confidence": 0, "collapse_duplicates": False}


def destination(lat: float, lon: float, km: float, bearing: float) -> tuple[float, float]:
    """The point ``km`` from (lat, lon) along ``bearing`` (degrees) on the sphere."""
    d, b = km / EARTH_KM, math.radians(bearing)
    p1, l1 = math.radians(lat), math.radians(lon)
    p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(b))
    l2 = l1 + math.atan2(math.sin(b) * math.sin(d) * math.cos(p1),
                         math.cos(d) - math.sin(p1) * math.sin(p2))
    return math.degrees(p2), (math.degrees(l2) + 540) % 360 - 180


def geotagged() -> list[tuple[Item, bytes, float | None]]:
    """Photos whose EXIF places them just inside (0.1 % in: metres, far above the
    rounding of EXIF positions), just outside, well inside or well outside the radius of
    their centre, or nowhere; with each, its distance as a fraction of the radius."""
    rng = random.Random(16)
    items = []
    for i in range(60):
        lat, lon, km = CENTRES[i % len(CENTRES)]
        share = rng.choice([0.999, 1.001, 0.3, 3.0, None])
        if share is None:
            image = jpeg_bytes(300 + i)
        else:
            image = photo_jpeg(300 + i, photo_exif(gps=destination(
                lat, lon, km * share, rng.uniform(0, 360))))
        items.append((Item(id=f"g{i:02d}", title=f"photo {i}",
                           category=("street", "park", "harbour")[i % 3],
                           price=float(i % 7)), image, share))
    return items


def catalog() -> list[tuple[Item, bytes]]:
    return [(item, image) for item, image, _share in geotagged()]


def inside(centre: tuple[float, float, float]) -> set[str]:
    at = CENTRES.index(centre)
    return {item.id for i, (item, _image, share) in enumerate(geotagged())
            if i % len(CENTRES) == at and share is not None and share < 1}


@pytest.fixture(scope="module", params=searchnodes.BACKENDS)
def geo(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[SearchNode]:
    backend = str(request.param)
    if backend == "local":
        def fill(engine: Engine) -> None:
            assert all(isinstance(w, str) for w in engine.upsert_many(catalog()))

        yield from searchnodes.local_node(
            Path(tmp_path_factory.mktemp("geo")) / "c", SETTINGS, fill)
        return
    address = request.getfixturevalue(
        "milvus_lite_address" if backend == "milvus-lite" else "milvus_server_address")
    yield from searchnodes.milvus_node(address, SETTINGS, backend, catalog())


def listed(client: TestClient, **body: Any) -> tuple[list[str], dict[str, Any]]:
    response = client.post("/v1/search", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    return [hit["id"] for hit in answer["results"]], answer


def test_browsing_lists_newest_first_with_stable_pages(geo: SearchNode) -> None:
    geo.require("browse")
    everything, answer = listed(geo.client, limit=100)
    assert everything == [f"g{i:02d}" for i in reversed(range(60))], geo.backend
    assert answer["query_kind"] == "browse" and answer["results"][0]["score"] == 0
    filters = {"categories": ["park"], "price_max": 4}
    wanted = [f"g{i:02d}" for i in reversed(range(60)) if i % 3 == 1 and i % 7 <= 4]
    whole, answer = listed(geo.client, filters=filters, limit=50)
    assert whole == wanted and answer["total_candidates"] == len(wanted)
    pages = [listed(geo.client, filters=filters, limit=4, offset=o)[0]
             for o in range(0, len(wanted), 4)]
    assert [i for page in pages for i in page] == wanted


def test_browsing_keeps_an_updated_item_in_its_place(geo: SearchNode) -> None:
    geo.require("browse")
    image = base64.b64encode(catalog()[5][1]).decode()
    assert geo.client.put("/v1/items/g05", json={
        "image_base64": image, "title": "photo 5 again", "category": "harbour",
        "price": 5.0}).status_code in (200, 201)
    found, answer = listed(geo.client, filters={"categories": ["harbour"]}, limit=50)
    assert found == [f"g{i:02d}" for i in reversed(range(60)) if i % 3 == 2]
    assert answer["results"][found.index("g05")]["title"] == "photo 5 again"


def test_browsing_what_no_item_passes_says_so(geo: SearchNode) -> None:
    geo.require("browse")
    found, answer = listed(geo.client, filters={"price_min": 100}, limit=5)
    assert found == [] and answer["empty_reason"] == "filtered_out"


@pytest.mark.parametrize("centre", CENTRES)
def test_near_keeps_exactly_the_items_within_the_radius(geo: SearchNode,
                                                        centre: tuple[float, float, float]
                                                        ) -> None:
    geo.require("near", "browse")
    lat, lon, km = centre
    near = {"latitude": lat, "longitude": lon, "radius_km": km}
    expected = inside(centre)
    assert 3 <= len(expected) < 20  # some just inside; others just outside are left out
    browsed, _ = listed(geo.client, filters={"near": near}, limit=100)
    assert browsed == sorted(expected, reverse=True), geo.backend
    searched, _ = listed(geo.client, similar_to=browsed[0], filters={"near": near},
                         limit=100, **EXACT)
    assert set(searched) == expected - {browsed[0]}
    assert listed(geo.client, filters={"near": near, "categories": ["harbour"]}, limit=100
                  )[0] == [i for i in browsed if int(i[1:]) % 3 == 2]
