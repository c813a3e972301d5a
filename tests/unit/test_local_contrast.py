"""The local-contrast look: a burnt-out brighter copy of a light picture still verifies."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from imagegen import textured
from imgsearch.search.matching import Candidate, QueryImage, match_kinds
from imgsearch.search.verify import LARGE_SIDE, MIN_INLIERS, FeatureCache, features, verify


def _light(seed: int) -> Image.Image:
    """A busy picture lifted towards white, so that +50 % brightness burns much of it."""
    pixels = np.asarray(textured(seed, (960, 640)), np.float32)
    return Image.fromarray((140 + pixels * 115 / 255).astype(np.uint8))


def _brighter(image: Image.Image) -> Image.Image:
    return ImageEnhance.Brightness(image).enhance(1.5)


def _thumbnail(image: Image.Image) -> Image.Image:
    small = image.copy()
    small.thumbnail((LARGE_SIDE, LARGE_SIDE))
    return small


def _inliers(query: Image.Image, stored: Image.Image, **look: bool) -> int:
    kept = features(_thumbnail(stored), side=LARGE_SIDE, **look)
    return max(verify(features(query, mirror=m, side=LARGE_SIDE, **look), kept, m).inliers
               for m in (False, True))


def test_a_burnt_out_copy_verifies_at_local_contrast_not_with_the_plain_look() -> None:
    original = _light(3)
    query = _brighter(original)
    assert _inliers(query, original) < MIN_INLIERS
    assert _inliers(query, original, local_contrast=True) >= MIN_INLIERS


def _candidate(key: int, image: Image.Image) -> Candidate:
    thumbnail = _thumbnail(image)
    return Candidate(key, None, None, None, ("thumbnail", key), lambda: thumbnail)


def test_match_kinds_takes_the_local_contrast_look_when_the_closer_one_fails(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # the closer look made no closer than the plain one (on real photos it is the closer
    # look that fails for a burnt-out copy; on this generated one both would pass)
    monkeypatch.setattr("imgsearch.search.verify._CLOSER_FEATURES", 500)
    monkeypatch.setattr("imgsearch.search.verify._CLOSER_FAST_THRESHOLD", 10)
    query = QueryImage(np.zeros(4, np.float32), "query", _brighter(_light(3)))
    found = match_kinds([query], [_candidate(1, _light(3)), _candidate(2, _light(5))],
                        FeatureCache())
    assert list(found) == [1] and found[1].kind == "copy"
    assert found[1].evidence["inliers"] >= MIN_INLIERS


def test_other_light_pictures_are_not_copies_at_local_contrast() -> None:
    query = _brighter(_light(3))
    for seed in (0, 1, 2, 4):
        assert _inliers(query, _light(seed), local_contrast=True) < MIN_INLIERS
