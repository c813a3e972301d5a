"""The collection manifest: what made the vectors and how they are indexed.

A small JSON file beside the catalog, written atomically. It lets a person (or another
imgsearch) see at a glance what a collection holds, and lets ``Engine.open`` refuse
to mix vectors from different encoders. The catalog keeps a copy of the spaces, so a
damaged manifest is rebuilt from it (calibration and index figures are recomputed).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from imgsearch.config import Settings
from imgsearch.encode.registry import describe_encoder
from imgsearch.errors import CorruptCollectionError, SchemaVersionError
from imgsearch.store.catalog import Catalog
from imgsearch.store.schema import SCHEMA_VERSION
from imgsearch.types import VectorSpace

MANIFEST_NAME = "manifest.json"
SPACES_META = "manifest_spaces"  # the catalog's copy of the spaces
# encoders a space's dimension is matched against when the catalog has no copy
_GUESSES = {"image": ("descriptor", "fake"), "text": ("minilm", "fake")}
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
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
        raise CorruptCollectionError(f"{path} is not a valid imgsearch manifest "
                                     f"({type(exc).__name__}: {exc})") from exc
    if manifest.format_version > FORMAT_VERSION:
        raise SchemaVersionError(f"{path} was written by a newer imgsearch "
                                 f"(manifest format {manifest.format_version})")
    return manifest


def write_manifest(directory: Path, manifest: Manifest) -> None:
    path = directory / MANIFEST_NAME
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w") as fh:
            fh.write(manifest.to_json())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # a full disk leaves the old manifest, not a stray tmp
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _spaces_record(manifest: Manifest) -> str:
    return json.dumps({"spaces": {n: asdict(sp) for n, sp in manifest.spaces.items()},
                       "clip_model": manifest.extra.get("clip_model")}, sort_keys=True)


def remember_spaces(catalog: Catalog, manifest: Manifest) -> None:
    """Keep the manifest's spaces in the catalog too (written only when they change)."""
    record = _spaces_record(manifest)
    if catalog.get_meta(SPACES_META) != record:
        with catalog.transaction() as conn:
            catalog.set_meta(SPACES_META, record, conn)


def spaces_from_catalog(catalog: Catalog, settings: Settings) -> Manifest:
    """A manifest rebuilt from the catalog: its copy of the spaces, or, in a catalog
    written before it kept one, the encoder whose dimension matches each space's vectors.
    Calibration and index figures are left to be recomputed."""
    stored = catalog.get_meta(SPACES_META)
    if stored:
        data = json.loads(stored)
        extra = {"clip_model": data["clip_model"]} if data.get("clip_model") else {}
        return Manifest(spaces={n: VectorSpace(**v) for n, v in data["spaces"].items()},
                        extra=extra)
    spaces: dict[str, VectorSpace] = {}
    for name, dim in catalog.space_dims().items():
        asked = settings.image_encoder if name == "image" else settings.text_encoder
        for encoder in dict.fromkeys((asked, *_GUESSES.get(name, ()))):
            try:
                model_id, encoder_dim = describe_encoder(encoder, settings)
            except Exception:  # a guess that cannot be checked is no guess
                continue
            if encoder_dim == dim:
                spaces[name] = VectorSpace(name, encoder, model_id, dim,
                                           "image" if name == "image" else "text")
                break
        else:
            raise CorruptCollectionError(
                f"the manifest is damaged and the catalog does not say which encoder made "
                f"the {dim}-d vectors of space {name!r}; restore manifest.json from a "
                f"backup, or open the collection naming its encoders "
                f"(--image-encoder / --text-encoder)")
    return Manifest(spaces=spaces)
