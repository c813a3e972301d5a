"""``POST /v1/items:batch``: many upserts and deletes in one request.

Each operation is validated on its own; a bad one is reported in its result and never
fails the others. Consecutive upserts go through the engine's one write path,
``upsert_many`` (encoded as a batch, one durable transaction), consecutive deletes
through ``delete_many``, in request order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from fastapi import APIRouter
from pydantic import ValidationError

from imgsearch.engine import Engine
from imgsearch.engine.items import safe_text
from imgsearch.errors import (
    FetchError,
    ImgSearchError,
    InvalidInputError,
    ItemNotFoundError,
)
from imgsearch.types import ImageInput, Item
from imgsearch.web.convert import item_from_fields, one_image
from imgsearch.web.deps import State
from imgsearch.web.schemas import (
    BatchRequest,
    BatchResponse,
    DeleteOp,
    OpError,
    OpResult,
    UpsertOp,
)

router = APIRouter(tags=["items"])


@dataclass
class _Op:
    index: int
    parsed: UpsertOp | DeleteOp
    image: ImageInput | None = None

    @property
    def id(self) -> str:
        return self.parsed.item.id if isinstance(self.parsed, UpsertOp) else self.parsed.id


@dataclass
class _Outcome:
    results: dict[int, OpResult] = field(default_factory=dict)

    def ok(self, op: _Op, status: Literal["added", "updated", "deleted"]) -> None:
        self.results[op.index] = OpResult(index=op.index, op=op.parsed.op, id=op.id,
                                          status=status)

    def failed(self, index: int, op: str | None, item_id: str | None, code: str,
               message: str) -> None:
        self.results[index] = OpResult(index=index, op=op, id=item_id, status="failed",
                                       error=OpError(code=code, message=message))


def _parse(index: int, raw: object, max_bytes: int, outcome: _Outcome) -> _Op | None:
    kind = raw.get("op") if isinstance(raw, dict) else None
    raw_id = raw.get("id") if isinstance(raw, dict) else None
    if isinstance(raw, dict) and isinstance(raw.get("item"), dict):
        raw_id = raw["item"].get("id")
    # echoed in the answer, so it must be text that can be written back
    label_id = safe_text(raw_id) if isinstance(raw_id, str) else None
    label_op = kind if isinstance(kind, str) else None
    model: type[UpsertOp] | type[DeleteOp]
    if label_op == "upsert":
        model = UpsertOp
    elif label_op == "delete":
        model = DeleteOp
    else:
        outcome.failed(index, label_op, label_id, "validation_error",
                       'each operation needs "op": "upsert" or "delete"')
        return None
    try:
        parsed = model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[:3]
        message = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'operation'}: "
                            f"{e['msg']}" for e in first)
        outcome.failed(index, label_op, label_id, "validation_error", message)
        return None
    op = _Op(index, parsed)
    if isinstance(parsed, UpsertOp):
        try:
            op.image = one_image(parsed.image_url, parsed.image_base64, max_bytes)
        except ImgSearchError as exc:
            outcome.failed(index, "upsert", op.id, exc.code, exc.message)
            return None
    return op


def _runs(ops: list[_Op]) -> list[list[_Op]]:
    """Consecutive operations of one kind, cut where an id repeats within a run."""
    runs: list[list[_Op]] = []
    seen: set[str] = set()
    for op in ops:
        if runs and runs[-1][0].parsed.op == op.parsed.op and op.id not in seen:
            runs[-1].append(op)
        else:
            runs.append([op])
            seen = set()
        seen.add(op.id)
    return runs


def _upserts(engine: Engine, run: list[_Op], fetched: dict[str, bytes | FetchError],
             outcome: _Outcome) -> None:
    """Resolve each operation's image, then write the run through ``Engine.upsert_many``
    (one batch encoding, one transaction); an operation that fails fails alone."""
    entries: list[tuple[Item, ImageInput | None]] = []
    writing: list[_Op] = []
    for op in run:
        assert isinstance(op.parsed, UpsertOp)
        try:
            image, url = op.image, op.image if isinstance(op.image, str) else None
            if isinstance(image, str):
                data = fetched[image]
                if isinstance(data, FetchError):
                    raise data
                image = data
            elif image is None:
                existing = engine.get(op.id) if op.id in engine else None
                if existing is None or not existing.image:
                    raise InvalidInputError(f"item {op.id!r} needs an image: give image_url "
                                            f"or image_base64")
                url = image = existing.image
            entries.append((item_from_fields(op.id, op.parsed.item, url), image))
            writing.append(op)
        except ImgSearchError as exc:
            outcome.failed(op.index, "upsert", op.id, exc.code, exc.message)
    if not entries:
        return
    try:
        results = engine.upsert_many(entries)
    except ImgSearchError as exc:  # e.g. a read-only collection: nothing was written
        results = [exc] * len(entries)
    for op, result in zip(writing, results, strict=True):
        if isinstance(result, ImgSearchError):
            outcome.failed(op.index, "upsert", op.id, result.code, result.message)
        elif isinstance(result, OSError):
            outcome.failed(op.index, "upsert", op.id, "io_error",
                           f"the stored image of item {op.id!r} cannot be read ({result}); "
                           f"give the image again")
        else:
            outcome.ok(op, "added" if result == "added" else "updated")


def _deletes(engine: Engine, run: list[_Op], outcome: _Outcome) -> None:
    # a node over a remote collection asks once for the run, not once an operation
    existing = getattr(engine, "existing", None)
    found = existing([op.id for op in run]) if existing is not None else None
    present = [op for op in run if (op.id in found if found is not None else op.id in engine)]
    kept = {op.index for op in present}
    for op in run:
        if op.index not in kept:
            missing = ItemNotFoundError(op.id)
            outcome.failed(op.index, "delete", op.id, missing.code, missing.message)
    engine.delete_many([op.id for op in present])
    for op in present:
        outcome.ok(op, "deleted")


def apply_batch(engine: Engine, ops: list[_Op], outcome: _Outcome) -> None:
    urls = [op.image for op in ops if isinstance(op.image, str)]
    fetched = engine.fetcher.fetch_many(urls) if urls else {}
    for run in _runs(ops):
        if run[0].parsed.op == "upsert":
            _upserts(engine, run, fetched, outcome)
        else:
            _deletes(engine, run, outcome)


@router.post("/v1/items:batch", response_model=BatchResponse,
             summary="Upsert and delete many items; each operation succeeds or fails alone")
async def batch(body: BatchRequest, state: State) -> BatchResponse:
    cap = state.limits.max_batch
    if len(body.operations) > cap:
        raise InvalidInputError(f"a batch may hold at most {cap} operations, got "
                                f"{len(body.operations)}; split it into several requests")
    outcome = _Outcome()
    ops = [op for i, raw in enumerate(body.operations)
           if (op := _parse(i, raw, state.max_image_bytes, outcome)) is not None]
    if ops:
        await state.call(apply_batch, state.engine, ops, outcome)
    results = [outcome.results[i] for i in range(len(body.operations))]
    failed = sum(r.status == "failed" for r in results)
    return BatchResponse(results=results, succeeded=len(results) - failed, failed=failed)


__all__ = ["apply_batch", "router"]
