"""Turn items into what the catalog stores: decode, enrich, encode — in batches.

Part of the composition root (beside ``engine``): it wires the ingest, enrich and
encode stages together. Decoding and the pixel-derived fields (pHash, colours,
thumbnail) run in worker processes (``ingest.workers``: a decode that passes
``decode_timeout_s`` is stopped by killing its worker, and two cores decode in
parallel where threads would share one interpreter lock), or on a thread pool in this
process when ``decode_processes`` is off. An image encoder that can run beside decoding
(``Encoder.image_vector_job``: the weight-free descriptor) runs in the worker too, and
then only the vector comes back, not the decoded pixels (unless OCR reads them here);
other encoders see whole batches, in this process. ``prepare_ahead`` decodes the next
batch while this one is encoded and written.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from imgsearch.config import Settings
from imgsearch.encode.base import Encoder
from imgsearch.engine.text_vectors import TextVectors
from imgsearch.enrich.colors import dominant_colors, normalize_color_name
from imgsearch.enrich.ocr import TextReader, find_ocr
from imgsearch.enrich.phash import perceptual_hash
from imgsearch.enrich.photo import photo_fields
from imgsearch.enrich.thumbnails import shrink_for_thumbnail, thumbnail_bytes
from imgsearch.errors import FetchError, ImageError, ImgSearchError
from imgsearch.ingest.decode import DecodedImage, decode_file, decode_image
from imgsearch.ingest.fetch import Fetcher
from imgsearch.ingest.workers import WorkerPool, shared_pool
from imgsearch.store.files import original_relpath
from imgsearch.types import ImageInput, IngestFailure, Item

_OCR_SIDE = 1200  # shorter side of the decode OCR reads (its longer side up to twice)
# an item with its derived fields, its decoded image, its image vector when a worker
# computed it, its thumbnail and the original bytes to keep
_Enriched = tuple[Item, Image.Image, NDArray[np.float32] | None, bytes, bytes | None]
# what stands for the pixels that stay in a worker (their vector came back instead)
_PIXELS_LEFT_IN_WORKER = Image.new("RGB", (1, 1))
_T = TypeVar("_T")
_Batch = Sequence[tuple[Item, ImageInput | None]]
# a worker is recycled after this many images, or when it holds this much memory
WORKER_MAX_JOBS = 2000
WORKER_MAX_RSS_MB = 1024
_WORKER_PRELOAD = (__name__, "imgsearch.encode.descriptor")


@dataclass
class Prepared:
    """An item ready to be written: derived fields filled, vectors computed."""

    item: Item
    vectors: dict[str, NDArray[np.float32]]
    thumbnail: bytes
    original: bytes | None = None  # the uploaded bytes to keep, at item.original


@dataclass(frozen=True)
class DecodeRequest:
    """What a decode job needs: bytes or a file path, and the caps that apply to it."""

    payload: bytes | str  # bytes, or the path of a file the job reads itself
    source: str
    max_bytes: int
    max_pixels: int
    min_side: int
    reduce_to: int
    longer_at_least: int = 0  # a query image: its local features need this longer side
    # for derive_job: the image encoder's per-image function (Encoder.image_vector_job),
    # and whether the caller needs the decoded pixels back even so (OCR reads them)
    image_vector: Callable[[Image.Image], NDArray[np.float32]] | None = None
    keep_pixels: bool = True


@dataclass(frozen=True)
class Derived:
    """A decoded image and what is computed from its pixels alone.

    With ``image_vector`` set, ``decoded.image`` is a 1x1 stand-in unless the request
    asked to keep the pixels: sending a megapixel image back costs more than the vector."""

    decoded: DecodedImage
    phash: int
    colors: tuple[str, ...]
    thumbnail: bytes
    image_vector: NDArray[np.float32] | None = None


def decode_job(request: DecodeRequest) -> DecodedImage:
    """Decode one image (run in a worker process, or in this one)."""
    r = request
    if isinstance(r.payload, bytes):
        return decode_image(r.payload, source=r.source, max_bytes=r.max_bytes,
                            max_pixels=r.max_pixels, min_side=r.min_side,
                            reduce_to=r.reduce_to, longer_at_least=r.longer_at_least)
    return decode_file(Path(r.payload), max_bytes=r.max_bytes, max_pixels=r.max_pixels,
                       min_side=r.min_side, reduce_to=r.reduce_to,
                       longer_at_least=r.longer_at_least)


def derive_job(request: DecodeRequest, thumbnail_size: int) -> Derived:
    """Decode one image and derive pHash, colours and thumbnail from its pixels.

    One resize chain: the thumbnail is shrunk from the decode, and pHash and colours,
    which look at 32x32 and 64x64 pixels, read the thumbnail's pixels rather than the
    larger decode; so does the image encoder when the thumbnail's shorter side is still
    what it reads (``request.reduce_to``) and nothing else needs the decode (OCR), here
    or, on threads, in the batch encoder that gets those same pixels."""
    decoded = decode_job(request)
    small = shrink_for_thumbnail(decoded.image, thumbnail_size)
    if not request.keep_pixels and min(small.size) >= request.reduce_to:
        decoded = replace(decoded, image=small)
    vector = None if request.image_vector is None else request.image_vector(decoded.image)
    if vector is not None and not request.keep_pixels:
        decoded = replace(decoded, image=_PIXELS_LEFT_IN_WORKER)
    return Derived(decoded, perceptual_hash(small),
                   tuple(c.name for c in dominant_colors(small)),
                   thumbnail_bytes(small), vector)


def decode_target(image_side: int, thumbnail_size: int, ocr: bool) -> tuple[int, int]:
    """(shorter side, longer side) an ingested image is decoded at least as large as:
    what its largest consumer needs. JPEGs are decoded at the smallest DCT scale
    (1/2, 1/4, 1/8) that keeps both (``ingest.decode``): the image encoder needs the
    shorter side, the thumbnail the longer; OCR reads a larger decode."""
    if ocr:  # text needs its pixels (capped by ocr_max_pixels)
        return max(image_side, thumbnail_size, _OCR_SIDE), 0
    return image_side, thumbnail_size


def batched(entries: Iterable[_T], size: int) -> Iterator[list[_T]]:
    """``entries`` in lists of ``size`` (the last may be shorter)."""
    batch: list[_T] = []
    for entry in entries:
        batch.append(entry)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


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
        self.text_vectors = TextVectors()
        self.workers = settings.ingest_workers or (os.cpu_count() or 1)
        self.pool = ThreadPoolExecutor(max_workers=self.workers,
                                       thread_name_prefix="imgsearch-decode")
        # The functions run per image; a seam for tests (a module-level function, since
        # worker processes receive it by name).
        self.decode_job: Callable[[DecodeRequest], DecodedImage] = decode_job
        self.derive_job: Callable[[DecodeRequest, int], Derived] = derive_job
        # why OCR, switched on, reads nothing (no tesseract, a language missing)
        self.ocr: TextReader | None = None
        self.ocr_unavailable: str | None = None
        if settings.ocr:
            self.ocr, self.ocr_unavailable = find_ocr(
                settings.ocr_languages, settings.ocr_timeout_s, settings.ocr_max_pixels,
                settings.ocr_engine)

    def close(self) -> None:
        self.pool.shutdown(wait=True)

    @property
    def processes(self) -> WorkerPool | None:
        """The shared worker processes, or None when decoding runs in this process."""
        if not self.settings.decode_processes:
            return None
        # one pool whatever the encoder (a process may open collections of several):
        # the default image encoder's per-image job is loaded with this module
        return shared_pool(self.workers, max_jobs=WORKER_MAX_JOBS,
                           max_rss_mb=WORKER_MAX_RSS_MB, preload=_WORKER_PRELOAD)

    def start_workers(self) -> None:
        """Start the decode worker processes now rather than on the first image."""
        if self.processes is not None:
            self.processes.start()

    @property
    def reduce_to(self) -> tuple[int, int]:
        """(shorter, longer) side an ingested image is decoded at (``decode_target``)."""
        return decode_target(self.image_encoder.image_side, self.settings.thumbnail_size,
                             self.ocr is not None)

    def request(self, value: ImageInput | None, source: str,
                fetched: dict[str, bytes | FetchError] | None = None,
                longer_at_least: int = 0) -> DecodeRequest:
        """What to decode for ``value``: URLs are downloaded here, files read by the job.
        With ``longer_at_least`` (a query image, which makes no thumbnail), only what the
        image encoder and that longer side need is decoded."""
        s = self.settings
        if value is None:
            raise ImageError(f"{source}: the item has no image")
        if longer_at_least:
            reduce_to = self.image_encoder.image_side
        else:
            reduce_to, longer_at_least = self.reduce_to
        # The image vector is computed where the image is decoded when that is a worker
        # process (two cores work on it, and only the vector comes back); on threads
        # here, batches encode faster.
        in_worker = self.settings.decode_processes and not isinstance(value, Image.Image)
        image_vector = self.image_encoder.image_vector_job() if in_worker else None

        def of(payload: bytes | str, max_bytes: int) -> DecodeRequest:
            return DecodeRequest(payload, source, max_bytes, s.max_pixels, s.min_side,
                                 reduce_to, longer_at_least, image_vector=image_vector,
                                 keep_pixels=self.ocr is not None)

        if isinstance(value, Image.Image):
            return of(_png(value), 1 << 40)
        if isinstance(value, bytes):
            return of(value, s.max_file_bytes)
        ref = str(value)
        if is_url(ref):
            data = fetched.get(ref) if fetched else None
            if data is None:
                data = self.fetcher.fetch_one(ref)
            if isinstance(data, FetchError):
                raise data
            return of(data, s.max_download_bytes)
        return of(ref, s.max_file_bytes)

    def decode(self, value: ImageInput | None, source: str,
               fetched: dict[str, bytes | FetchError] | None = None,
               longer_at_least: int = 0) -> DecodedImage:
        request = self.request(value, source, fetched, longer_at_least)
        processes = None if isinstance(value, Image.Image) else self.processes
        if processes is None:
            return self.decode_job(request)
        return processes.run(self.decode_job, request, label=source,
                             timeout_s=self.settings.decode_timeout_s)

    def _derive(self, value: ImageInput | None, source: str,
                fetched: dict[str, bytes | FetchError] | None = None) -> Future[Derived]:
        """Start decoding and deriving; the future holds the result or the error."""
        try:
            request = self.request(value, source, fetched)
        except Exception as exc:  # handed to the caller through the future
            failed: Future[Derived] = Future()
            failed.set_exception(exc)
            return failed
        processes = None if isinstance(value, Image.Image) else self.processes
        if processes is None:
            return self.pool.submit(self.derive_job, request, self.settings.thumbnail_size)
        return processes.submit(self.derive_job, request, self.settings.thumbnail_size,
                                label=source, timeout_s=self.settings.decode_timeout_s)

    def _enrich(self, item: Item, derived: Derived, value: ImageInput | None) -> _Enriched:
        decoded = derived.decoded
        names = declared_colors(item)
        names += [c for c in derived.colors if c not in names]
        kept = self._original(item, value)
        enriched = replace(
            item, width=decoded.width, height=decoded.height,
            content_hash=decoded.content_hash, phash=derived.phash,
            colors=tuple(names),
            original=None if kept is None else original_relpath(decoded.content_hash,
                                                                decoded.format),
            **photo_fields(item, decoded.facts,
                           self.ocr.read(decoded.image) if self.ocr else None))
        return enriched, decoded.image, derived.image_vector, derived.thumbnail, kept

    def _original(self, item: Item, value: ImageInput | None) -> bytes | None:
        """The bytes to keep: those of an upload with no path or URL to read them again
        from, up to ``original_max_bytes``."""
        if item.image is not None or not isinstance(value, bytes | Image.Image):
            return None
        data = value if isinstance(value, bytes) else _png(value)
        return data if len(data) <= self.settings.original_max_bytes else None

    def _start(self, batch: _Batch) -> list[Future[Derived]]:
        urls = [str(v) for _, v in batch if isinstance(v, str) and is_url(v)]
        fetched = self.fetcher.fetch_many(urls) if urls else {}
        return [self._derive(value, item.image or item.id, fetched) for item, value in batch]

    def _finish(self, batch: _Batch, futures: list[Future[Derived]]
                ) -> tuple[list[Prepared], list[IngestFailure]]:
        ready: list[_Enriched] = []
        failures: list[IngestFailure] = []
        for (item, value), future in zip(batch, futures, strict=True):
            label = item.image or item.id
            try:
                ready.append(self._enrich(item, future.result(), value))
            except ImgSearchError as exc:
                failures.append(IngestFailure(label, _without_label(exc.message, label),
                                              exc.code, item.id))
            except OSError as exc:
                failures.append(IngestFailure(label, f"cannot read: {exc}", "io_error",
                                              item.id))
        return self._encode(ready), failures

    def prepare(self, batch: _Batch) -> tuple[list[Prepared], list[IngestFailure]]:
        """Decode, enrich and encode a batch; a bad item becomes a failure, never an abort."""
        return self._finish(batch, self._start(batch))

    def prepare_ahead(self, batches: Iterable[_Batch]
                      ) -> Iterator[tuple[_Batch, list[Prepared], list[IngestFailure]]]:
        """``prepare`` each batch, decoding the next one while the caller encodes and
        writes this one (the workers never wait for the writer, nor it for them)."""
        pending: tuple[_Batch, list[Future[Derived]]] | None = None
        for batch in batches:
            started = (batch, self._start(batch))
            if pending is not None:
                yield (pending[0], *self._finish(*pending))
            pending = started
        if pending is not None:
            yield (pending[0], *self._finish(*pending))

    def prepare_one(self, item: Item, value: ImageInput | None) -> Prepared:
        """Like ``prepare`` for a single item, but a bad image raises its own error."""
        source = item.image or item.id
        request = self.request(value, source)
        processes = None if isinstance(value, Image.Image) else self.processes
        if processes is None:
            derived = self.derive_job(request, self.settings.thumbnail_size)
        else:
            derived = processes.run(self.derive_job, request, self.settings.thumbnail_size,
                                    label=source, timeout_s=self.settings.decode_timeout_s)
        return self._encode([self._enrich(item, derived, value)])[0]

    def prepare_each(self, batch: Sequence[tuple[Item, ImageInput | None]]
                     ) -> list[Prepared | ImgSearchError | OSError]:
        """Like ``prepare``, but an answer per entry, in order: the prepared item, or the
        error that kept it out, as ``prepare_one`` would raise it. Encoded as one batch."""
        answers: list[_Enriched | ImgSearchError | OSError] = []
        for (item, value), future in zip(batch, self._start(batch), strict=True):
            try:
                answers.append(self._enrich(item, future.result(), value))
            except (ImgSearchError, OSError) as exc:
                answers.append(exc)
        ready = [a for a in answers if not isinstance(a, ImgSearchError | OSError)]
        encoded = iter(self._encode(ready))
        return [a if isinstance(a, ImgSearchError | OSError) else next(encoded)
                for a in answers]

    def _encode(self, ready: list[_Enriched]) -> list[Prepared]:
        if not ready:
            return []
        image_vectors = self._image_vectors(ready)
        texts = [item.metadata_text() for item, *_ in ready]
        text_vectors: dict[int, NDArray[np.float32]] = {}
        with_text = [i for i, t in enumerate(texts) if t]
        text_encoder = self._text_encoder() if with_text else None
        if text_encoder is not None:
            # a text met before (a catalog's repeated titles, a folder's tags) is
            # encoded once; the others shortest first (``engine.text_vectors``)
            encoded = self.text_vectors.embed(text_encoder, [texts[i] for i in with_text])
            text_vectors = dict(zip(with_text, encoded, strict=True))
        prepared = []
        for i, (item, _, _, thumb, original) in enumerate(ready):
            vectors = {"image": image_vectors[i]}
            if i in text_vectors:
                vectors["text"] = text_vectors[i]
            prepared.append(Prepared(item, vectors, thumb, original))
        return prepared


    def _image_vectors(self, ready: list[_Enriched]) -> list[NDArray[np.float32]]:
        """The workers' vectors, and the others encoded here as one batch."""
        missing = [i for i, entry in enumerate(ready) if entry[2] is None]
        encoded = iter(self.image_encoder.embed_images([ready[i][1] for i in missing])
                       if missing else ())
        return [vector if vector is not None else next(encoded)
                for _, _, vector, _, _ in ready]


def _png(image: Image.Image) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _without_label(message: str, label: str) -> str:
    """The message without the ``label: `` it starts with (the failure names it once)."""
    return message[len(label) + 2:] if message.startswith(label + ": ") else message
