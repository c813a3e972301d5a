"""Views of a query image searched for the original of a copy (search/copy_views.py)."""

from __future__ import annotations

from PIL import Image

from imgsearch.search.copy_views import (
    CROP_CANDIDATES,
    SQUARE_CANDIDATES,
    WIDE_EF_SEARCH,
    central_part,
    end_squares,
    query_views,
    wide_params,
    without_bottom,
)


def _image(width: int, height: int) -> Image.Image:
    image = Image.new("RGB", (width, height))
    for x in range(width):  # a left-to-right ramp shows which part a view kept
        image.putpixel((x, 0), (x % 256, 0, 0))
    return image


def test_without_bottom_keeps_the_top_four_fifths() -> None:
    assert without_bottom(_image(200, 100)).size == (200, 80)
    assert without_bottom(_image(200, 1)).size == (200, 1)  # never empty


def test_an_elongated_image_has_a_square_at_either_end() -> None:
    wide = _image(300, 100)
    left, right = end_squares(wide)
    assert left.size == right.size == (100, 100)
    assert left.getpixel((0, 0)) == (0, 0, 0) and right.getpixel((0, 0)) == (200, 0, 0)
    top, bottom = end_squares(_image(100, 250))
    assert top.size == bottom.size == (100, 100)


def test_a_squarer_image_has_no_end_squares() -> None:
    assert end_squares(_image(400, 300)) == []
    assert end_squares(_image(100, 100)) == []


def test_query_views_are_the_central_part_then_the_end_squares() -> None:
    views = query_views(_image(320, 180))
    assert [count for _image, count in views] == [CROP_CANDIDATES, SQUARE_CANDIDATES,
                                                  SQUARE_CANDIDATES]
    assert views[0][0].size == central_part(_image(320, 180)).size
    assert [count for _image, count in query_views(_image(400, 300))] == [CROP_CANDIDATES]


def test_the_wide_walk_never_narrows_what_the_query_asked_for() -> None:
    assert wide_params({}) == {"ef_search": WIDE_EF_SEARCH}
    assert wide_params({"ef_search": 2000, "nprobe": 8}) == {"ef_search": 2000, "nprobe": 8}
    assert wide_params({"ef_search": 16})["ef_search"] == WIDE_EF_SEARCH
