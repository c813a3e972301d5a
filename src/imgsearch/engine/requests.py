"""One request -> ``Query`` builder for every entry point: the CLI, the HTTP API, the web page.

Each entry point parses its own syntax (options, JSON, form fields, query strings) into a
``SearchRequest``, a plain description of what was asked, and hands it to ``build_query``.
Options therefore mean the same everywhere, and an option added here reaches every entry
point that passes it on, instead of being dropped by the ones that build a ``Query``
themselves.

``ef_search`` and ``nprobe`` are parameters of the local FAISS indexes, not of the query:
they travel as hints in ``Query.search_params``, which the collection's backend checks
and applies (``imgsearch.index.base.SearchParams`` for the local one).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from imgsearch.errors import InvalidQueryError
from imgsearch.types import Filters, Query

if TYPE_CHECKING:  # numpy and Pillow load with the first vector or image, not at start
    import numpy as np

    from imgsearch.types import ImageInput


@dataclass(frozen=True)
class SearchRequest:
    """Everything a caller may ask of a search, before defaults are applied.

    ``limit=None`` is the collection's page size (``Settings.default_limit``);
    ``vector`` is a raw query vector in ``vector_space`` (any sequence of numbers).
    """

    text: str | None = None
    images: Sequence[ImageInput] = ()
    negative_images: Sequence[ImageInput] = ()
    image_weight: float = 0.5
    vector: Sequence[float] | np.ndarray | None = None
    vector_space: str = "image"
    similar_to: str | None = None
    filters: Filters = field(default_factory=Filters)
    limit: int | None = None
    offset: int = 0
    parse: bool = True
    min_confidence: float | None = None
    collapse_duplicates: bool = True
    boosts: Mapping[str, float] = field(default_factory=dict)
    prefer_colors: Sequence[str] = ()
    max_per_category: int | None = None
    mmr_lambda: float | None = None
    multi_image: str | None = None
    ef_search: int | None = None
    nprobe: int | None = None


def build_query(request: SearchRequest, default_limit: int) -> Query:
    """The ``Query`` that ``request`` describes; ``default_limit`` fills a missing limit."""
    return Query(
        text=request.text or None,
        images=list(request.images), negative_images=list(request.negative_images),
        image_weight=request.image_weight,
        vector=_vector(request.vector), vector_space=request.vector_space,
        similar_to=request.similar_to, filters=request.filters,
        limit=default_limit if request.limit is None else request.limit,
        offset=request.offset, parse=request.parse, min_confidence=request.min_confidence,
        collapse_duplicates=request.collapse_duplicates, boosts=dict(request.boosts),
        prefer_colors=tuple(c for c in request.prefer_colors if c),
        max_per_category=request.max_per_category, mmr_lambda=request.mmr_lambda,
        multi_image=request.multi_image or None,
        search_params={name: value for name, value in (("ef_search", request.ef_search),
                                                        ("nprobe", request.nprobe))
                       if value is not None})


def _vector(value: Sequence[float] | np.ndarray | None) -> np.ndarray | None:
    if value is None:
        return None
    import numpy as np

    try:
        vector = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError):
        raise InvalidQueryError("vector must be a list of numbers") from None
    if vector.ndim != 1 or vector.size == 0:
        raise InvalidQueryError(f"vector must be a flat, non-empty list of numbers, got "
                                f"shape {vector.shape}")
    return vector


def read_indexes_ahead(collection: Path, request: SearchRequest) -> None:
    """Start reading the index files of a local collection that this request will search,
    on threads of their own, before the engine is imported (``imgsearch.index.early``):
    the image index for query images, the text index for words, both for more like an
    item. The command line does this: numpy and FAISS take a third of a second of one
    core to load, and reading and checking a file needs neither."""
    from imgsearch.index import early

    spaces = {"image": bool(request.images or request.negative_images
                            or request.similar_to is not None),
              "text": bool(request.text or request.similar_to is not None)}
    for space, searched in spaces.items():
        if searched:
            early.read_ahead(early.index_file(collection, space))


def parse_boosts(pairs: Iterable[str], option: str = "--boost") -> dict[str, float]:
    """``SIGNAL=WEIGHT`` strings (a CLI option, a form or query-string field) as a mapping."""
    out: dict[str, float] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        try:
            out[name] = float(value)
        except ValueError:
            raise InvalidQueryError(f"{option} takes SIGNAL=WEIGHT, got {pair!r}") from None
        if not sep:
            raise InvalidQueryError(f"{option} takes SIGNAL=WEIGHT, got {pair!r}")
    return out


__all__ = ["SearchRequest", "build_query", "parse_boosts", "read_indexes_ahead"]
