"""Image formats whose decoders may be missing: HEIC/HEIF (pillow-heif) and AVIF.

Pillow reads AVIF itself when it was built with libavif (its wheels are); HEIC/HEIF
needs the ``pillow-heif`` package, whose opener is registered with Pillow the first
time it is asked for. When a decoder is missing, folders skip those files and say why,
and a decode of such bytes names the package to install.
"""

from __future__ import annotations

from functools import cache

from PIL import Image, features

# file suffix -> the Pillow format that reads it
OPTIONAL_SUFFIXES = {".heic": "HEIF", ".heif": "HEIF", ".hif": "HEIF", ".avif": "AVIF"}
MISSING_REASON = {
    "HEIF": "HEIC/HEIF images need the pillow-heif package (pip install pillow-heif)",
    "AVIF": "AVIF images need Pillow built with libavif (pip install -U pillow)",
}


@cache
def optional_formats() -> frozenset[str]:
    """The optional formats this installation can decode (registering their openers)."""
    available: set[str] = set()
    try:
        import pillow_heif
    except ImportError:
        pass
    else:
        # HEIF only: Pillow's own AVIF decoder is preferred to libheif's.
        pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
        available.add("HEIF")
    if features.check("avif") or "AVIF" in Image.OPEN:
        available.add("AVIF")
    return frozenset(available)


def decodable_suffixes() -> frozenset[str]:
    """The optional suffixes a folder scan should pick up on this installation."""
    return frozenset(s for s, fmt in OPTIONAL_SUFFIXES.items() if fmt in optional_formats())


def missing_reason(suffix: str) -> str | None:
    """Why files with ``suffix`` cannot be decoded here, or None when they can."""
    fmt = OPTIONAL_SUFFIXES.get(suffix)
    if fmt is None or fmt in optional_formats():
        return None
    return MISSING_REASON[fmt]
