"""The catalog's schema history, as numbered migrations applied in order.

``PRAGMA user_version`` records how many have been applied. A migration is never
edited once released; a change is a new entry at the end.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from imgsearch.errors import ReadOnlyCollectionError, SchemaVersionError

MIGRATIONS: list[str] = [
    # 1: items, their tags/colours/attributes, vectors, and the journal the indexes replay.
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

    CREATE TABLE items (
        key           INTEGER PRIMARY KEY AUTOINCREMENT,
        id            TEXT NOT NULL UNIQUE,
        image         TEXT,
        title         TEXT,
        description   TEXT,
        category      TEXT,
        brand         TEXT,
        price         REAL,
        color         TEXT,
        license       TEXT,
        tags          TEXT NOT NULL DEFAULT '[]',
        popularity    REAL,
        rating        REAL,
        conversion    REAL,
        created_at    TEXT,
        attributes    TEXT NOT NULL DEFAULT '{}',
        width         INTEGER,
        height        INTEGER,
        orientation   TEXT,
        phash         INTEGER,
        colors        TEXT NOT NULL DEFAULT '[]',
        thumbnail     TEXT,
        content_hash  TEXT,
        source_size   INTEGER,
        source_mtime  REAL,
        category_norm TEXT,
        brand_norm    TEXT,
        license_norm  TEXT,
        updated_at    REAL NOT NULL
    );
    CREATE INDEX items_category ON items (category_norm);
    CREATE INDEX items_brand ON items (brand_norm);
    CREATE INDEX items_price ON items (price);
    CREATE INDEX items_license ON items (license_norm);

    CREATE TABLE item_tags (
        tag TEXT NOT NULL, key INTEGER NOT NULL, PRIMARY KEY (tag, key)
    ) WITHOUT ROWID;
    CREATE INDEX item_tags_key ON item_tags (key);

    CREATE TABLE item_colors (
        color TEXT NOT NULL, key INTEGER NOT NULL, PRIMARY KEY (color, key)
    ) WITHOUT ROWID;
    CREATE INDEX item_colors_key ON item_colors (key);

    CREATE TABLE item_attributes (
        name TEXT NOT NULL, value TEXT NOT NULL, key INTEGER NOT NULL,
        PRIMARY KEY (name, value, key)
    ) WITHOUT ROWID;
    CREATE INDEX item_attributes_key ON item_attributes (key);

    -- vid is unique forever (AUTOINCREMENT): an updated image gets a new vid, so an
    -- index can tell a new vector from the old one it replaces.
    CREATE TABLE vectors (
        vid    INTEGER PRIMARY KEY AUTOINCREMENT,
        key    INTEGER NOT NULL,
        space  TEXT NOT NULL,
        vector BLOB NOT NULL
    );
    CREATE UNIQUE INDEX vectors_key_space ON vectors (key, space);
    CREATE INDEX vectors_space ON vectors (space, vid);

    CREATE TABLE journal (
        seq   INTEGER PRIMARY KEY AUTOINCREMENT,
        space TEXT NOT NULL,
        op    TEXT NOT NULL CHECK (op IN ('add', 'remove')),
        vid   INTEGER NOT NULL
    );
    """,
    # 2: keyword search (BM25) over the text fields, kept in step with items.
    """
    CREATE VIRTUAL TABLE items_fts USING fts5(
        title, description, tags, category, brand, colors,
        tokenize = 'porter unicode61 remove_diacritics 2'
    );
    INSERT INTO items_fts (rowid, title, description, tags, category, brand, colors)
        SELECT key, coalesce(title, ''), coalesce(description, ''),
               (SELECT coalesce(group_concat(value, ' '), '') FROM json_each(items.tags)),
               coalesce(category, ''), coalesce(brand, ''),
               (SELECT coalesce(group_concat(value, ' '), '') FROM json_each(items.colors))
        FROM items;
    """,
    # 3: where each item came from (several folders in one collection no longer share
    # ids), the folders indexed with the prefix of their ids, and the kept original bytes
    # of items added from uploads. Folder items of earlier versions are recognised by
    # their image being the folder's path followed by the id. Thumbnails and originals
    # are shared by content: whether one is still in use is an index lookup, not a scan.
    """
    ALTER TABLE items ADD COLUMN source TEXT;
    ALTER TABLE items ADD COLUMN original TEXT;
    CREATE INDEX items_source ON items (source);
    CREATE INDEX items_original ON items (original);
    CREATE INDEX items_thumbnail ON items (thumbnail);
    CREATE TABLE sources (
        root     TEXT PRIMARY KEY,
        prefix   TEXT NOT NULL,
        added_at REAL NOT NULL
    );
    UPDATE items SET source = substr(image, 1, length(image) - length(id) - 1)
        WHERE image IS NOT NULL AND length(image) > length(id) + 1
          AND substr(image, length(image) - length(id) + 1) = id
          AND substr(image, length(image) - length(id), 1) = '/';
    INSERT INTO sources (root, prefix, added_at)
        SELECT DISTINCT source, '', 0 FROM items WHERE source IS NOT NULL;
    """,
    # 4: photos: album (folder) text, text read from the pixels (OCR), and EXIF facts
    # with the place their GPS position names. taken_local (the local date-time without
    # its offset) and camera_norm are what filters compare. The keyword index gains
    # the ocr, album and place fields (FTS5 tables cannot gain columns: rebuilt). Items
    # read from files forget their mtime, so the next `index` reads them again for
    # their EXIF facts and album (a file whose mtime is unknown is never "unchanged").
    """
    ALTER TABLE items ADD COLUMN album TEXT;
    ALTER TABLE items ADD COLUMN ocr_text TEXT;
    ALTER TABLE items ADD COLUMN taken_at TEXT;
    ALTER TABLE items ADD COLUMN taken_from TEXT;
    ALTER TABLE items ADD COLUMN camera TEXT;
    ALTER TABLE items ADD COLUMN lens TEXT;
    ALTER TABLE items ADD COLUMN focal_length REAL;
    ALTER TABLE items ADD COLUMN latitude REAL;
    ALTER TABLE items ADD COLUMN longitude REAL;
    ALTER TABLE items ADD COLUMN city TEXT;
    ALTER TABLE items ADD COLUMN region TEXT;
    ALTER TABLE items ADD COLUMN country TEXT;
    ALTER TABLE items ADD COLUMN taken_local TEXT;
    ALTER TABLE items ADD COLUMN camera_norm TEXT;
    CREATE INDEX items_taken ON items (taken_local);
    CREATE INDEX items_camera ON items (camera_norm);
    CREATE INDEX items_latitude ON items (latitude);
    DROP TABLE items_fts;
    CREATE VIRTUAL TABLE items_fts USING fts5(
        title, description, tags, category, brand, colors, ocr, album, place,
        tokenize = 'porter unicode61 remove_diacritics 2'
    );
    INSERT INTO items_fts (rowid, title, description, tags, category, brand, colors,
                           ocr, album, place)
        SELECT key, coalesce(title, ''), coalesce(description, ''),
               (SELECT coalesce(group_concat(value, ' '), '') FROM json_each(items.tags)),
               coalesce(category, ''), coalesce(brand, ''),
               (SELECT coalesce(group_concat(value, ' '), '') FROM json_each(items.colors)),
               '', '', ''
        FROM items;
    UPDATE items SET source_mtime = NULL WHERE source_mtime IS NOT NULL;
    """,
    # 5: vectors leave the catalog for one memory-mapped file per space (store.vectors);
    # a vector's row there is its slot. The catalog moves the numbers out after this
    # (rows whose slot is NULL), a batch per commit, and empties their blobs.
    """
    ALTER TABLE vectors ADD COLUMN slot INTEGER;
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)
VECTOR_FILES_VERSION = 5  # from this version on, vectors live in files, not blobs


def check_version(conn: sqlite3.Connection, *, path: str, refuse_older: bool = True) -> int:
    """The catalog's schema version; a newer one is refused, and an older one (which
    would need a migration) where nothing can be written."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{path} has catalog schema version {version}, newer than this imgsearch "
            f"understands ({SCHEMA_VERSION}); upgrade imgsearch to open it")
    if version < SCHEMA_VERSION and refuse_older:
        raise ReadOnlyCollectionError(
            f"{path} has catalog schema version {version} and needs an upgrade to "
            f"{SCHEMA_VERSION}, which cannot be written on read-only storage; open it "
            f"once on writable storage")
    return version


def migrate(conn: sqlite3.Connection, *, path: str) -> None:
    """Bring the database at ``path`` up to SCHEMA_VERSION, or refuse a newer one."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{path} has catalog schema version {version}, newer than this imgsearch "
            f"understands ({SCHEMA_VERSION}); upgrade imgsearch to open it"
        )
    for number in range(version, SCHEMA_VERSION):
        try:
            conn.executescript(
                "BEGIN IMMEDIATE;" + MIGRATIONS[number]
                + f";PRAGMA user_version = {number + 1}; COMMIT;"
            )
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise


def backup_path(path: Path, version: int) -> Path:
    """Where an upgrade keeps the catalog of schema ``version`` as it was."""
    return path.with_name(f"{path.name}.schema{version}.bak")


def backup_before_upgrade(conn: sqlite3.Connection, path: Path) -> tuple[int, Path] | None:
    """Before a catalog of an older schema is upgraded: copy it whole (SQLite's backup
    API, a consistent copy) next to it, fsynced, and return (its version, the copy).
    None when nothing is to be upgraded (a new or current catalog). A copy kept by an
    earlier, interrupted upgrade of the same version is kept as it is."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version == 0 or version >= SCHEMA_VERSION:
        return None
    target = backup_path(path, version)
    if not target.exists():
        partial = target.with_name(target.name + ".partial")
        copy = sqlite3.connect(partial)
        try:
            conn.backup(copy)
        finally:
            copy.close()
        with open(partial, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(partial, target)
    return version, target
