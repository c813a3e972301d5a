"""Embedding shards: the Parquet files ``imgsearch encode`` writes and
``imgsearch import-embeddings`` reads.

An output folder holds ``plan.json`` (the source, the shard size, the vector spaces and
how many items each shard holds) and one ``shard-NNNNN.parquet`` per input shard. A
shard is written to a temporary name, flushed to disk and renamed: a shard file that
exists is complete, so a run that was killed resumes by skipping those files. Each
shard has one row per item and vector space::

    id  content_hash  space  vector  encoder  model_id  item  thumbnail

``item`` (the item's fields as JSON, those derived at ingest included) and
``thumbnail`` (JPEG bytes) are set on the item's first row only; they let an import
restore the item without decoding its image again. Items that failed are listed, with
their reasons, in the shard's key-value metadata under ``imgsearch.failures``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray

from imgsearch.errors import CatalogFormatError, InvalidInputError
from imgsearch.types import IngestFailure, Item, VectorSpace

PLAN_NAME = "plan.json"
FORMAT = "imgsearch-embeddings/1"
_SHARD = re.compile(r"^shard-(\d{5,})\.parquet$")
_FAILURES_KEY = b"imgsearch.failures"

SCHEMA = pa.schema([
    ("id", pa.string()),
    ("content_hash", pa.string()),
    ("space", pa.string()),
    ("vector", pa.list_(pa.float32())),
    ("encoder", pa.string()),
    ("model_id", pa.string()),
    ("item", pa.string()),
    ("thumbnail", pa.binary()),
])
REQUIRED_COLUMNS = ("id", "content_hash", "space", "vector", "encoder", "model_id")


@dataclass
class ShardRows:
    """Rows of one shard as they are gathered, column by column."""

    id: list[str] = field(default_factory=list)
    content_hash: list[str | None] = field(default_factory=list)
    space: list[str] = field(default_factory=list)
    vector: list[NDArray[np.float32]] = field(default_factory=list)
    encoder: list[str] = field(default_factory=list)
    model_id: list[str] = field(default_factory=list)
    item: list[str | None] = field(default_factory=list)
    thumbnail: list[bytes | None] = field(default_factory=list)

    def add(self, item_id: str, content_hash: str | None, space: VectorSpace,
            vector: NDArray[np.float32], item_json: str | None,
            thumbnail: bytes | None) -> None:
        self.id.append(item_id)
        self.content_hash.append(content_hash)
        self.space.append(space.name)
        self.vector.append(np.asarray(vector, dtype=np.float32))
        self.encoder.append(space.encoder)
        self.model_id.append(space.model_id)
        self.item.append(item_json)
        self.thumbnail.append(thumbnail)

    def table(self) -> pa.Table:
        vectors = pa.array([v.tolist() for v in self.vector], type=pa.list_(pa.float32()))
        return pa.table({
            "id": pa.array(self.id, pa.string()),
            "content_hash": pa.array(self.content_hash, pa.string()),
            "space": pa.array(self.space, pa.string()),
            "vector": vectors,
            "encoder": pa.array(self.encoder, pa.string()),
            "model_id": pa.array(self.model_id, pa.string()),
            "item": pa.array(self.item, pa.string()),
            "thumbnail": pa.array(self.thumbnail, pa.binary()),
        }, schema=SCHEMA)


@dataclass
class Plan:
    """What an output folder holds: the same source and sizes on every run into it."""

    source: str
    shard_size: int
    shard_items: list[int]  # items listed in each shard
    spaces: list[VectorSpace]
    shard_digests: list[str] = field(default_factory=list)  # sha256 of each shard's ids

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "source": self.source, "shard_size": self.shard_size,
                "shard_items": self.shard_items,
                "spaces": [vars(space) for space in self.spaces],
                "shard_digests": self.shard_digests}

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: Path) -> Plan:
        try:
            if data.get("format") != FORMAT:
                raise ValueError(f"format {data.get('format')!r}, expected {FORMAT!r}")
            return cls(str(data["source"]), int(data["shard_size"]),
                       [int(n) for n in data["shard_items"]],
                       [VectorSpace(**space) for space in data["spaces"]],
                       [str(d) for d in data.get("shard_digests", [])])
        except (KeyError, TypeError, ValueError) as exc:
            raise CatalogFormatError(f"{where}: not an embeddings plan ({exc})") from None


def ids_digest(ids: list[str]) -> str:
    """What names a shard's items in the plan: a run over other items is refused."""
    return hashlib.sha256("\n".join(ids).encode("utf-8", "surrogatepass")).hexdigest()


_ITEM_FIELDS = {f.name for f in dataclasses.fields(Item)}


def item_json(item: Item) -> str:
    """An item's fields as JSON (its thumbnail path is the collection's own business)."""
    data = dataclasses.asdict(item)
    data.pop("thumbnail", None)
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def item_from_json(text: str, where: str) -> Item:
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise TypeError("not a JSON object")
        unknown = set(data) - _ITEM_FIELDS
        if unknown:
            raise TypeError(f"unknown field(s) {', '.join(sorted(unknown))}")
        for name in ("tags", "colors"):
            data[name] = tuple(data.get(name) or ())
        return Item(**data)
    except (ValueError, TypeError) as exc:
        raise CatalogFormatError(f"{where}: its item column cannot be read ({exc})") from None


def shard_name(number: int) -> str:
    return f"shard-{number:05d}.parquet"


def shard_number(path: Path) -> int | None:
    found = _SHARD.match(path.name)
    return int(found.group(1)) if found else None


def _write_atomically(path: Path, write: Any) -> None:
    """Write through ``write(temporary_path)``, flush it to disk, rename it into place."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(temporary)
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def write_plan(directory: Path, plan: Plan) -> None:
    text = json.dumps(plan.to_dict(), indent=1)
    _write_atomically(directory / PLAN_NAME, lambda p: Path(p).write_text(text))


def read_plan(directory: Path) -> Plan | None:
    path = directory / PLAN_NAME
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise CatalogFormatError(f"{path}: cannot be read ({exc})") from None
    if not isinstance(data, dict):
        raise CatalogFormatError(f"{path}: not an embeddings plan (not a JSON object)")
    return Plan.from_dict(data, path)


def write_shard(directory: Path, number: int, table: pa.Table,
                failures: list[IngestFailure]) -> Path:
    """Write one complete shard atomically; returns its path."""
    listed = [{"source": f.source, "reason": f.reason, "code": f.code, "item_id": f.item_id}
              for f in failures]
    table = table.replace_schema_metadata({_FAILURES_KEY: json.dumps(listed).encode()})
    path = directory / shard_name(number)
    _write_atomically(path, lambda p: pq.write_table(table, p, compression="zstd"))
    return path


def finished_shards(directory: Path) -> dict[int, Path]:
    """The complete shards in ``directory`` by number (temporary files are not)."""
    found = {}
    for path in directory.glob("shard-*.parquet"):
        number = shard_number(path)
        if number is not None:
            found[number] = path
    return dict(sorted(found.items()))


def remove_partial(directory: Path) -> int:
    """Remove the temporary files a killed run left; how many there were."""
    removed = 0
    for path in directory.glob(".shard-*.tmp"):
        path.unlink(missing_ok=True)
        removed += 1
    return removed


def read_shard(path: Path) -> tuple[pa.Table, list[IngestFailure]]:
    """A shard's rows, checked for the required columns, and its recorded failures."""
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise CatalogFormatError(f"{path}: not a readable Parquet file ({exc})") from None
    missing = [name for name in REQUIRED_COLUMNS if name not in table.column_names]
    if missing:
        raise CatalogFormatError(f"{path}: not an embeddings shard: missing column(s) "
                                 f"{', '.join(missing)}")
    metadata = table.schema.metadata or {}
    failures = []
    try:
        for entry in json.loads(metadata.get(_FAILURES_KEY, b"[]")):
            failures.append(IngestFailure(entry["source"], entry["reason"], entry["code"],
                                          entry.get("item_id")))
    except (ValueError, KeyError, TypeError) as exc:
        raise CatalogFormatError(f"{path}: its failure list cannot be read ({exc})") from None
    return table, failures


def shard_files(directory: Path) -> list[Path]:
    """The shards to import from ``directory``, in order; refuses a folder without any."""
    if not directory.is_dir():
        raise InvalidInputError(f"{directory}: not a folder (or it does not exist); give the "
                                f"--out folder of `imgsearch encode`")
    shards = list(finished_shards(directory).values())
    if not shards:
        raise InvalidInputError(f"{directory}: holds no shard-NNNNN.parquet files; give the "
                                f"--out folder of `imgsearch encode`")
    return shards
