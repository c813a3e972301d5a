"""Query understanding: "red nike shoes under $80" -> colour, brand, price and the text left.

Price phrases, basic colour words (with synonyms: navy -> blue) and values that exist in
the catalog's brand and category columns are recognised. Prices, colours and brands
become filters and leave the text; a category becomes a filter but stays in the text,
because it still describes what is wanted. The interpretation is returned with the
results so a person can see (and undo, with ``parse=False``) what was understood.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from imgsearch.enrich.colors import normalize_color_name
from imgsearch.search.photo_terms import read_photo_terms

_NUMBER = r"[$€£]?\s*(\d+(?:[.,]\d{1,2})?)\s*(?:\$|usd|eur|€|dollars?|euros?)?"
_PRICE_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(rf"\b(?:between|from)\s+{_NUMBER}\s+(?:and|to|-)\s+{_NUMBER}", re.I), "range"),
    # a bare "20-50" could be a size or a model number: only with a currency sign
    (re.compile(r"\$\s*(\d+(?:[.,]\d{1,2})?)\s*(?:-|to)\s*\$?\s*(\d+(?:[.,]\d{1,2})?)",
                re.I), "range"),
    (re.compile(rf"\b(?:under|below|less\s+than|cheaper\s+than|at\s+most|max(?:imum)?|"
                rf"up\s+to|no\s+more\s+than)\s+{_NUMBER}", re.I), "max"),
    (re.compile(rf"<=?\s*{_NUMBER}", re.I), "max"),
    (re.compile(rf"\b(?:over|above|more\s+than|at\s+least|min(?:imum)?|from|"
                rf"pricier\s+than)\s+{_NUMBER}", re.I), "min"),
    (re.compile(rf">=?\s*{_NUMBER}", re.I), "min"),
]
_WORD = re.compile(r"[\w'&-]+", re.UNICODE)
_MAX_NGRAM = 3
# Words that name a colour and little else. "coffee", "rose", "gold", "orange" or "mint"
# name things too, so in a query they stay text; catalogs may still use them as colours.
COLOR_WORDS = frozenset({
    "red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "beige", "black",
    "gray", "grey", "white", "navy", "crimson", "scarlet", "maroon", "burgundy", "teal",
    "turquoise", "cyan", "magenta", "violet", "lavender", "indigo", "khaki", "charcoal",
    "fuchsia", "aqua", "azure", "cobalt", "emerald", "lilac", "mauve", "taupe", "ochre",
    "vermilion", "chartreuse", "cerulean", "reddish", "bluish", "greenish", "yellowish",
    "pinkish", "purplish", "brownish", "greyish", "grayish",
})
# left dangling at either end once price phrases are cut out ("at least 10 and at most 40")
_CONNECTORS = frozenset({"and", "or", "but", "with", "for", "in", "priced", "costing", "at"})


@dataclass
class Interpretation:
    text: str
    price_min: float | None = None
    price_max: float | None = None
    colors: list[str] = field(default_factory=list)
    brands: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    understood: list[dict[str, str]] = field(default_factory=list)
    # photos (search.photo_terms): "in 2019", "last summer", "taken with a Pixel"
    taken_after: str | None = None
    taken_before: str | None = None
    cameras: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        filters: dict[str, Any] = {}
        if self.price_min is not None:
            filters["price_min"] = self.price_min
        if self.price_max is not None:
            filters["price_max"] = self.price_max
        for name in ("colors", "brands", "categories", "cameras"):
            if getattr(self, name):
                filters[name] = list(getattr(self, name))
        for name in ("taken_after", "taken_before"):
            if getattr(self, name) is not None:
                filters[name] = getattr(self, name)
        return {"text": self.text, "filters": filters, "understood": self.understood}


def _price(value: str) -> float:
    return float(value.replace(",", "."))


def _singular(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith(("ses", "xes", "shes", "ches")):
        return word[:-2]
    if len(word) > 2 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def _key(words: Iterable[str]) -> str:
    return " ".join(_singular(w.casefold()) for w in words)


def _is_color_word(word: str) -> bool:
    folded = word.casefold()
    return folded in COLOR_WORDS or (folded.endswith("s") and folded[:-1] in COLOR_WORDS)


class Vocabulary:
    """The catalog's brand and category values, matched case- and plural-insensitively."""

    def __init__(self, brands: Iterable[str], categories: Iterable[str],
                 cameras: Iterable[str] = ()) -> None:
        self.brands = {_key(_WORD.findall(b)): b for b in brands if _WORD.findall(b)}
        self.categories = {_key(_WORD.findall(c)): c for c in categories if _WORD.findall(c)}
        self.cameras = {" ".join(_WORD.findall(c.casefold())): c for c in cameras
                        if _WORD.findall(c)}


def understand(text: str, vocabulary: Vocabulary, now: datetime | None = None
               ) -> Interpretation:
    result = Interpretation(text=text)
    photo = read_photo_terms(text, vocabulary.cameras, now or datetime.now())
    result.taken_after, result.taken_before = photo.taken_after, photo.taken_before
    result.cameras, result.understood = photo.cameras, photo.understood
    remaining = photo.text
    for pattern, kind in _PRICE_PATTERNS:
        match = pattern.search(remaining)
        if not match:
            continue
        values = [_price(g) for g in match.groups() if g is not None]
        if kind == "range" and len(values) == 2:
            result.price_min, result.price_max = min(values), max(values)
        elif kind == "max" and result.price_max is None:
            result.price_max = values[0]
        elif kind == "min" and result.price_min is None:
            result.price_min = values[0]
        else:
            continue
        result.understood.append({"span": match.group(0).strip(), "as": f"price {kind}"})
        remaining = (remaining[:match.start()] + " " + remaining[match.end():])
    words = _WORD.findall(remaining)
    kept: list[str] = []
    i = 0
    while i < len(words):
        matched = False
        for n in range(min(_MAX_NGRAM, len(words) - i), 0, -1):
            span = words[i:i + n]
            key = _key(span)
            phrase = " ".join(span)
            if key in vocabulary.brands:
                result.brands.append(vocabulary.brands[key])
                result.understood.append({"span": phrase, "as": "brand"})
            elif key in vocabulary.categories:
                result.categories.append(vocabulary.categories[key])
                result.understood.append({"span": phrase, "as": "category"})
                kept.extend(span)
            elif n == 1 and _is_color_word(span[0]) and \
                    (color := normalize_color_name(span[0])) is not None:
                result.colors.append(color)
                result.understood.append({"span": phrase, "as": f"color {color}"})
            else:
                continue
            i += n
            matched = True
            break
        if not matched:
            kept.append(words[i])
            i += 1
    while kept and kept[-1].casefold() in _CONNECTORS:
        kept.pop()
    while kept and kept[0].casefold() in _CONNECTORS:
        kept.pop(0)
    left = " ".join(kept).strip()
    # A query made only of filters still needs text to rank by: keep what was typed.
    result.text = left or " ".join(_WORD.findall(remaining)) or text
    if photo.understood and not photo.text and not left:
        result.text = ""  # photo filters alone: the query lists what passes them
    for name in ("colors", "brands", "categories"):
        setattr(result, name, list(dict.fromkeys(getattr(result, name))))
    return result
