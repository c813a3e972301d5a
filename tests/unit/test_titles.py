"""File-name titles become words for the encoder and the keyword index."""

from __future__ import annotations

import pytest

from imgsearch.titles import clean_title, looks_like_file_name
from imgsearch.types import Item


@pytest.mark.parametrize(("raw", "cleaned"), [
    ("bird_owl_2.png", "bird owl"),
    ("redRoseBouquet-0042", "red rose bouquet"),
    ("050kennedy-halfdollar.png", "kennedy halfdollar"),
    ("yen100.png", "yen"),
    ("IMG_20190612_153012.jpg", ""),
    ("DSC_0042", ""),
    ("PXL_20230101_sunset_beach.jpg", "sunset beach"),
    ("USB_Cable", "USB cable"),
    ("speech_balloon", "speech balloon"),
])
def test_file_name_titles_become_words(raw: str, cleaned: str) -> None:
    assert clean_title(raw) == cleaned


@pytest.mark.parametrize("prose", ["A red and white anemone flower.", "Route 66 sign",
                                   "iPhone", "Nike Air Max 90", ""])
def test_prose_titles_are_left_alone(prose: str) -> None:
    assert not looks_like_file_name(prose)
    assert clean_title(prose) == prose


def test_none_stays_none() -> None:
    assert clean_title(None) is None


def test_the_encoder_reads_the_cleaned_title_and_people_see_the_raw_one() -> None:
    item = Item(id="x", title="sea_turtle_03.jpg", description="Swimming.")
    assert item.metadata_text() == "sea turtle . Swimming."
    assert item.title == "sea_turtle_03.jpg"
