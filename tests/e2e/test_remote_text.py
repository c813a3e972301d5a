"""Text answers and "more like this" on Milvus nodes as on the local engine: the same
generated catalog written to a local collection and to a Milvus one (Lite, and the
standalone 2.3.5 server, which holds the image space alone), the same queries, the
same top ids."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

import backendkit as kit
from imagegen import jpeg_of as jpeg
from imagegen import textured
from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.types import Filters, Item, Query
from searchnodes import milvus_settings
from wordnetgen import write_wordnet

# minilm: its real-valued similarities leave no ties for float noise to order; text
# feedback from every query's head (no minimum), so that both engines expand each query
SETTINGS = Settings(image_encoder="descriptor", text_encoder="minilm", ingest_workers=2,
                    feedback_min_confidence=0.0, result_cache_size=0)
ANIMALS = [("A brown cow.", "farm"), ("A sleeping cat.", "pets"), ("Two mice.", "pets"),
           ("A grey pigeon.", "city"), ("A big drum.", "music"), ("A red car.", "city")]
KINDS = ("shoe", "boot", "sandal", "hat", "scarf")
CATEGORIES = ("footwear", "footwear", "footwear", "headwear", "neckwear")
BRANDS = ("acme", "zenith", "orbit")
N = 60


def catalog() -> list[tuple[Item, bytes]]:
    """Ids in written order (``pic00``...): where two items tie, both engines put the
    first by id first."""
    return [(Item(id=f"pic{i:02d}", title=f"{KINDS[i % 5]} {('red', 'blue', 'green')[i % 3]} "
                                          f"model {i}",
                  description=f"a {KINDS[i % 5]} made of {('wool', 'leather')[i % 2]}",
                  category=CATEGORIES[i % 5], brand=BRANDS[i % 3], price=5.0 * (i + 1)),
             jpeg(textured(i, (240, 180)))) for i in range(N)] + [
        (Item(id=f"pic{N + i:02d}", title=title, category=category),
         jpeg(textured(N + i, (240, 180)))) for i, (title, category) in enumerate(ANIMALS)]


@dataclass
class Pair:
    backend: str
    local: Any
    remote: Any


@pytest.fixture(scope="module", params=["milvus-lite", "milvus-server"])
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Pair]:
    from imgsearch.engine.backends.milvus import MilvusBackend
    from imgsearch.engine.remote import RemoteEngine, encoders_for

    backend = request.param
    address = request.getfixturevalue(
        "milvus_lite_address" if backend == "milvus-lite" else "milvus_server_address")
    wordnet = write_wordnet(Path(tmp_path_factory.mktemp("wn")) / "wn")
    settings = milvus_settings(SETTINGS.replace(wordnet_dir=str(wordnet)), backend)
    encoders = encoders_for(settings)
    remote = RemoteEngine(MilvusBackend.open(
        f"milvus://{address}/{kit.collection_name('text')}",
        {s: v.dim for s, v in encoders.items()}, encoders=encoders), settings)
    local = Engine.open(Path(tmp_path_factory.mktemp("text")) / "c", settings)
    for engine in (local, remote):
        written = engine.upsert_many([(replace(item), data) for item, data in catalog()])
        assert all(isinstance(w, str) for w in written), written
    local.save()
    yield Pair(backend, local, remote)
    local.close()
    remote.close()


def ids(engine: Any, query: Query) -> list[str]:
    return [h.id for h in engine.search(query).hits]


@pytest.mark.parametrize("item", ["pic03", "pic17", "pic44"])
def test_more_like_this_is_the_local_engines_fused_ranking(pair: Pair, item: str) -> None:
    query = Query(similar_to=item, limit=10)
    local, remote = ids(pair.local, query), ids(pair.remote, query)
    assert len(local) == 10 and item not in local
    assert remote == local
    # the local ranking fuses the item's image, text (Lite), category and brand lists
    plan = pair.local.search(query).plan
    assert "category:" in plan and "brand:" in plan and "fused:rrf" in plan


def test_more_like_this_keeps_the_querys_filters(pair: Pair) -> None:
    query = Query(similar_to="pic03", limit=10, filters=Filters(brands=("zenith",)))
    remote = ids(pair.remote, query)
    assert remote == ids(pair.local, query)
    assert remote and all(pair.remote.get(i).brand == "zenith" for i in remote)



def text_query(pair: Pair, text: str, **kwargs: Any) -> Query:
    reason = pair.remote.refuses("text")
    if reason:  # the 2.3.5 server: no text space, no BM25
        pytest.skip(f"{pair.backend}: {reason}")
    return Query(text=text, parse=False, min_confidence=0.0, limit=10, **kwargs)


def test_a_text_query_is_expanded_from_its_surest_hits_as_locally(pair: Pair) -> None:
    query = text_query(pair, "winter footgear")  # no item has either word: no keyword list
    local, remote = pair.local.search(query), pair.remote.search(query)
    assert "text_feedback:seeds" in local.plan and "smoothed" in local.plan
    assert "text_feedback:seeds" in remote.plan and "smoothed" in remote.plan
    assert [h.id for h in remote.hits] == [h.id for h in local.hits]
    assert remote.interpretation["expanded"]["text_feedback"] == \
        local.interpretation["expanded"]["text_feedback"]
    # the expansion moved the ranking: the plain semantic list is another order
    vector = pair.remote.backend.fetch_vectors("text", ["pic00"])  # any text vector works
    assert vector
    plain = [h.id for h in pair.remote.backend.search(
        "text", pair.remote.encoder("text").embed_text(query.text or ""), 10)]
    assert plain != [h.id for h in remote.hits]


def test_a_kind_of_the_querys_word_finds_the_same_items_as_locally(pair: Pair) -> None:
    query = text_query(pair, "mammals")
    local, remote = pair.local.search(query), pair.remote.search(query)
    assert "concepts:wordnet" in local.plan and "concepts:wordnet" in remote.plan
    kinds = remote.interpretation["expanded"]["concepts"]
    assert kinds == local.interpretation["expanded"]["concepts"]
    assert set(kinds["mammals"]) == {"cow", "cat", "mouse"}
    assert [h.id for h in remote.hits] == [h.id for h in local.hits]
    assert {"pic60", "pic61", "pic62"} <= {h.id for h in remote.hits[:5]}
    # a concept match covering the query is confident, as locally
    sure = pair.remote.search(dataclasses.replace(query, min_confidence=None))
    assert {"pic60", "pic61", "pic62"} <= {h.id for h in sure.hits}


def test_the_concept_list_keeps_the_filters(pair: Pair) -> None:
    query = text_query(pair, "mammals", filters=Filters(categories=("pets",)))
    local, remote = pair.local.search(query), pair.remote.search(query)
    assert [h.id for h in remote.hits] == [h.id for h in local.hits]
    assert {h.id for h in remote.hits[:2]} == {"pic61", "pic62"}  # the cat, the mice
    assert all(pair.remote.get(h.id).category == "pets" for h in remote.hits)
