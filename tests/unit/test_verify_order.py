"""Verification's shortcuts decide as the long way does: matches found as arrays, the next
candidates examined ahead on worker threads, alignments cut short once they cannot pass."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
from PIL import Image, ImageOps

from imagegen import planes, textured
from imgsearch.search.aligned import AlignQuery, align
from imgsearch.search.matching import Candidate, QueryImage, match_kinds
from imgsearch.search.verify import LARGE_SIDE, FeatureCache, Features, features, verify


def _reference_matches(query: Features, candidate: Features) -> int:
    """Ratio-test matches, one query point per candidate point, counted the plain way:
    a brute-force matcher's DMatch objects in a loop."""
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
    back = {m.queryIdx: m.trainIdx
            for m in matcher.match(candidate.descriptors, query.descriptors)} \
        if candidate.closer else None
    best: dict[int, tuple[float, int]] = {}
    for pair in matcher.knnMatch(query.descriptors, candidate.descriptors, k=2):
        m = pair[0]
        if m.distance < 0.8 * pair[1].distance and \
                (back is None or back.get(m.trainIdx) == m.queryIdx) and \
                (m.trainIdx not in best or m.distance < best[m.trainIdx][0]):
            best[m.trainIdx] = (m.distance, m.queryIdx)
    return len(best)


def _small(image: Image.Image) -> Image.Image:
    small = image.copy()
    small.thumbnail((LARGE_SIDE, LARGE_SIDE))
    return small


def test_matches_found_as_arrays_are_those_a_matcher_loop_finds() -> None:
    stored = [textured(1, (960, 640)), textured(2, (960, 640)), planes(3)]
    queries = [stored[0].rotate(7), ImageOps.mirror(stored[1]), textured(5, (960, 640))]
    compared = 0
    for closer in (False, True):
        candidates = [features(_small(s), side=LARGE_SIDE, closer=closer) for s in stored]
        for query in queries:
            for mirror in (False, True):
                asked = features(query, mirror=mirror, side=LARGE_SIDE, closer=closer)
                for candidate in candidates:
                    verdict = verify(asked, candidate, mirror)
                    assert verdict.matches == _reference_matches(asked, candidate)
                    compared += 1
    copy = verify(features(queries[0], side=LARGE_SIDE), features(_small(stored[0]),
                                                                  side=LARGE_SIDE))
    assert compared == 36 and copy.copy, copy


def _counted(key: int, image: Image.Image, loads: list[int]) -> Candidate:
    thumbnail = _small(image)

    def load() -> Image.Image:
        loads.append(key)
        return thumbnail

    return Candidate(key, None, None, None, ("thumbnail", key), load)


def _query(image: Image.Image) -> QueryImage:
    return QueryImage(np.zeros(4, np.float32), "query", image)


def test_a_copy_ranked_first_is_found_without_examining_the_others() -> None:
    loads: list[int] = []
    original = textured(7, (960, 640))
    candidates = [_counted(1, original, loads),
                  *(_counted(k, textured(10 + k, (960, 640)), loads) for k in range(2, 8))]
    found = match_kinds([_query(original.rotate(7))], candidates, FeatureCache())
    assert list(found) == [1] and found[1].kind == "copy"
    assert loads == [1]  # nothing examined ahead: the first one verified


def test_a_copy_ranked_further_down_is_found_among_candidates_examined_ahead() -> None:
    loads: list[int] = []
    original = textured(7, (960, 640))
    make: list[Callable[[], Candidate]] = [
        *(lambda k=k: _counted(k, textured(10 + k, (960, 640)), loads) for k in range(1, 6)),
        lambda: _counted(6, original, loads),
        *(lambda k=k: _counted(k, textured(10 + k, (960, 640)), loads) for k in range(7, 9))]
    found = match_kinds([_query(ImageOps.mirror(original))], [m() for m in make],
                        FeatureCache())
    assert list(found) == [6] and found[6].evidence["mirrored"] == 1.0
    assert {1, 2, 3, 4, 5, 6} <= set(loads) and len(loads) == len(set(loads))


def test_an_alignment_that_only_decides_decides_as_the_full_one() -> None:
    stored = _small(planes(0))
    rotated = planes(0).rotate(7, resample=Image.Resampling.BICUBIC)
    for query in (rotated, ImageOps.mirror(rotated), planes(11).rotate(7),
                  textured(3, (960, 640))):
        full = align(query, stored)
        decided = align(AlignQuery(query), stored, decide=True)
        assert (full is not None and full.copy) == (decided is not None and decided.copy)
        assert decided is None or decided == full, (decided, full)
    assert align(AlignQuery(rotated), stored, decide=True) is not None
    assert align(AlignQuery(textured(3, (960, 640))), stored, decide=True) is None


def test_an_alignment_asked_for_more_agreement_decides_as_the_full_one_filtered() -> None:
    stored = _small(planes(0))
    views = AlignQuery(stored)  # the stored image's views, made once for both asks
    rotated = planes(0).rotate(7, resample=Image.Resampling.BICUBIC)
    for query in (rotated, ImageOps.mirror(rotated), planes(11).rotate(7),
                  textured(3, (960, 640))):
        full = align(query, stored)
        assert align(AlignQuery(query), views) == full  # views stand for the image
        for minimum in (0.8, 0.9, 0.97):
            decided = align(AlignQuery(query), views, decide=True, minimum=minimum)
            expected = full if full is not None and full.agreement >= minimum else None
            assert decided == expected, (minimum, decided, full)


def test_a_query_with_nothing_to_find_reads_each_stored_image_once() -> None:
    loads: list[int] = []
    candidates = [_counted(k, textured(20 + k, (960, 640)), loads) for k in range(1, 6)]
    extra = [_counted(9, textured(40, (960, 640)), loads)]
    asked: list[int] = []

    def more() -> list[Candidate]:
        asked.append(1)
        return extra

    found = match_kinds([_query(textured(30, (960, 640)))], candidates, FeatureCache(),
                        more=more)
    # the first candidate had its plain, closer and local-contrast looks and two
    # alignments, the one found another way a look and two alignments: one read each
    assert found == {} and asked == [1]
    assert sorted(loads) == [1, 2, 3, 4, 5, 9]
