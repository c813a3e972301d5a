"""Titles made from file names, cleaned for the text encoder and the keyword index.

Catalogs built from folders, and many product feeds, title an item with its file name:
``bird_owl_2.png``, ``IMG_20190612_153012.jpg``, ``redRoseBouquet-0042``. A text encoder
reads ``bird_owl_2`` as one odd word, and the keyword index cannot find ``rose`` in
``redRoseBouquet``. :func:`clean_title` turns such a title into words (``bird owl``,
``red rose bouquet``): it drops the file extension, splits snake_case, kebab-case and
camelCase, and drops numbers and camera prefixes (``IMG``, ``DSC``, ``PXL`` ...), which
say nothing of what is shown. A title that reads as prose (it has spaces and no
underscores) is left exactly as it is: "Route 66 sign" keeps its number. The raw title
is what people see; the cleaned one is only what the encoder and the index read.
"""

from __future__ import annotations

import re

# extensions of the image formats a file-name title may still carry
_EXTENSION = re.compile(r"\.(?:jpe?g|png|gif|webp|bmp|tiff?|heic|heif|avif)$", re.I)
# a lower-case run of two or more letters followed by an upper-case letter that starts a
# word: "redRose" splits, "iPhone" and "McDonald" (one lower-case letter) do not
_CAMEL = re.compile(r"(?<=[a-z]{2})(?=[A-Z][a-z])|(?<=[a-z])(?=[A-Z]{2,}[a-z]*\b)")
_LETTERS_DIGITS = re.compile(r"(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])")
_SEPARATORS = re.compile(r"[_\-.+~()\[\]]+")
# what cameras and phones put in front of a file's number
CAMERA_PREFIXES = frozenset({
    "img", "image", "dsc", "dscn", "dscf", "dsci", "pxl", "mvimg", "vid", "gopr", "gp",
    "dji", "pict", "pic", "photo", "scan", "screenshot", "sam", "wp", "p", "imag", "pano",
    "burst", "edited", "copy", "final", "thumb",
})
_NUMBERISH = re.compile(r"^(?:\d+|[a-z]?\d+[a-z]?|x?\d+x\d+)$", re.I)


def looks_like_file_name(title: str) -> bool:
    """Whether ``title`` reads as a file name rather than as words: no spaces with an
    underscore or extension, a run-together camelCase word, or a word glued to digits."""
    text = title.strip()
    if not text:
        return False
    if "_" in text or _EXTENSION.search(text):
        return True
    if " " in text:
        return False
    return bool(_CAMEL.search(text) or _LETTERS_DIGITS.search(text) or "-" in text)


def clean_title(title: str | None) -> str | None:
    """``title`` as words for the encoder and the keyword index (see the module doc);
    None and prose titles come back unchanged, and a title with no word left (a bare
    ``IMG_0001.jpg``) comes back empty."""
    if title is None or not looks_like_file_name(title):
        return title
    text = _EXTENSION.sub("", title.strip())
    words: list[str] = []
    for part in _SEPARATORS.split(text):
        for chunk in part.split():
            spaced = _LETTERS_DIGITS.sub(" ", _CAMEL.sub(" ", chunk))
            for word in spaced.split():
                if _NUMBERISH.match(word) or word.casefold() in CAMERA_PREFIXES:
                    continue
                words.append(word.lower() if not word.isupper() or len(word) > 4
                             else word)
    return " ".join(words)
