"""64-bit perceptual hashes (imagehash's pHash) stored as signed SQLite integers.

Bit order: the 8x8 boolean matrix from :func:`imagehash.phash` (row-major over the
lowest DCT frequencies, ``[0, 0]`` first) is read as a 64-bit big-endian number, so
the most significant bit is coefficient ``[0, 0]`` and ``f"{hash_to_unsigned(h):016x}"``
equals ``str(imagehash.phash(image))`` for images whose shorter side is under 512 px
(larger ones are box-shrunk first, which moves at most a bit or two). SQLite integers
are signed 64-bit, so the hash is returned in two's complement: values with the top bit
set are negative.

The DCT is computed here with numpy (two small matrix products giving the 8x8 lowest
frequencies of scipy's unnormalised type-II DCT, which imagehash calls), not through
imagehash: importing ``scipy.fftpack`` costs about 0.2 s, a third of a one-shot image
query's start. The bits are imagehash's (``tests/unit/test_enrich.py`` compares them);
only an image whose low frequencies tie at their median (a flat picture, where every
coefficient but the first is rounding noise) can differ, in bits that are noise there.

Hamming distance does not depend on byte order, so ``hashes_to_uint64(...).view(np.uint8)``
(little-endian bytes) can feed a FAISS binary index directly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from imgsearch.errors import InvalidInputError

__all__ = ["hamming", "hash_to_signed", "hash_to_unsigned", "hashes_to_uint64", "perceptual_hash"]

_BITS = 64
_MASK = (1 << _BITS) - 1
_SIGN = 1 << (_BITS - 1)
_MIN_SIGNED = -_SIGN

# pHash looks at a 32x32 grey thumbnail; shrinking a large image by an integer box
# factor first (never below this side) keeps the hash within a bit or two of the
# full-size one while avoiding a Lanczos pass over millions of pixels.
_PRESHRINK_MIN_SIDE = 256
_HASH_SIDE = 8  # imagehash's hash_size: 8x8 low frequencies
_NOISE = 1e-9  # relative to the DC term: far above float rounding, far below any signal
_MIDDLE = _HASH_SIDE * _HASH_SIDE // 2
_DCT_SIDE = 32  # the grey thumbnail the DCT reads (hash_size x imagehash's highfreq_factor)


def _dct_rows() -> NDArray[np.float64]:
    """(8, 32): the first rows of scipy.fftpack's unnormalised DCT-II matrix,
    ``2 cos(pi k (2n + 1) / 2N)``."""
    k = np.arange(_HASH_SIDE, dtype=np.float64)[:, None]
    n = np.arange(_DCT_SIDE, dtype=np.float64)[None, :]
    return 2.0 * np.cos(np.pi * k * (2.0 * n + 1.0) / (2.0 * _DCT_SIDE))


_DCT_ROWS = _dct_rows()


def perceptual_hash(image: Image.Image) -> int:
    """The 64-bit pHash of ``image`` as a signed int64 Python int (see module docstring)."""
    factor = min(image.size) // _PRESHRINK_MIN_SIDE
    if factor >= 2:
        image = image.reduce(factor)
    grey = image.convert("L").resize((_DCT_SIDE, _DCT_SIDE), Image.Resampling.LANCZOS)
    low = _DCT_ROWS @ np.asarray(grey, dtype=np.float64) @ _DCT_ROWS.T
    # A coefficient that is zero in exact arithmetic (a flat or evenly graded direction)
    # comes out as exactly 0.0 from scipy's FFT but as rounding noise from the products:
    # snap such noise to 0 so that ties at the median fall as they do in imagehash.
    low[np.abs(low) < _NOISE * (1.0 + abs(low[0, 0]))] = 0.0
    # the median as numpy's (the mean of the two middle values), without np.median,
    # whose first call imports numpy.ma
    middle = np.sort(low, axis=None)[_MIDDLE - 1:_MIDDLE + 1]
    bits = low > (middle[0] + middle[1]) / 2.0
    unsigned = int.from_bytes(np.packbits(bits.reshape(-1)).tobytes(), "big")
    return hash_to_signed(unsigned)


def hash_to_signed(h: int) -> int:
    """The signed int64 form of a 64-bit hash given either signed or unsigned."""
    return _to_signed(_check(h))


def hash_to_unsigned(h: int) -> int:
    """The unsigned 64-bit form (0 .. 2**64-1) of a hash given signed or unsigned."""
    return _check(h) & _MASK


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two 64-bit hashes (signed or unsigned forms)."""
    return ((_check(a) ^ _check(b)) & _MASK).bit_count()


def hashes_to_uint64(hashes: Sequence[int]) -> NDArray[np.uint64]:
    """Hashes (signed or unsigned forms, mixed is fine) as a uint64 array, same bits."""
    try:
        # Fast path: every hash as stored in SQLite fits int64; reinterpret the bits.
        return np.asarray(hashes, dtype=np.int64).reshape(-1).view(np.uint64)
    except OverflowError:
        pass
    return np.fromiter((hash_to_unsigned(h) for h in hashes), dtype=np.uint64, count=len(hashes))


def _to_signed(unsigned: int) -> int:
    unsigned &= _MASK
    return unsigned - (1 << _BITS) if unsigned & _SIGN else unsigned


def _check(h: int) -> int:
    if not _MIN_SIGNED <= h <= _MASK:
        raise InvalidInputError(
            f"perceptual hash {h} is outside 64 bits; pass a value from perceptual_hash() "
            "or its unsigned form (0 .. 2**64-1)"
        )
    return h
