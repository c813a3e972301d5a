"""``descriptor``: a weight-free global visual descriptor, the offline default for images.

Every image is resized to a small square and described by six blocks:

- lightness layout: mean CIELAB lightness on a soft 4x4 grid, standardised over the
  cells (where it is light or dark, whatever the exposure);
- chroma layout: mean CIELAB a*, b* on the same grid (where the colours are);
- handedness: what of the lightness layout differs from its mirror image (small);
- colour histogram: soft-assigned hue x saturation x value bins plus grey levels, global
  (centre-weighted) and on a soft 2x2 grid (which colours, roughly where);
- edges: HOG-like gradient-orientation histograms at three scales, on a 4x4 grid, a
  2x2 grid and over the whole image (shape and structure);
- texture: distributions of gradient strength at three scales, centre-weighted
  (smooth, busy, fine-grained, noise).

Robust to the common edits by construction:

- mirror: every block but handedness is left-right symmetric (the mean of the pooled
  maps and their mirror image, which for orientation histograms also swaps the
  orientation bins), so a mirrored copy differs only in the small handedness block;
- brightness, contrast and grayscale: the structure blocks (lightness layout and edges,
  normalised per image, and texture on a log scale) carry most of the weight; absolute
  colour (chroma layout and colour histogram) carries less;
- crops, small rotations, banners and frames: soft grids, and global statistics that
  lean on the centre of the image, where such edits change least.

Histograms are square-rooted, so that Euclidean distance between them is the Hellinger
distance. Each block then goes through a fixed random Fourier feature map, so that its
inner product approximates a Gaussian kernel of the block's distance: near 1 for the same
picture re-encoded, resized or slightly cropped, near 0 for unrelated pictures. Each block
is scaled to unit length times the square root of its weight, so the cosine of two
descriptors is the weighted mean of the per-block similarities. Everything is computed
for a whole batch at once in numpy. Weights and widths were chosen with
``bench/descriptor_edits.py`` (edited copies of real photos among clip art, and category
similarity of the clip art), keeping re-encoded and resized copies above the
near-duplicate bounds of ``search/duplicates.py``.

Version 1 (``descriptor-v1``, 576-d) had a raw CIELAB layout, no mirror symmetry and
uniform whole-image pooling; its vectors are not comparable with these, so a collection
built with it is refused (or re-encoded with ``--reembed``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from imgsearch.encode.base import Encoder, l2_normalize
from imgsearch.encode.blas import one_blas_thread

VERSION = 2
SIDE = 80  # working resolution: enough for layout, edges and texture, cheap to compute

HUE_BINS = 12
SAT_BINS = 2
VAL_BINS = 3
GREY_BINS = 5
ORIENT_BINS = 8
STRENGTH_BINS = 6
EDGE_GRIDS = (4, 2, 1)  # cells per side of the edge histograms, one per scale
CENTRE_FLOOR = 0.25  # border weight of the centre-weighted averages, relative to the centre

# Per block: share of the cosine, kernel width (in raw-feature distance), output size.
# Widths are set so that re-encoding, resizing and small crops keep a block near 1
# while unrelated images fall towards 0.
WEIGHTS: dict[str, float] = {"light": 0.20, "chroma": 0.04, "handed": 0.05, "colour": 0.22,
                             "edges": 0.35, "texture": 0.14}
SIGMAS: dict[str, float] = {"light": 6.0, "chroma": 14.0, "handed": 4.0, "colour": 0.5,
                            "edges": 0.2, "texture": 0.28}
SIZES: dict[str, int] = {"light": 128, "chroma": 96, "handed": 32, "colour": 256, "edges": 384,
                         "texture": 96}

_KernelMap = tuple[NDArray[np.float32], NDArray[np.float32]]


def _soft_pool_matrix(size: int, cells: int) -> NDArray[np.float32]:
    """(cells*cells, size*size) weights averaging a square map over a soft grid.

    Each cell is a triangular window two cells wide centred on the cell, so the grid
    tolerates small shifts, crops and rescales instead of jumping at cell borders.
    """
    pos = (np.arange(size, dtype=np.float64) + 0.5) / size * cells - 0.5
    centres = np.arange(cells, dtype=np.float64)
    w = np.clip(1.0 - np.abs(pos[None, :] - centres[:, None]), 0.0, None)
    # Pixels beyond the outer centres belong fully to the outer cells.
    w[0, pos < 0] = 1.0
    w[-1, pos > cells - 1] = 1.0
    w /= w.sum(axis=1, keepdims=True)
    return np.kron(w, w).astype(np.float32)


def _srgb_to_linear_lut() -> NDArray[np.float32]:
    c = np.arange(256, dtype=np.float64) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return lin.astype(np.float32)


_LINEAR = _srgb_to_linear_lut()
_RGB_TO_XYZ = np.array(
    [
        [0.4124 / 0.95047, 0.3576 / 0.95047, 0.1805 / 0.95047],
        [0.2126, 0.7152, 0.0722],
        [0.0193 / 1.08883, 0.1192 / 1.08883, 0.9505 / 1.08883],
    ],
    dtype=np.float32,
)


def _centre_pool_matrix(size: int) -> NDArray[np.float32]:
    """(1, size*size) weights of a whole-image average that leans on the centre.

    Borders are where crops, rotations (their filled corners), banners and frames
    change a picture; the centre is what they leave. Borders still count (a quarter
    of the centre's weight), so pictures that differ only there stay apart.
    """
    pos = (np.arange(size, dtype=np.float64) + 0.5) / size
    w = CENTRE_FLOOR + (1.0 - CENTRE_FLOOR) * np.sin(np.pi * pos) ** 2
    grid = np.outer(w, w).reshape(1, -1)
    return (grid / grid.sum()).astype(np.float32)


# Soft grids keyed by (map side, cells per side); 0 cells: the centre-weighted average.
_POOLS = {
    (side, cells): _soft_pool_matrix(side, cells) if cells else _centre_pool_matrix(side)
    for side in (SIDE, SIDE // 2, SIDE // 4) for cells in (0, 1, 2, 4)
}


def _pool(maps: NDArray[np.float32], cells: int) -> NDArray[np.float32]:
    """(n, S, S, c) maps -> (n, cells*cells, c) soft cell averages."""
    n, side, _, c = maps.shape
    # One matrix product for the whole batch: pixels x (images * channels).
    pixels = np.ascontiguousarray(maps.reshape(n, side * side, c).transpose(1, 0, 2))
    pooled = _POOLS[side, cells] @ pixels.reshape(side * side, n * c)
    return np.ascontiguousarray(pooled.reshape(-1, n, c).transpose(1, 0, 2), dtype=np.float32)


def _lab(rgb: NDArray[np.uint8]) -> NDArray[np.float32]:
    """(n, S, S, 3) sRGB bytes -> (n, S, S, 3) CIELAB (D65), L in [0, 100]."""
    xyz = _LINEAR[rgb] @ _RGB_TO_XYZ.T
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16.0 / 116.0)
    fx, fy, fz = f[..., 0], f[..., 1], f[..., 2]
    lab = np.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)
    return lab.astype(np.float32)


def _triangle_bins(x: NDArray[np.float32], bins: int, circular: bool) -> NDArray[np.float32]:
    """Soft (linear) assignment of values in [0, 1] to ``bins`` bins: (..., bins).

    Each value is shared between its two nearest bin centres, in proportion to nearness
    (centres at (k + 0.5) / bins; beyond the outer centres a value belongs to the outer
    bin, unless the bins are circular). Written as two scatters rather than a distance
    to every centre: this runs on every pixel several times per image.
    """
    pos = np.asarray(x, dtype=np.float32) * bins - 0.5
    if circular:
        low = np.floor(pos)
        frac = pos - low
        k0 = low.astype(np.intp) % bins
        k1 = (k0 + 1) % bins
    else:
        pos = np.clip(pos, 0.0, bins - 1.0)
        low = np.minimum(np.floor(pos), bins - 2.0)
        frac = pos - low
        k0 = low.astype(np.intp)
        k1 = k0 + 1
    out = np.zeros((*pos.shape, bins), dtype=np.float32)
    # indexes into the flat output (np.put_along_axis does the same, several times slower)
    flat = out.reshape(-1)
    first = np.arange(0, flat.size, bins)
    flat[first + k0.reshape(-1)] = (1.0 - frac).reshape(-1)
    flat[first + k1.reshape(-1)] = frac.reshape(-1)
    return out


def _hsv(rgb: NDArray[np.float32]) -> tuple[NDArray[np.float32], ...]:
    """(..., 3) RGB in [0, 1] -> hue in [0, 1), saturation, value."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    mx = rgb.max(axis=-1)
    delta = mx - rgb.min(axis=-1)
    safe = np.where(delta > 1e-6, delta, 1.0)
    hue = np.where(
        mx == r, (g - b) / safe, np.where(mx == g, 2.0 + (b - r) / safe, 4.0 + (r - g) / safe)
    )
    hue = (hue / 6.0) % 1.0
    sat = delta / np.maximum(mx, 1e-6)
    return hue.astype(np.float32), sat.astype(np.float32), mx.astype(np.float32)


def _colour_maps(rgb: NDArray[np.float32]) -> NDArray[np.float32]:
    """(n, S, S, 3) RGB in [0, 1] -> (n, S, S, bins) soft colour-bin memberships."""
    hue, sat, val = _hsv(rgb)
    # Weak or dark colours have unreliable hues: they count as grey levels instead.
    chroma = np.clip((sat - 0.12) / 0.18, 0.0, 1.0) * np.clip((val - 0.10) / 0.15, 0.0, 1.0)
    h = _triangle_bins(hue, HUE_BINS, circular=True) * chroma[..., None]
    s = _triangle_bins(np.clip((sat - 0.12) / 0.88, 0.0, 1.0), SAT_BINS, circular=False)
    v = _triangle_bins(val, VAL_BINS, circular=False)
    sv = (s[..., :, None] * v[..., None, :]).reshape(*val.shape, -1)
    colour = (h[..., :, None] * sv[..., None, :]).reshape(*val.shape, -1)
    grey = _triangle_bins(val, GREY_BINS, circular=False) * (1.0 - chroma[..., None])
    return np.concatenate([colour, grey], axis=-1)


def _gradients(grey: NDArray[np.float32]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Central-difference gradients with replicated borders: magnitude and angle in [0, 1)."""
    gx = _replicated_difference(grey, axis=2)
    gy = _replicated_difference(grey, axis=1)
    mag = np.sqrt(gx * gx + gy * gy)
    # Unsigned orientation: an edge and its reverse (dark-to-light or light-to-dark) agree.
    angle = (np.arctan2(gy, gx) / np.pi) % 1.0
    return mag.astype(np.float32), angle.astype(np.float32)


def _replicated_difference(x: NDArray[np.float32], axis: int) -> NDArray[np.float32]:
    """x[i + 1] - x[i - 1] along ``axis``, the border values replicated: what a one-pixel
    edge padding gives, without padding a copy."""
    out = np.empty_like(x)
    a, o = np.moveaxis(x, axis, -1), np.moveaxis(out, axis, -1)
    np.subtract(a[..., 2:], a[..., :-2], out=o[..., 1:-1])
    np.subtract(a[..., 1], a[..., 0], out=o[..., 0])
    np.subtract(a[..., -1], a[..., -2], out=o[..., -1])
    return out


def _downsample2(x: NDArray[np.float32]) -> NDArray[np.float32]:
    """(n, S, S, ...) -> (n, S/2, S/2, ...): the mean of each 2x2 block."""
    # four strided slices, several times faster than a mean over reshaped axes
    total = x[:, 0::2, 0::2] + x[:, 0::2, 1::2] + x[:, 1::2, 0::2] + x[:, 1::2, 1::2]
    return total * np.float32(0.25)


def _orientation_maps(grey: NDArray[np.float32]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """(n, S, S) -> magnitude-weighted orientation maps (n, S, S, bins), and magnitudes."""
    mag, angle = _gradients(grey)
    # sqrt damps a few very strong edges so they do not drown the rest of the structure.
    return _triangle_bins(angle, ORIENT_BINS, circular=True) * np.sqrt(mag)[..., None], mag


def _strength_hist(mag: NDArray[np.float32], weights: NDArray[np.float32]
                   ) -> NDArray[np.float32]:
    """(n, S, S) gradient magnitudes -> (n, STRENGTH_BINS) soft histogram of log strength,
    pixels weighted by ``weights`` (1, S*S).

    Absolute, not relative to the image: noise and flat pictures must stay apart from
    everything else. On a log scale a +50 % exposure moves it by a third of a bin.
    """
    n, side, _ = mag.shape
    level = np.clip(np.log2(1.0 + mag * 255.0) / 8.0, 0.0, 1.0)  # 0 .. 1 for 8-bit steps
    bins = _triangle_bins(level, STRENGTH_BINS, circular=False).reshape(n, side * side, -1)
    return np.asarray((weights @ bins)[:, 0, :], dtype=np.float32)


def _random_fourier(dim_in: int, dim_out: int, sigma: float, seed: int) -> _KernelMap:
    """A fixed random Fourier feature map for a Gaussian kernel of width ``sigma``.

    Inner products of mapped vectors approximate exp(-|x - y|^2 / 2 sigma^2): about 1 for
    near-identical inputs, falling towards 0 for unrelated ones, instead of the large
    shared baseline raw histograms have. RandomState keeps the stream fixed across numpy
    versions, so the same image always gives the same vector.
    """
    rs = np.random.RandomState(seed)
    proj = (rs.standard_normal((dim_in, dim_out)) / sigma).astype(np.float32)
    phase = rs.uniform(0.0, 2.0 * np.pi, dim_out).astype(np.float32)
    return proj, phase


def _mirrored(pooled: NDArray[np.float32], cells: int,
              channels: NDArray[np.intp] | None = None) -> NDArray[np.float32]:
    """(n, cells*cells, c) pooled maps -> what the left-right mirrored image would give.

    The soft grids are symmetric, so mirroring the image only swaps cell columns (and,
    for orientation maps, orientation bins): no second pass over the pixels is needed.
    """
    n, _, c = pooled.shape
    out = pooled.reshape(n, cells, cells, c)[:, :, ::-1, :]
    if channels is not None:
        out = out[..., channels]
    return np.ascontiguousarray(out.reshape(n, cells * cells, c))


def _symmetric(pooled: NDArray[np.float32], cells: int,
               channels: NDArray[np.intp] | None = None) -> NDArray[np.float32]:
    """Mean of the pooled maps and their mirror image: identical for a picture and its mirror."""
    return np.asarray(0.5 * (pooled + _mirrored(pooled, cells, channels)), dtype=np.float32)


# Mirroring turns an orientation angle a into 1 - a: bin k becomes bin ORIENT_BINS-1-k.
_ORIENT_MIRROR = np.arange(ORIENT_BINS)[::-1].copy()


def _raw_blocks(rgb8: NDArray[np.uint8]) -> dict[str, NDArray[np.float32]]:
    """(n, SIDE, SIDE, 3) uint8 RGB -> per-block raw features whose distances are meaningful."""
    n = rgb8.shape[0]
    lab = _lab(rgb8)
    cells = _pool(lab, 4)  # (n, 16, 3) soft cell means
    # Lightness layout, standardised over the cells: a brightness or contrast change of
    # the whole picture cancels out, and a picture with no layout (noise, an even
    # texture) does not sit near the origin, close to everything. The floor (in L*
    # units) keeps near-flat pictures from turning JPEG noise into layout.
    light = cells[..., 0]
    spread = np.maximum(light.std(axis=1, keepdims=True), 3.0)
    light = (light - light.mean(axis=1, keepdims=True)) / spread
    light_sym = _symmetric(light[..., None], 4)[..., 0]
    # Chroma layout (a*, b*): where the colours are. Lost to grayscale, so weighted less.
    chroma = _symmetric(cells[..., 1:], 4).reshape(n, -1)
    # What tells a picture from its mirror image, kept small: a mirrored copy stays close.
    handed = (light - light_sym)

    # Colour histograms need far fewer pixels than edges do.
    cmaps = _colour_maps(_downsample2(_downsample2(rgb8.astype(np.float32) / 255.0)))
    colour_global = _pool(cmaps, 0).reshape(n, -1)
    colour_grid = _symmetric(_pool(cmaps, 2), 2).reshape(n, -1) / 4.0
    # Square roots of proportions: Euclidean distance becomes the Hellinger distance.
    colour = np.sqrt(np.concatenate([colour_global, colour_grid], axis=1) * 0.5)

    grey = lab[..., 0] / 100.0
    edges = []
    strengths = []
    for grid in EDGE_GRIDS:
        maps, mag = _orientation_maps(grey)
        # One distribution over cells x orientations per scale: cells with more edges weigh
        # more, and a global change of contrast cancels out.
        hist = _symmetric(_pool(maps, grid), max(grid, 1), _ORIENT_MIRROR).reshape(n, -1)
        hist = hist / np.maximum(hist.sum(axis=1, keepdims=True), 1e-12)
        edges.append(np.sqrt(hist / 3.0))
        strengths.append(np.sqrt(_strength_hist(mag, _POOLS[mag.shape[1], 0]) / 3.0))
        grey = _downsample2(grey)
    return {
        "light": light_sym,
        "chroma": chroma,
        "handed": handed,
        "colour": colour,
        "edges": np.concatenate(edges, axis=1),
        "texture": np.concatenate(strengths, axis=1),
    }


def describe_batch(rgb8: NDArray[np.uint8]) -> NDArray[np.float32]:
    """(n, SIDE, SIDE, 3) uint8 RGB -> (n, DIM) descriptors (not yet L2-normalised)."""
    parts = []
    for name, feats in _raw_blocks(rgb8).items():
        proj, phase = _build_kernels()[name]
        mapped = np.cos(feats.astype(np.float32) @ proj + phase)
        norms = np.linalg.norm(mapped, axis=1, keepdims=True)
        parts.append(mapped / np.maximum(norms, 1e-8) * np.float32(np.sqrt(WEIGHTS[name])))
    return np.concatenate(parts, axis=1).astype(np.float32)


def _prepare(image: Image.Image) -> NDArray[np.uint8]:
    if image.mode != "RGB":
        image = image.convert("RGB")
    small = image.resize((SIDE, SIDE), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.asarray(small, dtype=np.uint8)


def describe_image(image: Image.Image) -> NDArray[np.float32]:
    """One image's unit descriptor: what ``DescriptorEncoder`` gives for it, computed
    alone (a decode worker process runs it, see ``Encoder.image_vector_job``)."""
    return l2_normalize(describe_batch(_prepare(image)[None]))[0]


# The random feature maps as ``seeded_maps`` makes them, shipped with the package: making
# them imports numpy.random and draws 0.7 MB of normals, about 15 ms of a command-line
# image search. tests/unit/test_descriptor.py checks the file against the seeds;
# ``write_maps`` writes it; without a good file the maps are made.
MAPS_FILE = Path(__file__).parent / "maps" / f"descriptor-v{VERSION}.npy"


def _map_shapes() -> dict[str, tuple[int, int]]:
    probe = _raw_blocks(np.zeros((1, SIDE, SIDE, 3), dtype=np.uint8))
    return {name: (probe[name].shape[1], SIZES[name]) for name in WEIGHTS}


def seeded_maps() -> dict[str, _KernelMap]:
    """Each block's random Fourier map, made from its seed (its place in ``WEIGHTS``)."""
    shapes = _map_shapes()
    return {name: _random_fourier(*shapes[name], SIGMAS[name], seed)
            for seed, name in enumerate(WEIGHTS)}


def write_maps(path: Path = MAPS_FILE) -> None:
    """Write ``seeded_maps`` to ``path``: each block's projection, then its phases, in
    ``WEIGHTS`` order, as one float32 array."""
    maps = seeded_maps()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.concatenate([part.ravel() for name in WEIGHTS for part in maps[name]]))


def stored_maps(path: Path) -> dict[str, _KernelMap] | None:
    """The maps in ``path`` (see ``write_maps``), or None when it cannot be read or does
    not hold maps of these shapes."""
    shapes = _map_shapes()
    try:
        flat = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    if flat.dtype != np.float32 or flat.shape != (sum(i * o + o for i, o in shapes.values()),):
        return None
    maps, at = {}, 0
    for name, (dim_in, dim_out) in shapes.items():
        proj = flat[at:at + dim_in * dim_out].reshape(dim_in, dim_out).copy()
        at += dim_in * dim_out
        maps[name] = (proj, flat[at:at + dim_out].copy())
        at += dim_out
    return maps


@functools.cache  # on first use: a text query on an image collection never needs them
def _build_kernels() -> dict[str, _KernelMap]:
    return stored_maps(MAPS_FILE) or seeded_maps()


class DescriptorEncoder(Encoder):
    """Colour layout + colour histogram + multi-scale edges + texture, no weights needed."""

    name = "descriptor"
    model_id = f"descriptor-v{VERSION}"
    modalities = frozenset({"image"})
    image_side = 2 * SIDE

    def __init__(self, batch_size: int = 64) -> None:
        self.batch_size = batch_size
        self.dim = sum(SIZES.values())

    def _embed_image_batch(self, images: Sequence[Image.Image]) -> NDArray[np.float32]:
        batch = np.stack([_prepare(im) for im in images])
        # One BLAS thread whatever the batch: the products are small, and a second
        # thread only waited on the first (twice the CPU per image in batches of 64,
        # beside busy decode threads; ``bench/ingest_ab.py``).
        with one_blas_thread():
            return describe_batch(batch)

    def image_vector_job(self) -> Callable[[Image.Image], NDArray[np.float32]]:
        return describe_image


DIM = sum(SIZES.values())
