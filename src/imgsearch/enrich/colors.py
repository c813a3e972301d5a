"""Dominant colours of an image, named with a small fixed vocabulary.

Twelve basic names (:data:`BASIC_COLORS`) cover what people type into a colour filter;
:data:`COLOR_SYNONYMS` maps the common fashion and paint names onto them, so a catalog
saying "navy" and a photo full of navy pixels both end up as ``blue``. Blue-greens
(teal, turquoise, cyan) count as blue, as most shops file them.

How :func:`dominant_colors` works:

1. The image is flattened over white and box-shrunk to 64x64.
2. When most of the border is near-white, the near-white pixels connected to the border
   are a backdrop (a product shot on white) and are left out; white inside the object,
   or an image that is white all over, still counts.
3. Every pixel gets the name of the nearest prototype in CIE Lab. Low-chroma pixels are
   achromatic and named by lightness alone (black / gray / white); each name has several
   prototypes (navy and sky blue are both blue, dark orange is brown). The naming is a
   precomputed table over RGB quantised to 5 bits per channel, so it is deterministic and
   costs one lookup per pixel.
4. A name's fraction is its share of the kept pixels and its hex the mean of its pixels.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from imgsearch.enrich.thumbnails import flatten_to_rgb
from imgsearch.errors import InvalidInputError

__all__ = [
    "BASIC_COLORS",
    "COLOR_SYNONYMS",
    "DominantColor",
    "dominant_colors",
    "normalize_color_name",
]

# The swatch shown for each name (e.g. in a colour filter); not the only prototype.
BASIC_COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 40),
    "orange": (255, 140, 0),
    "yellow": (255, 220, 0),
    "green": (40, 160, 60),
    "blue": (30, 90, 210),
    "purple": (120, 50, 170),
    "pink": (255, 105, 180),
    "brown": (120, 72, 40),
    "beige": (225, 200, 160),
    "black": (0, 0, 0),
    "gray": (128, 128, 128),
    "white": (255, 255, 255),
}

# fmt: off
COLOR_SYNONYMS: dict[str, str] = {
    # red
    "crimson": "red", "scarlet": "red", "maroon": "red", "burgundy": "red",
    "cherry": "red", "ruby": "red", "wine": "red", "claret": "red", "vermilion": "red",
    "carmine": "red", "cardinal": "red", "oxblood": "red",
    # orange
    "coral": "orange", "tangerine": "orange", "apricot": "orange", "amber": "orange",
    "peach": "orange", "pumpkin": "orange",
    # yellow
    "gold": "yellow", "golden": "yellow", "mustard": "yellow", "lemon": "yellow",
    "canary": "yellow",
    # green
    "olive": "green", "lime": "green", "emerald": "green", "mint": "green", "jade": "green",
    "sage": "green", "chartreuse": "green", "forest": "green",
    # blue
    "navy": "blue", "azure": "blue", "cobalt": "blue", "sapphire": "blue", "denim": "blue",
    "indigo": "blue", "cyan": "blue", "turquoise": "blue", "teal": "blue", "aqua": "blue",
    "aquamarine": "blue", "cerulean": "blue",
    # purple
    "violet": "purple", "lavender": "purple", "lilac": "purple", "mauve": "purple",
    "plum": "purple", "amethyst": "purple", "eggplant": "purple", "aubergine": "purple",
    "orchid": "purple",
    # pink
    "magenta": "pink", "fuchsia": "pink", "rose": "pink", "blush": "pink", "salmon": "pink",
    "raspberry": "pink",
    # brown
    "chocolate": "brown", "coffee": "brown", "mocha": "brown", "chestnut": "brown",
    "bronze": "brown", "copper": "brown", "rust": "orange", "mahogany": "brown",
    "caramel": "brown", "cognac": "brown", "taupe": "brown", "walnut": "brown",
    # beige
    "tan": "beige", "khaki": "beige", "sand": "beige", "cream": "beige", "ecru": "beige",
    "nude": "beige", "camel": "beige", "oatmeal": "beige", "champagne": "beige",
    # black / white / gray
    "jet": "black", "ebony": "black", "onyx": "black",
    "ivory": "white", "snow": "white", "pearl": "white", "offwhite": "white",
    "grey": "gray", "silver": "gray", "charcoal": "gray", "slate": "gray", "ash": "gray",
    "graphite": "gray", "gunmetal": "gray", "pewter": "gray",
}

# Extra prototypes so that each name covers its whole region (dark, light, off-hue).
_PROTOTYPES: dict[str, tuple[tuple[int, int, int], ...]] = {
    "red": ((255, 0, 0), (178, 34, 34), (150, 10, 20), (128, 0, 0), (128, 0, 32),
            (200, 60, 60), (205, 92, 92)),
    "orange": ((240, 110, 30), (255, 127, 80), (255, 165, 60), (230, 100, 20)),
    "yellow": ((255, 255, 0), (255, 215, 0), (225, 173, 1), (255, 250, 150), (240, 220, 90)),
    "green": ((0, 128, 0), (0, 100, 0), (50, 205, 50), (128, 128, 0), (85, 107, 47),
              (144, 238, 144), (46, 139, 87), (120, 200, 60), (150, 180, 110), (180, 190, 140)),
    "blue": ((0, 0, 255), (0, 0, 128), (25, 25, 112), (70, 130, 180), (135, 206, 235),
             (100, 149, 237), (0, 128, 128), (64, 224, 208), (0, 255, 255), (170, 200, 230),
             (40, 60, 90), (20, 40, 220), (30, 60, 240), (10, 30, 180), (50, 80, 220),
             (0, 70, 200)),
    "purple": ((128, 0, 128), (75, 0, 130), (100, 40, 160), (150, 110, 200), (190, 160, 220),
               (110, 60, 110), (148, 0, 211), (138, 43, 226)),
    "pink": ((255, 192, 203), (255, 0, 255), (220, 50, 140), (250, 128, 114), (199, 21, 133),
             (230, 150, 170)),
    "brown": ((90, 50, 25), (150, 90, 50), (139, 69, 19), (160, 82, 45), (101, 67, 33),
              (70, 45, 30), (130, 100, 70)),
    "beige": ((245, 222, 179), (222, 184, 135), (210, 180, 140), (195, 176, 145),
              (255, 253, 208), (193, 154, 107), (240, 230, 200)),
}
# fmt: on

_NAMES: tuple[str, ...] = tuple(BASIC_COLORS)
_ACHROMATIC_CHROMA = 9.0
_BLACK_MAX_L = 22.0
_WHITE_MIN_L = 90.0
_LIGHTNESS_WEIGHT = 0.6  # hue and chroma matter more than lightness for a name
_QUANT_BITS = 5
_WORK_SIDE = 64
# A near-white border region is a backdrop only when it covers this much of the border
# and leaves this much of the image as the subject.
_BACKDROP_MIN_BORDER = 0.5
_BACKDROP_MIN_SUBJECT = 0.02


@dataclass(frozen=True)
class DominantColor:
    name: str
    hex: str
    fraction: float


def normalize_color_name(word: str) -> str | None:
    """The basic colour name for ``word`` (a basic name, synonym, plural or phrase), or None.

    Case, plurals ("Reds"), "-ish" forms ("reddish") and modifiers ("navy blue",
    "light-grey", "off white") are understood.
    """
    tokens = word.strip().lower().replace("-", " ").replace("_", " ").split()
    if not tokens:
        return None
    for candidate in ("".join(tokens), tokens[-1]):
        name = _lookup(candidate)
        if name is not None:
            return name
    return None


def dominant_colors(
    image: Image.Image, *, max_colors: int = 3, min_fraction: float = 0.08
) -> list[DominantColor]:
    """The named colours covering at least ``min_fraction`` of ``image``'s subject.

    Sorted by fraction (largest first), at most ``max_colors``. A near-white backdrop
    is ignored (see the module docstring).
    """
    if max_colors < 1:
        raise InvalidInputError(f"max_colors must be at least 1, got {max_colors}")
    if not 0.0 <= min_fraction <= 1.0:
        raise InvalidInputError(f"min_fraction must be between 0 and 1, got {min_fraction}")
    small = flatten_to_rgb(image).resize(
        (_WORK_SIDE, _WORK_SIDE), Image.Resampling.BOX, reducing_gap=2.0
    )
    pixels = np.asarray(small, dtype=np.uint8)
    quantised = pixels >> (8 - _QUANT_BITS)
    codes = (
        (quantised[..., 0].astype(np.intp) << (2 * _QUANT_BITS))
        | (quantised[..., 1].astype(np.intp) << _QUANT_BITS)
        | quantised[..., 2]
    )
    labels = _name_table()[codes]
    keep = ~_backdrop_mask(labels == _NAMES.index("white"))

    kept_labels = labels[keep]
    kept_pixels = pixels[keep].astype(np.float64)
    counts = np.bincount(kept_labels, minlength=len(_NAMES))
    sums = np.stack(
        [
            np.bincount(kept_labels, weights=kept_pixels[:, c], minlength=len(_NAMES))
            for c in range(3)
        ],
        axis=1,
    )
    total = int(counts.sum())
    # Ties are broken by the fixed name order so the result never depends on anything else.
    order = sorted(range(len(_NAMES)), key=lambda i: (-counts[i], i))
    result: list[DominantColor] = []
    for index in order[:max_colors]:
        fraction = counts[index] / total
        if counts[index] == 0 or fraction < min_fraction:
            break
        mean = np.rint(sums[index] / counts[index]).astype(int)
        result.append(
            DominantColor(
                name=_NAMES[index],
                hex="#{:02x}{:02x}{:02x}".format(*mean.tolist()),
                fraction=round(float(fraction), 4),
            )
        )
    return result


def _lookup(token: str) -> str | None:
    forms = [token]
    if token.endswith("s") and len(token) > 3:
        forms.append(token[:-1])
    if token.endswith("ish") and len(token) > 5:
        stem = token[:-3]
        # reddish -> red, bluish -> blu(e), greyish -> grey
        forms.extend([stem, stem[:-1], stem + "e"])
    for form in forms:
        if form in BASIC_COLORS:
            return form
        if form in COLOR_SYNONYMS:
            return COLOR_SYNONYMS[form]
    return None


def _backdrop_mask(white: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Near-white pixels connected to the border, when they look like a backdrop."""
    border = np.concatenate([white[0], white[-1], white[1:-1, 0], white[1:-1, -1]])
    if border.mean() < _BACKDROP_MIN_BORDER:
        return np.zeros_like(white)
    backdrop = _reached_from_border(white)
    if 1.0 - backdrop.mean() < _BACKDROP_MIN_SUBJECT:
        return np.zeros_like(white)
    return backdrop


def _reached_from_border(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """The pixels of ``mask`` joined to the image border by a path of ``mask`` pixels
    through their four neighbours (the regions ``scipy.ndimage.label`` finds, those
    touching the border; without scipy, whose import costs each worker process a third
    of a second). A whole run of a row or column is reached at once, so a path needs as
    many rounds as it has turns, not pixels."""
    reached = np.zeros_like(mask)
    for edge in (np.s_[0, :], np.s_[-1, :], np.s_[:, 0], np.s_[:, -1]):
        reached[edge] = mask[edge]
    row_runs, row_count = _runs(mask)
    column_runs, column_count = _runs(mask.T)
    size = int(reached.sum())
    while True:
        for runs, count, view in ((row_runs, row_count, reached),
                                  (column_runs, column_count, reached.T)):
            touched = np.zeros(count + 1, dtype=bool)
            touched[runs[view]] = True
            touched[0] = False  # pixels outside the mask
            view |= touched[runs]
        grown = int(reached.sum())
        if grown == size:
            return reached
        size = grown


def _runs(mask: NDArray[np.bool_]) -> tuple[NDArray[np.intp], int]:
    """A number for each run of ``mask`` pixels along a row (0 outside the mask), and
    how many runs there are."""
    starts = mask.copy()
    starts[:, 1:] &= ~mask[:, :-1]
    numbers = np.cumsum(starts.reshape(-1), dtype=np.intp).reshape(mask.shape)
    count = int(numbers[-1, -1])
    numbers[~mask] = 0
    return numbers, count


@functools.cache
def _name_table() -> NDArray[np.intp]:
    """Name index for every RGB colour quantised to ``_QUANT_BITS`` bits per channel."""
    levels = (np.arange(1 << _QUANT_BITS) << (8 - _QUANT_BITS)) + (1 << (7 - _QUANT_BITS))
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(-1, 3)
    return _name_lab(_srgb_to_lab(grid.astype(np.float64)))


def _name_lab(lab: NDArray[np.float64]) -> NDArray[np.intp]:
    lightness = lab[:, 0]
    chroma = np.hypot(lab[:, 1], lab[:, 2])

    weights = np.array([_LIGHTNESS_WEIGHT, 1.0, 1.0])
    best = np.full(len(lab), np.inf)
    labels = np.zeros(len(lab), dtype=np.intp)
    for name, prototypes in _PROTOTYPES.items():
        swatches = np.asarray((BASIC_COLORS[name], *prototypes), dtype=np.float64)
        for proto in _srgb_to_lab(swatches):
            dist = (((lab - proto) * weights) ** 2).sum(axis=1)
            closer = dist < best
            best[closer] = dist[closer]
            labels[closer] = _NAMES.index(name)

    achromatic = chroma < _ACHROMATIC_CHROMA
    grey_name = np.where(
        lightness < _BLACK_MAX_L,
        _NAMES.index("black"),
        np.where(lightness >= _WHITE_MIN_L, _NAMES.index("white"), _NAMES.index("gray")),
    )
    labels = np.where(achromatic, grey_name, labels)
    # Very dark colours read as black unless strongly saturated (navy stays blue).
    labels = np.where(
        (lightness < _BLACK_MAX_L) & (chroma < 2 * _ACHROMATIC_CHROMA),
        _NAMES.index("black"),
        labels,
    )
    return labels.astype(np.intp)


def _srgb_to_lab(rgb: NDArray[np.float64]) -> NDArray[np.float64]:
    """CIE Lab (D65) of sRGB values in 0..255, shape (n, 3)."""
    c = rgb / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    to_xyz = np.array(
        [
            [0.4124564, 0.3575761, 0.1804375],
            [0.2126729, 0.7151522, 0.0721750],
            [0.0193339, 0.1191920, 0.9503041],
        ]
    )
    xyz = linear @ to_xyz.T / np.array([0.95047, 1.0, 1.08883])
    eps = (6 / 29) ** 3
    f = np.where(xyz > eps, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack(
        [116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], axis=1
    )
