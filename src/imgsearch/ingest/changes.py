"""List only what changed in a folder: the paths a file watcher reported.

``scan_changed`` gives, for a set of changed paths under a folder's root, what
``scan_folder`` would list there now (files as entries, a folder that appeared scanned
whole, with the same ids and the same rules), and the ids those paths cover, so that a
sync can remove what vanished there without looking at the rest of the folder. Where
that could differ from a full scan (a symbolic link on the way, the root itself
changed, an unreadable folder) it answers None, and the caller scans the whole folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from imgsearch.ingest import fields
from imgsearch.ingest.sources import (
    SYSTEM_FOLDERS,
    FolderEntry,
    _classify,
    image_suffixes,
    scan_folder,
)
from imgsearch.types import IngestFailure


@dataclass
class ChangedScan:
    entries: list[FolderEntry] = field(default_factory=list)
    failures: list[IngestFailure] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)  # ids the changed paths stand for ...
    prefixes: set[str] = field(default_factory=set)  # ... and the folders they were

    def covers(self, item_id: str) -> bool:
        """Whether ``item_id`` (relative to the root) lies under a changed path."""
        if item_id in self.ids:
            return True
        parts = item_id.split("/")
        return any("/".join(parts[:n]) + "/" in self.prefixes for n in range(1, len(parts)))


def scan_changed(root: Path, changed: Iterable[str | Path],
                 skipped: dict[str, int] | None = None) -> ChangedScan | None:
    """What is now at each of the ``changed`` paths under ``root`` (None: scan it all)."""
    root = Path(root).absolute()
    real_root = root.resolve()
    suffixes = image_suffixes()
    by_parent: dict[tuple[str, ...], set[str]] = {}
    for path in changed:
        try:
            parts = Path(path).relative_to(root).parts
        except ValueError:
            continue  # outside the folder
        if not parts:
            return None  # the root itself was replaced or removed
        if any(p.startswith(".") or p in SYSTEM_FOLDERS for p in parts):
            continue  # hidden and system folders are never listed
        by_parent.setdefault(parts[:-1], set()).add(parts[-1])
    found = ChangedScan()
    links: dict[tuple[str, ...], bool] = {}
    for parent_parts, names in by_parent.items():
        if _linked(root, parent_parts, links):
            return None  # followed links make other ids: the full scan decides
        prefix = "".join(fields.name_text(p) + "/" for p in parent_parts)
        for name in names:
            found.ids.add(prefix + fields.name_text(name))
            found.prefixes.add(prefix + fields.name_text(name) + "/")
        parent = root.joinpath(*parent_parts)
        try:
            with os.scandir(parent) as listing:
                children = [c for c in listing if c.name in names]
        except (FileNotFoundError, NotADirectoryError):
            continue  # the folder went: everything under these paths vanished
        except OSError:
            return None  # unreadable: the full scan reports it without removing items
        for child in children:
            if not _add(found, child, prefix + fields.name_text(child.name), real_root,
                        suffixes, skipped):
                return None
    # a folder and a file in it can both have changed: each listed once
    found.entries = sorted({e.id: e for e in found.entries}.values(), key=lambda e: e.id)
    found.failures = list({f.source: f for f in found.failures}.values())
    return found


def _linked(root: Path, parts: tuple[str, ...], seen: dict[tuple[str, ...], bool]) -> bool:
    """Whether a folder on the way from ``root`` to ``parts`` is a symbolic link."""
    for n in range(1, len(parts) + 1):
        key = parts[:n]
        if key not in seen:
            seen[key] = os.path.islink(root.joinpath(*key))
        if seen[key]:
            return True
    return False


def _add(found: ChangedScan, child: os.DirEntry[str], child_id: str, real_root: Path,
         suffixes: frozenset[str], skipped: dict[str, int] | None) -> bool:
    """Add what ``child`` is; False when only a full scan can say (a linked folder)."""
    outcome = _classify(child, child_id, real_root, suffixes)
    if isinstance(outcome, FolderEntry):
        found.entries.append(outcome)
    elif isinstance(outcome, IngestFailure):
        found.failures.append(outcome)
    elif isinstance(outcome, Path):  # a folder appeared (created, or moved in)
        if child.is_symlink():
            return False
        entries, failures = scan_folder(Path(child.path), skipped)
        if any(f.code == "symlink_escape" for f in failures):
            return False  # it may point elsewhere in the root, which a full scan follows
        found.entries += [replace(e, id=f"{child_id}/{e.id}") for e in entries]
        found.failures += [replace(f, source=child_id if f.source == "." else
                                   f"{child_id}/{f.source}") for f in failures]
    elif skipped is not None and not child.is_dir():
        suffix = Path(child.name).suffix.lower() or "(no extension)"
        skipped[suffix] = skipped.get(suffix, 0) + 1
    return True


__all__ = ["ChangedScan", "scan_changed"]
