"""Index a source incrementally: only new or changed images are decoded and encoded.

A folder is compared with what the catalog remembers of each of its files (size, mtime,
then content hash); its files that vanished are removed. Each item remembers its source,
so several folders live side by side: the first gives plain relative ids, any other a
prefix (see ``Catalog.folder_prefix``), and an id another source holds is never taken
over. A catalog file or URL list is upserted by id; rows whose metadata and image are
unchanged are skipped.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING

from imgsearch.engine.pipeline import is_url
from imgsearch.enrich.places import gazetteer_unavailable
from imgsearch.errors import ImageTooSmallError
from imgsearch.ingest.changes import scan_changed
from imgsearch.ingest.fields import name_text
from imgsearch.ingest.sources import (
    FolderEntry,
    detect_source,
    read_catalog,
    read_url_list,
    scan_folder,
    skipped_reason,
)
from imgsearch.types import (
    KNOWN_FIELDS,
    ImageInput,
    IngestFailure,
    IngestReport,
    Item,
    Progress,
)

if TYPE_CHECKING:
    from imgsearch.engine.core import Engine

# names cameras and phones give files ("IMG_1234", "DSC01234", "PXL_20230704_101530123",
# "IMG_20190704_123456~2", "P1010001"): no words of a title. Matched word by word, with
# no nested repetition, so a long name cannot make the match slow.
_CAMERA_HEAD = re.compile(r"(img|dsc|dscn|dscf|dcim|pxl|mvimg|vid|pict?|photo|image|"
                          r"screenshot|p)?\d*")
_CAMERA_TAIL = re.compile(r"\d+|mp|cover|portrait|burst\d*")


def is_camera_name(stem: str) -> bool:
    parts = [p for p in re.split(r"[\W_]+", stem.casefold()) if p]
    if not parts:
        return True
    return _CAMERA_HEAD.fullmatch(parts[0]) is not None and all(
        _CAMERA_TAIL.fullmatch(p) for p in parts[1:])


def with_file_facts(item: Item) -> Item:
    """A catalog row's item with the size and mtime of its local image file (what tells a
    later run whether the file changed); a URL, or a file that cannot be read, as it is:
    decoding reports a missing file with its reason."""
    if item.image and not is_url(item.image):
        try:
            stat = Path(item.image).stat()
        except OSError:
            return item
        return replace(item, source_size=stat.st_size, source_mtime=stat.st_mtime)
    return item


def folder_item(entry: FolderEntry, prefix: str = "", source: str | None = None) -> Item:
    """Metadata a folder gives for free: the file name and the folders above it. The
    title is the file's name as it is ("beach_sunset_03"): ``clean_title`` turns it into
    the words the text encoder and the keyword index read ("beach sunset"), without the
    file's number, so that files of one subject share one text vector."""
    stem = Path(entry.id).stem
    title = None if is_camera_name(stem) else stem
    folders = tuple(Path(entry.id).parent.parts)
    # the stored reference must be valid text; the file is read from entry.path
    return Item(id=prefix + entry.id, image=name_text(str(entry.path)), title=title,
                tags=folders, source_size=entry.size, source_mtime=entry.mtime, source=source,
                album=" / ".join(folders) or None)


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


_USER_FIELDS = [f.name for f in fields(Item) if f.name in KNOWN_FIELDS or f.name == "attributes"]


def _same_metadata(a: Item, b: Item) -> bool:
    return all(getattr(a, name) == getattr(b, name) for name in _USER_FIELDS)


def run_ingest(engine: Engine, source: Path,
               *, progress: Callable[[Progress], None] | None = None,
               on_commit: Callable[[list[str]], None] | None = None,
               admit: Callable[[FolderEntry], bool] | None = None,
               changed: Iterable[str | Path] | None = None) -> IngestReport:
    """Index ``source``. For a folder, ``admit`` may hold back new or changed files (a
    file still being written): they are neither read nor removed, and wait for a later
    run; ``changed`` limits the run to those paths (``engine.watch``)."""
    started = time.perf_counter()
    kind = detect_source(source)
    report = IngestReport()
    todo: list[tuple[Item, ImageInput | None]] = []
    where: dict[str, str] = {}
    if kind == "folder":
        todo = _folder_todo(engine, source, report, admit, changed)
    elif kind == "image":
        todo = _image_todo(engine, source, report)
    else:
        rows = read_catalog(source) if kind == "catalog" else read_url_list(source)
        report.failed.extend(rows.failures)
        where = rows.where
        for item in rows.items:
            stored = engine.catalog.get(item.id)
            if stored is not None and _same_metadata(stored, item) and _image_unchanged(
                    stored, item):
                report.unchanged += 1
                continue
            item = with_file_facts(item)
            todo.append((replace(item, source=str(source.resolve())), item.image))
    if progress:
        progress(Progress("scan", report.unchanged, report.unchanged + len(todo),
                          len(report.failed)))
    if todo and engine.settings.ocr and engine.preparer.ocr_unavailable:
        report.skipped.append(IngestFailure("OCR", engine.preparer.ocr_unavailable,
                                            "ocr_unavailable", count=0))
    try:
        engine.ingest_items(todo, total=len(todo), progress=progress,
                            on_commit=on_commit, report=report)
    finally:
        if (why := gazetteer_unavailable()) is not None:
            report.skipped.append(IngestFailure("places", f"GPS positions name no place: "
                                                f"{why}", "places_unavailable", count=0))
        _set_aside_skips(report)
        if kind == "catalog":
            _name_rows(report, where)
    report.seconds = time.perf_counter() - started
    return report


def _name_rows(report: IngestReport, where: dict[str, str]) -> None:
    """A catalog item that failed is named by its row and id, then its image."""
    for entries in (report.failed, report.skipped):
        for i, failure in enumerate(entries):
            row = where.get(failure.item_id or "")
            if row is not None and failure.source != row:
                entries[i] = replace(failure, source=f"{row} (id {failure.item_id})",
                                     reason=f"{failure.source}: {failure.reason}")


def _set_aside_skips(report: IngestReport) -> None:
    """Images too small to describe are left out on purpose, not failures: a folder
    holding a few icons must not fail every run."""
    small = [f for f in report.failed if f.code == ImageTooSmallError.code]
    if small:
        report.failed[:] = [f for f in report.failed if f.code != ImageTooSmallError.code]
        report.skipped[:0] = small


def _image_todo(engine: Engine, source: Path, report: IngestReport
                ) -> list[tuple[Item, ImageInput | None]]:
    """One image file given as the source: an item whose id is the file's name (as in a
    folder of that one file); unchanged files are left alone, as in folders."""
    path = source.absolute()
    stat = path.stat()
    entry = FolderEntry(id=name_text(path.name), path=path, size=stat.st_size,
                        mtime=stat.st_mtime)
    origin = name_text(str(path.resolve()))
    item = folder_item(entry, "", origin)
    state = engine.catalog.source_states(origin).get(item.id)
    if state is not None and state[:2] == (entry.size, entry.mtime):
        report.unchanged += 1
        return []
    owners = engine.catalog.sources_of([item.id])
    if state is None and item.id in owners:
        owner = owners[item.id]
        report.failed.append(IngestFailure(
            str(path), f"id {item.id!r} already belongs to an item "
            + (f"from {owner}" if owner else "added by id") + "; it is left as it is "
            "(add this file with `imgsearch add FILE --id NEW_ID` instead)", "id_taken"))
        return []
    return [(item, path)]


def _folder_todo(engine: Engine, source: Path, report: IngestReport,
                 admit: Callable[[FolderEntry], bool] | None = None,
                 changed: Iterable[str | Path] | None = None
                 ) -> list[tuple[Item, ImageInput | None]]:
    """The new and changed files of a folder; removes the items of its vanished files.
    With ``changed`` paths, only those are looked at (when they can be: see
    ``ingest.changes``)."""
    skipped: dict[str, int] = {}
    scope = None if changed is None else scan_changed(source, changed, skipped)
    if scope is None:
        skipped.clear()
        entries, failures = scan_folder(source, skipped)
    else:
        entries, failures = scope.entries, scope.failures
    report.skipped.extend(
        IngestFailure(f"*{suffix}" if suffix.startswith(".") else suffix,
                      f"{count} {suffix} file{'s' if count != 1 else ''} skipped: "
                      f"{skipped_reason(suffix)}", "unsupported_extension", count=count)
        for suffix, count in sorted(skipped.items(), key=lambda kv: (-kv[1], kv[0])))
    root = name_text(str(source.resolve()))  # stored: valid text, as ids are
    # an earlier version recorded a folder by the path it was given, not the resolved one
    prefix = engine.catalog.folder_prefix(root, aliases=[str(source.absolute())])
    report.failed.extend(replace(f, source=prefix + f.source) for f in failures)
    known = engine.catalog.source_states(root)
    new = [prefix + e.id for e in entries if prefix + e.id not in known]
    owners = engine.catalog.sources_of(new)
    todo: list[tuple[Item, ImageInput | None]] = []
    for entry in entries:
        item = folder_item(entry, prefix, root)
        state = known.get(item.id)
        if state is not None and state[:2] == (entry.size, entry.mtime):
            report.unchanged += 1
            continue
        if admit is not None and not admit(entry):
            continue  # held back: looked at again by a later run
        if state is not None:
            content_hash, mtime = state[2], state[1]
            # an unknown mtime (schema 4 forgot it) asks for the facts to be read again
            if content_hash and mtime is not None and content_hash == _file_hash(entry.path):
                # touched but not changed: remember the new mtime, skip the work
                engine.catalog.update_source_stat(item.id, entry.size, entry.mtime)
                report.unchanged += 1
                continue
        elif item.id in owners:
            owner = owners[item.id]
            report.failed.append(IngestFailure(
                str(entry.path), f"id {item.id!r} already belongs to an item "
                + (f"from {owner}" if owner else "added by id") + "; it is left as it is "
                "(remove that item first to index this file under that id)", "id_taken"))
            continue
        todo.append((item, entry.path))  # the real path, which may not be valid text
    present = {prefix + e.id for e in entries} | {prefix + f.source for f in failures}
    vanished = [i for i in engine.catalog.ids_of_source(root) if i not in present
                and (scope is None or scope.covers(i[len(prefix):]))]
    if vanished:
        report.removed = engine.delete_many(vanished)
    return todo


def _image_unchanged(stored: Item, item: Item) -> bool:
    if not item.image or is_url(item.image):
        return True  # same URL: not downloaded again
    try:
        stat = Path(item.image).stat()
    except OSError:
        return False
    return stored.source_size == stat.st_size and stored.source_mtime == stat.st_mtime
