"""JPEG thumbnails, stored under a collection directory and spread over sub-folders.

Thumbnails are re-creatable from the source images, so writes are atomic (a reader
never sees half a file) but not fsynced.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
from pathlib import Path, PurePosixPath

from PIL import Image

from imgsearch.errors import InvalidInputError

__all__ = [
    "flatten_to_rgb",
    "make_thumbnail",
    "remove_thumbnail",
    "shrink_for_thumbnail",
    "thumbnail_bytes",
    "thumbnail_relpath",
    "write_thumbnail",
]

THUMBNAIL_DIR = "thumbnails"
JPEG_QUALITY = 85
# 256 buckets keep a folder near 4k files at 1M items; the bucket comes from a hash so
# consecutive keys do not pile into one folder.
_BUCKET_BYTES = 1


def make_thumbnail(image: Image.Image, size: int) -> bytes:
    """JPEG bytes of ``image`` shrunk so its longer side is at most ``size``.

    The aspect ratio is kept and the image is never enlarged. Images with transparency
    are composited over white; any other mode is converted to RGB.
    """
    return thumbnail_bytes(shrink_for_thumbnail(image, size))


def shrink_for_thumbnail(image: Image.Image, size: int) -> Image.Image:
    """``image`` in RGB, shrunk as :func:`make_thumbnail` shrinks it (the pixels it
    encodes; ingest derives pHash and colours from them too, not from the larger decode).
    An image already small enough comes back as it is, not copied."""
    if size < 1:
        raise InvalidInputError(f"thumbnail size must be a positive number of pixels, got {size}")
    rgb = flatten_to_rgb(image)
    width, height = rgb.size
    longer = max(width, height)
    if longer > size:
        scale = size / longer
        target = (max(1, round(width * scale)), max(1, round(height * scale)))
        # Pillow's own thumbnail recipe: box-shrink by an integer factor, then bicubic.
        # Several times faster than Lanczos on large images, indistinguishable at 256 px.
        rgb = rgb.resize(target, Image.Resampling.BICUBIC, reducing_gap=2.0)
    return rgb


def thumbnail_bytes(rgb: Image.Image) -> bytes:
    """The JPEG bytes of an image :func:`shrink_for_thumbnail` gave."""
    buffer = io.BytesIO()
    rgb.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def thumbnail_relpath(key: int) -> str:
    """Where the thumbnail of ``key`` lives, relative to the collection directory.

    For example ``"thumbnails/3f/12345.jpg"``: the folder is the first byte of a hash of
    the key, so thumbnails spread evenly over 256 folders.
    """
    digest = hashlib.blake2b(str(key).encode("ascii"), digest_size=_BUCKET_BYTES).hexdigest()
    return f"{THUMBNAIL_DIR}/{digest}/{key}.jpg"


def write_thumbnail(collection_dir: Path, key: int, data: bytes) -> str:
    """Write ``data`` as the thumbnail of ``key`` atomically; return its relative path."""
    relpath = thumbnail_relpath(key)
    target = Path(collection_dir) / relpath
    try:  # the bucket folder exists but for the first few hundred thumbnails
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                                        dir=target.parent)
    except FileNotFoundError:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                                        dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    return relpath


def remove_thumbnail(collection_dir: Path, relpath: str) -> None:
    """Delete a thumbnail written by :func:`write_thumbnail`; a missing file is fine."""
    parts = PurePosixPath(relpath).parts
    if (
        not parts
        or PurePosixPath(relpath).is_absolute()
        or ".." in parts
        or parts[0] != THUMBNAIL_DIR
        or "\\" in relpath
    ):
        raise InvalidInputError(
            f"thumbnail path {relpath!r} is not inside {THUMBNAIL_DIR}/ of the collection; "
            "pass the path returned by write_thumbnail()"
        )
    with contextlib.suppress(FileNotFoundError):
        (Path(collection_dir) / relpath).unlink()


def flatten_to_rgb(image: Image.Image) -> Image.Image:
    """``image`` in RGB; transparent parts are composited over white."""
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")
