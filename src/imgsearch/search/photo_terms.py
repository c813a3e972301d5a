"""Photo phrases in a query: when ("in 2019", "last summer") and with what ("taken with
a Pixel") a photo was taken. They become taken_after / taken_before and camera filters
and leave the text.

Dates are local to the photo (what its camera's clock said). Seasons are those of the
calendar, whichever hemisphere the photo is from: summer is June to August. "last
summer" is the latest summer that has ended (in July 2026: June-August 2025).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
           "september", "october", "november", "december")
_SEASONS = {"spring": (3, 6), "summer": (6, 9), "autumn": (9, 12), "fall": (9, 12)}
_YEAR = r"(1[89]\d\d|2[01]\d\d)"
_IN_YEAR = re.compile(rf"\b(?:in|from|during|of)\s+(?:the\s+year\s+)?{_YEAR}\b", re.I)
_MONTH_YEAR = re.compile(rf"\b(?:in\s+)?({'|'.join(_MONTHS)})\s+(?:of\s+)?{_YEAR}\b", re.I)
_SEASON_YEAR = re.compile(rf"\b(?:in\s+(?:the\s+)?)?({'|'.join(_SEASONS)})\s+(?:of\s+)?"
                          rf"{_YEAR}\b", re.I)
_RELATIVE = re.compile(rf"\b(?:in\s+|from\s+|during\s+)?(last|this)\s+"
                       rf"(year|{'|'.join(_SEASONS)})\b", re.I)
_TAKEN_WITH = re.compile(r"\b(?:taken|shot)\s+(?:with|on|by)\s+(?:an?\s+|my\s+|the\s+)?"
                         r"([\w+-]+(?:\s+[\w+-]+){0,2})", re.I)
_WORDS = re.compile(r"[\w+-]+")
# words left of "my photos from last summer" that ask for nothing more
_FILLER = frozenset({"photo", "photos", "picture", "pictures", "pic", "pics", "image",
                     "images", "shot", "shots", "snap", "snaps", "show", "me", "my", "all",
                     "the", "a", "an", "of", "and", "from", "in", "on", "at", "taken"})


@dataclass
class PhotoTerms:
    text: str
    taken_after: str | None = None
    taken_before: str | None = None
    cameras: list[str] = field(default_factory=list)
    understood: list[dict[str, str]] = field(default_factory=list)


def _month(year: int, month: int) -> str:
    """The ISO prefix of a month; month 13 is January of the next year."""
    return f"{year + (month - 1) // 12:04d}-{(month - 1) % 12 + 1:02d}"


def _season(name: str, year: int) -> tuple[str, str]:
    start, end = _SEASONS[name.casefold()]
    return _month(year, start), _month(year, end)


def read_photo_terms(text: str, cameras: dict[str, str], now: datetime) -> PhotoTerms:
    """Take date and camera phrases out of ``text``. ``cameras`` maps a camera value's
    folded words to the value; a phrase names every camera whose words contain it."""
    terms = PhotoTerms(text=text)
    remaining = text
    for pattern in (_MONTH_YEAR, _SEASON_YEAR, _RELATIVE, _IN_YEAR):
        match = pattern.search(remaining)
        if match is None or terms.taken_after is not None:
            continue
        span = _span(match, now)
        if span is None:
            continue
        terms.taken_after, terms.taken_before = span
        terms.understood.append({"span": match.group(0).strip(),
                                 "as": f"taken {span[0]} to before {span[1]}"})
        remaining = remaining[:match.start()] + " " + remaining[match.end():]
    match = _TAKEN_WITH.search(remaining)
    if match is not None and cameras:
        words = _WORDS.findall(match.group(1).casefold())
        # the longest leading run of words that names known cameras ("pixel 4a at night")
        for n in range(len(words), 0, -1):
            wanted = words[:n]
            found = [value for key, value in cameras.items()
                     if _contains(key.split(), wanted)]
            if found:
                terms.cameras = found
                said = re.search(r"\b" + r"\W+".join(map(re.escape, wanted)),
                                 match.group(0), re.I)
                end = match.start() + (said.end() if said else len(match.group(0)))
                terms.understood.append({"span": remaining[match.start():end].strip(),
                                         "as": "camera " + ", ".join(found)})
                remaining = remaining[:match.start()] + " " + remaining[end:]
                break
    terms.text = " ".join(remaining.split())
    if terms.understood and all(w.casefold() in _FILLER for w in _WORDS.findall(terms.text)):
        terms.text = ""  # "photos from last summer": the filters are the whole query
    return terms


def _contains(words: list[str], wanted: list[str]) -> bool:
    return any(words[i:i + len(wanted)] == wanted for i in range(len(words)))


def _span(match: re.Match[str], now: datetime) -> tuple[str, str] | None:
    groups = match.groups()
    if match.re is _IN_YEAR:
        year = int(groups[0])
        return f"{year:04d}", f"{year + 1:04d}"
    if match.re is _MONTH_YEAR:
        month = _MONTHS.index(groups[0].casefold()) + 1
        return _month(int(groups[1]), month), _month(int(groups[1]), month + 1)
    if match.re is _SEASON_YEAR:
        return _season(groups[0], int(groups[1]))
    which, what = groups[0].casefold(), groups[1].casefold()
    if what == "year":
        year = now.year - (which == "last")
        return f"{year:04d}", f"{year + 1:04d}"
    end = _SEASONS[what][1]
    year = now.year
    if which == "last" and now.month < end:  # this year's has not ended yet
        year -= 1
    return _season(what, year)
