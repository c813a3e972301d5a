"""The collection manifest: what made the vectors and how they are indexed.

A small JSON file beside the catalog, written atomically. It lets a person (or another
imgsearch) see at a glance what a collection holds, and lets ``Engine.open`` refuse
to mix vectors from different encoders.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from imgsearch.errors import CollectionError, SchemaVersionError
from imgsearch.store.schema import SCHEMA_VERSION
from imgsearch.types import VectorSpace

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1


@dataclass
class Manifest:
    spaces: dict[str, VectorSpace] = field(default_factory=dict)
    index: dict[str, dict[str, Any]] = field(default_factory=dict)  # space -> kind, params
    schema_version: int = SCHEMA_VERSION
    format_version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({
            "format_version": self.format_version,
            "schema_version": self.schema_version,
            "spaces": {name: asdict(space) for name, space in self.spaces.items()},
            "index": self.index,
            "extra": self.extra,
        }, indent=2, sort_keys=True)


def read_manifest(directory: Path) -> Manifest | None:
    path = directory / MANIFEST_NAME
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        manifest = Manifest(
            spaces={name: VectorSpace(**value) for name, value in data["spaces"].items()},
            index=dict(data.get("index", {})),
            schema_version=int(data.get("schema_version", SCHEMA_VERSION)),
            format_version=int(data.get("format_version", FORMAT_VERSION)),
            extra=dict(data.get("extra", {})),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise CollectionError(f"{path} is not a valid imgsearch manifest ({exc}); "
                              f"restore it or delete the collection and index again") from exc
    if manifest.format_version > FORMAT_VERSION:
        raise SchemaVersionError(f"{path} was written by a newer imgsearch "
                                 f"(manifest format {manifest.format_version})")
    return manifest


def write_manifest(directory: Path, manifest: Manifest) -> None:
    path = directory / MANIFEST_NAME
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as fh:
        fh.write(manifest.to_json())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
