"""Decode jobs that misbehave on purpose, for the worker-process tests.

They live in a module of their own (not a test file) so that worker processes, which
receive a job by its module and name, can import them.
"""

from __future__ import annotations

import os
import time

from imgsearch.engine.pipeline import DecodeRequest, Derived, decode_job, derive_job
from imgsearch.ingest.decode import DecodedImage

MARKER = b"spin-for-a-minute"  # bytes after a JPEG's end marker: still a valid image


def _spin_if_marked(request: DecodeRequest) -> None:
    """Burn CPU for a minute, as a decode-cost bomb would, when the upload is marked."""
    if isinstance(request.payload, bytes) and request.payload.endswith(MARKER):
        until = time.monotonic() + 60.0
        while time.monotonic() < until:
            pass


def spinning_decode(request: DecodeRequest) -> DecodedImage:
    _spin_if_marked(request)
    return decode_job(request)


def spinning_derive(request: DecodeRequest, thumbnail_size: int) -> Derived:
    _spin_if_marked(request)
    return derive_job(request, thumbnail_size)


def spin(seconds: float) -> None:
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        pass


def pid() -> int:
    import os

    return os.getpid()


def raise_corrupt(message: str) -> None:
    from imgsearch.errors import CorruptImageError

    raise CorruptImageError(message)


def die() -> None:
    import os

    os._exit(3)


def spinning_derive_file(request: DecodeRequest, thumbnail_size: int) -> Derived:
    """Like ``spinning_derive`` for a file whose bytes end with the marker."""
    if isinstance(request.payload, str):
        with open(request.payload, "rb") as handle:
            if handle.read().endswith(MARKER):
                spin(60.0)
    return spinning_derive(request, thumbnail_size)


def alive(pid: int) -> bool:
    """Whether a process with this pid still exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
