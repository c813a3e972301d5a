"""EXIF facts: read exactly from well-formed blocks; hostile blocks never fail an image."""

from __future__ import annotations

import io
import math

import pytest
from PIL import Image

from exif_cases import CASES, hostile_jpeg
from imgsearch.ingest.decode import decode_image
from imgsearch.ingest.exif import PhotoFacts, read_facts
from photogen import photo_exif, photo_jpeg

LIMITS = dict(max_pixels=10**8, min_side=8, max_bytes=10**8)


def _facts(data: bytes) -> PhotoFacts:
    return read_facts(Image.open(io.BytesIO(data)))


def test_every_fact_is_read_from_a_camera_block():
    facts = _facts(photo_jpeg(1, photo_exif(
        taken="2019:07:04 12:30:05", offset="+01:00", make="Google", model="Pixel 4a",
        lens="Pixel 4a back camera", focal=4.38, gps=(38.7223, -9.1393))))
    assert facts.taken_at == "2019-07-04T12:30:05+01:00"
    assert facts.camera == "Google Pixel 4a"
    assert facts.lens == "Pixel 4a back camera"
    assert facts.focal_length == 4.38
    assert facts.latitude is not None and facts.longitude is not None
    assert math.isclose(facts.latitude, 38.7223, abs_tol=1e-4)
    assert math.isclose(facts.longitude, -9.1393, abs_tol=1e-4)


def test_the_make_is_not_repeated_when_the_model_names_it():
    facts = _facts(photo_jpeg(1, photo_exif(make="Canon", model="Canon EOS 5D")))
    assert facts.camera == "Canon EOS 5D"


def test_southern_and_western_positions_are_negative():
    facts = _facts(photo_jpeg(1, photo_exif(gps=(-33.8688, -70.6483))))
    assert facts.latitude is not None and facts.latitude < 0
    assert facts.longitude is not None and facts.longitude < 0


def test_a_photo_without_exif_has_no_facts():
    assert _facts(photo_jpeg(1)).empty


def test_there_are_at_least_thirty_hostile_cases():
    assert len(CASES) >= 30


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns of damaged blocks
@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_exif_never_fails_the_image_and_yields_only_plausible_facts(name):
    decoded = decode_image(hostile_jpeg(name), **LIMITS)  # raises nothing
    assert decoded.width == 160 and decoded.height == 120
    facts = decoded.facts
    if facts.latitude is not None or facts.longitude is not None:
        assert facts.latitude is not None and -90 <= facts.latitude <= 90
        assert facts.longitude is not None and -180 <= facts.longitude <= 180
    if facts.focal_length is not None:
        assert 0 < facts.focal_length <= 5000
    for text in (facts.camera, facts.lens, facts.taken_at):
        assert text is None or (len(text) <= 64 and text.isprintable())
    if facts.taken_at is not None:
        assert 1826 <= int(facts.taken_at[:4]) <= 2200


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_bogus_values_are_dropped_and_good_ones_kept():
    assert decode_image(hostile_jpeg("date all zeros"), **LIMITS).facts.taken_at is None
    assert decode_image(hostile_jpeg("offset +99:00"), **LIMITS).facts.taken_at == \
        "2019-07-04T12:00:00"  # the date stands; the impossible offset goes
    assert decode_image(hostile_jpeg("latitude 91 degrees"), **LIMITS).facts.latitude is None
    assert decode_image(hostile_jpeg("position 0, 0"), **LIMITS).facts.latitude is None
    assert decode_image(hostile_jpeg("make 10k characters"), **LIMITS).facts.camera is None
    assert decode_image(hostile_jpeg("valid date in IFD0 only"), **LIMITS).facts.taken_at \
        == "2018-03-02T10:11:12"
