"""Making a milvus collection (schema, indexes, consistency level) and checking one that
exists: made by imgsearch, with the spaces and dimensions asked for, and its indexes
built as asked (``describe_index``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from imgsearch.engine.backends.milvus_schema import (
    MAX_ID,
    MAX_LIST,
    MAX_SHORT,
    MAX_TEXT,
    SCALARS,
    SCHEMA_MARK,
    SCHEMA_VERSION,
    presence_field,
    vector_field,
)
from imgsearch.engine.backends.milvus_target import (
    CONSISTENCY,
    MilvusTarget,
    _call,
    _down,
    _unreachable,
)
from imgsearch.engine.backends.milvus_thumbnails import MAX_THUMBNAIL
from imgsearch.errors import (
    BackendMismatchError,
    BackendUnavailableError,
    UnsupportedOnBackendError,
)

_VERSION = re.compile(r"(\d+)\.(\d+)")


def _at_least(version: str, major: int, minor: int) -> bool:
    if version.startswith("milvus_lite-"):
        return True  # Milvus Lite 3 speaks the 2.5+ API (BM25, hybrid search)
    found = _VERSION.search(version)
    return found is not None and (int(found.group(1)), int(found.group(2))) >= (major, minor)



def _description(spaces: Mapping[str, int]) -> str:
    listed = ",".join(f"{s}:{d}" for s, d in sorted(spaces.items()))
    return f"{SCHEMA_MARK} v{SCHEMA_VERSION}; spaces {listed}"


def _create(target: MilvusTarget, client: Any, spaces: Mapping[str, int], bm25: bool,
            properties: Mapping[str, str] | None = None) -> None:
    from pymilvus import DataType, Function, FunctionType

    schema = client.create_schema(auto_id=False, enable_dynamic_field=False,
                                  description=_description(spaces))
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=MAX_ID)
    for name in ("category_norm", "brand_norm", "license_norm", "camera_norm", "orientation",
                 "taken_local"):
        schema.add_field(name, DataType.VARCHAR, max_length=MAX_SHORT)
    schema.add_field("price", DataType.DOUBLE)
    schema.add_field("has_price", DataType.BOOL)
    schema.add_field("width", DataType.INT64)
    schema.add_field("height", DataType.INT64)
    for name in ("colors", "tags", "places"):
        schema.add_field(name, DataType.ARRAY, element_type=DataType.VARCHAR,
                         max_capacity=MAX_LIST, max_length=MAX_SHORT)
    schema.add_field("attributes", DataType.JSON)
    schema.add_field("added", DataType.INT64)  # POSITIONED: browsing and the near filter
    schema.add_field("latitude", DataType.DOUBLE)
    schema.add_field("longitude", DataType.DOUBLE)
    schema.add_field("has_position", DataType.BOOL)
    schema.add_field("item", DataType.JSON)
    schema.add_field("thumbnail", DataType.VARCHAR, max_length=MAX_THUMBNAIL)
    if bm25:
        schema.add_field("text", DataType.VARCHAR, max_length=MAX_TEXT, enable_analyzer=True)
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_function(Function(name="text_bm25", function_type=FunctionType.BM25,
                                     input_field_names=["text"],
                                     output_field_names=["sparse"]))
    else:
        schema.add_field("text", DataType.VARCHAR, max_length=MAX_TEXT)
    for space, dim in sorted(spaces.items()):
        schema.add_field(vector_field(space), DataType.FLOAT_VECTOR, dim=dim)
        schema.add_field(presence_field(space), DataType.BOOL)
    index = client.prepare_index_params()
    for space in sorted(spaces):
        index.add_index(vector_field(space), index_type=target.index, metric_type="IP",
                        params=dict(target.build))
    if bm25:
        index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    try:
        client.create_collection(target.name, schema=schema, index_params=index,
                                 consistency_level=CONSISTENCY, timeout=target.timeout_s,
                                 **({"properties": dict(properties)} if properties else {}))
    except Exception as exc:
        if _unreachable(exc):
            raise BackendUnavailableError(target.uri, _down(target, exc)) from None
        raise UnsupportedOnBackendError(
            f"the Milvus server at {target.address} cannot hold collection {target.name!r} "
            f"with spaces {', '.join(f'{s} ({d}-d)' for s, d in sorted(spaces.items()))}: "
            f"{str(exc).strip()[:300]}") from None


def _check_existing(target: MilvusTarget, client: Any, spaces: Mapping[str, int] | None
                    ) -> tuple[dict[str, int], bool, bool, dict[str, Any]]:
    """The spaces of the existing collection, refused when imgsearch did not make it or
    when ``spaces`` asks for other dimensions; whether it has BM25, and places; and its
    description."""
    described = _call(target, lambda: client.describe_collection(target.name))
    description = str(described.get("description") or "")
    fields = {f["name"]: f for f in described.get("fields", [])}
    # the description says so where the server keeps it (Milvus Lite does not): the
    # fields every imgsearch collection has decide
    missing = sorted(set(SCALARS) - set(fields))
    if (description and not description.startswith(SCHEMA_MARK)) or missing:
        raise BackendMismatchError(
            f"Milvus collection {target.name!r} at {target.address} was not made by "
            f"imgsearch (it lacks the field(s) {', '.join(missing) or 'none'}; its "
            f"description is {description[:80]!r}); name another collection")
    found: dict[str, int] = {}
    for name, spec in fields.items():
        if name.startswith("v_"):
            params = spec.get("params") or {}
            found[name[2:]] = int(params.get("dim", 0))
    for space, dim in (spaces or {}).items():
        if space in found and found[space] != dim:
            raise BackendMismatchError(
                f"Milvus collection {target.name!r} holds {found[space]}-d {space} vectors; "
                f"these are {dim}-d (another encoder?): use another collection name")
        if space not in found:
            raise BackendMismatchError(
                f"Milvus collection {target.name!r} has no {space} space (it has "
                f"{', '.join(sorted(found)) or 'none'}); use another collection name")
    return found, "sparse" in fields, "places" in fields, dict(described)


def _check_indexes(target: MilvusTarget, client: Any, spaces: Mapping[str, int]) -> None:
    """Refuse a collection whose index the server built otherwise than asked (a server
    may silently drop parameters it does not know)."""
    for space in sorted(spaces):
        name = vector_field(space)
        described = _call(target, lambda n=name: client.describe_index(  # type: ignore[misc]
            target.name, n))
        if not described:
            raise BackendMismatchError(f"Milvus collection {target.name!r} has no index on "
                                       f"{name}")
        kind = str(described.get("index_type", "")).upper()
        metric = str(described.get("metric_type", "")).upper()
        problems = []
        if metric != "IP":
            problems.append(f"metric {metric or 'none'} instead of IP")
        if kind != target.index:
            problems.append(f"index {kind or 'none'} instead of {target.index}")
        for key, value in target.build.items():
            have = described.get(key, (described.get("params") or {}).get(key))
            if have is None or str(have) != str(value):
                problems.append(f"{key}={have} instead of {value}")
        if problems:
            raise BackendMismatchError(
                f"Milvus collection {target.name!r} at {target.address}: the {space} index "
                f"has {'; '.join(problems)} (the server dropped or changed the build "
                f"parameters); drop the collection and create it again, or name another")
