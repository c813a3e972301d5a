"""A second kind of evidence for pictures with few corners: align the two images densely
and see whether their structure agrees everywhere.

Local features verify a copy by many corners that agree on one transform. Flat graphics
(vector wallpapers: a few straight edges between even fills) have too few corners for
that, whatever the edit. Their copies still line up pixel for pixel once the right
transform is found. So: both images are brought to ``WORK_SIDE`` px (grey), a transform
is guessed by normalised template matching at a few scales (the query inside the
candidate, a crop of it; or the candidate inside the query, the query then having more
around it), with the query as is and mirrored; the best guesses are refined by ECC
(Evangelidis and Psarakis, 2008: rotation and shift, photometric changes cancel out),
and the image gradients of the two, aligned, are correlated at that size and at twice
that size, over the whole of the smaller image and leaving out each side's outer
quarter in turn (a banner, a caption or a watermark along one edge is new structure the
indexed picture lacks). A copy's edges fall on each other at both sizes; a look-alike's
do not, or only at the coarse one. Where both have colour, the colours of the aligned
pixels must agree as well (``MAX_COLOUR_GAP``): two flat pictures made of the same few
straight edges differ, if at all, in their fills.

What passes (``MIN_AGREEMENT``, ``MIN_BLOCKS``, ``MIN_QUERY_SHARE``, ``MIN_COVER``) was
chosen in bench/copydetect.py on the tuning half of its photos (even numbers): their
wrong candidates (the 3 best of every copy query) reached a mean correlation of 0.781
at most (a grey copy of a flat picture of three planes against a large black letter,
whose straight edges line up with some of its own), the held-out half's 0.715 and
unrelated photos' 0.685; edited copies that local features could not verify reached
0.80-1.0 (rotations, banners and 60 % crops of flat vector wallpapers), bright
burnt-out or finely striped ones 0.50-0.72 (not passed). It is asked only of the
candidate the global descriptor ranks first (whole image and central part) when nothing
else verified: about 13 ms of CPU each.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from imgsearch.search.verify import _cv2

__all__ = ["MAX_COLOUR_GAP", "MIN_AGREEMENT", "MIN_BLOCKS", "AlignQuery", "Alignment",
           "align"]

WORK_SIDE = 128  # longer side of the coarse comparison; the fine one is twice that
# Sizes of the smaller image relative to the largest that fits in the other one: a
# 60 % crop is found at 0.62 and 0.57 before refinement.
SCALES = (1.0, 0.93, 0.86, 0.8, 0.74, 0.68, 0.62, 0.57, 0.52)
HYPOTHESES = 3  # best template-matching guesses refined by ECC
MIN_QUERY_SHARE = 0.5  # of the query that the candidate must explain
MIN_COVER = 0.6  # of the smaller image that must fall inside the other once aligned
MIN_BLOCKS = 6  # of the 4 x 4 blocks that must have edges in either image
MIN_AGREEMENT = 0.8  # mean gradient correlation, coarse and fine
_BLOCK_EDGE = 2.0  # mean gradient magnitude of a block with edges (grey levels)
_MIN_TEMPLATE = 24
# median a*b* distance of a copy where both images have colour: edited copies of the
# benchmark's photos reached 26.5 (+50 % brightness), look-alike flat graphics 38-110
MAX_COLOUR_GAP = 30.0
_GREY_CHROMA = 4.0  # a*b* median under which an image counts as grey


@dataclass(frozen=True)
class Alignment:
    """How well the candidate, aligned to the query, agrees with it."""

    agreement: float  # mean of the coarse and fine gradient correlations
    coarse: float
    fine: float
    blocks: int  # blocks (of 16) with edges in either image, at the fine size
    mirrored: bool
    colour_gap: float = 0.0  # median a*b* distance where both have colour

    @property
    def copy(self) -> bool:
        return self.agreement >= MIN_AGREEMENT and self.blocks >= MIN_BLOCKS and \
            self.colour_gap <= MAX_COLOUR_GAP


@dataclass(frozen=True)
class _Guess:
    score: float
    mirrored: bool
    query_inside: bool  # the query is the smaller one (a crop of the candidate)
    fx: float
    fy: float
    x: int
    y: int


def _grey(image: Image.Image, side: int, mirror: bool = False) -> NDArray[np.float32]:
    grey = image.convert("L")
    scale = side / max(grey.size)
    grey = grey.resize((max(8, round(grey.width * scale)), max(8, round(grey.height * scale))),
                       Image.Resampling.BILINEAR)
    pixels = np.asarray(grey, dtype=np.float32)
    return np.ascontiguousarray(pixels[:, ::-1]) if mirror else pixels


def _reduced(image: Image.Image, side: int) -> Image.Image:
    """``image`` in RGB with its longer side at most ``side``."""
    image = image.convert("RGB")
    scale = side / max(image.size)
    if scale >= 1:
        return image
    return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                        Image.Resampling.BILINEAR)


def _chroma(image: Image.Image, side: int, mirror: bool = False) -> NDArray[np.float32]:
    """CIELAB a*, b* of ``image`` at ``side`` px (its longer side): (h, w, 2)."""
    rgb = image.convert("RGB")
    scale = side / max(rgb.size)
    rgb = rgb.resize((max(8, round(rgb.width * scale)), max(8, round(rgb.height * scale))),
                     Image.Resampling.BILINEAR)
    pixels = np.asarray(rgb, dtype=np.float32) / 255.0
    if mirror:
        pixels = pixels[:, ::-1]
    lab = _cv2().cvtColor(np.ascontiguousarray(pixels), _cv2().COLOR_RGB2Lab)
    return np.ascontiguousarray(lab[..., 1:])


def _guesses(small: NDArray[np.float32], large: NDArray[np.float32], mirrored: bool,
             query_inside: bool) -> list[_Guess]:
    cv2 = _cv2()
    fit = min(large.shape[1] / small.shape[1], large.shape[0] / small.shape[0])
    found = []
    for share in SCALES:
        w, h = round(small.shape[1] * fit * share), round(small.shape[0] * fit * share)
        if min(w, h) < _MIN_TEMPLATE:
            continue
        if not query_inside and w * h < MIN_QUERY_SHARE * large.shape[0] * large.shape[1]:
            continue  # the candidate would explain too little of the query
        template = cv2.resize(small, (w, h), interpolation=cv2.INTER_AREA)
        if float(template.std()) < 1e-3:
            continue
        scores = cv2.matchTemplate(large, template, cv2.TM_CCOEFF_NORMED)
        _low, best, _at_low, at = cv2.minMaxLoc(scores)
        found.append(_Guess(float(best), mirrored, query_inside, w / small.shape[1],
                            h / small.shape[0], int(at[0]), int(at[1])))
    return found


def _gradients(pixels: NDArray[np.float32]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    cv2 = _cv2()
    smooth = cv2.GaussianBlur(pixels, (0, 0), 1.0)
    return cv2.Sobel(smooth, cv2.CV_32F, 1, 0), cv2.Sobel(smooth, cv2.CV_32F, 0, 1)


def _correlation(a: NDArray[np.float32], b: NDArray[np.float32]) -> float:
    if a.size < 50:
        return 0.0
    a, b = a - a.mean(), b - b.mean()
    norm = float(np.sqrt(float((a * a).sum()) * float((b * b).sum())))
    return float((a * b).sum()) / norm if norm > 1e-6 else 0.0


def _sides(shape: tuple[int, ...]) -> list[tuple[slice, slice]]:
    """Nothing, then each side's outer quarter: what an overlay along an edge covers."""
    h, w = shape[0], shape[1]
    q_h, q_w = h // 4, w // 4
    return [(slice(0, 0), slice(0, 0)), (slice(0, q_h), slice(None)),
            (slice(h - q_h, h), slice(None)), (slice(None), slice(0, q_w)),
            (slice(None), slice(w - q_w, w))]


def _agreement(template: NDArray[np.float32], other: NDArray[np.float32],
               warp: NDArray[np.float32], erode: int
               ) -> tuple[NDArray[np.float64], float, int]:
    """Gradient correlations of ``other`` brought onto ``template`` by ``warp`` (over
    all of it, then leaving out each side's outer quarter in turn), the share of the
    template inside ``other``, and the blocks (of 4 x 4) with edges in either."""
    cv2 = _cv2()
    size = (template.shape[1], template.shape[0])
    flags = cv2.WARP_INVERSE_MAP
    back = cv2.warpAffine(other, warp, size, flags=cv2.INTER_LINEAR | flags)
    inside = cv2.warpAffine(np.ones_like(other), warp, size, flags=cv2.INTER_NEAREST | flags)
    mask = cv2.erode((inside > 0.5).astype(np.uint8), np.ones((erode, erode), np.uint8)) > 0
    tx, ty = _gradients(template)
    bx, by = _gradients(back)
    correlations = []
    for side in _sides(mask.shape):
        kept = mask.copy()
        kept[side] = False
        correlations.append(_correlation(np.concatenate([tx[kept], ty[kept]]),
                                         np.concatenate([bx[kept], by[kept]])))
    h, w = template.shape
    blocks = 0
    template_edges, other_edges = np.hypot(tx, ty), np.hypot(bx, by)
    for row in range(4):
        for col in range(4):
            cell = (slice(row * h // 4, (row + 1) * h // 4),
                    slice(col * w // 4, (col + 1) * w // 4))
            inner = mask[cell]
            if inner.mean() < 0.8:
                continue
            edge = max(float(template_edges[cell][inner].mean()),
                       float(other_edges[cell][inner].mean()))
            blocks += edge >= _BLOCK_EDGE
    return np.asarray(correlations), float(mask.mean()), blocks


def _colour_gap(template: NDArray[np.float32], other: NDArray[np.float32],
                warp: NDArray[np.float32], side: tuple[slice, slice]) -> float:
    """Median a*b* distance of ``other`` brought onto ``template`` by ``warp`` (leaving
    out ``side``), 0 when either has no colour (a grey copy keeps none)."""
    cv2 = _cv2()
    size = (template.shape[1], template.shape[0])
    flags = cv2.WARP_INVERSE_MAP
    back = cv2.warpAffine(other, warp, size, flags=cv2.INTER_LINEAR | flags)
    inside = cv2.warpAffine(np.ones(other.shape[:2], np.float32), warp, size,
                            flags=cv2.INTER_NEAREST | flags) > 0.5
    inside[side] = False
    if not inside.any():
        return 0.0
    a, b = template[inside], back[inside]
    if min(float(np.median(np.hypot(a[:, 0], a[:, 1]))),
           float(np.median(np.hypot(b[:, 0], b[:, 1])))) < _GREY_CHROMA:
        return 0.0
    return float(np.median(np.hypot(*(a - b).T)))


@dataclass(frozen=True)
class _Refined:
    """A refined guess: its alignment (colour not yet measured) and what measuring the
    colour needs."""

    alignment: Alignment
    colours: tuple[NDArray[np.float32], NDArray[np.float32]]  # template's, other's
    template_shape: tuple[int, int]
    warp: NDArray[np.float32]
    side: int  # which outer quarter was left out (``_sides``)


def _refine(guess: _Guess, small: NDArray[np.float32], large: NDArray[np.float32],
            small_fine: Callable[[], NDArray[np.float32]],
            large_fine: Callable[[], NDArray[np.float32]],
            small_colour: Callable[[], NDArray[np.float32]],
            large_colour: Callable[[], NDArray[np.float32]], decide: bool,
            minimum: float = MIN_AGREEMENT) -> _Refined | None:
    cv2 = _cv2()
    size = (round(small.shape[1] * guess.fx), round(small.shape[0] * guess.fy))
    template = cv2.resize(small, size, interpolation=cv2.INTER_AREA)
    warp = np.array([[1, 0, guess.x], [0, 1, guess.y]], np.float32)
    with contextlib.suppress(cv2.error):  # not converged: the guess as it was
        _cc, warp = cv2.findTransformECC(
            template, large, warp, cv2.MOTION_EUCLIDEAN,
            (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 50, 1e-4), None, 3)
    coarse, cover, _blocks = _agreement(template, large, warp, 5)
    if cover < MIN_COVER:
        return None
    # The agreement is the mean of the coarse and the fine correlation, and the fine one
    # is at most 1: under this coarse one no side can reach the minimum.
    if decide and float(coarse.max()) < 2 * minimum - 1:
        return None
    fine_template = cv2.resize(small_fine(), (2 * template.shape[1], 2 * template.shape[0]),
                               interpolation=cv2.INTER_AREA)
    fine_warp = warp.copy()
    fine_warp[:, 2] *= 2
    fine, _cover, blocks = _agreement(fine_template, large_fine(), fine_warp, 9)
    both = (coarse + fine) / 2
    at = int(np.argmax(both))
    found = Alignment(round(float(both[at]), 4), round(float(coarse[at]), 4),
                      round(float(fine[at]), 4), blocks, guess.mirrored)
    return _Refined(found, (small_colour(), large_colour()), template.shape[:2], warp, at)


def _with_colour(refined: _Refined) -> Alignment:
    cv2 = _cv2()
    h, w = refined.template_shape
    small_colour, large_colour = refined.colours
    colour = cv2.resize(small_colour, (w, h), interpolation=cv2.INTER_AREA)
    gap = _colour_gap(colour, large_colour, refined.warp, _sides((h, w))[refined.side])
    return dataclasses.replace(refined.alignment, colour_gap=round(gap, 2))


class AlignQuery:
    """A query image as alignment sees it: its grey and colour views at the two sizes,
    plain and mirrored, each made once (when first needed) for all its candidates."""

    def __init__(self, image: Image.Image) -> None:
        self.size = image.size
        self._image = _reduced(image, 2 * WORK_SIDE)  # one resize of a large query
        self._views: dict[tuple[str, bool], NDArray[np.float32]] = {}
        self._lock = threading.Lock()

    def view(self, kind: str, mirrored: bool) -> NDArray[np.float32]:
        """``kind``: "grey" (``WORK_SIDE``), "fine" (twice that) or "colour" (a*b*)."""
        key = (kind, mirrored)
        with self._lock:
            found = self._views.get(key)
        if found is None:
            found = _chroma(self._image, WORK_SIDE, mirrored) if kind == "colour" else \
                _grey(self._image, WORK_SIDE * (2 if kind == "fine" else 1), mirrored)
            with self._lock:
                self._views[key] = found
        return found


def align(query: Image.Image | AlignQuery, candidate: Image.Image | AlignQuery,
          decide: bool = False, minimum: float = MIN_AGREEMENT) -> Alignment | None:
    """The best alignment of ``candidate`` with the query image (as is or mirrored),
    None when no guess puts enough of one inside the other. When only the decision
    matters (``decide``), a guess that cannot reach ``minimum`` (at least
    ``MIN_AGREEMENT``) is not measured further, and None is returned for it as well.
    Either image may come as its ``AlignQuery``, whose views are made once for several
    alignments."""
    asked = query if isinstance(query, AlignQuery) else AlignQuery(query)
    other = candidate if isinstance(candidate, AlignQuery) else AlignQuery(candidate)
    if min(asked.size) < _MIN_TEMPLATE or min(other.size) < _MIN_TEMPLATE:
        return None
    minimum = max(minimum, MIN_AGREEMENT)
    stored = other.view("grey", False)
    stored_fine = functools.partial(other.view, "fine", False)
    stored_colour = functools.partial(other.view, "colour", False)
    guesses: list[_Guess] = []
    for mirrored in (False, True):
        coarse = asked.view("grey", mirrored)
        guesses += _guesses(coarse, stored, mirrored, True)
        guesses += _guesses(stored, coarse, mirrored, False)
    best: _Refined | None = None
    for guess in sorted(guesses, key=lambda g: -g.score)[:HYPOTHESES]:
        grey = asked.view("grey", guess.mirrored)
        fine = functools.partial(asked.view, "fine", guess.mirrored)
        colour = functools.partial(asked.view, "colour", guess.mirrored)
        found = _refine(guess, grey, stored, fine, stored_fine, colour, stored_colour,
                        decide, minimum) if guess.query_inside else \
            _refine(guess, stored, grey, stored_fine, fine, stored_colour, colour, decide,
                    minimum)
        if found is not None and found.alignment.blocks >= MIN_BLOCKS and \
                (best is None or found.alignment.agreement > best.alignment.agreement):
            best = found
    if best is None or (decide and best.alignment.agreement < minimum):
        return None
    # colours are compared for the best guess only: it alone is the answer
    return _with_colour(best)
