"""Which backend a collection name means: ``scheme://...`` by its scheme, a path is
``local``. Backends are imported when first used (pymilvus only for milvus://)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from imgsearch.config import Settings
from imgsearch.engine.backends.base import CollectionBackend
from imgsearch.errors import InvalidInputError
from imgsearch.types import VectorSpace

Encoders = Mapping[str, VectorSpace]


def _local(where: str, settings: Settings, spaces: Mapping[str, int] | None,
           create: bool, encoders: Encoders | None) -> CollectionBackend:
    from imgsearch.engine.backends.local import LocalBackend

    # a directory's manifest records its encoders; Engine.open checks the settings' own
    return LocalBackend.open(Path(where), settings, create=create)


def _milvus(where: str, settings: Settings, spaces: Mapping[str, int] | None,
            create: bool, encoders: Encoders | None) -> CollectionBackend:
    from imgsearch.engine.backends.milvus import MilvusBackend

    return MilvusBackend.open(where, spaces, create=create, encoders=encoders)


Opener = Callable[[str, Settings, Mapping[str, int] | None, bool, Encoders | None],
                  CollectionBackend]
BACKENDS: dict[str, Opener] = {"local": _local, "milvus": _milvus}


def backend_name(where: str | Path) -> str:
    text = str(where)
    scheme, sep, _rest = text.partition("://")
    if not sep:
        return "local"
    if scheme not in BACKENDS:
        raise InvalidInputError(f"{text!r}: unknown collection backend {scheme!r}; known: "
                                f"{', '.join(sorted(BACKENDS))} (a path is a local collection)")
    return scheme


def open_backend(where: str | Path, settings: Settings | None = None, *,
                 spaces: Mapping[str, int] | None = None, create: bool = True,
                 encoders: Encoders | None = None) -> CollectionBackend:
    """The collection at ``where``: a directory, or ``milvus://host:port/name``;
    ``encoders`` (what made each space) are recorded in a new collection and checked
    against those an existing one recorded (EncoderMismatchError)."""
    return BACKENDS[backend_name(where)](str(where), settings or Settings(), spaces, create,
                                         encoders)


__all__ = ["BACKENDS", "backend_name", "open_backend"]
