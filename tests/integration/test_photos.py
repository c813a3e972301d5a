"""A folder of photos with known EXIF dates, cameras and positions: date, camera, place
and album queries answer exactly; hostile EXIF never fails an item."""

from __future__ import annotations

import csv
import os
import re
import sqlite3
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from exif_cases import CASES, hostile_jpeg
from imagegen import write_image
from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.enrich import places
from imgsearch.errors import InvalidFilterError
from imgsearch.store.schema import SCHEMA_VERSION
from imgsearch.types import Filters, Query
from photogen import undo_photo_schema, write_photo

LISBON, PORTO, NEW_YORK = (38.7223, -9.1393), (41.1579, -8.6291), (40.7128, -74.0060)


def _last_summer() -> int:
    now = datetime.now()
    return now.year if now.month >= 9 else now.year - 1


# file -> (date taken, camera make, model, position)
PHOTOS = {
    "Holidays 2019/IMG_0001.jpg": ("2019:07:04 12:30:00", "Google", "Pixel 4a", LISBON),
    "Holidays 2019/beach.jpg": ("2019:07:05 16:00:00", "Google", "Pixel 4a", LISBON),
    "Holidays 2019/DSC_0003.jpg": ("2019:08:01 09:00:00", "Canon", "Canon EOS 5D", PORTO),
    "Work/beach.jpg": ("2021:01:10 08:00:00", "Canon", "Canon EOS 5D", NEW_YORK),
    "Work/PXL_20220301_101010.jpg": ("2022:03:01 10:10:10", "Google", "Pixel 7", NEW_YORK),
    f"Summer/IMG_{_last_summer()}.jpg": (f"{_last_summer()}:07:15 18:00:00", "Nikon",
                                         "D750", None),
}
NO_EXIF = "misc/scan.png"
FILE_TIME = datetime(2015, 5, 5, 12, 0, 0).timestamp()


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, Path]]:
    root = Path(tmp_path_factory.mktemp("photos"))
    library = root / "library"
    for seed, (name, (taken, make, model, gps)) in enumerate(PHOTOS.items()):
        write_photo(library / name, seed, taken=taken, offset="+01:00", make=make,
                    model=model, gps=gps)
    scan = write_image(library / NO_EXIF, 99)
    os.utime(scan, (FILE_TIME, FILE_TIME))
    settings = Settings(image_encoder="descriptor", text_encoder="fake", ingest_workers=2)
    engine = Engine.open(root / "collection", settings)
    report = engine.ingest(library)
    assert report.ok and report.added == len(PHOTOS) + 1, report.failed
    yield engine, root
    engine.close()


def _ids(engine: Engine, query: Query) -> set[str]:
    return {hit.id for hit in engine.search(query).hits}


def test_exif_facts_are_stored_per_item(photos):
    engine, _ = photos
    item = engine.get("Holidays 2019/IMG_0001.jpg")
    assert item.taken_at == "2019-07-04T12:30:00+01:00" and item.taken_from == "exif"
    assert item.camera == "Google Pixel 4a"
    assert (item.city, item.country) == ("Lisbon", "Portugal")
    assert item.album == "Holidays 2019"
    assert item.title is None  # a camera's file name is no title
    assert engine.get("Holidays 2019/beach.jpg").title == "beach"


def test_a_photo_without_exif_falls_back_to_its_file_time_flagged(photos):
    engine, _ = photos
    item = engine.get(NO_EXIF)
    assert item.taken_from == "file"
    assert item.taken_at is not None and item.taken_at.startswith("2015-05-05T12:00:00")
    assert _ids(engine, Query(text="in 2015")) == {NO_EXIF}


def test_date_filters_and_phrases_answer_exactly(photos):
    engine, _ = photos
    in_2019 = {n for n in PHOTOS if n.startswith("Holidays 2019/")}
    assert _ids(engine, Query(filters=Filters(taken_after="2019", taken_before="2020"))) \
        == in_2019
    assert _ids(engine, Query(text="photos from 2019")) == in_2019
    assert _ids(engine, Query(text="in July 2019")) == {"Holidays 2019/IMG_0001.jpg",
                                                        "Holidays 2019/beach.jpg"}
    assert _ids(engine, Query(text="photos from last summer")) == \
        {f"Summer/IMG_{_last_summer()}.jpg"}
    assert _ids(engine, Query(filters=Filters(taken_after="2021-06"))) == \
        {"Work/PXL_20220301_101010.jpg", f"Summer/IMG_{_last_summer()}.jpg"}


def test_camera_filters_and_phrases_answer_exactly(photos):
    engine, _ = photos
    pixels = {n for n, facts in PHOTOS.items() if facts[2].startswith("Pixel")}
    assert _ids(engine, Query(text="taken with a Pixel")) == pixels
    assert _ids(engine, Query(filters=Filters(cameras=("canon eos 5d",)))) == \
        {"Holidays 2019/DSC_0003.jpg", "Work/beach.jpg"}
    with pytest.raises(InvalidFilterError, match="Google Pixel 4a"):
        engine.search(Query(filters=Filters(cameras=("Leica M6",))))


def test_places_answer_by_name_and_by_distance(photos):
    engine, _ = photos
    lisbon = {"Holidays 2019/IMG_0001.jpg", "Holidays 2019/beach.jpg"}
    assert _ids(engine, Query(filters=Filters(near=(*LISBON, 25.0)))) == lisbon
    assert _ids(engine, Query(filters=Filters(near=(*LISBON, 300.0)))) == \
        lisbon | {"Holidays 2019/DSC_0003.jpg"}  # Porto is ~275 km away
    assert _ids(engine, Query(text="Lisbon")) == lisbon
    result = engine.search(Query(text="beach in Lisbon"))
    assert result.hits[0].id == "Holidays 2019/beach.jpg"
    assert "place" in result.hits[0].matched_by


def test_the_place_filter_matches_a_whole_city_region_or_country(photos):
    engine, _ = photos
    lisbon = {"Holidays 2019/IMG_0001.jpg", "Holidays 2019/beach.jpg"}
    new_york = {"Work/beach.jpg", "Work/PXL_20220301_101010.jpg"}
    assert engine.get("Work/beach.jpg").region == "New York"  # city: New York City

    def places(*names: str, text: str | None = None) -> set[str]:
        return _ids(engine, Query(text=text, min_confidence=0,
                                  filters=Filters(places=names)))

    assert places("Lisbon") == lisbon
    assert places("PORTUGAL") == lisbon | {"Holidays 2019/DSC_0003.jpg"}
    assert places("New York") == new_york  # the region
    assert places("Porto", "new york city") == new_york | {"Holidays 2019/DSC_0003.jpg"}
    assert places("Lisb") == set() and places("Lisbon Portugal") == set()  # whole names
    hits = engine.search(Query(text="beach", min_confidence=0,
                               filters=Filters(places=("Portugal",)))).hits
    assert hits[0].id == "Holidays 2019/beach.jpg"  # not the beach photo of New York
    assert {h.id for h in hits} <= lisbon | {"Holidays 2019/DSC_0003.jpg"}
    with pytest.raises(InvalidFilterError, match="place"):
        engine.search(Query(filters=Filters(places=(" ",))))


def test_album_text_finds_the_folders_photos_first(photos):
    engine, _ = photos
    hits = engine.search(Query(text="photos in Holidays 2019", min_confidence=0)).hits
    album = {n for n in PHOTOS if n.startswith("Holidays 2019/")}
    assert {h.id for h in hits[:len(album)]} == album
    assert all("album" in h.matched_by for h in hits[:len(album)])


def test_facets_count_places(photos):
    engine, _ = photos
    places = {p["value"]: p for p in engine.facets()["places"]}
    assert places["Portugal"]["count"] == 3
    assert {c["value"]: c["count"] for c in places["Portugal"]["cities"]} == \
        {"Lisbon": 2, "Porto": 1}
    assert places["United States"]["count"] == 2


def test_bad_photo_filters_are_refused_with_what_is_wrong(photos):
    engine, _ = photos
    with pytest.raises(InvalidFilterError, match="taken_after"):
        engine.search(Query(filters=Filters(taken_after="last tuesday")))
    with pytest.raises(InvalidFilterError, match="latitude"):
        engine.search(Query(filters=Filters(near=(95.0, 0.0, 10.0))))
    with pytest.raises(InvalidFilterError, match="radius"):
        engine.search(Query(filters=Filters(near=(0.0, 0.0, -1.0))))


def test_the_cli_filters_and_shows_photo_facts(photos):
    from imgsearch.cli import app

    _, root = photos
    runner = CliRunner()
    env = {"IMGSEARCH_TEXT_ENCODER": "fake"}
    near = runner.invoke(app, ["search", "-c", str(root / "collection"), "--near",
                               f"{LISBON[0]},{LISBON[1]},25", "--json"], env=env)
    assert near.exit_code == 0, near.output
    assert '"Holidays 2019/beach.jpg"' in near.output and "Work/" not in near.output
    dated = runner.invoke(app, ["search", "-c", str(root / "collection"), "--taken-after",
                                "2022", "--camera", "Google Pixel 7"], env=env)
    assert dated.exit_code == 0 and "PXL_20220301_101010" in dated.output
    bad = runner.invoke(app, ["search", "-c", str(root / "collection"), "--near", "lisbon"],
                        env=env)
    assert bad.exit_code != 0 and "LAT,LON,KM" in bad.output
    placed = runner.invoke(app, ["search", "-c", str(root / "collection"), "--place",
                                 "Porto", "--place", "Lisbon", "--format", "paths"], env=env)
    assert placed.exit_code == 0, placed.output
    assert sorted(Path(line).name for line in placed.output.splitlines()) == \
        ["DSC_0003.jpg", "IMG_0001.jpg", "beach.jpg"]
    shown = runner.invoke(app, ["show", "Holidays 2019/IMG_0001.jpg", "-c",
                                str(root / "collection")], env=env)
    assert shown.exit_code == 0 and "Google Pixel 4a" in shown.output
    assert "Lisbon" in shown.output


def test_the_http_api_filters_by_photo_facts(photos):
    from imgsearch.web import create_app

    engine, _ = photos
    with TestClient(create_app(engine)) as client:
        body = {"filters": {"near": {"latitude": LISBON[0], "longitude": LISBON[1],
                                     "radius_km": 25}, "taken_before": "2019-07-05"}}
        found = client.post("/v1/search", json=body)
        assert found.status_code == 200, found.text
        assert [r["id"] for r in found.json()["results"]] == ["Holidays 2019/IMG_0001.jpg"]
        bad = client.post("/v1/search", json={"filters": {"near": {
            "latitude": 100, "longitude": 0, "radius_km": 1}}})
        assert bad.status_code == 422
        by_text = client.get("/v1/search/text", params={
            "q": "beach", "near": f"{NEW_YORK[0]},{NEW_YORK[1]},10", "min_confidence": 0})
        assert by_text.status_code == 200, by_text.text
        found_ids = [r["id"] for r in by_text.json()["results"]]
        assert found_ids[0] == "Work/beach.jpg" and all(i.startswith("Work/") for i in found_ids)
        assert client.get("/v1/search/text", params={"q": "beach", "near": "nowhere"}
                          ).status_code == 400
        placed = client.post("/v1/search", json={"filters": {"places": ["new york"]}})
        assert placed.status_code == 200, placed.text
        assert {r["id"] for r in placed.json()["results"]} == \
            {"Work/beach.jpg", "Work/PXL_20220301_101010.jpg"}
        by_param = client.get("/v1/search/text", params=[
            ("q", "beach"), ("place", "Lisbon"), ("place", "Porto"), ("min_confidence", 0)])
        assert by_param.status_code == 200, by_param.text
        assert {r["id"] for r in by_param.json()["results"]} <= {
            "Holidays 2019/beach.jpg", "Holidays 2019/IMG_0001.jpg",
            "Holidays 2019/DSC_0003.jpg"}
        assert by_param.json()["results"][0]["id"] == "Holidays 2019/beach.jpg"
        # the page: the places facet's links filter by place, and say so
        page_html = client.get("/", params={"place": "Lisbon"}).text
        assert set(re.findall(r'<li class="card" data-id="([^"]+)"', page_html)) == {
            "Holidays 2019/IMG_0001.jpg", "Holidays 2019/beach.jpg"}
        assert 'id="place-filter"' in page_html and "any place" in page_html
        item = client.get("/v1/items/" + "Work%2Fbeach.jpg")
        assert item.status_code == 200 and item.json()["city"] == "New York City"
        page = client.get("/items/Work%2Fbeach.jpg")
        assert "Canon EOS 5D" in page.text and "New York City" in page.text


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns of damaged blocks
def test_hostile_exif_never_fails_an_item(tmp_path, engine):
    folder = tmp_path / "hostile"
    folder.mkdir()
    for number, name in enumerate(sorted(CASES)):
        (folder / f"case{number:02d}.jpg").write_bytes(hostile_jpeg(name, number))
    report = engine.ingest(folder)
    assert report.failed == [] and report.added == len(CASES) >= 30


def test_a_collection_of_schema_3_gains_the_photo_fields(tmp_path):
    settings = Settings(text_encoder="fake", ingest_workers=1)
    folder = tmp_path / "library"
    write_photo(folder / "Trip" / "harbour.jpg", 1, taken="2019:07:04 12:30:00", gps=LISBON)
    with Engine.open(tmp_path / "c", settings) as engine:
        engine.ingest(folder)
    conn = sqlite3.connect(tmp_path / "c" / "catalog.sqlite3")
    undo_photo_schema(conn)
    conn.commit()
    conn.close()
    with Engine.open(tmp_path / "c", settings) as engine:
        assert engine.catalog.schema_version == SCHEMA_VERSION == 5
        assert engine.get("Trip/harbour.jpg").city is None  # known once indexed again
        assert _ids(engine, Query(text="harbour", min_confidence=0)) == {"Trip/harbour.jpg"}
        report = engine.ingest(folder)  # unchanged files are read again, once
        assert (report.updated, report.unchanged) == (1, 0)
        assert engine.get("Trip/harbour.jpg").city == "Lisbon"
        assert engine.ingest(folder).unchanged == 1


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_an_upload_with_hostile_exif_is_accepted(engine):
    import base64

    from imgsearch.web import create_app

    with TestClient(create_app(engine)) as client:
        for number, name in enumerate(("count 4 billion", "random large block",
                                       "EXIF directory pointing at itself")):
            body = {"title": name, "image_base64": base64.b64encode(
                hostile_jpeg(name, number)).decode()}
            answer = client.put(f"/v1/items/upload{number}", json=body)
            assert answer.status_code in (200, 201), answer.text
    assert engine.get("upload0").camera is None


def test_loading_the_gazetteer_keeps_the_csv_field_limit(monkeypatch):
    # reverse_geocoder lifts the csv module's field limit when imported; catalog files
    # rely on it to refuse huge fields, so the import must leave it as it was
    pytest.importorskip("reverse_geocoder", reason="reverse_geocoder is not installed")
    monkeypatch.delitem(sys.modules, "reverse_geocoder")  # imported afresh below
    outside = csv.field_size_limit(128 * 1024)  # the csv module's own default
    try:
        place = places._Gazetteer().lookup(*LISBON)
        assert place is not None and place.city == "Lisbon"
        assert csv.field_size_limit() == 128 * 1024
    finally:
        csv.field_size_limit(outside)
