"""A collection's health: check what is damaged, repair what can be rebuilt, back up.

- ``check``: the catalog (``PRAGMA integrity_check``, or ``quick_check``), the manifest
  against the catalog, every index file, the thumbnails and the search log. Each
  finding says what is wrong and what to do about it.
- ``repair``: what can be made again from the catalog is: the indexes (rebuilt), the
  manifest (rebuilt from the catalog's copy of the spaces), a damaged search log (set
  aside and started again), thumbnails no item uses (removed). A damaged catalog cannot
  be: it is the source of truth, restored from a backup.
- ``backup``: the catalog and the search log through SQLite's backup API (consistent
  while a writer writes), the manifest, thumbnails and any other stored files. Indexes
  are not copied: they are rebuilt from the catalog when the copy is first opened.
  Restoring is copying the backup back into place.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from imgsearch.errors import (
    CollectionError,
    CollectionNotFoundError,
    CorruptCollectionError,
    InvalidInputError,
)
from imgsearch.index.early import INDEX_DIR, index_file
from imgsearch.index.faiss_index import load_index
from imgsearch.search.space import SpaceIndex
from imgsearch.store.catalog import Catalog
from imgsearch.store.health import backup_database, database_problems
from imgsearch.store.logs import LOG_NAME, set_aside
from imgsearch.store.manifest import MANIFEST_NAME, read_manifest, write_manifest
from imgsearch.store.schema import SCHEMA_VERSION

if TYPE_CHECKING:
    from imgsearch.engine.core import Engine

CATALOG_NAME = "catalog.sqlite3"
THUMBNAIL_DIR = "thumbnails"
# left out of a backup: caches, the lock, what a running server says about itself
_NOT_BACKED_UP = {INDEX_DIR, CATALOG_NAME, LOG_NAME, MANIFEST_NAME, "lock",
                  "serve-writer.json"}
_RESTORE = "restore the collection from a backup (see `imgsearch backup` in the README)"


@dataclass
class Finding:
    part: str  # catalog, manifest, index:<space>, thumbnails, search log
    severity: Literal["error", "warning"]
    problem: str
    fix: str

    def to_dict(self) -> dict[str, str]:
        return {"part": self.part, "severity": self.severity, "problem": self.problem,
                "fix": self.fix}


@dataclass
class HealthReport:
    collection: str
    checked: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    items: int | None = None
    repaired: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)

    def add(self, part: str, severity: Literal["error", "warning"], problem: str,
            fix: str) -> None:
        self.findings.append(Finding(part, severity, problem, fix))

    def to_dict(self) -> dict[str, Any]:
        return {"collection": self.collection, "healthy": self.healthy, "items": self.items,
                "checked": self.checked, "findings": [f.to_dict() for f in self.findings],
                "repaired": self.repaired}


def _require_collection(directory: Path) -> None:
    if not (directory / CATALOG_NAME).exists():
        raise CollectionNotFoundError(f"no collection at {directory} (no {CATALOG_NAME})")


def check_collection(directory: Path, *, quick: bool = False) -> HealthReport:
    """Everything that can be checked without changing anything."""
    _require_collection(directory)
    report = HealthReport(str(directory))
    report.checked.append("catalog")
    problems = database_problems(directory / CATALOG_NAME, quick=quick)
    if problems:
        report.add("catalog", "error", "; ".join(problems),
                   f"the catalog is the source of truth and cannot be rebuilt: {_RESTORE}")
        _check_log(directory, report, quick)
        return report  # nothing else can be compared with a damaged catalog
    catalog = Catalog(directory / CATALOG_NAME, read_only=True,
                      read_only_storage=not os.access(directory, os.W_OK))
    try:
        if catalog.schema_version < SCHEMA_VERSION:
            report.add("catalog", "warning", f"schema version {catalog.schema_version} is "
                       f"older than this imgsearch's ({SCHEMA_VERSION})",
                       "it is upgraded the first time the collection is opened to write")
        report.items = catalog.count()
        dims = catalog.space_dims()
        _check_manifest(directory, dims, report)
        _check_indexes(directory, catalog, dims, report)
        _check_vector_files(catalog, report)
        _check_thumbnails(directory, catalog, report)
    finally:
        catalog.close()
    _check_log(directory, report, quick)
    return report


def _check_manifest(directory: Path, dims: dict[str, int], report: HealthReport) -> None:
    report.checked.append("manifest")
    fix = (f"`imgsearch repair -c {directory}` rebuilds it from the catalog (opening the "
           f"collection to write does too)")
    try:
        manifest = read_manifest(directory)
    except CollectionError as exc:
        report.add("manifest", "error", exc.message, fix)
        return
    if manifest is None:
        if dims:
            report.add("manifest", "error", f"{MANIFEST_NAME} is missing", fix)
        return
    for name, dim in dims.items():
        space = manifest.spaces.get(name)
        if space is None:
            report.add("manifest", "error", f"the catalog holds vectors of space {name!r}, "
                                            f"which the manifest does not list", fix)
        elif space.dim != dim:
            report.add("manifest", "error", f"space {name!r} is {space.dim}-d in the "
                                            f"manifest but {dim}-d in the catalog", fix)


def _check_indexes(directory: Path, catalog: Catalog, dims: dict[str, int],
                   report: HealthReport) -> None:
    head = catalog.journal_head()
    for name, dim in dims.items():
        part = f"index:{name}"
        report.checked.append(part)
        path = index_file(directory, name)
        fix = f"`imgsearch repair -c {directory}` rebuilds it from the catalog"
        if not path.exists():
            report.add(part, "warning", f"{path.name} is missing",
                       fix + " (the next open does too)")
            continue
        try:
            index, seq = load_index(path)
        except CollectionError as exc:
            report.add(part, "error", exc.message, fix)
            continue
        if index.dim != dim:
            report.add(part, "error", f"{path.name} is {index.dim}-d, the catalog's "
                                      f"vectors {dim}-d", fix)
        elif seq > head:
            report.add(part, "error", f"{path.name} includes changes the catalog does not "
                                      f"have (journal {seq} > {head}): the catalog is older "
                                      f"than the index", fix)


def _check_vector_files(catalog: Catalog, report: HealthReport) -> None:
    """Every space's vector file holds every row the catalog names."""
    if not catalog.space_dims() or catalog.schema_version < SCHEMA_VERSION:
        return
    for space, stats in catalog.vector_file_stats().items():
        part = f"vectors:{space}"
        report.checked.append(part)
        wanted = catalog.vector_rows_named(space)
        if stats["rows"] < wanted:
            report.add(part, "error",
                       f"{stats['file']} holds {stats['rows']} rows, the catalog names "
                       f"{wanted}: it was truncated, replaced or lost",
                       f"the vectors are not in the catalog and cannot be rebuilt: {_RESTORE}")


def _thumbnails_in_use(catalog: Catalog) -> set[str]:
    return {item.thumbnail for item in catalog.iter_items() if item.thumbnail}


def _thumbnail_files(directory: Path) -> set[str]:
    root = directory / THUMBNAIL_DIR
    return {p.relative_to(directory).as_posix() for p in root.rglob("*.jpg")} \
        if root.is_dir() else set()


def _check_thumbnails(directory: Path, catalog: Catalog, report: HealthReport) -> None:
    report.checked.append("thumbnails")
    used = _thumbnails_in_use(catalog)
    files = _thumbnail_files(directory)
    missing = used - files
    if missing:
        report.add("thumbnails", "warning",
                   f"{len(missing)} thumbnails are missing (e.g. {sorted(missing)[0]})",
                   "index the sources of those items again to make them")
    orphans = files - used
    if orphans:
        report.add("thumbnails", "warning", f"{len(orphans)} thumbnails belong to no item",
                   f"`imgsearch repair -c {directory}` removes them")


def _check_log(directory: Path, report: HealthReport, quick: bool) -> None:
    path = directory / LOG_NAME
    if not path.exists():
        return
    report.checked.append("search log")
    problems = database_problems(path, quick=quick)
    if problems:
        report.add("search log", "error", "; ".join(problems),
                   f"`imgsearch repair -c {directory}` sets it aside and starts a new one "
                   f"(the next search does too); searches are not affected")


def repair_collection(directory: Path, open_writer: Callable[[], Engine]) -> HealthReport:
    """Rebuild what can be rebuilt; a damaged catalog is refused with how to restore.
    ``open_writer`` opens the collection as its writer, once the catalog is known sound."""
    before = check_collection(directory)
    damaged = [f for f in before.findings if f.part == "catalog" and f.severity == "error"]
    if damaged:
        raise CorruptCollectionError(
            f"the catalog of {directory} is damaged ({damaged[0].problem}) and is "
            f"the source of truth: it cannot be repaired; {_RESTORE}")
    done: list[str] = []
    if any(f.part == "search log" and f.severity == "error" for f in before.findings):
        aside = set_aside(directory / LOG_NAME)
        done.append(f"search log set aside as {aside.name if aside else '(moved)'}; a new "
                    f"one is started")
    # the writer lock is taken before anything is rebuilt: nobody else is writing
    engine = open_writer()
    try:
        done += [f"{note}" for note in engine.open_notes]
        pruned = int(engine.catalog.get_meta("journal_pruned_upto") or 0)
        with engine.lock.write():
            for name, old in list(engine.spaces.items()):
                old.path.unlink(missing_ok=True)
                engine.spaces[name], _ = SpaceIndex.open(old.space, engine.catalog, old.path,
                                                         engine.settings, pruned_upto=pruned)
                done.append(f"{name} index rebuilt from the catalog "
                            f"({len(engine.spaces[name])} vectors)")
        engine.save()
        orphans = _thumbnail_files(directory) - _thumbnails_in_use(engine.catalog)
        for relpath in orphans:
            (directory / relpath).unlink(missing_ok=True)
        if orphans:
            done.append(f"{len(orphans)} thumbnails no item uses removed")
    finally:
        engine.close()
    after = check_collection(directory)
    after.repaired = done
    return after


def backup_collection(directory: Path, destination: Path) -> dict[str, Any]:
    """Copy the collection to ``destination`` (a new or empty directory)."""
    _require_collection(directory)
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise InvalidInputError(f"backup destination {destination} exists and is not an "
                                f"empty directory; name a new one")
    if destination.resolve() == directory.resolve() or \
            directory.resolve() in destination.resolve().parents:
        raise InvalidInputError(f"back up {directory} somewhere outside it, not into "
                                f"{destination}")
    destination.mkdir(parents=True, exist_ok=True)
    copied = [CATALOG_NAME]
    backup_database(directory / CATALOG_NAME, destination / CATALOG_NAME)
    notes: list[str] = []
    problems = database_problems(destination / CATALOG_NAME, quick=True)
    if problems:
        raise CorruptCollectionError(f"the catalog of {directory} is damaged; the copy fails "
                                     f"its check: {'; '.join(problems)}")
    if (directory / LOG_NAME).exists():
        try:
            backup_database(directory / LOG_NAME, destination / LOG_NAME)
            copied.append(LOG_NAME)
        except Exception as exc:  # the log is not the collection: a damaged one is left
            notes.append(f"search log not copied: {exc}")
    try:
        manifest = read_manifest(directory)
    except CollectionError as exc:
        manifest = None
        notes.append(f"manifest not copied ({exc.message}); it is rebuilt from the "
                     f"catalog when the copy is opened")
    if manifest is not None:
        write_manifest(destination, manifest)
        copied.append(MANIFEST_NAME)
    for entry in sorted(directory.iterdir()):
        if entry.name in _NOT_BACKED_UP or not entry.is_dir() or entry.name.startswith("."):
            continue
        shutil.copytree(entry, destination / entry.name, copy_function=_copy_if_there,
                        ignore=shutil.ignore_patterns("*.tmp", ".*"))
        copied.append(entry.name + "/")
    return {"collection": str(directory), "backup": str(destination), "copied": copied,
            "notes": notes}


def _copy_if_there(source: str, target: str) -> None:
    """A file a writer removes meanwhile (the thumbnail of an item deleted since the
    catalog's snapshot) is not needed by the copy."""
    with contextlib.suppress(FileNotFoundError):
        shutil.copy2(source, target)


__all__ = ["Finding", "HealthReport", "backup_collection", "check_collection",
           "repair_collection"]
