"""Which encoders made a milvus collection's vectors: recorded in the collection's
properties (``imgsearch.encoders``: per space, the encoder's name, model id, dimension
and modality) when it is made, and checked at every open, so that vectors of another
model are never mixed into it, even where the dimension is the same."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from imgsearch.engine.backends.milvus_target import MilvusTarget, _call
from imgsearch.errors import BackendMismatchError, EncoderMismatchError
from imgsearch.types import VectorSpace

PROPERTY = "imgsearch.encoders"


def encoders_property(encoders: Mapping[str, VectorSpace]) -> dict[str, str]:
    """The collection properties that record ``encoders``."""
    return {PROPERTY: json.dumps({name: {"encoder": s.encoder, "model_id": s.model_id,
                                         "dim": s.dim, "modality": s.modality}
                                  for name, s in sorted(encoders.items())})}


def recorded_encoders(target: MilvusTarget, described: Mapping[str, Any]
                      ) -> dict[str, VectorSpace]:
    """The encoders a described collection records (none for one made before they were
    recorded)."""
    text = (described.get("properties") or {}).get(PROPERTY)
    if not text:
        return {}
    try:
        data = json.loads(text)
        return {name: VectorSpace(name, str(v["encoder"]), str(v["model_id"]), int(v["dim"]),
                                  v["modality"]) for name, v in data.items()}
    except (ValueError, TypeError, KeyError, AttributeError):
        raise BackendMismatchError(
            f"Milvus collection {target.name!r} at {target.address}: its {PROPERTY} "
            f"property cannot be read ({str(text)[:80]!r}); it was not written by "
            f"imgsearch") from None


def check_encoders(target: MilvusTarget, recorded: Mapping[str, VectorSpace],
                   wanted: Mapping[str, VectorSpace]) -> None:
    """EncoderMismatchError when ``wanted`` names another encoder or model for a space
    than the collection records."""
    for name, want in sorted(wanted.items()):
        have = recorded.get(name)
        if have is None:
            continue
        if (have.encoder, have.model_id, have.dim) != (want.encoder, want.model_id, want.dim):
            raise EncoderMismatchError(
                f"Milvus collection {target.name!r} at {target.address} holds {name} "
                f"vectors of encoder {have.encoder!r} ({have.model_id}, {have.dim}-d), not "
                f"{want.encoder!r} ({want.model_id}, {want.dim}-d): use the encoder it was "
                f"made with (IMGSEARCH_{'IMAGE' if name == 'image' else 'TEXT'}_ENCODER), "
                f"or another collection name")


def record_encoders(target: MilvusTarget, client: Any,
                    encoders: Mapping[str, VectorSpace]) -> None:
    """Record ``encoders`` on a collection made before they were recorded."""
    _call(target, lambda: client.alter_collection_properties(
        target.name, properties=encoders_property(encoders), timeout=target.timeout_s))


__all__ = ["PROPERTY", "check_encoders", "encoders_property", "record_encoders",
           "recorded_encoders"]
