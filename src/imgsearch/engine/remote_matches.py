"""Match kinds over a remote collection, by the local engine's own code
(``search.matching.match_kinds``): ``exact`` (the same bytes by content hash, or the
same pixels saved again: the same perceptual hash and an image cosine of at least
``EXACT_COSINE``), ``copy`` (an edited copy: cropped, mirrored, grey, recompressed,
verified by local features and, failing those, a dense alignment of the stored
thumbnail) or ``similar``.

The candidates' thumbnails come from the backend's rows (milvus schema 3), each read
only when verification looks at it (most queries for a copy stop at their first
candidate) and once per query; their local features are kept by the node
(``FeatureCache``). As locally, the best ``VERIFY_TOP`` candidates per query image are
examined, and when none verifies, those the descriptor finds nearest the query walked
wider and nearest its views (its central part, the end squares of an elongated one:
``search.copy_views``). Not done here: the local engine's perceptual-hash lookup over
the whole collection (searching hashes by Hamming distance would need a binary vector
field; Milvus 2.3 holds one vector field per collection), so a copy the image vector
ranks far down is found only through those views. On a collection
without thumbnails (made before schema 3) only exact copies are found, and the node
says why (``RemoteEngine.refuses("copies")``).
"""

from __future__ import annotations

import contextlib
import functools
import io
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from imgsearch.engine.backends.base import CollectionBackend, Hit
from imgsearch.search.copy_views import WIDE_CANDIDATES, query_views, wide_params
from imgsearch.search.matching import Candidate, Match, QueryImage, match_kinds
from imgsearch.search.verify import FeatureCache
from imgsearch.types import Filters, Item

# a stored thumbnail is at most 512 px a side (``Settings.thumbnail_size``); a row
# claiming more is not decoded
MAX_THUMBNAIL_SIDE = 4096


class RemoteCandidates:
    """What verification needs of a query's candidates, read from the backend: their
    items (given), image vectors (read in one call, only for those with the perceptual
    hash of a query image in ``hashes``: an exact match by pixels needs the same hash
    and a cosine, nothing else reads a candidate's vector) and thumbnails (each when
    first looked at)."""

    def __init__(self, backend: CollectionBackend, items: dict[str, Item],
                 hashes: set[int]) -> None:
        self.backend = backend
        self.items = dict(items)
        self.hashes = hashes
        self.keys: dict[str, int] = {}
        self.thumbnails_read: list[str] = []  # ids whose thumbnail was fetched

    def id_of(self, key: int) -> str:
        return next(i for i, k in self.keys.items() if k == key)

    def of(self, ids: Sequence[str]) -> list[Candidate]:
        """Candidates for ``ids``, in that order (ids without an item left out)."""
        missing = [i for i in ids if i not in self.items]
        if missing:
            self.items.update(self.backend.get(missing))
        wanted = [i for i in ids if i in self.items]
        same = [i for i in wanted if self.items[i].phash in self.hashes]
        vectors = self.backend.fetch_vectors("image", same) \
            if same and "image" in self.backend.spaces() else {}
        found = []
        for item_id in wanted:
            item = self.items[item_id]
            key = self.keys.setdefault(item_id, len(self.keys))
            found.append(Candidate(
                key, vectors.get(item_id), item.content_hash, item.phash,
                ("milvus-thumbnail", self.backend.uri, item_id, item.thumbnail,
                 item.content_hash),
                functools.cache(functools.partial(self._load, item_id, item))))
        return found

    def _load(self, item_id: str, item: Item) -> Image.Image | None:
        if not item.thumbnail:  # an old collection's row, or an item written without one
            return None
        self.thumbnails_read.append(item_id)
        data = self.backend.thumbnails([item_id], {item_id: item.thumbnail}).get(item_id)
        return decode_thumbnail(data) if data else None


def decode_thumbnail(data: bytes) -> Image.Image | None:
    """A stored thumbnail's pixels in RGB; None when they cannot be read."""
    with contextlib.suppress(OSError, ValueError, Image.DecompressionBombError), \
            Image.open(io.BytesIO(data), formats=["JPEG"]) as opened:
        if max(opened.size) > MAX_THUMBNAIL_SIDE:
            return None
        return opened.convert("RGB")
    return None


def copies(looks: Sequence[QueryImage], negatives: Sequence[QueryImage],
           candidates: Sequence[Hit], top: int, reader: RemoteCandidates,
           cache: FeatureCache, more: Callable[[set[str]], list[str]] | None = None
           ) -> dict[str, Match]:
    """Exact and verified-copy matches among the first ``top`` of ``candidates`` (and,
    when none of these verifies, among the ids ``more`` gives, those not known already),
    by id; ids not listed are similar."""
    if not looks or not candidates:
        return {}
    first = [h.id for h in candidates[:top]]
    extra = None if more is None else (lambda: reader.of(more(set(first))))
    found = match_kinds(looks, reader.of(first), cache, negatives, extra)
    return {reader.id_of(key): match for key, match in found.items()}


def view_candidates(backend: CollectionBackend, embed: Callable[[list[Image.Image]],
                    NDArray[np.float32]], looks: Sequence[QueryImage], filters: Filters,
                    params: Mapping[str, int], exclude: str | None, known: set[str]
                    ) -> list[str]:
    """As the local engine's crop candidates (``searcher._crop_keys``): the items
    nearest each query image walked wider (those not ``known`` already), then those
    nearest its views (``copy_views.query_views``)."""
    wide = wide_params(params)
    ids: list[str] = []
    for look in looks:
        found = backend.search("image", look.vector, WIDE_CANDIDATES + 1, filters, wide)
        ids += [h.id for h in found if h.id != exclude and h.id not in known][:WIDE_CANDIDATES]
    views = [view for look in looks for view in query_views(look.image)]
    if views:
        vectors = embed([image for image, _count in views])
        for vector, (_image, count) in zip(vectors, views, strict=True):
            found = backend.search("image", vector, count + 1, filters, wide)
            ids += [h.id for h in found if h.id != exclude][:count]
    return list(dict.fromkeys(ids))


__all__ = ["MAX_THUMBNAIL_SIDE", "RemoteCandidates", "copies", "decode_thumbnail",
           "view_candidates"]
