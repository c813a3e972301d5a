"""Text read from an image's pixels: the engine chosen by ``ocr_engine``, and Tesseract.

``rapidocr`` (the default; enrich/scene_text.py) reads scene text with PP-OCR models
that ship in its wheel. ``tesseract`` (the ``tesseract`` command) reads more languages
but photos less well and some twenty times slower (BENCHMARKS.md, "OCR at ingest").

Tesseract runs as a child process with a time limit per image (shared by its passes),
one thread (ingest already runs one image per core), on a grey copy of the image scaled
down to at most ``max_pixels``. Tesseract is made for scanned pages: on photos it reads
text tilted more than ~4 degrees not at all, and its page layout analysis skips text on
busy backgrounds; light text with a dark outline (posters, memes) it reads only
inverted. So each image is read six times: straight and turned 7 degrees either way
(covering tilts up to ~11 degrees), each as is and inverted, as sparse text (``--psm
11``) with Sauvola's local thresholding, and the words of the readings are merged. On
20 rendered photos this took word recall from 0.17 (one plain reading) to 0.78, at
about six times the cost (bench/ocr.py; BENCHMARKS.md). Words it is unsure of (confidence
under ``MIN_CONFIDENCE``; ``SHORT_CONFIDENCE`` for two characters) and fragments of
fewer than two letters or digits are left out: on a photo
without text Tesseract reads noise, and noise in the keyword index matches queries it
has nothing to do with.
"""

from __future__ import annotations

import io
import math
import shutil
import subprocess
import time
from dataclasses import dataclass
from typing import Protocol

from PIL import Image, ImageOps

from imgsearch.enrich.scene_text import load_rapidocr

MIN_CONFIDENCE = 60.0
SHORT_CONFIDENCE = 90.0  # for words of two letters or digits
# each reading: degrees the image is turned, and whether it is inverted (light text)
PASSES: tuple[tuple[float, bool], ...] = tuple(
    (angle, inverted) for inverted in (False, True) for angle in (0.0, -7.0, 7.0))
_MIN_SIDE = 32


class TextReader(Protocol):
    """What ingest asks of an OCR engine."""

    def read(self, image: Image.Image) -> str | None:
        """The words read from ``image``, one text line a line; None when there are none."""
        ...


@dataclass(frozen=True)
class OcrEngine:
    """A ready Tesseract: where the command is and what to ask it."""

    command: str
    languages: str = "eng"
    timeout_s: float = 20.0
    max_pixels: int = 4_000_000

    def read(self, image: Image.Image) -> str | None:
        """The words read from ``image`` (None when there are none or time ran out)."""
        grey = _scaled(image.convert("L"), self.max_pixels)
        deadline = time.monotonic() + self.timeout_s
        lines: list[str] = []
        seen: set[str] = set()
        for angle, inverted in PASSES:
            turned = grey if not angle else grey.rotate(
                angle, expand=True, fillcolor=255, resample=Image.Resampling.BICUBIC)
            if inverted:
                turned = ImageOps.invert(turned)
            tsv = self._tesseract(turned, deadline - time.monotonic())
            if tsv is None:
                return None  # out of time, or tesseract failed: no half-read text
            for line in words_from_tsv(tsv).splitlines():
                new = [w for w in line.split() if w.casefold() not in seen]
                seen.update(w.casefold() for w in new)
                if new:
                    lines.append(" ".join(new))
        return "\n".join(lines) or None

    def _tesseract(self, image: Image.Image, seconds: float) -> str | None:
        if seconds <= 0:
            return None
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", compress_level=1)
        try:
            done = subprocess.run(
                [self.command, "stdin", "stdout", "-l", self.languages, "--psm", "11",
                 "-c", "thresholding_method=2", "tsv"],
                input=buffer.getvalue(), capture_output=True, timeout=seconds,
                env={"OMP_THREAD_LIMIT": "1"}, check=False)
        except (subprocess.TimeoutExpired, OSError):
            return None
        return done.stdout.decode("utf-8", "replace") if done.returncode == 0 else None


def words_from_tsv(tsv: str) -> str:
    """The confident words of Tesseract's TSV output, one line of text per text line."""
    lines: dict[tuple[str, str, str, str], list[str]] = {}
    for row in tsv.splitlines()[1:]:
        cells = row.split("\t")
        if len(cells) < 12 or cells[0] != "5":  # level 5: a word
            continue
        try:
            confidence = float(cells[10])
        except ValueError:
            continue
        word = cells[11].strip()
        letters = sum(c.isalnum() for c in word)
        # single characters and short fragments are what noise reads as
        if letters < 2 or confidence < (MIN_CONFIDENCE if letters > 2 else SHORT_CONFIDENCE):
            continue
        lines.setdefault((cells[1], cells[2], cells[3], cells[4]), []).append(word)
    return "\n".join(" ".join(words) for words in lines.values())


def _scaled(image: Image.Image, max_pixels: int) -> Image.Image:
    width, height = image.size
    if width * height <= max_pixels:
        return image
    factor = math.sqrt(max_pixels / (width * height))
    size = (max(_MIN_SIDE, int(width * factor)), max(_MIN_SIDE, int(height * factor)))
    return image.resize(size, Image.Resampling.LANCZOS)


def find_ocr(languages: str, timeout_s: float, max_pixels: int, engine: str = "rapidocr"
             ) -> tuple[TextReader | None, str | None]:
    """A ready engine, or None and why OCR cannot run (a package or command missing, a
    language missing). ``languages`` are Tesseract's; RapidOCR's models read English (and
    Chinese) whatever they say."""
    if engine == "rapidocr":
        return load_rapidocr(timeout_s, max_pixels, _scaled)
    return find_tesseract(languages, timeout_s, max_pixels)


def find_tesseract(languages: str, timeout_s: float, max_pixels: int
                   ) -> tuple[OcrEngine | None, str | None]:
    """Tesseract ready to run, or None and why it cannot."""
    command = shutil.which("tesseract")
    if command is None:
        return None, ("OCR is on but the tesseract command is not installed "
                      "(apt-get install tesseract-ocr tesseract-ocr-eng); no text is read")
    try:
        listed = subprocess.run([command, "--list-langs"], capture_output=True, timeout=30,
                                check=False, env={"OMP_THREAD_LIMIT": "1"})
    except (subprocess.TimeoutExpired, OSError) as exc:
        return None, f"OCR is on but tesseract does not run ({exc}); no text is read"
    have = set(listed.stdout.decode("utf-8", "replace").split()[1:]) | \
        set(listed.stderr.decode("utf-8", "replace").split())
    wanted = [code for code in languages.split("+") if code.strip()]
    missing = [code for code in wanted if code not in have]
    if not wanted or missing:
        return None, (f"OCR is on but tesseract has no data for the language(s) "
                      f"{', '.join(missing) or repr(languages)} (install "
                      f"tesseract-ocr-<code>, or set ocr_languages); no text is read")
    return OcrEngine(command, "+".join(wanted), timeout_s, max_pixels), None
