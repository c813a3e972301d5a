"""The Ray runner of ``imgsearch encode``: shards spread over a Ray cluster's workers.

Every item of the unfinished shards becomes a row of a Ray dataset; ``map_batches``
runs it through a pool of actors, each holding one encoder (built once, on its worker,
as clip-retrieval builds one model per worker), with ``num_gpus`` GPUs each. This
process gathers the rows back and hands over each shard as soon as all its items came
back, so a killed run keeps the shards finished before it. Ray is optional: the local
runner needs none of it.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from imgsearch.config import Settings
from imgsearch.engine.encode_work import (
    Entry,
    ShardResult,
    add_prepared,
    make_preparer,
)
from imgsearch.errors import InvalidInputError
from imgsearch.store.shards import SCHEMA, ShardRows, item_from_json, item_json
from imgsearch.types import IngestFailure, VectorSpace

_RESULT_SCHEMA = SCHEMA.append(pa.field("shard", pa.int64())).append(
    pa.field("position", pa.int64())).append(pa.field("failure", pa.string()))
_LOCAL_OBJECT_STORE_BYTES = 300 << 20
_LOCAL_START_ATTEMPTS = 2
log = logging.getLogger(__name__)


class ShardEncoder:
    """One Ray actor: an encoder and a decoder, built once, run on batches of items."""

    def __init__(self, settings: Settings, spaces: list[VectorSpace]) -> None:
        self.preparer = make_preparer(settings)
        self.spaces = spaces

    def __call__(self, batch: pa.Table) -> pa.Table:
        entries: list[Entry] = []
        keys: dict[str, tuple[int, int]] = {}
        for row in batch.to_pylist():
            item = item_from_json(row["item"], "ray batch")
            image = row["image"]
            entries.append((item, Path(image) if row["is_path"] else image))
            keys[item.id] = (row["shard"], row["position"])
        prepared, failures = self.preparer.prepare(entries)
        rows = ShardRows()
        add_prepared(rows, prepared, self.spaces)
        table = rows.table()
        shard = [keys[i][0] for i in rows.id]
        position = [keys[i][1] for i in rows.id]
        failed: list[str | None] = [None] * len(rows.id)
        for failure in failures:
            key = keys.get(failure.item_id or "")
            if key is None:  # every failure of a prepared item names it
                continue
            table = pa.concat_tables([table, pa.table({name: [None] for name in SCHEMA.names},
                                                      schema=SCHEMA)])
            shard.append(key[0])
            position.append(key[1])
            failed.append(json.dumps(vars(failure)))
        return (table.append_column("shard", pa.array(shard, pa.int64()))
                .append_column("position", pa.array(position, pa.int64()))
                .append_column("failure", pa.array(failed, pa.string())))


def encode_on_ray(shards: dict[int, list[Entry]], spaces: list[VectorSpace],
                  settings: Settings, *, address: str | None, workers: int,
                  num_gpus: float) -> Iterator[ShardResult]:
    """Encode ``shards`` on Ray (a local cluster of ``workers`` CPUs when no ``address``)
    and yield each one as soon as all its items came back."""
    if workers < 1:
        raise InvalidInputError(f"--workers must be 1 or more, got {workers}")
    if num_gpus < 0:
        raise InvalidInputError(f"--num-gpus must be 0 or more, got {num_gpus}")
    try:
        import ray
        import ray.data
    except ImportError:
        raise InvalidInputError("the ray runner needs Ray: pip install "
                                "'imgsearch-engine[ray]', or use --runner local") from None
    rows = _input_rows(shards)
    if not rows:
        return
    started_here = not ray.is_initialized()
    if started_here:
        _start_ray(ray, address, workers)
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        dataset = ray.data.from_items(rows).map_batches(
            ShardEncoder, fn_constructor_kwargs={"settings": settings, "spaces": spaces},
            batch_size=max(1, settings.ingest_batch_size), batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=1,
            num_gpus=num_gpus)
        yield from _gather(dataset.iter_batches(batch_format="pyarrow", batch_size=None),
                           {n: len(entries) for n, entries in shards.items()})
    finally:
        if started_here:
            ray.shutdown()


def _start_ray(ray: Any, address: str | None, workers: int) -> None:
    """Connect to the cluster at ``address``, or start a local one. A local start is tried
    twice: Ray gives its node a fixed 30 s to come up and raises a bare ``Exception``
    when a busy machine takes longer."""
    where = f"the Ray cluster at {address}" if address else "a local Ray cluster"
    attempts = 1 if address else _LOCAL_START_ATTEMPTS
    for attempt in range(1, attempts + 1):
        try:
            if address:
                ray.init(address=address, log_to_driver=False, configure_logging=False)
            else:
                ray.init(num_cpus=max(2, workers), include_dashboard=False,
                         log_to_driver=False, configure_logging=False,
                         object_store_memory=_LOCAL_OBJECT_STORE_BYTES)
            return
        except Exception as exc:  # Ray's start-up failures share no narrower class
            with contextlib.suppress(Exception):
                ray.shutdown()  # the processes a failed start left behind
            if attempt < attempts:
                log.warning("%s did not start (%s); trying once more", where, exc)
                continue
            raise InvalidInputError(f"cannot start or reach {where}: {exc}") from None


def _input_rows(shards: dict[int, list[Entry]]) -> list[dict[str, Any]]:
    rows = []
    for number, entries in shards.items():
        for position, (item, image) in enumerate(entries):
            if image is not None and not isinstance(image, str | Path):
                raise InvalidInputError("the ray runner encodes images named by a path or "
                                        "URL only")
            rows.append({"shard": number, "position": position, "item": item_json(item),
                         "image": None if image is None else str(image),
                         "is_path": isinstance(image, Path)})
    return rows


def _gather(batches: Iterable[Any], expected: dict[int, int]) -> Iterator[ShardResult]:
    parts: dict[int, list[pa.Table]] = defaultdict(list)
    seen: dict[int, set[int]] = defaultdict(set)
    for batch in batches:
        if batch.num_rows == 0:
            continue
        batch = batch.cast(_RESULT_SCHEMA)
        for number in set(batch.column("shard").to_pylist()):
            part = batch.filter(pc.equal(batch.column("shard"), number))
            parts[number].append(part)
            seen[number].update(part.column("position").to_pylist())
            if len(seen[number]) == expected[number]:
                yield _finish(number, parts.pop(number))
    missing = [n for n in expected if n in parts or (n not in seen and expected[n])]
    if missing:
        raise InvalidInputError(f"the Ray run ended without all items of shard(s) "
                                f"{', '.join(map(str, sorted(missing)))}; run again to "
                                f"finish them")


def _finish(number: int, parts: Sequence[pa.Table]) -> ShardResult:
    table = pa.concat_tables(parts).sort_by([("position", "ascending"),
                                             ("space", "ascending")])
    failures = [IngestFailure(**json.loads(text))
                for text in table.column("failure").to_pylist() if text is not None]
    rows = table.filter(pc.is_null(table.column("failure")))
    return number, rows.select(SCHEMA.names).cast(SCHEMA), failures
