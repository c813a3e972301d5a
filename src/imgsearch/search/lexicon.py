"""Which words name kinds of a thing: WordNet's noun hierarchy, read from its own files.

Shoppers type category-level words ("mammals", "insects", "desserts") that few titles
contain: a title says "A cow.", "A bee.", "Chocolate cake". WordNet (Princeton's lexical
database; Debian ships it as ``wordnet-base`` in ``/usr/share/wordnet``) knows that a cow
is a bovine, an ungulate, a placental mammal. :meth:`WordNet.narrower` turns a query
word into the words for kinds of it (``mammal`` -> ``cow``, ``cattle``, ``whale``, ...),
which the keyword index can then look for.

Two guards keep the expansion honest: a word counts as a kind of ``X`` only through its
first ``senses`` meanings (WordNet orders them by how often they are used, so "bug"
the insect counts, "bug" the microphone only if that meaning is that common), and only
up to ``depth`` steps down the hierarchy. Compounds that hold the word count too: a
drum is a "percussion instrument", so it is a kind of "percussion". A concept so broad that more
than ``limit`` words fall under it ("entity", "object") gives no expansion at all: it
says nothing about a picture.

The files are read in WordNet's documented database format (``wndb(5)``): ``index.noun``
lists each lemma's synsets (byte offsets into ``data.noun``), most used first;
``data.noun`` holds one synset per line with its words and pointers (``@`` hypernym,
``~`` hyponym, ``@i``/``~i`` for instances); ``noun.exc`` lists irregular plurals.

Both files are memory-mapped and read only where a query leads. ``index.noun`` is
sorted by lemma (WordNet's own library binary-searches it), so a lemma's line is found
by binary search, and the lines of the lemmas that share its first two letters are
parsed together when the first of them is asked for: a query parses a few thousand of
its 118,000 lines instead of all of them (which cost every one-shot text query ~80 ms).
"""

from __future__ import annotations

import mmap
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from imgsearch.errors import InvalidInputError

FILES = ("index.noun", "data.noun")
_NARROWER = frozenset({"~", "~i"})
# regular plural endings, tried in order (WordNet's own "morphy" rules for nouns)
_PLURALS = (("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"),
            ("men", "man"), ("ies", "y"), ("s", ""))
_WORD = re.compile(r"[a-z][a-z'\-]*")
_CACHED = 512  # narrower() answers kept per WordNet
_STRETCH = 3  # index lines are parsed together by the first bytes of their lemmas


@dataclass(frozen=True)
class Synset:
    words: tuple[str, ...]  # lemmas, lower case, spaces for underscores
    narrower: tuple[int, ...]  # offsets of its hyponyms (and instances)


class WordNet:
    """WordNet's nouns from a directory of its database files (see the module doc)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._senses: dict[str, tuple[int, ...]] = {}  # looked up so far
        self._irregular: dict[str, str] = {}
        self._lines: dict[bytes, bytes] = {}  # lemma -> the rest of its index line
        self._parsed: set[bytes] = set()  # the stretches of index lines parsed so far
        self._compounds: dict[str, tuple[str, ...]] = {}  # looked for so far
        self._synsets: dict[int, Synset] = {}
        self._cache: OrderedDict[tuple[str, int, int, int, bool], tuple[str, ...]] = \
            OrderedDict()
        self._lock = threading.Lock()
        self._first = 0  # where the lemma lines start, after the licence
        try:
            self._index = _mapped(directory / "index.noun")
            self._data = _mapped(directory / "data.noun")
            exceptions = directory / "noun.exc"
            if exceptions.is_file():
                for line in exceptions.read_text(encoding="utf-8").splitlines():
                    parts = line.split()
                    if len(parts) >= 2:
                        self._irregular[parts[0]] = parts[1]
            self._check()
        except (OSError, ValueError, IndexError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"{directory}: not a readable WordNet database "
                                    f"({exc}); install it with apt-get install "
                                    f"wordnet-base, or set wordnet_dir to '' to turn "
                                    f"concept expansion off") from None

    @classmethod
    def find(cls, directory: str | Path) -> WordNet | None:
        """The WordNet in ``directory``, or None when it has none (not installed)."""
        if not str(directory):
            return None
        path = Path(directory)
        if not all((path / name).is_file() for name in FILES):
            return None
        return cls(path)

    def _check(self) -> None:
        """The first index line after the licence (whose lines start with a space)
        parses and leads to a synset (ValueError if not)."""
        index = self._index
        while index[self._first:self._first + 1] == b" ":
            after = index.find(b"\n", self._first)
            self._first = after + 1 if after != -1 else len(index)
        end = index.find(b"\n", self._first)
        line = index[self._first:end if end != -1 else len(index)]
        if not line:
            raise ValueError("no index lines")
        offsets = _parse_index_line(line)
        if not offsets:
            raise ValueError("an index line without synsets")
        self.synset(offsets[0])

    def _line(self, key: bytes) -> bytes | None:
        """The rest of ``key``'s index line, None when it has none. The lines of the
        lemmas that start with ``key``'s first two bytes are parsed together, when the
        first of them is asked for."""
        stretch = key[:_STRETCH] if len(key) >= _STRETCH else key + b"\x00"
        if stretch not in self._parsed:
            # its lemmas lie in [low, high) (a shorter lemma: that one alone)
            low, high = (stretch, stretch + b"\xff") if len(key) >= _STRETCH else \
                (key, stretch)
            start, end = self._lower_bound(low), self._lower_bound(high)
            lines = self._index[start:end].split(b"\n")
            with self._lock:
                for line in lines:
                    lemma, space, rest = line.partition(b" ")
                    if space:
                        self._lines[lemma] = rest
                self._parsed.add(stretch)
        return self._lines.get(key)

    def _lower_bound(self, target: bytes) -> int:
        """Where the first index line whose lemma is at least ``target`` starts (the
        end of the file when there is none)."""
        index = self._index
        low, high = self._first, len(index)  # each at a line's start, or the end
        while low < high:
            middle = (low + high) // 2
            start = max(index.rfind(b"\n", low, middle) + 1, low)
            space = index.find(b" ", start)
            if index[start:space if space != -1 else len(index)] < target:
                after = index.find(b"\n", start)
                low = after + 1 if after != -1 else len(index)
            else:
                high = start
        return low

    def senses(self, lemma: str) -> tuple[int, ...]:
        """The synsets (offsets) of ``lemma``, most used first; empty when unknown."""
        found = self._senses.get(lemma)
        if found is None:
            key = lemma.replace(" ", "_").encode("utf-8")
            rest = self._line(key)
            found = _parse_index_line(key + b" " + rest) if rest is not None else ()
            self._senses[lemma] = found
        return found

    def compounds(self, word: str) -> tuple[str, ...]:
        """The lemmas of two or more words that hold ``word`` as one of them
        ("percussion instrument" for "percussion"), looked for when first asked."""
        found = self._compounds.get(word)
        if found is None:
            token = word.replace(" ", "_").encode("utf-8")
            found = tuple(key.decode("utf-8").replace("_", " ")
                          for key in self._lemmas_holding(token))
            self._compounds[word] = found
        return found

    def _lemmas_holding(self, token: bytes) -> list[bytes]:
        """The lemmas of two or more words with ``token`` as one of them, in file
        order: each place the index holds ``token`` is kept when it lies inside the
        lemma of its line (the rest of a line is numbers and pointer symbols)."""
        if not token or b"_" in token:  # no one word of a lemma is empty or holds "_"
            return []
        index, found = self._index, dict[bytes, None]()
        at = index.find(token, self._first)
        while at != -1:
            start = index.rfind(b"\n", 0, at) + 1
            space = index.find(b" ", start)
            if space != -1 and at + len(token) <= space:
                key = index[start:space]
                if b"_" in key and token in key.split(b"_"):
                    found[key] = None
            after = index.find(b"\n", at)
            if after == -1:
                break
            at = index.find(token, after + 1)
        return list(found)

    def __contains__(self, lemma: str) -> bool:
        return bool(self.senses(lemma))

    def lemma(self, word: str, compounds: bool = False) -> str | None:
        """The noun ``word`` is a form of ("mammals" -> "mammal", "mice" -> "mouse"),
        None when WordNet has no such noun (with ``compounds``: nor a compound that
        holds it, "percussion" of "percussion instrument")."""
        word = word.casefold().strip()
        if word in self._irregular:
            return self._irregular[word]
        candidates = [word] + [word[: -len(ending)] + replacement
                               for ending, replacement in _PLURALS if word.endswith(ending)]
        for candidate in candidates:
            if candidate in self:
                return candidate
        if compounds:
            for candidate in candidates:
                if self.compounds(candidate):
                    return candidate
        return None

    def synset(self, offset: int) -> Synset:
        found = self._synsets.get(offset)
        if found is None:
            end = self._data.find(b"\n", offset)
            if end == -1:
                raise ValueError(f"no synset at offset {offset} of data.noun")
            fields = self._data[offset:end].decode("utf-8").split(" | ", 1)[0].split()
            count = int(fields[3], 16)
            words = tuple(fields[4 + 2 * i].lower().replace("_", " ") for i in range(count))
            at = 4 + 2 * count
            pointers = int(fields[at])
            narrower = tuple(int(fields[at + 2 + 4 * i]) for i in range(pointers)
                             if fields[at + 1 + 4 * i] in _NARROWER
                             and fields[at + 3 + 4 * i] == "n")
            found = self._synsets[offset] = Synset(words, narrower)
        return found

    def narrower(self, lemma: str, senses: int = 2, depth: int = 10, limit: int = 5000,
                 compounds: bool = False) -> tuple[str, ...]:
        """Words for kinds of ``lemma`` (itself first): the members of the synsets up to
        ``depth`` steps below ``lemma``'s first ``senses`` meanings, each kept only when
        that synset is among its own first ``senses`` meanings; with ``compounds``,
        also below the first meanings of the compounds that hold ``lemma`` as a word
        ("percussion" -> "percussion instrument" -> "drum"). Empty when more
        than ``limit`` words fall under it (too broad to be evidence) or WordNet does
        not know it."""
        key = (lemma, senses, depth, limit, compounds)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        words = self._narrower(lemma, senses, depth, limit, compounds)
        with self._lock:
            self._cache[key] = words
            while len(self._cache) > _CACHED:
                self._cache.popitem(last=False)
        return words

    def _narrower(self, lemma: str, senses: int, depth: int, limit: int, compounds: bool
                  ) -> tuple[str, ...]:
        level = list(self.senses(lemma)[:senses])
        if compounds:
            for compound in self.compounds(lemma):
                level.extend(self.senses(compound)[:senses])
        if not level:
            return ()
        found: dict[str, None] = {lemma: None}
        seen: set[int] = set()
        for _ in range(depth + 1):
            below: list[int] = []
            for offset in level:
                if offset in seen:
                    continue
                seen.add(offset)
                synset = self.synset(offset)
                for word in synset.words:
                    if offset in self.senses(word)[:senses]:
                        found.setdefault(word, None)
                below.extend(synset.narrower)
                if len(found) > limit:
                    return ()
            level = below
            if not level:
                break
        return tuple(found)


def _mapped(path: Path) -> mmap.mmap:
    """``path`` mapped read-only (ValueError when it is empty)."""
    with open(path, "rb") as handle:
        return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)


def _parse_index_line(line: bytes) -> tuple[int, ...]:
    """The synset offsets of one ``index.noun`` line (wndb(5)): lemma, pos,
    synset_cnt, p_cnt, p_cnt pointer symbols, sense_cnt, tagsense_cnt, offsets."""
    parts = line.decode("utf-8").split()
    pointers = int(parts[3])
    return tuple(int(o) for o in parts[4 + pointers + 2:])


def content_words(text: str, stopwords: frozenset[str]) -> list[str]:
    """The words of ``text`` worth expanding: lower case, not stopwords, 3+ letters."""
    return list(dict.fromkeys(w for w in _WORD.findall(text.casefold())
                              if len(w) >= 3 and w not in stopwords))
