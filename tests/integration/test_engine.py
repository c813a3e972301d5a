"""The Engine end to end: ingest, search by every query type, filters, pages, writes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from imagegen import jpeg_bytes, make_photo_folder, picture, write_image
from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.errors import (
    EncoderMismatchError,
    InvalidFilterError,
    InvalidQueryError,
    ItemNotFoundError,
)
from imgsearch.types import Filters, Item, Query


def _items(n: int, *, categories: int = 4, size: tuple[int, int] = (64, 48)):
    for i in range(n):
        yield (Item(id=f"sku{i:05d}", title=f"product {i}", category=f"cat{i % categories}",
                    price=float(i % 100), brand="acme" if i % 2 else "globex"),
               picture(i, size))


@pytest.fixture
def shop(engine: Engine) -> Engine:
    engine.ingest_items(_items(120))
    return engine


def test_folder_ingest_gives_relative_posix_ids_and_self_retrieval(tmp_path, engine):
    ids = make_photo_folder(tmp_path / "photos", 30, seed=1)
    report = engine.ingest(tmp_path / "photos")
    assert report.added == 30 and not report.failed
    assert sorted(ids) == sorted(i.id for i in engine.catalog.iter_items())
    assert all("/" in i or "." in i for i in ids) and not any(i.startswith("/") for i in ids)
    for item_id in ids:
        path = tmp_path / "photos" / item_id
        hits = engine.search(Query(images=[path], limit=1)).hits
        assert hits[0].id == item_id


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivfpq"])
def test_self_retrieval_for_each_index_type(tmp_path, kind):
    settings = Settings(text_encoder="none", index_type=kind, ingest_workers=2)
    with Engine.open(tmp_path / kind, settings) as eng:
        eng.ingest_items(_items(400))
        assert eng.spaces["image"].index.kind == kind
    with Engine.open(tmp_path / kind, settings) as eng:
        assert eng.spaces["image"].index.kind == kind
        for i in range(0, 400, 7):
            hits = eng.search(Query(images=[picture(i, (64, 48))], limit=3)).hits
            assert hits[0].id == f"sku{i:05d}", (kind, i, hits)


def test_similar_excludes_the_item_itself(shop):
    result = shop.similar("sku00007", limit=10)
    assert len(result.hits) == 10
    assert "sku00007" not in [h.id for h in result.hits]
    with pytest.raises(ItemNotFoundError):
        shop.similar("nope")


def test_text_query_uses_metadata(shop):
    hits = shop.search(Query(text="product 42 cat2 globex", limit=5, parse=False)).hits
    assert hits[0].id == "sku00042"
    # found by both the keyword index and the metadata vectors, and says so
    assert hits[0].matched_by["keyword"]["rank"] == 1
    assert hits[0].matched_by["text"]["score"] == pytest.approx(1.0, abs=1e-5)


def test_hybrid_weight_moves_results(shop):
    image = picture(3, (64, 48))
    by_image = shop.search(Query(images=[image], text="product 77 cat1 acme", image_weight=1.0,
                                 limit=1, parse=False))
    by_text = shop.search(Query(images=[image], text="product 77 cat1 acme", image_weight=0.0,
                                limit=10, parse=False))
    assert by_image.hits[0].id == "sku00003"
    top = [h.id for h in by_text.hits if h.score >= by_text.hits[0].score - 1e-6]
    assert "sku00077" in top and "sku00003" not in top
    assert by_image.query_kind == "hybrid"


def test_several_positive_and_negative_images(shop):
    pos = [picture(5, (64, 48)), picture(6, (64, 48))]
    hits = shop.search(Query(images=pos, limit=5)).hits
    assert {"sku00005", "sku00006"} <= {h.id for h in hits[:3]}
    pushed = shop.search(Query(images=pos, negative_images=[picture(6, (64, 48))], limit=5))
    ids = [h.id for h in pushed.hits]
    assert ids[0] == "sku00005"
    assert ids.index("sku00006") > 0 if "sku00006" in ids else True


def test_image_query_inputs_path_bytes_and_pil(tmp_path, shop):
    path = write_image(tmp_path / "q.png", 9, (64, 48), "PNG")
    for value in (path, str(path), path.read_bytes(), Image.open(path)):
        assert shop.search(Query(images=[value], limit=1)).hits[0].id == "sku00009"


def test_raw_vector_query(shop):
    vector = shop.spaces["image"].vectors_of_keys(np.asarray(
        [shop.catalog.key_of("sku00011")]))[1][0]
    assert shop.search(Query(vector=vector, limit=1)).hits[0].id == "sku00011"
    with pytest.raises(InvalidQueryError):
        shop.search(Query(vector=np.ones(3, np.float32)))


def test_selective_filter_returns_limit_correct_hits(engine):
    # 1,000 items, one category holds 1% of them
    items = ((Item(id=f"i{i}", category="rare" if i % 100 == 0 else "common"),
              picture(i, (40, 32))) for i in range(1000))
    engine.ingest_items(items)
    # the query picture resembles no rare item: keep weak matches, this is about the filter
    result = engine.search(Query(images=[picture(5, (40, 32))], limit=10, min_confidence=0,
                                 filters=Filters(categories=("rare",))))
    assert len(result.hits) == 10
    assert all(int(h.id[1:]) % 100 == 0 for h in result.hits)


def test_filters_each_kind(shop):
    q = picture(1, (64, 48))

    def ids(**kw):
        return [h.id for h in shop.search(Query(images=[q], limit=200, min_confidence=0,
                                                filters=Filters(**kw))).hits]

    assert all(shop.get(i).category == "cat2" for i in ids(categories=("CAT2",)))
    assert len(ids(categories=("cat1", "cat2"))) == 60
    assert all(shop.get(i).brand == "acme" for i in ids(brands=("Acme",)))
    got = ids(price_min=10, price_max=20)
    assert got and all(10 <= shop.get(i).price <= 20 for i in got)
    assert len(ids(orientation="landscape")) == 120
    assert ids(orientation="portrait") == []
    assert len(ids(min_width=64)) == 120 and ids(min_width=65) == []
    with pytest.raises(InvalidFilterError):
        ids(price_min=5, price_max=1)
    with pytest.raises(InvalidFilterError):
        ids(orientation="diagonal")


def test_tag_color_and_attribute_filters(engine):
    red = Image.new("RGB", (64, 64), (220, 20, 20))
    blue = Image.new("RGB", (64, 64), (20, 40, 220))
    engine.upsert(Item(id="r", tags=("Sale", "summer"), attributes={"material": "cotton",
                                                                   "size": 42}), red)
    engine.upsert(Item(id="b", tags=("summer",), attributes={"material": "wool"}), blue)
    q = picture(1, (64, 64))

    def ids(**kw):  # all that pass: a collection this small has few confident matches
        return sorted(h.id for h in engine.search(Query(images=[q], filters=Filters(**kw),
                                                        min_confidence=0)).hits)

    assert ids(colors=("red",)) == ["r"]
    assert ids(colors=("blue",)) == ["b"]
    assert ids(tags=("summer",)) == ["b", "r"]
    assert ids(tags=("sale", "summer")) == ["r"]
    assert ids(attributes={"material": "wool"}) == ["b"]
    assert ids(attributes={"size": "42"}) == ["r"]


def test_pagination_has_no_duplicates_or_gaps(shop):
    q = picture(2, (64, 48))
    full = [h.id for h in shop.search(Query(images=[q], limit=50, min_confidence=0)).hits]
    pages = []
    for page in range(5):
        pages += [h.id for h in shop.search(Query(images=[q], limit=10, offset=page * 10,
                                                  min_confidence=0)).hits]
    assert pages == full
    assert len(set(pages)) == 50


def test_deleted_item_never_comes_back(shop, tmp_path):
    assert shop.delete("sku00004")
    assert not shop.delete("sku00004")
    q = Query(images=[picture(4, (64, 48))], limit=120)
    assert "sku00004" not in [h.id for h in shop.search(q).hits]
    directory = shop.directory
    shop.close()
    with Engine.open(directory, shop.settings) as again:
        assert "sku00004" not in [h.id for h in again.search(q).hits]
        assert "sku00004" not in again


def test_updated_item_matches_its_new_image(shop):
    new_image = picture(999, (64, 48))
    assert shop.upsert(Item(id="sku00010", title="renewed"), new_image) == "updated"
    assert shop.search(Query(images=[new_image], limit=1)).hits[0].id == "sku00010"
    old_hits = shop.search(Query(images=[picture(10, (64, 48))], limit=1)).hits
    assert old_hits[0].id != "sku00010"
    assert shop.get("sku00010").title == "renewed"
    assert shop.catalog.count() == 120


def test_search_hits_show_metadata_written_after_an_earlier_search(shop):
    query = Query(images=[picture(10, (64, 48))], limit=3)
    assert shop.search(query).hits[0].title == "product 10"  # now in the row cache
    shop.upsert(Item(id="sku00010", title="renamed", price=5.0), picture(10, (64, 48)))
    hit = shop.search(query).hits[0]
    assert (hit.id, hit.title, hit.price) == ("sku00010", "renamed", 5.0)
    shop.delete("sku00010")
    assert "sku00010" not in [h.id for h in shop.search(query).hits]


def test_warm_reads_every_result_page_field_and_writes_still_show(shop):
    shop.warm()
    assert len(shop.catalog.hit_rows) == 120  # every item's page fields are in memory
    query = Query(images=[picture(11, (64, 48))], limit=3)
    assert shop.search(query).hits[0].title == "product 11"
    shop.upsert(Item(id="sku00011", title="renamed", price=7.0), picture(11, (64, 48)))
    hit = shop.search(query).hits[0]
    assert (hit.id, hit.title, hit.price) == ("sku00011", "renamed", 7.0)


def test_warm_reads_every_perceptual_hash_and_a_later_copy_still_folds(shop):
    keys = np.array([shop.catalog.key_of(f"sku{i:05d}") for i in range(120)], np.int64)
    column = shop.catalog.hashes
    assert column is not None and column.get(keys)[2].all()  # unknown before
    shop.warm()
    hashes, present, unknown = column.get(keys)
    assert not unknown.any() and present.all()  # known without a search reading them
    assert np.array_equal(hashes, shop.catalog.phashes_of(keys)[0])
    shop.upsert(Item(id="copy-of-12", title="copy"), picture(12, (64, 48)))
    hits = shop.search(Query(images=[picture(12, (64, 48))], limit=3)).hits
    assert hits[0].id in ("sku00012", "copy-of-12") and hits[0].duplicates == 1
    assert "copy-of-12" not in [h.id for h in hits] or "sku00012" not in [h.id for h in hits]


def test_filtered_results_follow_writes_to_the_filtered_field(shop):
    query = Query(images=[picture(8, (64, 48))], filters=Filters(categories=("cat0",)),
                  limit=120, min_confidence=0.0)
    before = {h.id for h in shop.search(query).hits}
    assert "sku00008" in before and len(before) == 30
    shop.upsert(Item(id="sku00008", title="moved", category="cat3"), picture(8, (64, 48)))
    shop.upsert(Item(id="new", title="joined", category="cat0"), picture(500, (64, 48)))
    after = {h.id for h in shop.search(query).hits}
    assert after == (before - {"sku00008"}) | {"new"}


def test_bad_query_values_are_refused(shop):
    # an empty query browses (see test_an_empty_query_browses); bad page values still fail
    for query in (Query(limit=0), Query(offset=-1), Query(text="   "), Query(text="x", limit=0),
                  Query(text="x", offset=-1), Query(text="x", image_weight=2.0),
                  Query(negative_images=[picture(1)])):
        with pytest.raises(InvalidQueryError):
            shop.search(query)


def test_an_empty_query_browses(shop):
    everything = shop.search(Query(limit=1000))
    assert everything.query_kind == "browse" and everything.empty_reason is None
    assert len(everything.hits) == shop.catalog.count() == everything.total_candidates
    assert all(hit.score == 0 and hit.confidence == 0 for hit in everything.hits)
    pages = [hit.id for offset in range(0, 6, 2)
             for hit in shop.search(Query(limit=2, offset=offset)).hits]
    assert pages == [hit.id for hit in everything.hits[:6]]


def test_encoder_mismatch_is_refused(tmp_path, settings):
    with Engine.open(tmp_path / "c", settings) as eng:
        eng.upsert(Item(id="a", title="x"), picture(1))
    with pytest.raises(EncoderMismatchError, match="descriptor"):
        Engine.open(tmp_path / "c", settings, image_encoder="fake")
    # without naming one, the collection's own encoders are used
    with Engine.open(tmp_path / "c", settings.replace(image_encoder="fake")) as eng:
        assert eng.manifest.spaces["image"].encoder == "descriptor"


def test_reembed_switches_encoder(tmp_path, settings):
    folder = tmp_path / "imgs"
    make_photo_folder(folder, 6, seed=3)
    with Engine.open(tmp_path / "c", settings) as eng:
        eng.ingest(folder)
    with Engine.open(tmp_path / "c", settings, image_encoder="fake", reembed=True) as eng:
        assert eng.manifest.spaces["image"].encoder == "fake"
        assert len(eng.spaces["image"]) == 6


def test_missing_or_corrupt_index_is_rebuilt(shop):
    q = Query(images=[picture(8, (64, 48))], limit=5)
    before = [h.id for h in shop.search(q).hits]
    directory, settings = shop.directory, shop.settings
    shop.close()
    index_file = directory / "indexes" / "image.faiss"
    data = bytearray(index_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    index_file.write_bytes(bytes(data))
    with Engine.open(directory, settings) as eng:
        assert [h.id for h in eng.search(q).hits] == before
        assert any("rebuilt" in note for note in eng.open_notes)
    (directory / "indexes" / "image.faiss").unlink()
    with Engine.open(directory, settings) as eng:
        assert [h.id for h in eng.search(q).hits] == before


def test_incremental_folder_reindex(tmp_path, engine):
    folder = tmp_path / "photos"
    ids = make_photo_folder(folder, 10, seed=5)
    assert engine.ingest(folder).added == 10
    again = engine.ingest(folder)
    assert (again.added, again.updated, again.unchanged, again.removed) == (0, 0, 10, 0)
    (folder / ids[0]).unlink()
    write_image(folder / ids[1], 777, (160, 120), "JPEG")  # changed content
    (folder / "new.jpg").write_bytes(jpeg_bytes(555))
    (folder / ids[2]).touch()  # touched, same content
    third = engine.ingest(folder)
    assert (third.added, third.updated, third.removed) == (1, 1, 1)
    assert third.unchanged == 8
    assert ids[0] not in engine
    assert engine.search(Query(images=[folder / ids[1]], limit=1)).hits[0].id == ids[1]


def test_catalog_reingest_upserts_by_id(tmp_path, engine):
    (tmp_path / "a.jpg").write_bytes(jpeg_bytes(1))
    (tmp_path / "b.jpg").write_bytes(jpeg_bytes(2))
    csv = tmp_path / "items.csv"
    csv.write_text("id,image,title,price\nA,a.jpg,first,10\nB,b.jpg,second,$20.50\n")
    assert engine.ingest(csv).added == 2
    csv.write_text("id,image,title,price\nA,a.jpg,first renamed,10\nB,b.jpg,second,$20.50\n")
    report = engine.ingest(csv)
    assert (report.added, report.updated, report.unchanged) == (0, 1, 1)
    assert engine.get("A").title == "first renamed"
    assert engine.get("B").price == 20.5


def test_thumbnails_are_stored(shop):
    item = shop.get("sku00001")
    path = shop.directory / item.thumbnail
    with Image.open(io.BytesIO(path.read_bytes())) as thumb:
        assert max(thumb.size) <= shop.settings.thumbnail_size


def test_info_reports_counts(shop):
    info = shop.info()
    assert info["items"] == 120
    assert info["spaces"]["image"]["vectors"] == 120
    assert info["spaces"]["image"]["encoder"] == "descriptor"


def test_minilm_text_search_is_semantic(tmp_path):
    settings = Settings(text_encoder="minilm", ingest_workers=2)
    with Engine.open(tmp_path / "c", settings) as eng:
        eng.upsert(Item(id="car", title="a fast red sports car"), picture(1))
        eng.upsert(Item(id="soup", title="a bowl of tomato soup"), picture(2))
        eng.upsert(Item(id="dog", title="a puppy playing in the park"), picture(3))
        assert eng.search(Query(text="automobile", limit=1)).hits[0].id == "car"
        assert eng.search(Query(text="something to eat", limit=1)).hits[0].id == "soup"


def test_missing_collection_for_reading(tmp_path):
    from imgsearch.errors import CollectionNotFoundError

    with pytest.raises(CollectionNotFoundError):
        Engine.open(tmp_path / "nothing", readonly=True)
    assert not (tmp_path / "nothing").exists()


def test_second_writer_is_refused(tmp_path, settings):
    from imgsearch.errors import CollectionLockedError

    with Engine.open(tmp_path / "c", settings):
        with pytest.raises(CollectionLockedError):
            Engine.open(tmp_path / "c", settings)
        Engine.open(tmp_path / "c", settings, readonly=True).close()


def test_path_query_of_missing_file(shop, tmp_path):
    from imgsearch.errors import ImgSearchError

    with pytest.raises(ImgSearchError):
        shop.search(Query(images=[tmp_path / "missing.jpg"]))


def test_exact_duplicate_ties_at_rank_one(tmp_path, engine):
    engine.upsert(Item(id="a"), picture(1))
    engine.upsert(Item(id="a-copy"), picture(1))
    engine.upsert(Item(id="b"), picture(2))
    hits = engine.search(Query(images=[picture(1)], limit=3, collapse_duplicates=False)).hits
    assert {hits[0].id, hits[1].id} == {"a", "a-copy"}
    assert hits[0].score == pytest.approx(hits[1].score)
    # by default the copy is folded into the first, which says it stands for two
    collapsed = engine.search(Query(images=[picture(1)], limit=3, min_confidence=0)).hits
    assert [h.id for h in collapsed][:2] == ["a", "b"]
    assert collapsed[0].duplicates == 1 and collapsed[1].duplicates == 0


def test_folding_follows_a_replaced_image(engine):
    engine.upsert(Item(id="a"), picture(1))
    engine.upsert(Item(id="a-copy"), picture(1))
    engine.upsert(Item(id="b"), picture(2))
    query = Query(images=[picture(1)], limit=3, min_confidence=0)
    assert [h.id for h in engine.search(query).hits][:2] == ["a", "b"]
    engine.upsert(Item(id="a-copy"), picture(3))  # no longer a copy: shown on its own
    assert {h.id for h in engine.search(query).hits} == {"a", "a-copy", "b"}
    engine.upsert(Item(id="a-copy"), picture(1))  # a copy again: folded again
    assert [h.id for h in engine.search(query).hits][:2] == ["a", "b"]
    engine.upsert(Item(id="a-copy-2"), picture(1))  # a new item after the hashes were read
    hits = engine.search(query).hits
    assert [h.id for h in hits][:2] == ["a", "b"] and hits[0].duplicates == 2


def test_more_like_an_id_follows_its_delete_and_return(engine):
    for i in range(4):
        engine.upsert(Item(id=f"p{i}"), picture(i))
    assert len(engine.similar("p1", limit=5).hits) == 3
    engine.delete("p1")
    with pytest.raises(ItemNotFoundError):
        engine.similar("p1")
    engine.upsert(Item(id="p1"), picture(2))  # back, with another picture and key
    hits = engine.similar("p1", limit=5, min_confidence=0, collapse_duplicates=False).hits
    assert hits[0].id == "p2" and hits[0].score > 0.999
    assert "p1" not in [h.id for h in hits]


def test_pages_agree_when_duplicates_are_folded(engine):
    items = []
    for i in range(40):
        items.append((Item(id=f"p{i:02d}"), picture(i, (64, 48))))
        if i % 3 == 0:  # every third picture also has an exact copy
            items.append((Item(id=f"p{i:02d}-copy"), picture(i, (64, 48))))
    engine.ingest_items(items)
    q = picture(7, (64, 48))
    whole = [h.id for h in engine.search(Query(images=[q], limit=40, min_confidence=0)).hits]
    pages = []
    for page in range(8):
        pages += [h.id for h in engine.search(Query(images=[q], limit=5, offset=page * 5,
                                                    min_confidence=0)).hits]
    assert pages == whole
    assert not any(i.endswith("-copy") and i[:-5] in whole for i in whole)


def test_facets_list_catalog_values(shop):
    facets = shop.facets()
    assert {f["value"] for f in facets["categories"]} == {"cat0", "cat1", "cat2", "cat3"}
    assert all(f["count"] == 30 for f in facets["categories"])
    assert {f["value"] for f in facets["brands"]} == {"acme", "globex"}
    assert facets["colors"]["red"].startswith("#") and len(facets["colors"]) == 12


def test_an_emptied_collection_says_so_and_answers_again_once_filled(tmp_path, settings):
    """Whether the collection is empty is remembered between writes: every write, here or
    in the writing process a reader follows, makes it be asked again."""
    directory = tmp_path / "c"
    writer = Engine.open(directory, settings)
    try:
        writer.upsert(Item(id="p0", title="red chair"), picture(0))
        reader = Engine.open(directory, settings, readonly=True)
        try:
            query = Query(text="red chair", min_confidence=0)
            for engine in (writer, reader):
                assert engine.search(query).empty_reason is None
            writer.delete("p0")
            for engine in (writer, reader):
                emptied = engine.search(query)
                assert (emptied.hits, emptied.empty_reason) == ([], "empty")
            writer.upsert(Item(id="p1", title="red chair"), picture(1))
            for engine in (writer, reader):
                assert [h.id for h in engine.search(query).hits] == ["p1"]
        finally:
            reader.close()
    finally:
        writer.close()


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # as expected
def test_a_vector_of_very_large_numbers_searches_as_its_direction(shop):
    """Its length squared overflows single precision; the query is its direction."""
    stored = shop.spaces["image"].vector_of_key(shop.catalog.key_of("sku00007") or -1)
    assert stored is not None
    plain = shop.search(Query(vector=stored, vector_space="image", limit=3))
    large = shop.search(Query(vector=stored * np.float32(1e30), vector_space="image",
                              limit=3))
    assert [h.id for h in large.hits] == [h.id for h in plain.hits]
    assert plain.hits[0].id == "sku00007"
    assert large.hits[0].score == pytest.approx(plain.hits[0].score, abs=1e-5)
