"""Dense alignment: the evidence for copies of pictures with too few corners."""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageOps

from imagegen import planes, textured
from imgsearch.search.aligned import MAX_COLOUR_GAP, MIN_AGREEMENT, align
from imgsearch.search.copy_views import without_bottom
from imgsearch.search.matching import (
    MIN_VIEW_AGREEMENT,
    Candidate,
    QueryImage,
    copy_confidence,
    match_kinds,
)
from imgsearch.search.verify import LARGE_SIDE, MIN_INLIERS, FeatureCache, features, verify


def _thumbnail(image: Image.Image) -> Image.Image:
    small = image.copy()
    small.thumbnail((LARGE_SIDE, LARGE_SIDE))
    return small


def _rotated(image: Image.Image) -> Image.Image:
    return image.rotate(7, resample=Image.Resampling.BICUBIC)


def _banner(image: Image.Image) -> Image.Image:
    w, h = image.size
    out = image.copy()
    draw = ImageDraw.Draw(out)
    draw.rectangle((0, round(h * 0.8), w, h), fill=(200, 30, 60))
    draw.text((w // 20, round(h * 0.85)), "SALE -50% today only", fill=(255, 255, 255),
              font_size=h // 14)
    return out


def _crop60(image: Image.Image) -> Image.Image:
    w, h = image.size
    return image.crop((round(w * 0.2), round(h * 0.2), round(w * 0.8), round(h * 0.8)))


def test_keypoints_cannot_verify_a_rotated_flat_picture_but_alignment_can() -> None:
    stored = _thumbnail(planes(0))
    query = _rotated(planes(0))
    keypoints = features(stored, side=LARGE_SIDE, closer=True)
    closer = verify(features(query, side=LARGE_SIDE, closer=True), keypoints)
    assert closer.inliers < MIN_INLIERS  # the closer look finds (almost) nothing
    found = align(query, stored)
    assert found is not None and found.copy, found
    assert found.agreement >= MIN_AGREEMENT and not found.mirrored


def test_crops_banners_mirrors_and_grey_copies_align() -> None:
    assert (a := align(_crop60(planes(2)), _thumbnail(planes(2)))) is not None and a.copy, a
    assert (a := align(_banner(planes(4)), _thumbnail(planes(4)))) is not None and a.copy, a
    mirrored = align(ImageOps.mirror(_rotated(planes(0))), _thumbnail(planes(0)))
    assert mirrored is not None and mirrored.copy and mirrored.mirrored, mirrored
    grey = align(ImageOps.grayscale(_rotated(planes(0))).convert("RGB"),
                 _thumbnail(planes(0)))
    assert grey is not None and grey.copy and grey.colour_gap == 0.0, grey


def test_other_flat_pictures_and_busy_ones_are_not_copies() -> None:
    stored = _thumbnail(planes(0))
    for other in (planes(11), planes(12), planes(13), textured(3, (960, 640))):
        found = align(_rotated(other), stored)
        assert found is None or not found.copy, found


def test_the_same_edges_in_other_colours_are_not_a_copy() -> None:
    original = planes(0)
    lab = cv2.cvtColor(np.asarray(original, np.float32) / 255, cv2.COLOR_RGB2Lab)
    lab[..., 1:] *= -1  # the opposite hues, at the same lightness
    rgb = cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)
    recoloured = Image.fromarray((rgb.clip(0, 1) * 255).round().astype(np.uint8))
    found = align(_rotated(recoloured), _thumbnail(original))
    assert found is not None and found.agreement >= MIN_AGREEMENT  # the edges agree
    assert found.colour_gap > MAX_COLOUR_GAP and not found.copy, found


def _candidate(key: int, image: Image.Image) -> Candidate:
    thumbnail = _thumbnail(image)
    return Candidate(key, None, None, None, ("thumbnail", key), lambda: thumbnail)


def test_match_kinds_labels_an_aligned_copy_with_its_evidence() -> None:
    query = QueryImage(np.zeros(4, np.float32), "query", _rotated(planes(0)))
    found = match_kinds([query], [_candidate(1, planes(0)), _candidate(2, planes(11))],
                        FeatureCache())
    assert list(found) == [1] and found[1].kind == "copy"
    assert found[1].evidence["aligned"] >= MIN_AGREEMENT and "inliers" not in found[1].evidence
    assert 0.9 <= copy_confidence(found[1].evidence) < 1.0


def test_match_kinds_aligns_the_first_candidate_of_the_central_part_too() -> None:
    query = QueryImage(np.zeros(4, np.float32), "query", _rotated(planes(0)))
    found = match_kinds([query], [_candidate(2, planes(11)), _candidate(1, planes(0))],
                        FeatureCache(), more=lambda: [_candidate(1, planes(0))])
    assert list(found) == [1] and "aligned" in found[1].evidence


def test_a_look_alike_alone_is_no_match() -> None:
    query = QueryImage(np.zeros(4, np.float32), "query", _rotated(planes(11)))
    assert match_kinds([query], [_candidate(1, planes(0)), _candidate(2, planes(12))],
                       FeatureCache()) == {}


def _checkered_banner(image: Image.Image) -> Image.Image:
    """A band of strong blue and white squares over the bottom fifth: edges enough to
    outweigh a flat picture's own in the whole image's alignment."""
    w, h = image.size
    out = image.copy()
    draw = ImageDraw.Draw(out)
    top, step = round(h * 0.8), w / 12
    for i in range(12):
        for j in range(4):
            draw.rectangle((round(i * step), top + j * (h - top) // 4, round((i + 1) * step),
                            top + (j + 1) * (h - top) // 4),
                           fill=(255, 255, 255) if (i + j) % 2 else (20, 20, 200))
    return out


def test_a_banner_that_outweighs_a_flat_picture_is_left_out_by_the_view() -> None:
    query = _checkered_banner(planes(0))
    whole = align(query, _thumbnail(planes(0)))
    assert whole is None or not whole.copy, whole  # the band's edges disagree
    view = align(without_bottom(query), _thumbnail(planes(0)))
    assert view is not None and view.copy and view.agreement >= MIN_VIEW_AGREEMENT, view
    found = match_kinds([QueryImage(np.zeros(4, np.float32), "query", query)],
                        [_candidate(1, planes(0))], FeatureCache())
    assert list(found) == [1] and found[1].evidence["without_bottom"] == 1.0


def test_other_flat_pictures_under_a_banner_are_not_copies_by_the_view() -> None:
    for other in (planes(11), planes(12), planes(13)):
        query = QueryImage(np.zeros(4, np.float32), "query", _checkered_banner(other))
        assert match_kinds([query], [_candidate(1, planes(0))], FeatureCache()) == {}
