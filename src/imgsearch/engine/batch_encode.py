"""Encode a source into embedding shards, with no collection: ``imgsearch encode``.

The source (a folder, a catalog file or a URL list) is listed as ``index`` lists it,
in a stable order, and cut into shards of ``shard_size`` items. Each shard is decoded
(with the same safety limits as ingest), enriched and encoded, then written as one
Parquet file (``store.shards``). A shard file that exists is complete, so a run that
was killed starts again where it stopped. The local runner encodes the shards one
after the other in this process; the Ray runner (``engine.ray_encode``) spreads them
over a Ray cluster's workers, each holding one encoder.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from imgsearch.config import Settings
from imgsearch.encode.registry import describe_encoder
from imgsearch.engine.encode_work import Entry, ShardResult, encode_entries, make_preparer
from imgsearch.engine.ingest import folder_item, with_file_facts
from imgsearch.errors import InvalidInputError
from imgsearch.ingest.fields import name_text
from imgsearch.ingest.sources import (
    FolderEntry,
    detect_source,
    read_catalog,
    read_url_list,
    scan_folder,
)
from imgsearch.store.shards import (
    Plan,
    finished_shards,
    ids_digest,
    read_plan,
    remove_partial,
    write_plan,
    write_shard,
)
from imgsearch.types import IngestFailure, Progress, VectorSpace

Runner = Literal["local", "ray"]


@dataclass
class EncodeReport:
    """What an encode run did: shards written now and found finished, items, failures."""

    shards: int = 0
    written: int = 0
    skipped: int = 0  # finished by an earlier run
    items: int = 0  # items encoded by this run
    failed: list[IngestFailure] = field(default_factory=list)
    seconds: float = 0.0
    runner: str = "local"

    def to_dict(self) -> dict[str, Any]:
        return {"shards": self.shards, "written": self.written, "skipped": self.skipped,
                "items": self.items, "runner": self.runner,
                "failed": [vars(f) for f in self.failed], "seconds": round(self.seconds, 3),
                "items_per_second": round(self.items / self.seconds, 2)
                if self.seconds else None}


def vector_spaces(settings: Settings) -> list[VectorSpace]:
    """The spaces an encode run fills: image, and text unless its encoder is ``none``."""
    spaces = []
    for name, encoder in (("image", settings.image_encoder), ("text", settings.text_encoder)):
        if encoder == "none":
            continue
        model_id, dim = describe_encoder(encoder, settings)
        spaces.append(VectorSpace(name, encoder, model_id, dim,
                                  "image" if name == "image" else "text"))
    return spaces


def list_source(source: Path) -> tuple[list[Entry], list[IngestFailure]]:
    """Every item of ``source`` with its image, in a stable order, and listing failures."""
    kind = detect_source(source)
    if kind == "folder":
        entries, failures = scan_folder(source)
        root = name_text(str(source.resolve()))
        return [(folder_item(entry, "", root), entry.path) for entry in entries], failures
    if kind == "image":
        path = source.absolute()
        stat = path.stat()
        entry = FolderEntry(name_text(path.name), path, stat.st_size, stat.st_mtime)
        return [(folder_item(entry, "", name_text(str(path.resolve()))), path)], []
    rows = read_catalog(source) if kind == "catalog" else read_url_list(source)
    origin = str(source.resolve())
    items: list[Entry] = []
    for item in rows.items:
        item = with_file_facts(item)
        items.append((replace(item, source=origin), item.image))
    return items, rows.failures


def start_plan(source: Path, out: Path, entries: Sequence[Entry], shard_size: int,
               spaces: list[VectorSpace]) -> Plan:
    """The plan of this run; the same as the one ``out`` holds, or ``out`` is refused."""
    if shard_size < 1:
        raise InvalidInputError(f"--shard-size must be 1 or more, got {shard_size}")
    shards = [entries[start:start + shard_size] for start in range(0, len(entries), shard_size)]
    plan = Plan(str(source.resolve()), shard_size, [len(shard) for shard in shards], spaces,
                [ids_digest([item.id for item, _ in shard]) for shard in shards])
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"--out {out}: a file is in the way; give a folder")
    out.mkdir(parents=True, exist_ok=True)
    found = read_plan(out)
    if found is None:
        if finished_shards(out):
            raise InvalidInputError(f"--out {out} holds shards but no plan.json; give an "
                                    f"empty folder")
        write_plan(out, plan)
        return plan
    if found.to_dict() != plan.to_dict():
        differs = [name.replace("shard_digests", "items") for name in (
            "source", "shard_size", "shard_items", "spaces", "shard_digests")
            if getattr(found, name) != getattr(plan, name)]
        raise InvalidInputError(
            f"--out {out} holds shards of another run (its {', '.join(differs)} differ: "
            f"source {found.source}, shard size {found.shard_size}, "
            f"{sum(found.shard_items)} items, encoders "
            f"{', '.join(s.encoder for s in found.spaces)}); give an empty folder, or the "
            f"same source and options to finish that run")
    return plan


def run_encode(source: Path, out: Path, settings: Settings, *, runner: Runner = "local",
               shard_size: int = 1000, ray_address: str | None = None, workers: int = 1,
               num_gpus: float = 0.0, progress: Callable[[Progress], None] | None = None
               ) -> EncodeReport:
    """Encode ``source`` into shards under ``out``; finished shards are kept as they are."""
    started = time.perf_counter()
    source, out = Path(source), Path(out)
    spaces = vector_spaces(settings)
    entries, listing_failures = list_source(source)
    plan = start_plan(source, out, entries, shard_size, spaces)
    remove_partial(out)
    done = finished_shards(out)
    todo = [n for n in range(len(plan.shard_items)) if n not in done]
    report = EncodeReport(shards=len(plan.shard_items), skipped=len(done), runner=runner)
    report.failed.extend(listing_failures)
    shards = {n: entries[n * shard_size:(n + 1) * shard_size] for n in todo}
    if runner == "ray":
        from imgsearch.engine.ray_encode import encode_on_ray

        results = encode_on_ray(shards, spaces, settings, address=ray_address,
                                workers=workers, num_gpus=num_gpus)
    else:
        results = _encode_locally(shards, spaces, settings)
    for number, table, failures in results:
        write_shard(out, number, table, failures)
        report.written += 1
        report.items += len(set(table.column("id").to_pylist()))
        report.failed.extend(failures)
        if progress:
            progress(Progress("encode", report.skipped + report.written, report.shards,
                              len(report.failed)))
    report.seconds = time.perf_counter() - started
    return report


def _encode_locally(shards: dict[int, list[Entry]], spaces: list[VectorSpace],
                    settings: Settings) -> Iterator[ShardResult]:
    if not shards:
        return
    preparer = make_preparer(settings)
    try:
        for number, entries in shards.items():
            rows, failures = encode_entries(preparer, entries, spaces,
                                            settings.ingest_batch_size)
            yield number, rows.table(), failures
    finally:
        preparer.close()
