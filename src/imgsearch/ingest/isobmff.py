"""Just enough of the ISO base media file format (HEIF, AVIF) to read declared sizes.

The image sizes a HEIF/AVIF file declares live in ``ispe`` properties under
``meta/iprp/ipco``. Reading them with a bounded walk lets the pixel cap apply before a
decoder library allocates anything.
"""

from __future__ import annotations

import struct

# containers on the way to the image properties; ``meta`` is a full box (4 more bytes)
_CONTAINERS = {b"meta": 4, b"iprp": 0, b"ipco": 0}
_MAX_BOXES = 4096  # a header with more boxes than this is not a photo


def declared_pixels(data: bytes) -> int | None:
    """The largest width x height any ``ispe`` property declares, or None if none."""
    largest: int | None = None
    budget = [_MAX_BOXES]
    for width, height in _ispe_sizes(data, 0, len(data), budget):
        largest = max(largest or 0, width * height)
    return largest


def _ispe_sizes(data: bytes, start: int, end: int, budget: list[int]
                ) -> list[tuple[int, int]]:
    sizes: list[tuple[int, int]] = []
    offset = start
    while offset + 8 <= end and budget[0] > 0:
        budget[0] -= 1
        size, kind = struct.unpack_from(">I4s", data, offset)
        header = 8
        if size == 1 and offset + 16 <= end:
            size = struct.unpack_from(">Q", data, offset + 8)[0]
            header = 16
        elif size == 0:
            size = end - offset
        if size < header:
            break  # malformed; the decoder reports it
        box_end = min(offset + size, end)
        if kind in _CONTAINERS:
            sizes.extend(_ispe_sizes(data, offset + header + _CONTAINERS[kind], box_end,
                                     budget))
        elif kind == b"ispe" and offset + header + 12 <= box_end:
            sizes.append(struct.unpack_from(">II", data, offset + header + 4))
        offset += size
    return sizes
