"""Labelled vectors and random filters for the backend suite and its congruence tests."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from uuid import uuid4

import numpy as np
from numpy.typing import NDArray

from imgsearch.config import Settings
from imgsearch.engine.backends.base import CollectionBackend, Row
from imgsearch.types import Filters, Item

DIM = 32  # the fake encoder's dimension: a local collection opened with it takes these
CATEGORIES = ["shoes", "Hats", "bags", "coats"]
BRANDS = ["Acme", "nike", "Zeta"]
COLORS = ["red", "blue", "green", "black"]
TAGS = ["sale", "new", "eco", "vintage"]
LICENSES = ["cc-by", "cc0"]


def unit(rng: np.random.Generator, n: int, dim: int = DIM) -> NDArray[np.float32]:
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def item(i: int, rng: random.Random) -> Item:
    width, height = rng.choice([(800, 600), (600, 800), (500, 500), (None, None)])
    return Item(
        id=f"item-{i}", title=f"{rng.choice(COLORS)} {rng.choice(CATEGORIES).lower()} {i}",
        category=rng.choice([*CATEGORIES, None]), brand=rng.choice([*BRANDS, None]),
        price=rng.choice([None, round(rng.uniform(1, 200), 2)]),
        color=rng.choice([None, *COLORS, "red/blue"]),
        license=rng.choice([None, *LICENSES]),
        tags=tuple(rng.sample(TAGS, rng.randint(0, 3))),
        attributes={"size": rng.choice([36, 38, "L"]), "fit": rng.choice(["slim", "wide"])},
        width=width, height=height,
        taken_at=rng.choice([None, "2019-06-01T10:00:00", "2021-01-15T08:30:00"]),
        camera=rng.choice([None, "Canon EOS", "Pixel 7"]),
        city=rng.choice([None, "Lisbon", "ZÜRICH"]),
        country=rng.choice([None, "Portugal", "Switzerland"]),
    )


def rows(n: int, seed: int = 0, start: int = 0) -> list[Row]:
    rng, nrng = random.Random(seed), np.random.default_rng(seed)
    vectors = unit(nrng, n)
    return [Row(item(start + i, rng), {"image": vectors[i]}) for i in range(n)]


def random_filters(rng: random.Random) -> Filters:
    """A random combination of the filters both backends evaluate."""
    fields: dict[str, object] = {}
    if rng.random() < 0.4:
        fields["categories"] = tuple(rng.sample(CATEGORIES, rng.randint(1, 2)))
    if rng.random() < 0.3:
        fields["brands"] = (rng.choice(BRANDS).upper(),)
    if rng.random() < 0.3:
        fields["price_min"] = rng.uniform(0, 100)
    if rng.random() < 0.3:
        fields["price_max"] = rng.uniform(100, 220)
    if rng.random() < 0.3:
        fields["colors"] = tuple(rng.sample(COLORS, rng.randint(1, 2)))
    if rng.random() < 0.3:
        fields["tags"] = (rng.choice(TAGS),)
    if rng.random() < 0.2:
        fields["licenses"] = (rng.choice(LICENSES),)
    if rng.random() < 0.2:
        fields["orientation"] = rng.choice(["landscape", "portrait", "square"])
    if rng.random() < 0.2:
        fields["min_width"] = rng.choice([0, 550, 700])
    if rng.random() < 0.2:
        fields["attributes"] = {rng.choice(["size", "fit"]): rng.choice(["36", "L", "slim"])}
    if rng.random() < 0.15:
        fields["taken_after"] = rng.choice(["2019", "2020-06"])
    if rng.random() < 0.15:
        fields["taken_before"] = rng.choice(["2020", "2022-01-01"])
    if rng.random() < 0.1:
        fields["cameras"] = ("canon eos",)
    if rng.random() < 0.15:
        fields["places"] = tuple(rng.sample(["zürich", "Lisbon", "portugal", "Nowhere"], 2))
    return Filters(**fields)  # type: ignore[arg-type]


@contextmanager
def local_backend(directory: Path) -> Iterator[CollectionBackend]:
    from imgsearch.engine.backends.local import LocalBackend

    backend = LocalBackend.open(directory, Settings(image_encoder="fake", text_encoder="none"))
    try:
        yield backend
    finally:
        backend.close()


def collection_name(prefix: str = "t") -> str:
    return f"{prefix}_{uuid4().hex[:12]}"


@contextmanager
def milvus_backend(address: str, spaces: dict[str, int] | None = None,
                   name: str | None = None, query: str = ""
                   ) -> Iterator[CollectionBackend]:
    from imgsearch.engine.backends.milvus import MilvusBackend

    backend = MilvusBackend.open(f"milvus://{address}/{name or collection_name()}{query}",
                                 spaces or {"image": DIM})
    try:
        yield backend
    finally:
        backend.close()


def open_milvus(address: str, spaces: dict[str, int] | None = None, name: str | None = None,
                query: str = "") -> None:
    """Open a milvus collection and close it again (for what opening refuses)."""
    with milvus_backend(address, spaces, name, query):
        pass
