"""Query understanding of photo phrases: dates and cameras."""

from __future__ import annotations

from datetime import datetime

import pytest

from imgsearch.search.understand import Vocabulary, understand

CAMERAS = Vocabulary([], [], ["Google Pixel 4a", "Google Pixel 7", "Canon EOS 5D"])
JULY_2026 = datetime(2026, 7, 10)


@pytest.mark.parametrize(("text", "after", "before", "left"), [
    ("beach in 2019", "2019", "2020", "beach"),
    ("snow during 2021", "2021", "2022", "snow"),
    ("party in June 2019", "2019-06", "2019-07", "party"),
    ("december 2018 lights", "2018-12", "2019-01", "lights"),
    ("lake summer 2018", "2018-06", "2018-09", "lake"),
    ("sunset last summer", "2025-06", "2025-09", "sunset"),  # July 2026: not ended yet
    ("garden this summer", "2026-06", "2026-09", "garden"),
    ("dogs last year", "2025", "2026", "dogs"),
])
def test_dates_become_a_taken_range(text, after, before, left):
    parsed = understand(text, CAMERAS, JULY_2026)
    assert (parsed.taken_after, parsed.taken_before, parsed.text) == (after, before, left)


def test_last_summer_once_it_has_ended_is_this_years():
    parsed = understand("last summer", CAMERAS, datetime(2026, 10, 1))
    assert (parsed.taken_after, parsed.taken_before) == ("2026-06", "2026-09")


def test_taken_with_a_pixel_names_every_known_pixel():
    parsed = understand("dog taken with a Pixel", CAMERAS, JULY_2026)
    assert parsed.cameras == ["Google Pixel 4a", "Google Pixel 7"]
    assert parsed.text == "dog"
    assert parsed.to_dict()["filters"]["cameras"] == ["Google Pixel 4a", "Google Pixel 7"]


def test_a_camera_the_collection_does_not_have_stays_text():
    parsed = understand("cat shot on an iPhone", CAMERAS, JULY_2026)
    assert parsed.cameras == []
    assert parsed.text == "cat shot on an iPhone"


def test_a_query_of_photo_phrases_alone_has_no_text_left():
    parsed = understand("my photos taken with a canon eos 5d in 2019", CAMERAS, JULY_2026)
    assert parsed.cameras == ["Canon EOS 5D"]
    assert (parsed.taken_after, parsed.taken_before) == ("2019", "2020")
    assert parsed.text == ""


def test_a_year_in_an_album_name_is_no_date():
    parsed = understand("photos in Holidays 2019", CAMERAS, JULY_2026)
    assert parsed.taken_after is None and parsed.text == "photos in Holidays 2019"
