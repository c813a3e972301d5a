"""Turn items into what the catalog stores: decode, enrich, encode — in batches.

Part of the composition root (beside ``engine``): it wires the ingest, enrich and
encode stages together. Decoding and enrichment run on a thread pool (Pillow and
numpy release the GIL for the heavy parts); encoders see whole batches.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from imgsearch.config import Settings
from imgsearch.encode.base import Encoder
from imgsearch.enrich.colors import dominant_colors, normalize_color_name
from imgsearch.enrich.ocr import OcrEngine, find_ocr
from imgsearch.enrich.phash import perceptual_hash
from imgsearch.enrich.photo import photo_fields
from imgsearch.enrich.thumbnails import make_thumbnail
from imgsearch.errors import FetchError, ImageError, ImgSearchError
from imgsearch.ingest.decode import DecodedImage, decode_file, decode_image
from imgsearch.ingest.fetch import Fetcher
from imgsearch.store.files import original_relpath
from imgsearch.types import ImageInput, IngestFailure, Item

_OCR_SIDE = 1200  # shorter side of the decode OCR reads (its longer side up to twice)
# an item with its derived fields, its decoded image, thumbnail and original bytes to keep
_Enriched = tuple[Item, Image.Image, bytes, bytes | None]


@dataclass
class Prepared:
    """An item ready to be written: derived fields filled, vectors computed."""

    item: Item
    vectors: dict[str, NDArray[np.float32]]
    thumbnail: bytes
    original: bytes | None = None  # the uploaded bytes to keep, at item.original


def is_url(ref: str) -> bool:
    return ref.startswith(("http://", "https://"))


def declared_colors(item: Item) -> list[str]:
    if not item.color:
        return []
    names = [normalize_color_name(part) for part in item.color.replace("/", ",").split(",")]
    return [n for n in names if n]


class Preparer:
    def __init__(self, settings: Settings, image_encoder: Encoder,
                 text_encoder: Callable[[], Encoder | None], fetcher: Fetcher) -> None:
        self.settings = settings
        self.image_encoder = image_encoder
        self._text_encoder = text_encoder
        self.fetcher = fetcher
        workers = settings.ingest_workers or (os.cpu_count() or 1)
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="imgsearch-decode")
        # why OCR, switched on, reads nothing (no tesseract, a language missing)
        self.ocr: OcrEngine | None = None
        self.ocr_unavailable: str | None = None
        if settings.ocr:
            self.ocr, self.ocr_unavailable = find_ocr(
                settings.ocr_languages, settings.ocr_timeout_s, settings.ocr_max_pixels)

    def close(self) -> None:
        self.pool.shutdown(wait=True)

    @property
    def reduce_to(self) -> int:
        side = max(self.image_encoder.image_side, self.settings.thumbnail_size)
        # text needs its pixels: OCR reads a larger decode (capped by ocr_max_pixels)
        return max(side, _OCR_SIDE) if self.ocr is not None else side

    def decode(self, value: ImageInput | None, source: str,
               fetched: dict[str, bytes | FetchError] | None = None) -> DecodedImage:
        s = self.settings
        limits = dict(max_pixels=s.max_pixels, min_side=s.min_side, reduce_to=self.reduce_to)
        if value is None:
            raise ImageError(f"{source}: the item has no image")
        if isinstance(value, Image.Image):
            return decode_image(_png(value), source=source, max_bytes=1 << 40, **limits)
        if isinstance(value, bytes):
            return decode_image(value, source=source, max_bytes=s.max_file_bytes, **limits)
        ref = str(value)
        if is_url(ref):
            data = fetched.get(ref) if fetched else None
            if data is None:
                data = self.fetcher.fetch_one(ref)
            if isinstance(data, FetchError):
                raise data
            return decode_image(data, source=ref, max_bytes=s.max_download_bytes, **limits)
        return decode_file(Path(ref), max_bytes=s.max_file_bytes, **limits)

    def _enrich(self, item: Item, decoded: DecodedImage, value: ImageInput | None
                ) -> _Enriched:
        image = decoded.image
        names = declared_colors(item)
        names += [c.name for c in dominant_colors(image) if c.name not in names]
        kept = self._original(item, value)
        enriched = replace(
            item, width=decoded.width, height=decoded.height,
            content_hash=decoded.content_hash, phash=perceptual_hash(image),
            colors=tuple(names),
            original=None if kept is None else original_relpath(decoded.content_hash,
                                                                decoded.format),
            **photo_fields(item, decoded.facts, self.ocr.read(image) if self.ocr else None))
        return enriched, image, make_thumbnail(image, self.settings.thumbnail_size), kept

    def _original(self, item: Item, value: ImageInput | None) -> bytes | None:
        """The bytes to keep: those of an upload with no path or URL to read them again
        from, up to ``original_max_bytes``."""
        if item.image is not None or not isinstance(value, bytes | Image.Image):
            return None
        data = value if isinstance(value, bytes) else _png(value)
        return data if len(data) <= self.settings.original_max_bytes else None

    def prepare(self, batch: Sequence[tuple[Item, ImageInput | None]]
                ) -> tuple[list[Prepared], list[IngestFailure]]:
        """Decode, enrich and encode a batch; a bad item becomes a failure, never an abort."""
        urls = [str(v) for _, v in batch if isinstance(v, str) and is_url(v)]
        fetched = self.fetcher.fetch_many(urls) if urls else {}

        def work(entry: tuple[Item, ImageInput | None]) -> _Enriched | IngestFailure:
            item, value = entry
            try:
                return self._enrich(item, self.decode(value, item.image or item.id, fetched),
                                    value)
            except ImgSearchError as exc:
                label = item.image or item.id
                return IngestFailure(label, _without_label(exc.message, label), exc.code,
                                     item.id)
            except OSError as exc:
                return IngestFailure(item.image or item.id, f"cannot read: {exc}", "io_error",
                                     item.id)

        ready: list[_Enriched] = []
        failures: list[IngestFailure] = []
        for result in self.pool.map(work, batch):
            if isinstance(result, IngestFailure):
                failures.append(result)
            else:
                ready.append(result)
        return self._encode(ready), failures

    def prepare_one(self, item: Item, value: ImageInput | None) -> Prepared:
        """Like ``prepare`` for a single item, but a bad image raises its own error."""
        decoded = self.decode(value, item.image or item.id)
        return self._encode([self._enrich(item, decoded, value)])[0]

    def prepare_each(self, batch: Sequence[tuple[Item, ImageInput | None]]
                     ) -> list[Prepared | ImgSearchError | OSError]:
        """Like ``prepare``, but an answer per entry, in order: the prepared item, or the
        error that kept it out, as ``prepare_one`` would raise it. Encoded as one batch."""
        urls = [str(v) for _, v in batch if isinstance(v, str) and is_url(v)]
        fetched = self.fetcher.fetch_many(urls) if urls else {}

        def work(entry: tuple[Item, ImageInput | None]
                 ) -> _Enriched | ImgSearchError | OSError:
            item, value = entry
            try:
                return self._enrich(item, self.decode(value, item.image or item.id, fetched),
                                    value)
            except (ImgSearchError, OSError) as exc:
                return exc

        answers: list[_Enriched | ImgSearchError | OSError] = list(self.pool.map(work, batch))
        ready = [a for a in answers if not isinstance(a, ImgSearchError | OSError)]
        encoded = iter(self._encode(ready))
        return [a if isinstance(a, ImgSearchError | OSError) else next(encoded)
                for a in answers]

    def _encode(self, ready: list[_Enriched]) -> list[Prepared]:
        if not ready:
            return []
        image_vectors = self.image_encoder.embed_images([image for _, image, _, _ in ready])
        texts = [item.metadata_text() for item, _, _, _ in ready]
        text_vectors: dict[int, NDArray[np.float32]] = {}
        with_text = [i for i, t in enumerate(texts) if t]
        text_encoder = self._text_encoder() if with_text else None
        if text_encoder is not None:
            encoded = text_encoder.embed_texts([texts[i] for i in with_text])
            text_vectors = dict(zip(with_text, encoded, strict=True))
        prepared = []
        for i, (item, _, thumb, original) in enumerate(ready):
            vectors = {"image": image_vectors[i]}
            if i in text_vectors:
                vectors["text"] = text_vectors[i]
            prepared.append(Prepared(item, vectors, thumb, original))
        return prepared


def _png(image: Image.Image) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _without_label(message: str, label: str) -> str:
    """The message without the ``label: `` it starts with (the failure names it once)."""
    return message[len(label) + 2:] if message.startswith(label + ": ") else message
