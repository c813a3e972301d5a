"""Text read from an image's pixels, by Tesseract (the ``tesseract`` command).

Tesseract runs as a child process with a time limit per image, one thread (ingest
already runs one image per core), on a grey copy of the image scaled down to at most
``max_pixels``. Words it is unsure of (confidence under ``MIN_CONFIDENCE``) and
fragments with no letter or digit are left out: on a photo without text Tesseract reads
noise, and noise in the keyword index matches queries it has nothing to do with.
"""

from __future__ import annotations

import io
import math
import shutil
import subprocess
from dataclasses import dataclass

from PIL import Image

MIN_CONFIDENCE = 60.0
_MIN_SIDE = 32


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
        buffer = io.BytesIO()
        grey.save(buffer, format="PNG", compress_level=1)
        try:
            done = subprocess.run(
                [self.command, "stdin", "stdout", "-l", self.languages, "--psm", "3",
                 "tsv"],
                input=buffer.getvalue(), capture_output=True, timeout=self.timeout_s,
                env={"OMP_THREAD_LIMIT": "1"}, check=False)
        except (subprocess.TimeoutExpired, OSError):
            return None
        if done.returncode != 0:
            return None
        return words_from_tsv(done.stdout.decode("utf-8", "replace")) or None


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
        if confidence < MIN_CONFIDENCE or not any(c.isalnum() for c in word):
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


def find_ocr(languages: str, timeout_s: float, max_pixels: int
             ) -> tuple[OcrEngine | None, str | None]:
    """A ready engine, or None and why OCR cannot run (no command, a language missing)."""
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
