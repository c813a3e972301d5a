"""The evidence image hits are judged with: the fixed background sample, noise-likeness,
and local features found on larger thumbnails."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Hashable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from imagegen import textured
from imgsearch.encode.descriptor import DescriptorEncoder
from imgsearch.search import calibration
from imgsearch.search.calibration import (
    BACKGROUND_DIR,
    BACKGROUND_RANK,
    background,
    background_level,
    noise_like,
)
from imgsearch.search.matching import Candidate, QueryImage, central_part, match_kinds
from imgsearch.search.verify import (
    LARGE_SIDE,
    MIN_INLIERS,
    SIDE,
    FeatureCache,
    Features,
    features,
    query_side,
    verify,
)


class _Space:
    """A space of a few stored vectors, searched exactly."""

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = vectors.astype(np.float32)
        self.index = SimpleNamespace(search=self._search)

    def __len__(self) -> int:
        return len(self.vectors)

    def _search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores = np.full((1, k), -np.inf, np.float32)
        labels = np.full((1, k), -1, np.int64)
        if len(self.vectors):
            found = self.vectors @ query[0]
            order = np.argsort(-found)[:k]
            scores[0, :len(order)] = found[order]
            labels[0, :len(order)] = order
        return scores, labels


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


# --- the background sample -------------------------------------------------------------

def test_the_descriptor_background_ships_with_its_checksum_and_source() -> None:
    model_id = DescriptorEncoder.model_id
    record = json.loads((BACKGROUND_DIR / f"{model_id}.json").read_text())
    data = (BACKGROUND_DIR / f"{model_id}.npy").read_bytes()
    assert record["sha256"] == hashlib.sha256(data).hexdigest()
    assert record["model_id"] == model_id and record["sources"]
    sample = background(model_id)
    assert sample is not None
    assert sample.shape == (record["vectors"], DescriptorEncoder().dim)
    assert np.allclose(np.linalg.norm(sample, axis=1), 1.0, atol=0.01)


def test_an_encoder_without_a_background_has_none() -> None:
    assert background("no-such-encoder-v1") is None


def test_a_background_that_does_not_match_its_checksum_is_not_used(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    np.save(tmp_path / "enc-v1.npy", _unit(np.random.default_rng(0), 50, 8))
    (tmp_path / "enc-v1.json").write_text(json.dumps({"sha256": "0" * 64}))
    monkeypatch.setattr(calibration, "BACKGROUND_DIR", tmp_path)
    background.cache_clear()
    try:
        assert background("enc-v1") is None
        digest = hashlib.sha256((tmp_path / "enc-v1.npy").read_bytes()).hexdigest()
        (tmp_path / "enc-v1.json").write_text(json.dumps({"sha256": digest}))
        background.cache_clear()
        found = background("enc-v1")
        assert found is not None and found.shape == (50, 8)
    finally:
        background.cache_clear()


def test_a_background_is_checked_once_per_size_and_modification_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    np.save(tmp_path / "enc-v1.npy", _unit(np.random.default_rng(0), 50, 8))
    digest = hashlib.sha256((tmp_path / "enc-v1.npy").read_bytes()).hexdigest()
    (tmp_path / "enc-v1.json").write_text(json.dumps({"sha256": digest}))
    monkeypatch.setattr(calibration, "BACKGROUND_DIR", tmp_path)
    monkeypatch.setattr(calibration, "VERIFIED_DIR", tmp_path / "verified")
    background.cache_clear()
    try:
        assert background("enc-v1") is not None
        assert len(list((tmp_path / "verified").iterdir())) == 1  # remembered
        checked: list[bytes] = []
        real = hashlib.sha256
        monkeypatch.setattr(calibration.hashlib, "sha256",
                            lambda data=b"": checked.append(data) or real(data))
        background.cache_clear()
        assert background("enc-v1") is not None
        assert all(len(data) < 1000 for data in checked)  # the stamp only, not the file
        # the same size, other bytes, a new modification time: checked again, refused
        path = tmp_path / "enc-v1.npy"
        damaged = bytearray(path.read_bytes())
        damaged[-1] ^= 0xFF
        path.write_bytes(bytes(damaged))
        os.utime(path, ns=(1, 1))
        background.cache_clear()
        assert background("enc-v1") is None
    finally:
        background.cache_clear()


def test_the_level_is_the_same_for_a_query_at_every_collection_size() -> None:
    """With the sample, an empty or tiny collection has a level (what the query scores
    against unrelated pictures), and a large unrelated collection leaves it where it is."""
    rng = np.random.default_rng(1)
    sample = _unit(rng, 300, 16)
    query = _unit(rng, 1, 16)[0]
    expected = float(np.sort(sample @ query)[::-1][BACKGROUND_RANK])
    levels = []
    for n in (0, 3, 10, 2_000):
        far = _unit(rng, n, 16)
        far = far - np.outer(far @ query + 0.5, query)  # everything scores under 0
        far /= np.maximum(np.linalg.norm(far, axis=1, keepdims=True), 1e-6)
        space: Any = _Space(far)
        levels.append(background_level(space, query, sample))
    assert levels == pytest.approx([expected] * 4, abs=1e-5)
    assert background_level(_Space(_unit(rng, 3, 16)), query, None) is None  # type: ignore[arg-type]


def test_close_neighbours_in_the_collection_raise_the_level() -> None:
    rng = np.random.default_rng(2)
    sample = _unit(rng, 300, 16)
    query = _unit(rng, 1, 16)[0]
    alone = background_level(_Space(np.empty((0, 16))), query, sample)  # type: ignore[arg-type]
    near = query + 0.05 * _unit(rng, 30, 16)
    near /= np.linalg.norm(near, axis=1, keepdims=True)
    crowded = background_level(_Space(near), query, sample)  # type: ignore[arg-type]
    assert alone is not None and crowded is not None
    assert crowded > 0.9 > alone


# --- noise ------------------------------------------------------------------------------

@pytest.mark.parametrize("side", [64, 256, 700])
def test_white_noise_is_noise_like(side: int) -> None:
    rng = np.random.default_rng(side)
    uniform = Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8))
    assert noise_like(uniform)
    assert noise_like(Image.effect_noise((side, side), 64).convert("RGB"))


def test_pictures_and_fine_textures_are_not_noise_like() -> None:
    rng = np.random.default_rng(3)
    grain = rng.integers(0, 256, (360, 480), dtype=np.uint8)
    grass = Image.fromarray(grain).filter(ImageFilter.GaussianBlur(1.0)).convert("RGB")
    flat = Image.new("RGB", (200, 200), (40, 120, 30))
    for image in (textured(0), textured(5, (120, 90)), grass, flat):
        assert not noise_like(image)


# --- local features on larger thumbnails ------------------------------------------------

def test_features_remember_the_side_they_were_found_at() -> None:
    image = textured(1, (960, 720))
    assert features(image).side == SIDE
    large = features(image, side=LARGE_SIDE)
    assert large.side == LARGE_SIDE and len(large) > 0
    assert query_side(large) == LARGE_SIDE
    small = features(image.resize((256, 192)), side=LARGE_SIDE)
    assert small.side == 256 and query_side(small) == SIDE


def test_a_crop_verifies_against_a_large_thumbnail() -> None:
    original = textured(2, (1280, 960))
    thumbnail = original.copy()
    thumbnail.thumbnail((LARGE_SIDE, LARGE_SIDE))
    w, h = original.size
    crop = original.crop((round(w * 0.2), round(h * 0.2), round(w * 0.8), round(h * 0.8)))
    stored = features(thumbnail, side=LARGE_SIDE)
    verdict = verify(features(crop, side=query_side(stored)), stored)
    assert verdict.copy, verdict
    other = features(textured(3, (1280, 960)), side=query_side(stored))
    assert not verify(other, stored).copy


def _flat_graphic(seed: int, size: tuple[int, int] = (1280, 800)) -> Image.Image:
    """A vector-style wallpaper: a few large flat shapes on a smooth gradient, so there
    are few corners for keypoints to find."""
    rng = np.random.default_rng(seed)
    w, h = size
    ramp = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
    top, bottom = rng.uniform(20, 235, 3), rng.uniform(20, 235, 3)
    pixels = (top * (1 - ramp) + bottom * ramp) * np.ones((h, 1, 1), np.float32)
    image = Image.fromarray(pixels.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        points = [(float(rng.uniform(0, w)), float(rng.uniform(0, h))) for _ in range(3)]
        draw.polygon(points, fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    x, y = float(rng.uniform(0.3, 0.7) * w), float(rng.uniform(0.3, 0.7) * h)
    draw.ellipse((x - w / 6, y - h / 5, x + w / 6, y + h / 5),
                 fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    return image


def test_a_closer_look_finds_more_of_a_flat_graphic_and_still_tells_others_apart() -> None:
    """Few corners and a fifth of the picture covered: a closer look finds more keypoints
    than a plain one (which stops at 500) and the copy verifies with them; other
    graphics of the same kind still do not."""
    original = _flat_graphic(5)
    thumbnail = original.copy()
    thumbnail.thumbnail((LARGE_SIDE, LARGE_SIDE))
    plain = features(thumbnail, side=LARGE_SIDE)
    stored = features(thumbnail, side=LARGE_SIDE, closer=True)
    assert len(plain) <= 500 < len(stored) and stored.closer
    w, h = original.size
    banner = original.copy()
    draw = ImageDraw.Draw(banner)
    draw.rectangle((0, round(h * 0.8), w, h), fill=(200, 30, 60))
    draw.text((w // 20, round(h * 0.85)), "SALE -50% today only", fill=(255, 255, 255),
              font_size=h // 14)
    closer = verify(features(banner, side=query_side(stored), closer=True), stored)
    assert closer.copy and closer.inliers > verify(
        features(banner, side=query_side(plain)), plain).inliers, closer
    for seed in (6, 7, 8):
        other = verify(features(_flat_graphic(seed), side=query_side(stored), closer=True),
                       stored)
        assert not other.copy, (seed, other)


def test_the_shipped_background_is_package_data() -> None:
    """pyproject.toml ships the backgrounds with the package."""
    root = Path(__file__).resolve().parents[2]
    assert "search/backgrounds/*" in (root / "pyproject.toml").read_text()


def test_a_tiny_collection_needs_the_prior_and_the_background_to_agree() -> None:
    rng = np.random.default_rng(4)
    sample = _unit(rng, 300, 16)
    query = _unit(rng, 1, 16)[0]
    scores = np.array([0.95, 0.6, 0.2], np.float32)
    strict = calibration.Calibration(0.5, 0.99, 0.5, 0.1, 0)  # says no to all but 0.99+
    tiny: Any = _Space(_unit(rng, 5, 16))
    large: Any = _Space(_unit(rng, 40, 16))
    level = background_level(tiny, query, sample)
    assert level is not None
    standing = calibration.standout_confidence(scores, level)
    judged = calibration.judge_image_hits(scores, query, tiny, strict, sample)
    assert np.allclose(judged, np.minimum(strict.confidence(scores), standing))
    assert judged[0] < 0.5 <= standing[0]  # the background alone would have claimed it
    larger = calibration.judge_image_hits(scores, query, large, strict, sample)
    assert larger[0] >= 0.5  # a collection this size: the strongest view counts
    assert np.all(calibration.judge_image_hits(scores, query, tiny, None, None) == 1.0)


class _RecordingCache(FeatureCache):
    """A feature cache that notes which looks were asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[tuple[object, bool]] = []
        self.contrast: list[object] = []  # keys given a local-contrast look

    def get(self, key: Hashable, load: Callable[[], Image.Image | None],
            side: int = LARGE_SIDE, closer: bool = False,
            local_contrast: bool = False) -> Features | None:
        self.asked.append((key, closer))
        if local_contrast:
            self.contrast.append(key)
        return super().get(key, load, side, closer, local_contrast)


def _candidate(key: int, image: Image.Image) -> Candidate:
    thumbnail = image.copy()
    thumbnail.thumbnail((LARGE_SIDE, LARGE_SIDE))
    return Candidate(key, None, None, None, ("thumbnail", key), lambda: thumbnail)


def test_only_the_first_candidate_gets_a_closer_look_and_only_when_none_verified() -> None:
    query = QueryImage(np.zeros(4, np.float32), "query", _flat_graphic(5))
    others = [_candidate(k, _flat_graphic(k)) for k in (6, 7, 8)]
    cache = _RecordingCache()
    assert match_kinds([query], others, cache) == {}
    closer = [key for key, close in cache.asked if close]
    assert closer == [("thumbnail", 6)]  # the first in rank order, once
    assert cache.contrast == [("thumbnail", 6)]  # and so is the local-contrast look
    cache = _RecordingCache()
    found = match_kinds([query], [_candidate(5, _flat_graphic(5)), *others], cache)
    assert found[5].kind == "copy" and found[5].evidence["inliers"] >= MIN_INLIERS
    assert not any(close for _key, close in cache.asked)  # a plain look was enough
    assert not cache.contrast


def test_the_central_part_keeps_the_middle_of_each_side() -> None:
    image = Image.new("RGB", (200, 100), "black")
    image.paste((255, 0, 0), (30, 15, 170, 85))  # the central 70 % is red
    part = central_part(image)
    assert part.size == (140, 70)
    assert part.getcolors() == [(140 * 70, (255, 0, 0))]
    assert central_part(image, 0.5).size == (100, 50)


def test_own_best_needs_every_one_of_the_search_s_best_ranks() -> None:
    wanted = calibration.BACKGROUND_RANK + 1
    scores = np.linspace(0.9, 0.1, 30).astype(np.float32)
    in_order = np.arange(1, 31)
    assert np.array_equal(calibration.own_best(in_order, scores), scores)
    fused = np.roll(in_order, 5)  # another list's order: the same ranks, elsewhere
    assert calibration.own_best(fused, scores) is not None
    gap = in_order.copy()
    gap[wanted // 2] = 0  # one of the best was not in this list
    assert calibration.own_best(gap, scores) is None
    short = in_order[: wanted - 1]
    assert calibration.own_best(short, scores[: wanted - 1]) is None
    left_out = np.array([0.95], np.float32)  # similar by id: the item itself was the best
    with_it = calibration.own_best(short, scores[: wanted - 1], left_out)
    assert with_it is not None and with_it[-1] == np.float32(0.95)


def test_background_level_is_the_neighbour_at_background_rank() -> None:
    found = np.array([0.2, 0.9, -np.inf, 0.5, 0.7, 0.1, 0.3, 0.8, 0.6, 0.4, 0.05, 0.15],
                     np.float32)
    space: Any = _Space(np.zeros((calibration.MIN_VECTORS, 4), np.float32))  # not searched
    level = calibration.background_level(space, np.ones(4, np.float32), None, found)
    finite = np.sort(found[np.isfinite(found)])[::-1]
    assert level == pytest.approx(float(finite[calibration.BACKGROUND_RANK]))


@pytest.mark.parametrize("with_sample", [False, True])
@pytest.mark.parametrize("left_out", [None, "above", "between", "below"])
def test_the_plain_image_confidence_is_the_general_one_to_the_bit(with_sample: bool,
                                                                  left_out: str | None
                                                                  ) -> None:
    rng = np.random.default_rng(7)
    space: Any = _Space(_unit(rng, calibration.MIN_VECTORS + 5, 16))  # large enough
    cal = calibration.Calibration(median=0.1, chance=0.6, mean=0.1, std=0.1, vectors=25)
    # a collection whose chance lies near 1: the stand-out over the neighbours decides
    strict = calibration.Calibration(median=0.5, chance=0.97, mean=0.5, std=0.1, vectors=25)
    sample = _unit(rng, 40, 16) if with_sample else None
    ceiling = 0.99
    for trial in range(60):
        chosen = strict if trial % 4 >= 2 else cal
        vector = _unit(rng, 1, 16)[0]
        scores = np.sort(rng.uniform(-0.2, 0.98, 64).astype(np.float32))[::-1].copy()
        if trial % 2:  # a list whose tail is out of order is partitioned, not read
            rng.shuffle(scores[calibration.BACKGROUND_RANK + 2:])
        ranks = np.arange(1, 65)
        excluded = {None: None, "above": 1.0, "between": float(scores[9] + scores[10]) / 2,
                    "below": float(scores[-1]) - 0.1}[left_out]
        plain = calibration.plain_image_confidence(scores, ranks, vector, excluded, chosen,
                                                   sample, ceiling)
        # the general path: own best, judged, capped (as search.searcher puts them)
        found = calibration.own_best(ranks, scores, None if excluded is None else
                                     np.array([excluded], np.float32))
        general = np.minimum(calibration.judge_image_hits(scores, vector, space, chosen,
                                                          sample, found), np.float32(ceiling))
        assert plain is not None and plain.dtype == np.float32, trial
        np.testing.assert_array_equal(plain, general.astype(np.float32))
    # where the general path must answer, the plain one declines
    nan = scores.copy()
    nan[30] = np.nan
    fused = np.roll(ranks, 3)  # the list does not start with the search's own best
    wide = calibration.Calibration(median=0.1, chance=1.2, mean=0.1, std=0.1, vectors=25)
    for args in ((nan, ranks, cal, sample), (scores, fused, cal, sample),
                 (scores[:10], ranks[:10], cal, sample), (scores, ranks, wide, sample),
                 (scores, ranks, cal, _unit(rng, 40, 8))):
        some, order, chosen, background_sample = args
        assert calibration.plain_image_confidence(some, order, vector, excluded, chosen,
                                                  background_sample, ceiling) is None
