"""Where else to look for the original of a copy when none of the query's candidates
verified: parts of the query image (views) searched in the collection's own image space,
and a wider walk of the approximate index.

Nothing is stored for this: the views are the query's, so it costs nothing per item and
a few milliseconds per query, paid only by queries whose candidates did not verify.
What each view finds counts only if it verifies (``matching.match_kinds``).

- **A wider walk** (``WIDE_EF_SEARCH``): an HNSW walk with the collection's ``ef_search``
  (128) can end in a neighbourhood of look-alike drawings and miss a photo that is the
  query's exact nearest neighbour. In ``bench/copydetect.py`` (10,362 items) the walk's
  top 10 lacked the original of three copies whose exact nearest neighbour it is (a
  60 % crop of ``Stripes``, a 7° rotation and a banner copy of ``rollpaper``); a walk
  with 512 puts all three first, one with 256 only one of them.
- **The central part** (``CROP_SHARE`` of each side): the whole image's vector is thrown
  by what changes along the borders (a rotation's filled corners, a banner, a frame).
- **The two end squares of an elongated query** (longer side at least ``ELONGATED``
  times the shorter): another aspect crop of a picture (a phone's portrait cut of a
  landscape wallpaper) is squeezed differently into the descriptor's square than the
  original. The portrait 1080 x 1920 of the landscape ``MilkyWay`` ranks it 39th as a
  whole, 5th by its central square, 1st by either end square (and then verifies with
  29 agreeing keypoints).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from PIL import Image

__all__ = ["CROP_CANDIDATES", "CROP_SHARE", "ELONGATED", "SQUARE_CANDIDATES",
           "WIDE_CANDIDATES", "WIDE_EF_SEARCH", "central_part", "end_squares", "query_views",
           "wide_params", "without_bottom"]

# bench/copydetect.py: the central 70 % ranked first the photo of 8 of the 14 copies the
# whole query missed (the central 80 %: 7; 60 %: 6).
CROP_SHARE = 0.7
CROP_CANDIDATES = 2  # nearest items of the central part that are verified
WIDE_CANDIDATES = 2  # nearest items of the whole query, walked wider, that are verified
SQUARE_CANDIDATES = 1  # nearest item of each end square that is verified
WIDE_EF_SEARCH = 512
ELONGATED = 1.5


def central_part(image: Image.Image, share: float = CROP_SHARE) -> Image.Image:
    """The central ``share`` of each side of ``image``."""
    w, h = image.size
    dx, dy = w * (1 - share) / 2, h * (1 - share) / 2
    return image.crop((round(dx), round(dy), round(w - dx), round(h - dy)))


def without_bottom(image: Image.Image, share: float = 0.2) -> Image.Image:
    """``image`` without its bottom ``share`` (where banners and captions go)."""
    w, h = image.size
    return image.crop((0, 0, w, max(1, round(h * (1 - share)))))


def end_squares(image: Image.Image) -> list[Image.Image]:
    """The squares at either end of an elongated ``image`` (none for a squarer one)."""
    w, h = image.size
    side = min(w, h)
    if side < 1 or max(w, h) < ELONGATED * side:
        return []
    if w > h:
        return [image.crop((0, 0, side, h)), image.crop((w - side, 0, w, h))]
    return [image.crop((0, 0, w, side)), image.crop((0, h - side, w, h))]


def query_views(image: Image.Image) -> list[tuple[Image.Image, int]]:
    """The views of a query image to search for, each with how many of its nearest items
    to verify: the central part, then the end squares of an elongated image."""
    return [(central_part(image), CROP_CANDIDATES),
            *[(square, SQUARE_CANDIDATES) for square in end_squares(image)]]


def wide_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` (a query's search hints) with the HNSW walk at least
    ``WIDE_EF_SEARCH`` wide."""
    given = params.get("ef_search")
    wide = WIDE_EF_SEARCH if not isinstance(given, int) else max(given, WIDE_EF_SEARCH)
    return {**params, "ef_search": wide}
