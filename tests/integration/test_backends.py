"""The collection backend suite: every backend (local; Milvus Lite; the standalone
Milvus 2.3.5 server) answers the protocol the same way, and congruence tests require
the same top-10 ids and scores from local (flat) and milvus (FLAT) on the same data."""

from __future__ import annotations

import random
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import backendkit as kit
from imgsearch.engine.backends.base import CollectionBackend, Row
from imgsearch.errors import (
    BackendMismatchError,
    BackendUnavailableError,
    EncoderMismatchError,
    InvalidFilterError,
    InvalidInputError,
    InvalidQueryError,
    UnsupportedOnBackendError,
)
from imgsearch.types import Filters, VectorSpace

Factory = Callable[[], AbstractContextManager[CollectionBackend]]


_CLUSTER = pytest.param("cluster", marks=pytest.mark.cluster)


@pytest.fixture(params=["local", "lite", "server", _CLUSTER])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Factory:
    """Opens the same collection of this test on the backend ``kind`` (again and again)."""
    if kind == "local":
        return lambda: kit.local_backend(tmp_path / "c")
    address = request.getfixturevalue(f"milvus_{kind}_address")
    name = kit.collection_name()
    return lambda: kit.milvus_backend(address, name=name)


def exact_top(data: list[Row], vector: np.ndarray, k: int,
              keep: Callable[[Row], bool] = lambda r: True) -> list[tuple[str, float]]:
    scored = [(r.item.id, float(r.vectors["image"] @ vector)) for r in data if keep(r)]
    return sorted(scored, key=lambda p: (-p[1], p[0]))[:k]


def test_rows_go_in_and_come_back(make: Factory) -> None:
    data = kit.rows(40)
    with make() as backend:
        backend.upsert(data)
        assert backend.count() == 40
        assert backend.spaces() == {"image": kit.DIM}
        got = backend.get(["item-3", "item-7", "missing"])
        assert set(got) == {"item-3", "item-7"}
        want = data[3].item
        assert (got["item-3"].title, got["item-3"].price, got["item-3"].tags,
                got["item-3"].attributes) == (want.title, want.price, want.tags,
                                              want.attributes)
        vectors = backend.fetch_vectors("image", ["item-5", "nope"])
        assert list(vectors) == ["item-5"]
        np.testing.assert_allclose(vectors["item-5"], data[5].vectors["image"], atol=1e-7)
        assert backend.delete(["item-3", "item-3", "never"]) == 1
        assert backend.count() == 39
        assert backend.get(["item-3"]) == {}


def test_search_is_exact_inner_product_and_reads_its_writes(make: Factory) -> None:
    data = kit.rows(120, seed=1)
    query = kit.unit(np.random.default_rng(9), 1)[0]
    with make() as backend:
        backend.upsert(data)
        hits = backend.search("image", query, 10)
        want = exact_top(data, query, 10)
        assert [h.id for h in hits] == [i for i, _ in want]
        np.testing.assert_allclose([h.score for h in hits], [s for _, s in want], atol=1e-5)
        # an upsert that moves an item next to the query is seen by the next search
        moved = Row(data[50].item, {"image": query.copy()})
        backend.upsert([moved])
        assert backend.search("image", query, 1)[0].id == data[50].item.id
        assert backend.count() == 120
        backend.delete([data[50].item.id])
        assert data[50].item.id not in {h.id for h in backend.search("image", query, 10)}


def test_filters_are_pushed_down(make: Factory) -> None:
    data = kit.rows(150, seed=2)
    query = kit.unit(np.random.default_rng(3), 1)[0]
    with make() as backend:
        backend.upsert(data)
        cheap_red = Filters(price_max=80.0, colors=("RED",))
        hits = backend.search("image", query, 200, cheap_red)
        assert hits, "the data holds cheap red items"
        for hit in hits:
            item = next(r.item for r in data if r.item.id == hit.id)
            assert item.price is not None and item.price <= 80
            assert "red" in (item.color or "")
        with pytest.raises(InvalidFilterError, match="price_min"):
            backend.search("image", query, 5, Filters(price_min=9.0, price_max=1.0))


def test_reopening_keeps_everything(make: Factory) -> None:
    data = kit.rows(30, seed=4)
    query = kit.unit(np.random.default_rng(5), 1)[0]
    with make() as backend:
        backend.upsert(data)
        before = backend.search("image", query, 10)
    with make() as backend:
        assert backend.count() == 30
        assert backend.search("image", query, 10) == before


def test_keyword_search_where_the_backend_has_bm25(make: Factory) -> None:
    data = kit.rows(30, seed=6)
    data[7].item.title = "zebra striped umbrella"
    with make() as backend:
        backend.upsert(data)
        if not backend.capabilities.bm25:
            with pytest.raises(UnsupportedOnBackendError, match="BM25"):
                backend.keyword_search("zebra", 5)
            pytest.skip("this Milvus server predates BM25 (2.5): keyword search refused, "
                        "as checked")
        hits = backend.keyword_search("zebra umbrella", 5)
        assert hits[0].id == data[7].item.id
        assert backend.keyword_search("zebra", 5, Filters(categories=("nothing",))) == []


def test_migrated_rows_iterate_with_their_vectors(make: Factory) -> None:
    data = kit.rows(25, seed=7)
    with make() as backend:
        backend.upsert(data)
        seen = {row.item.id: row for batch in backend.rows(batch=10) for row in batch}
    assert set(seen) == {r.item.id for r in data}
    np.testing.assert_allclose(seen["item-4"].vectors["image"], data[4].vectors["image"],
                               atol=1e-7)


def test_ids_are_listed_alone_every_one_once(make: Factory) -> None:
    data = kit.rows(25, seed=8)
    with make() as backend:
        backend.upsert(data)
        pages = list(backend.ids(batch=10))
    assert all(len(page) <= 10 for page in pages)
    listed = [i for page in pages for i in page]
    assert sorted(listed) == sorted(r.item.id for r in data)


# -- congruence: local (flat) and milvus (FLAT) -------------------------------------
@pytest.fixture(params=["lite", "server", _CLUSTER])
def remote(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"milvus_{request.param}_address"))


def _same(local: CollectionBackend, milvus: CollectionBackend, queries: np.ndarray,
          filters: Filters | None = None) -> None:
    for query in queries:
        a, b = local.search("image", query, 10, filters), milvus.search("image", query, 10,
                                                                        filters)
        assert [h.id for h in a] == [h.id for h in b], filters
        np.testing.assert_allclose([h.score for h in a], [h.score for h in b], atol=1e-5)


def test_congruent_unfiltered_after_writes_and_reopening(tmp_path: Path, remote: str) -> None:
    data = kit.rows(400, seed=11)
    queries = kit.unit(np.random.default_rng(12), 15)
    name = kit.collection_name("congruent")
    with kit.local_backend(tmp_path / "c") as local, \
            kit.milvus_backend(remote, name=name) as milvus:
        for backend in (local, milvus):
            backend.upsert(data)
        _same(local, milvus, queries)
        changed = kit.rows(60, seed=13, start=380)  # 20 replaced, 40 new
        gone = [f"item-{i}" for i in range(0, 400, 7)]
        for backend in (local, milvus):
            backend.upsert(changed)
            assert backend.delete(gone) == len(gone)
        assert local.count() == milvus.count() == 440 - len(gone)
        _same(local, milvus, queries)
    with kit.local_backend(tmp_path / "c") as local, \
            kit.milvus_backend(remote, name=name) as milvus:
        _same(local, milvus, queries)


@pytest.mark.slow
def test_congruent_under_random_filters(tmp_path: Path, remote: str) -> None:
    data = kit.rows(500, seed=21)
    query = kit.unit(np.random.default_rng(22), 1)[0]
    rng = random.Random(23)
    with kit.local_backend(tmp_path / "c") as local, kit.milvus_backend(remote) as milvus:
        for backend in (local, milvus):
            backend.upsert(data)
        nonempty = 0
        for _ in range(60):
            filters = rng.choice([kit.random_filters(rng), kit.random_filters(rng)])
            everything = len(data)
            a = local.search("image", query, everything, filters)
            b = milvus.search("image", query, everything, filters)
            assert {h.id for h in a} == {h.id for h in b}, filters
            nonempty += bool(a)
            _same(local, milvus, query[None, :], filters)
        assert nonempty >= 20  # the filters were not all empty-handed


# -- what only milvus does, and its bad states ---------------------------------------
def test_hybrid_search_fuses_on_the_server(milvus_lite_address: str) -> None:
    data = kit.rows(50, seed=31)
    data[9].item.title = "quokka lantern"
    query = data[9].vectors["image"]
    with kit.milvus_backend(milvus_lite_address) as milvus:
        assert milvus.capabilities.hybrid and milvus.capabilities.bm25
        milvus.upsert(data)
        hits = milvus.hybrid_search({"image": query}, "quokka lantern", 5)  # type: ignore[attr-defined]
        assert hits[0].id == "item-9"  # first in both lists
        assert hits[0].score > hits[1].score


def test_several_spaces_where_the_server_allows(milvus_lite_address: str,
                                                milvus_server_address: str) -> None:
    spaces = {"image": kit.DIM, "text": 16}
    with kit.milvus_backend(milvus_lite_address, spaces) as milvus:
        text_vector = kit.unit(np.random.default_rng(1), 1, 16)[0]
        data = kit.rows(5)
        data[2].vectors["text"] = text_vector
        milvus.upsert(data)
        hits = milvus.search("text", text_vector, 10)
        assert [h.id for h in hits] == ["item-2"]  # items without a text vector left out
    with pytest.raises(UnsupportedOnBackendError, match="cannot hold collection"):
        kit.open_milvus(milvus_server_address, spaces)


def test_unreachable_server_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from rediskit import free_port

    monkeypatch.setattr("imgsearch.engine.backends.milvus_target._BACKOFF_S", 0.01)
    port = free_port()
    with pytest.raises(BackendUnavailableError) as caught:
        kit.open_milvus(f"127.0.0.1:{port}", name="shop")
    assert f"milvus://127.0.0.1:{port}/shop" in caught.value.message
    assert caught.value.status == 503


def test_another_dimension_or_another_tool_is_refused(milvus_lite_address: str) -> None:
    from pymilvus import DataType, MilvusClient

    name = kit.collection_name()
    with kit.milvus_backend(milvus_lite_address, name=name):
        pass
    with pytest.raises(BackendMismatchError, match="holds 32-d image vectors"):
        kit.open_milvus(milvus_lite_address, {"image": 64}, name=name)
    client = MilvusClient(uri=f"http://{milvus_lite_address}")
    other = kit.collection_name("foreign")
    schema = client.create_schema(auto_id=False)
    schema.add_field("pk", DataType.INT64, is_primary=True)
    schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=kit.DIM)
    client.create_collection(other, schema=schema)
    with pytest.raises(BackendMismatchError, match="not made by imgsearch"):
        kit.open_milvus(milvus_lite_address, name=other)


@pytest.mark.parametrize("server", ["lite", "server"])
def test_another_encoder_of_the_same_dimension_is_refused(server: str,
                                                          request: pytest.FixtureRequest
                                                          ) -> None:
    """The encoders recorded in the collection's properties decide, not the dimension:
    vectors of another model are never mixed in."""
    from imgsearch.engine.backends.milvus import MilvusBackend

    address = request.getfixturevalue(f"milvus_{server}_address")
    uri = f"milvus://{address}/{kit.collection_name('encoders')}"
    made = {"image": VectorSpace("image", "fake", "fake-v1", kit.DIM, "image")}
    MilvusBackend.open(uri, encoders=made).close()
    again = MilvusBackend.open(uri, create=False,
                               encoders={"image": replace(made["image"])})
    assert again.encoders() == made and again.spaces() == {"image": kit.DIM}
    again.close()
    other = {"image": VectorSpace("image", "clip", "tiny-clip", kit.DIM, "image")}
    with pytest.raises(EncoderMismatchError) as caught:
        MilvusBackend.open(uri, create=False, encoders=other)
    assert "'fake' (fake-v1, 32-d), not 'clip' (tiny-clip, 32-d)" in caught.value.message
    assert caught.value.status == 409
    # a collection made before encoders were recorded takes the first ones it is opened
    # with, and refuses others from then on
    unrecorded = f"milvus://{address}/{kit.collection_name('unrecorded')}"
    MilvusBackend.open(unrecorded, {"image": kit.DIM}).close()
    MilvusBackend.open(unrecorded, create=False, encoders=made).close()
    with pytest.raises(EncoderMismatchError, match="not 'clip'"):
        MilvusBackend.open(unrecorded, create=False, encoders=other)


@pytest.mark.parametrize("server", ["lite", "server"])
def test_a_querys_index_parameters_reach_an_hnsw_collection(server: str,
                                                           request: pytest.FixtureRequest
                                                           ) -> None:
    address = request.getfixturevalue(f"milvus_{server}_address")
    data = kit.rows(60, seed=5)
    query = kit.unit(np.random.default_rng(6), 1)[0]
    # Milvus 2.3 needs the build parameters; Milvus Lite drops them (see below)
    build = "&M=16&efConstruction=200" if server == "server" else ""
    with kit.milvus_backend(address, query=f"?index=HNSW{build}") as hnsw:
        hnsw.upsert(data)
        # ef below k is raised to k (Milvus refuses a smaller one); a collection this
        # small is searched exactly
        found = hnsw.search("image", query, 10, params={"ef_search": 4})
        assert [h.id for h in found] == [i for i, _ in exact_top(data, query, 10)]
        with pytest.raises(InvalidQueryError, match="unknown search parameter 'efSearch'"):
            hnsw.search("image", query, 10, params={"efSearch": 4})


def test_index_built_otherwise_than_asked_is_refused(milvus_lite_address: str) -> None:
    name = kit.collection_name()
    with kit.milvus_backend(milvus_lite_address, name=name):  # FLAT
        pass
    with pytest.raises(BackendMismatchError, match="instead of HNSW"):
        kit.open_milvus(milvus_lite_address, name=name, query="?index=HNSW&M=16")


@pytest.mark.parametrize("uri", ["milvus://", "milvus://host:19530/", "milvus://h/9bad",
                                 "milvus://h/x?index=ANNOY", "milvus://h/x?M=lots"])
def test_bad_uris_say_what_to_write(uri: str) -> None:
    from imgsearch.engine.backends.milvus import parse_uri

    with pytest.raises(InvalidInputError, match="milvus"):
        parse_uri(uri)


def test_near_and_place_filters_are_refused_on_older_milvus_collections() -> None:
    from imgsearch.engine.backends.milvus_filters import filter_expression

    # a collection made before positions were kept: refused, saying how to get them
    with pytest.raises(UnsupportedOnBackendError, match=r"near.*migrate"):
        filter_expression(Filters(near=(48.8, 2.3, 10.0)), positions=False)
    box = filter_expression(Filters(near=(48.8, 2.3, 10.0)), positions=True)
    assert box.startswith("(has_position == true and latitude >= 48.71") and "longitude" in box
    # a collection made before the places field: refused, saying how to get it
    with pytest.raises(UnsupportedOnBackendError, match=r"place filter.*migrate"):
        filter_expression(Filters(places=("Lisbon",)), places=False)
    assert filter_expression(Filters(places=("Lisbon", "ZÜRICH"))) == \
        'array_contains_any(places, ["lisbon", "zürich"])'
    assert filter_expression(Filters(brands=('Say "hi"\\',))) == \
        'brand_norm in ["say \\"hi\\"\\\\"]'

