"""Browsing (``newest``) and the near filter on a milvus collection against the local
backend given the same rows in the same order: the same pages for random filters, the
same ids within random radii; and a collection made before schema 3 refuses both with
the reason."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest

import backendkit as kit
from imgsearch.config import Settings
from imgsearch.engine.backends.base import Row
from imgsearch.engine.backends.milvus_filters import near_box
from imgsearch.engine.backends.milvus_positions import Stamps, newest
from imgsearch.errors import UnsupportedOnBackendError
from imgsearch.types import Filters

CENTRES = [(38.72, -9.14), (47.37, 8.54), (-16.5, 179.9), (-16.5, -179.9)]


def placed(rows: list[Row], seed: int) -> list[Row]:
    """The rows, most of them positioned around a few centres (some on the 180th
    meridian), the others nowhere."""
    rng = random.Random(seed)
    out = []
    for row in rows:
        if rng.random() < 0.2:
            out.append(row)
            continue
        lat, lon = rng.choice(CENTRES)
        lat += rng.uniform(-1.0, 1.0)
        lon = (lon + rng.uniform(-1.5, 1.5) + 540) % 360 - 180
        out.append(Row(dataclasses.replace(row.item, latitude=lat, longitude=lon),
                       row.vectors))
    return out


@pytest.fixture(scope="module", params=["milvus_lite_address", "milvus_server_address"])
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """The same rows, written alike, on a local backend and on Milvus Lite, then on the
    Milvus 2.3.5 server."""
    address = request.getfixturevalue(str(request.param))
    rows = placed(kit.rows(160, seed=7), seed=7)
    with kit.local_backend(tmp_path_factory.mktemp("pos") / "c") as local, \
            kit.milvus_backend(address) as milvus:
        for backend in (local, milvus):
            backend.upsert(rows[:100])
            backend.upsert(rows[100:])
            backend.upsert(rows[40:50])  # updates keep the items' places
            backend.delete([rows[3].item.id, rows[120].item.id])
        yield local, milvus


def test_browse_pages_agree_for_random_filters(pair) -> None:
    local, milvus = pair
    rng = random.Random(3)
    for _ in range(25):
        filters = kit.random_filters(rng)
        offset, limit = rng.choice([0, 0, 5, 30]), rng.choice([1, 10, 50])
        assert milvus.newest(filters, offset, limit) == local.newest(filters, offset, limit), \
            filters
    total, first = milvus.newest(None, 0, 5)
    assert total == 158 and first == ["item-159", "item-158", "item-157", "item-156",
                                      "item-155"]


def test_narrowed_browse_pages_agree(pair, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past SCAN_ALL passing rows a page is read from a window of the newest rows (set
    low here so that the 160 rows take that path)."""
    from imgsearch.engine.backends import milvus_positions

    monkeypatch.setattr(milvus_positions, "SCAN_ALL", 8)
    local, milvus = pair
    rng = random.Random(4)
    for _ in range(10):
        filters = kit.random_filters(rng)
        offset, limit = rng.choice([0, 3]), rng.choice([1, 4])
        assert milvus.newest(filters, offset, limit) == local.newest(filters, offset, limit), \
            filters
    assert milvus.newest(None, 2, 3) == (158, ["item-157", "item-156", "item-155"])


def test_near_agrees_for_random_centres_and_radii(pair) -> None:
    local, milvus = pair
    rng = random.Random(5)
    query = kit.unit(np.random.default_rng(5), 1)[0]
    sizes = []
    for _ in range(20):
        lat, lon = rng.choice(CENTRES)
        near = (lat + rng.uniform(-1, 1), lon, rng.choice([2.0, 20.0, 60.0, 150.0]))
        filters = Filters(near=near, brands=("nike",) if rng.random() < 0.3 else ())
        want = local.newest(filters, 0, 200)
        assert milvus.newest(filters, 0, 200) == want, near
        hits = milvus.search("image", query, 200, filters)
        assert {h.id for h in hits} == set(want[1]), near
        sizes.append(want[0])
    assert sum(1 for n in sizes if n) >= 8 and 0 in sizes, sizes  # not all alike


def test_a_box_straddling_the_180th_meridian_or_a_pole() -> None:
    across = near_box((0.0, 179.9, 50.0))
    assert "or longitude <=" in across and "longitude >= 179.4" in across
    assert "longitude" not in near_box((89.9, 10.0, 50.0))  # the pole: every longitude


def test_newest_breaks_ties_by_id_and_stamps_keep_order() -> None:
    rows = [{"id": "b", "added": 5}, {"id": "a", "added": 5}, {"id": "c", "added": 9}]
    assert newest(rows, 0, 10) == (3, ["c", "b", "a"])
    assert newest(rows, 1, 1) == (3, ["b"])
    taken = Stamps().take(3)
    assert taken == sorted(set(taken))


def test_a_collection_made_before_schema_3_refuses_browse_and_near(
        milvus_lite_address: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from imgsearch.engine.backends import milvus_collection
    from imgsearch.engine.backends.milvus import MilvusBackend
    from imgsearch.engine.backends.milvus_schema import POSITIONED
    from imgsearch.engine.remote import RemoteEngine
    from imgsearch.types import Query

    real = milvus_collection._create

    def schema_2(target, client, *args, **kwargs):  # type: ignore[no-untyped-def]
        made = client.create_schema

        def create_schema(**options):  # type: ignore[no-untyped-def]
            schema = made(**options)
            add = schema.add_field
            schema.add_field = lambda name, *a, **k: (  # type: ignore[method-assign]
                schema if name in POSITIONED else add(name, *a, **k))
            return schema

        client.create_schema = create_schema
        return real(target, client, *args, **kwargs)

    monkeypatch.setattr("imgsearch.engine.backends.milvus._create", schema_2)
    uri = f"milvus://{milvus_lite_address}/{kit.collection_name()}"
    MilvusBackend.open(uri, {"image": kit.DIM}).close()
    monkeypatch.undo()
    backend = MilvusBackend.open(uri, {"image": kit.DIM})
    backend.upsert(kit.rows(5))  # written without the fields it lacks
    assert backend.count() == 5
    engine = RemoteEngine(backend, Settings(image_encoder="fake", text_encoder="none"))
    try:
        for feature in ("browse", "near"):
            assert "migrate the items into a new one" in (engine.refuses(feature) or "")
        with pytest.raises(UnsupportedOnBackendError, match=r"browsing.*migrate"):
            engine.search(Query(filters=Filters(brands=("nike",))))
        with pytest.raises(UnsupportedOnBackendError, match=r"near.*migrate"):
            engine.search(Query(vector=kit.rows(1)[0].vectors["image"].tolist(),
                                filters=Filters(near=(38.7, -9.1, 10.0))))
    finally:
        engine.close()
