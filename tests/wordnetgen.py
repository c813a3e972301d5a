"""A tiny WordNet noun database in WordNet's own file format, for tests.

``write_wordnet(directory, synsets)`` writes ``index.noun``, ``data.noun`` and
``noun.exc`` (see ``wndb(5)``): each synset is ``(name, words, broader names)``; a
word's senses are listed in the order its synsets are given. Offsets are the byte
positions of the lines in ``data.noun``, as in the real files.
"""

from __future__ import annotations

from pathlib import Path

Synset = tuple[str, tuple[str, ...], tuple[str, ...]]  # name, words, broader names

ANIMALS: tuple[Synset, ...] = (
    ("animal", ("animal", "beast"), ()),
    ("mammal", ("mammal",), ("animal",)),
    ("bovine", ("bovine",), ("mammal",)),
    ("cow", ("cow", "moo cow"), ("bovine",)),
    ("cat", ("cat", "true cat"), ("mammal",)),
    ("bird", ("bird",), ("animal",)),
    ("pigeon", ("pigeon",), ("bird",)),
    ("instrument", ("musical instrument", "instrument"), ()),
    ("percussion", ("percussion instrument",), ("instrument",)),
    ("drum", ("drum",), ("percussion",)),
    # a rare meaning: "cow" as a person, listed after the animal
    ("person", ("person",), ()),
    ("cow-person", ("cow",), ("person",)),
    ("mouse", ("mouse",), ("mammal",)),
)


def write_wordnet(directory: Path, synsets: tuple[Synset, ...] = ANIMALS) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    names = [name for name, _, _ in synsets]
    narrower: dict[str, list[str]] = {name: [] for name in names}
    for name, _, broader in synsets:
        for parent in broader:
            narrower[parent].append(name)

    def line(name: str, words: tuple[str, ...], broader: tuple[str, ...],
             offsets: dict[str, int]) -> str:
        pointers = [f"@ {offsets[p]:08d} n 0000" for p in broader] + \
            [f"~ {offsets[c]:08d} n 0000" for c in narrower[name]]
        tokens = " ".join(f"{w.replace(' ', '_')} 0" for w in words)
        return (f"{offsets[name]:08d} 05 n {len(words):02x} {tokens} {len(pointers):03d} "
                + "".join(p + " " for p in pointers) + f"| the {name}\n")

    header = "  1 This is a test database in WordNet's format.\n"
    zero = dict.fromkeys(names, 0)
    offsets, at = {}, len(header)
    for name, words, broader in synsets:  # every offset has 8 digits: lengths are fixed
        offsets[name] = at
        at += len(line(name, words, broader, zero).encode())
    (directory / "data.noun").write_text(
        header + "".join(line(n, w, b, offsets) for n, w, b in synsets), encoding="utf-8")
    senses: dict[str, list[int]] = {}
    for name, words, _ in synsets:
        for word in words:
            senses.setdefault(word.replace(" ", "_"), []).append(offsets[name])
    rows = [f"{lemma} n {len(offs)} 2 @ ~ {len(offs)} 0 " + " ".join(f"{o:08d}" for o in offs)
            for lemma, offs in sorted(senses.items())]
    (directory / "index.noun").write_text(header + "\n".join(rows) + "\n", encoding="utf-8")
    (directory / "noun.exc").write_text("mice mouse\nkine cow\n", encoding="utf-8")
    return directory
