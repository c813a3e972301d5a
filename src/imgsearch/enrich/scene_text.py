"""Text read from a photo by RapidOCR: PP-OCR's text detector and recogniser on ONNX Runtime.

The models (PP-OCRv4 detection and recognition, a 0/180 degree orientation classifier)
ship inside the ``rapidocr-onnxruntime`` wheel: nothing is downloaded. Unlike Tesseract,
which is made for scanned pages, PP-OCR was trained on text in scenes, so one reading
finds tilted text, text on busy backgrounds and light text on dark alike. On the 200
rendered photos of bench/ocr.py it read 0.98 of the words (0.87 without the splitting
below) at 0.4-0.8 s an image, against Tesseract's 0.79 at 2-3.6 s with six readings
(BENCHMARKS.md, "OCR at ingest").

Limits: the image is scaled down to at most ``max_pixels``; at most ``MAX_LINES`` text
lines are recognised; recognition goes in batches and stops, returning nothing, when the
time per image has run out (detection itself is bounded by the pixel cap).

The recogniser drops most spaces between words ("GIANTSMERMAID"), so each run of
letters that is not itself a known word is split into the likeliest English words by
their frequency (``wordninja``'s table of English Wikipedia word counts), and kept as
read too, since it may be one word the table lacks ("toonie"). A split with fragments
(pieces of one or two letters that are not English words) is not made: that is what a
word of another language or a name falls into.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

MIN_SCORE = 0.6  # mean confidence of a text line below which it is left out (not tuned)
MAX_LINES = 200  # text lines recognised at most per image
_BATCH = 6  # lines recognised per model call (checking the time between calls)
_LETTERS = re.compile(r"[^\W\d_]{6,}")  # a run of letters long enough to hold two words
_WORD = re.compile(r"\w+")
# the words of one or two letters a run of English may hold ("deprivethemof", "arare")
_SHORT_WORDS = frozenset({"a", "i", "am", "an", "as", "at", "be", "by", "do", "go", "he",
                          "if", "in", "is", "it", "me", "my", "no", "of", "oh", "ok", "on",
                          "or", "so", "to", "up", "us", "we"})


@dataclass
class RapidOcrReader:
    """A loaded RapidOCR pipeline (one per process: the sessions are thread-safe)."""

    pipeline: Any
    split_words: Callable[[str], list[str]]
    timeout_s: float = 20.0
    max_pixels: int = 4_000_000
    scale: Callable[[Image.Image, int], Image.Image] = field(default=lambda i, _: i)

    def read(self, image: Image.Image) -> str | None:
        """The words read from ``image`` (None when there are none or time ran out)."""
        try:
            return self._read(image, time.monotonic() + self.timeout_s)
        except Exception:  # an OCR failure (a degenerate text box, a model error)
            return None  # loses the image's text, never the image

    def _read(self, image: Image.Image, deadline: float) -> str | None:
        pixels = np.asarray(self.scale(image.convert("RGB"), self.max_pixels))[:, :, ::-1]
        ocr = self.pipeline
        prepared, _, _ = ocr.preprocess(np.ascontiguousarray(pixels))
        prepared, _ = ocr.maybe_add_letterbox(prepared, {})
        boxes, _ = ocr.auto_text_det(prepared)
        if boxes is None:
            return None
        crops = ocr.get_crop_img_list(prepared, list(boxes)[:MAX_LINES])
        crops, _, _ = ocr.text_cls(crops)
        lines: list[str] = []
        for start in range(0, len(crops), _BATCH):
            if time.monotonic() > deadline:
                return None  # no half-read text
            recognised, _ = ocr.text_rec(crops[start:start + _BATCH])
            lines += [text for text, score in recognised if score >= MIN_SCORE]
        return words_of(lines, self.split_words)


def words_of(lines: Sequence[str], split_words: Callable[[str], list[str]]) -> str | None:
    """The text lines as words: runs of letters split into words, fragments left out."""
    kept: list[str] = []
    for line in lines:
        spaced = _LETTERS.sub(lambda run: _spaced(run.group(), split_words), line)
        words = [w for w in spaced.split() if sum(c.isalnum() for c in w) >= 2]
        if words:
            kept.append(" ".join(words))
    return "\n".join(kept) or None


def _spaced(run: str, split_words: Callable[[str], list[str]]) -> str:
    parts = split_words(run)
    # the run as read is kept too: it may be one word the table lacks ("toonie")
    return " ".join([*parts, run]) if len(parts) > 1 else run


def load_rapidocr(timeout_s: float, max_pixels: int,
                  scale: Callable[[Image.Image, int], Image.Image]
                  ) -> tuple[RapidOcrReader | None, str | None]:
    """The reader, or None and why it cannot run (a package missing)."""
    try:
        import wordninja
        from rapidocr_onnxruntime import RapidOCR
    except ImportError as exc:
        return None, (f"OCR is on but {exc.name or 'rapidocr_onnxruntime'} is not "
                      "installed (pip install --no-deps rapidocr-onnxruntime==1.4.4; pip "
                      "install pyclipper shapely pyyaml wordninja; or set ocr_engine = "
                      "tesseract); no text is read")
    # one thread each: ingest already decodes one image per core
    pipeline = RapidOCR(intra_op_num_threads=1, inter_op_num_threads=1)
    return RapidOcrReader(pipeline, _splitter(wordninja), timeout_s, max_pixels, scale), None


def _splitter(wordninja: Any) -> Callable[[str], list[str]]:
    known = wordninja.DEFAULT_LANGUAGE_MODEL._wordcost  # word -> cost, lower case

    def split(run: str) -> list[str]:
        if run.lower() in known:
            return [run]
        parts: list[str] = wordninja.split(run)
        if "".join(parts) != run:  # it drops what it cannot place
            return [run]
        # fragments are what a word of another language (or a name) falls into:
        # "Wesnoth" -> "Wes no th", "completar" -> "comp le tar"; those stay whole
        return parts if all(len(p) > 2 or p.lower() in _SHORT_WORDS for p in parts) \
            else [run]
    return split


def words_in(text: str | None) -> set[str]:
    """The words of stored OCR text, case-folded (for checks and benchmarks)."""
    return {w.casefold() for w in _WORD.findall(text or "")}
