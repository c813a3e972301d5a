"""Where items come from: a folder of images, a catalog file, or a list of URLs.

Sources only list what there is; nothing here decodes an image. A bad row or a bad
file is reported as an :class:`IngestFailure` and never stops the listing; only a
source that cannot be read at all raises.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from imgsearch.errors import CatalogFormatError, InvalidFieldError, InvalidInputError
from imgsearch.ingest import fields
from imgsearch.ingest.formats import decodable_suffixes, missing_reason
from imgsearch.types import KNOWN_FIELDS, IngestFailure, Item

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
CATALOG_SUFFIXES = frozenset({".csv", ".jsonl", ".ndjson", ".parquet"})
URL_LIST_SUFFIXES = frozenset({".txt"})
# Folders that operating systems and NAS boxes sprinkle around photo collections.
SYSTEM_FOLDERS = frozenset({"__MACOSX", "@eaDir", "$RECYCLE.BIN", "System Volume Information",
                            ".thumbnails", "lost+found"})
_HTTP_URL = re.compile(r"^https?://[^\s/?#]+", re.IGNORECASE)


@dataclass(frozen=True)
class FolderEntry:
    id: str  # path relative to the scanned root, POSIX style; undecodable bytes as \xNN
    path: Path  # the real path, which may not be valid text (see ``fields.name_text``)
    size: int
    mtime: float


@dataclass
class CatalogRows:
    items: list[Item] = field(default_factory=list)
    failures: list[IngestFailure] = field(default_factory=list)
    # item id -> where it was read ("products.csv row 12"), for the report
    where: dict[str, str] = field(default_factory=dict)


def detect_source(path: Path) -> Literal["folder", "image", "catalog", "urls"]:
    """Say what kind of source ``path`` is, from what it is and its suffix."""
    path = Path(path)
    if path.is_dir():
        return "folder"
    if not path.exists():
        raise InvalidInputError(f"{path}: no such file or folder")
    suffix = path.suffix.lower()
    if suffix in image_suffixes():
        return "image"
    if suffix in CATALOG_SUFFIXES:
        return "catalog"
    if suffix in URL_LIST_SUFFIXES:
        return "urls"
    raise CatalogFormatError(
        f"{path}: cannot tell what this file is from its suffix {suffix!r}; give a folder, "
        "an image, a catalog (.csv, .jsonl, .ndjson, .parquet) or a URL list (.txt)")


# ---- folders ----------------------------------------------------------------------


def image_suffixes() -> frozenset[str]:
    """The suffixes of the files a folder scan picks up here: the always-decodable
    formats, plus HEIC/HEIF and AVIF where their decoders are installed."""
    return IMAGE_EXTENSIONS | decodable_suffixes()


def scan_folder(root: Path, skipped: dict[str, int] | None = None
                ) -> tuple[list[FolderEntry], list[IngestFailure]]:
    """List the image files under ``root``, recursively, sorted by id.

    Hidden and system folders are skipped. Symbolic links are followed only while
    they stay inside ``root``; each directory is visited once, so link loops end. Files
    left out for their extension are counted by extension in ``skipped``.
    """
    root = Path(root).absolute()
    if not root.is_dir():
        raise InvalidInputError(f"{root}: not a folder (or it does not exist)")
    real_root = root.resolve()
    suffixes = image_suffixes()
    entries: list[FolderEntry] = []
    failures: list[IngestFailure] = []
    visited: set[Path] = set()
    # Real folders first, linked folders after: a link to a folder that is also reached
    # without links is skipped, so ids stay the plain paths and nothing is listed twice.
    pending: list[tuple[Path, Path, str]] = [(root, real_root, "")]
    linked: list[tuple[Path, Path, str]] = []
    while pending or linked:
        directory, real_directory, prefix = pending.pop() if pending else linked.pop(0)
        if real_directory in visited:
            continue
        visited.add(real_directory)
        try:
            with os.scandir(directory) as scan:
                children = sorted(scan, key=lambda entry: entry.name)
        except OSError as exc:
            failures.append(IngestFailure(prefix.rstrip("/") or ".",
                                          f"cannot read folder: {exc.strerror}", "unreadable"))
            continue
        subfolders: list[tuple[Path, Path, str]] = []
        for child in children:
            if child.name.startswith(".") or child.name in SYSTEM_FOLDERS:
                continue
            child_id = prefix + fields.name_text(child.name)  # ids are always valid text
            outcome = _classify(child, child_id, real_root, suffixes)
            if outcome is None and skipped is not None and not child.is_dir():
                suffix = Path(child.name).suffix.lower() or "(no extension)"
                skipped[suffix] = skipped.get(suffix, 0) + 1
            if isinstance(outcome, IngestFailure):
                failures.append(outcome)
            elif isinstance(outcome, Path):
                folder = (Path(child.path), outcome, child_id + "/")
                (linked if child.is_symlink() else subfolders).append(folder)
            elif outcome is not None:
                entries.append(outcome)
        pending.extend(reversed(subfolders))
    entries.sort(key=lambda entry: entry.id)
    return entries, failures


def _classify(
    child: os.DirEntry[str], child_id: str, real_root: Path, suffixes: frozenset[str]
) -> FolderEntry | Path | IngestFailure | None:
    """A file entry, a folder to descend into (its real path), a failure, or nothing."""
    try:
        real = Path(child.path).resolve(strict=True) if child.is_symlink() else None
    except RuntimeError:  # Python 3.11 reports a link loop this way
        return IngestFailure(child_id, "symlink loop", "symlink_loop")
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return IngestFailure(child_id, "symlink loop", "symlink_loop")
        return IngestFailure(child_id, "broken symlink: its target does not exist",
                             "broken_symlink")
    if real is not None and not real.is_relative_to(real_root):
        return IngestFailure(child_id, "symlink escapes the folder root (points to "
                                       f"{fields.name_text(str(real))})",
                             "symlink_escape")
    try:
        if child.is_dir():
            return real if real is not None else Path(child.path).resolve()
        if Path(child.name).suffix.lower() not in suffixes:
            return None
        if not child.is_file():  # a FIFO would block its reader: never opened
            return IngestFailure(child_id, "not a regular file (a FIFO, socket or device)",
                                 "not_a_file")
        stat = child.stat()
    except OSError as exc:
        return IngestFailure(child_id, f"cannot read: {exc.strerror}", "unreadable")
    return FolderEntry(id=child_id, path=Path(child.path), size=stat.st_size,
                       mtime=stat.st_mtime)


# ---- catalogs ---------------------------------------------------------------------


def read_catalog(path: Path) -> CatalogRows:
    """Read a CSV, JSONL/NDJSON or Parquet catalog into items plus per-row failures."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows = _csv_rows(path)
    elif suffix in (".jsonl", ".ndjson"):
        rows = _jsonl_rows(path)
    elif suffix == ".parquet":
        rows = _parquet_rows(path)
    else:
        raise CatalogFormatError(f"{path}: unsupported catalog type {suffix!r}; "
                                 "use .csv, .jsonl, .ndjson or .parquet")
    return _collect(path, rows)


# A row as a reader yields it: its number, and the row or why it could not be parsed.
_Row = tuple[int, "Mapping[str, Any] | str"]


def _collect(path: Path, rows: Iterator[_Row]) -> CatalogRows:
    result = CatalogRows()
    first_row_of: dict[str, int] = {}
    base_dir = path.parent.absolute()
    unit = "line" if path.suffix.lower() in (".jsonl", ".ndjson") else "row"
    for number, row in rows:
        where = f"{path.name} {unit} {number}"
        if isinstance(row, str):
            result.failures.append(IngestFailure(where, row, "bad_row"))
            continue
        try:
            item = row_to_item(row, base_dir)
        except RowError as exc:
            given = row.get("id")
            named = f" (id {given})" if isinstance(given, str | int) and str(given) else ""
            # the row names the item: its reason need not say "item 'X': " again
            reason = exc.reason.removeprefix(f"item {str(given)!r}: ") if named else exc.reason
            result.failures.append(IngestFailure(where + named, reason, exc.code,
                                                 str(given) if named else None))
            continue
        if item.id in first_row_of:
            result.failures.append(IngestFailure(
                where, f"duplicate id {item.id!r} (first used at {unit} "
                       f"{first_row_of[item.id]}); this {unit} is skipped", "duplicate_id"))
            continue
        first_row_of[item.id] = number
        result.where[item.id] = where
        result.items.append(item)
    return result


def _require_columns(path: Path, columns: set[str]) -> None:
    missing = [name for name in ("id", "image") if name not in columns]
    if missing:
        raise CatalogFormatError(
            f"{path}: missing required column(s) {', '.join(missing)}; a catalog needs "
            "'id' and 'image' columns")


def _csv_rows(path: Path) -> Iterator[_Row]:
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise CatalogFormatError(f"{path}: cannot open ({exc.strerror})") from None
    with handle:
        reader = csv.DictReader(handle)
        try:
            header = reader.fieldnames or []
            _require_columns(path, {name.strip() for name in header})
            for number, raw in enumerate(reader, start=1):
                if None in raw:
                    yield number, "the row has more fields than the header"
                    continue
                yield number, {key.strip(): value for key, value in raw.items()}
        except UnicodeDecodeError:
            raise CatalogFormatError(f"{path}: not UTF-8 text; save it as UTF-8") from None
        except csv.Error as exc:
            raise CatalogFormatError(f"{path}: not valid CSV near line {reader.line_num} "
                                     f"({exc})") from None


def _jsonl_rows(path: Path) -> Iterator[_Row]:
    parsed: list[_Row] = []
    columns: set[str] = set()
    try:
        with path.open(encoding="utf-8-sig") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except json.JSONDecodeError as exc:
                    parsed.append((number, f"not valid JSON ({exc.msg} at column {exc.colno})"))
                    continue
                if not isinstance(value, dict):
                    parsed.append((number, "not a JSON object"))
                    continue
                columns.update(value)
                parsed.append((number, value))
    except UnicodeDecodeError:
        raise CatalogFormatError(f"{path}: not UTF-8 text; save it as UTF-8") from None
    except OSError as exc:
        raise CatalogFormatError(f"{path}: cannot open ({exc.strerror})") from None
    if columns:  # with no object at all, there is nothing to say about columns
        _require_columns(path, columns)
    yield from parsed


def _parquet_rows(path: Path) -> Iterator[_Row]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        _require_columns(path, set(parquet.schema_arrow.names))
        number = 0
        for batch in parquet.iter_batches(batch_size=8192):
            for row in batch.to_pylist():
                number += 1
                yield number, row
    except (pa.ArrowException, OSError) as exc:
        raise CatalogFormatError(f"{path}: not a readable Parquet file ({exc})") from None


# ---- URL lists --------------------------------------------------------------------


def read_url_list(path: Path) -> CatalogRows:
    """One http(s) URL per line; the URL is the item's id. ``#`` starts a comment line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError:
        raise CatalogFormatError(f"{path}: not UTF-8 text; save it as UTF-8") from None
    except OSError as exc:
        raise CatalogFormatError(f"{path}: cannot open ({exc.strerror})") from None
    result = CatalogRows()
    first_line_of: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        url = line.strip()
        if not url or url.startswith("#"):
            continue
        where = f"{path.name} line {number}"
        if not _HTTP_URL.match(url) or any(c.isspace() for c in url):
            result.failures.append(IngestFailure(
                where, f"not an http(s) URL: {url[:200]!r}", "bad_url"))
        elif url in first_line_of:
            result.failures.append(IngestFailure(
                where, f"duplicate URL (first at line {first_line_of[url]}); skipped",
                "duplicate_id"))
        else:
            first_line_of[url] = number
            result.items.append(Item(id=url, image=url))
    return result


# ---- catalog rows -----------------------------------------------------------------


class RowError(Exception):
    """Why one catalog row cannot become an item."""

    def __init__(self, reason: str, code: str = "bad_value") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def row_to_item(row: Mapping[str, Any], base_dir: Path) -> Item:
    """Turn one catalog row into an item; raise :class:`RowError` saying what is wrong.

    The fields are checked by :func:`imgsearch.ingest.fields.item_fields`, the same
    validation API bodies go through.
    """
    try:
        item_id = fields.item_id(row.get("id"))
        image = fields.text(row.get("image"))
        if image is None:
            raise RowError(f"item {item_id!r}: missing or empty image", "missing_image")
        if "\x00" in image:  # no file name holds one; opening it would fail outright
            raise RowError(f"item {item_id!r}: image {image[:200]!r} holds a NUL byte, "
                           "which no path or URL may hold", "bad_image_path")
        if _URL_SCHEME.match(image):
            if not _HTTP_URL.match(image):
                raise RowError(f"item {item_id!r}: image {image[:200]!r} is neither a path "
                               "nor an http(s) URL", "bad_image_ref")
        else:
            image = os.path.normpath(base_dir / image)
        values = fields.item_fields(row, f"item {item_id!r}")
    except InvalidFieldError as exc:
        raise RowError(exc.message, exc.reason_code) from None
    values["attributes"] = {
        key: fields.attribute(value) for key, value in row.items()
        if key not in KNOWN_FIELDS and key and not fields.is_empty(value)
    }
    return Item(id=item_id, image=image, **values)


# Why files are left out for their extension, by kind: said in the ingest report.
_SKIPPED_KINDS: tuple[tuple[frozenset[str], str], ...] = (
    (frozenset({".svg", ".svgz", ".eps", ".ai", ".pdf"}),
     "vector images and documents are not supported"),
    (frozenset({".jxl"}), "this format is not supported yet"),
    (frozenset({".raw", ".cr2", ".cr3", ".nef", ".arw", ".dng", ".orf", ".rw2", ".raf"}),
     "camera raw files are not supported; index their JPEG previews"),
    (frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".3gp"}),
     "videos are not indexed"),
    (frozenset({".psd", ".xcf", ".kra"}), "layered editor files are not supported"),
    (frozenset({".ico", ".icns", ".tga", ".pcx", ".ppm", ".pgm", ".pbm", ".jp2", ".dds"}),
     "this image format is not on the allowed list"),
)


def skipped_reason(suffix: str) -> str:
    """Why files with ``suffix`` are not indexed, in words."""
    missing = missing_reason(suffix)
    if missing is not None:
        return missing
    for suffixes, reason in _SKIPPED_KINDS:
        if suffix in suffixes:
            return reason
    return "not an image file"
