"""Match kinds over a remote collection: which candidates are ``exact`` copies of a
query image, by the local engine's rule (``search.matching``): the same bytes (content
hash), or the same pixels saved again (the same perceptual hash and an image cosine of
at least ``EXACT_COSINE``).

A ``copy`` (an edited copy: cropped, mirrored, recompressed) is told apart locally by
local features of the stored thumbnails; API nodes keep no image data (the backend holds
items' fields and vectors only), so on a remote collection a hit is ``exact`` or
``similar``, and the node declares it (``REFUSED["copies"]``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray

from imgsearch.engine.backends.base import Hit
from imgsearch.search.matching import EXACT_COSINE, QueryImage
from imgsearch.types import Item


def exact_matches(looks: Sequence[QueryImage], candidates: Sequence[Hit],
                  items: dict[str, Item],
                  fetch: Callable[[list[str]], dict[str, NDArray[np.float32]]]
                  ) -> dict[str, dict[str, float]]:
    """The ids of ``candidates`` that are exact copies of one of ``looks``, with the
    evidence (as the local engine gives it); ``fetch`` gives stored image vectors."""
    found: dict[str, dict[str, float]] = {}
    hashes = {x.content_hash for x in looks if x.content_hash}
    for h in candidates:
        item = items.get(h.id)
        if item is not None and item.content_hash in hashes:
            found[h.id] = {"same_bytes": 1.0}
    same_pixels = [h.id for h in candidates if h.id not in found and h.id in items
                   and items[h.id].phash is not None
                   and any(items[h.id].phash == x.phash for x in looks)]
    if same_pixels:
        vectors = fetch(same_pixels)
        for i in same_pixels:
            for x in looks:
                if i in vectors and items[i].phash == x.phash:
                    cosine = float(vectors[i] @ x.vector)
                    if cosine >= EXACT_COSINE:
                        found[i] = {"hamming": 0.0, "cosine": round(cosine, 4)}
                        break
    return found


__all__ = ["exact_matches"]
