"""API keys: random tokens kept only as hashes, in one JSON file.

A token is ``isk_<key id>_<secret>``, the secret 32 random bytes (base64url). It is shown
once, when it is made; the file keeps its SHA-256, the key id, a name and a scope. A
token of 256 random bits needs no slow hash: nobody can search that space, so SHA-256
suffices, and the stored digest is compared in constant time.

Scopes are ordered: ``read`` < ``write`` < ``admin``. A key may do what its scope and
every lower one allow: a write key reads, an admin key writes and reads ``/metrics``
and ``/v1/report``.

The file (``<collection>/api_keys.json`` unless ``IMGSEARCH_API_KEYS_FILE`` names
another) is written atomically with mode 0600 under a lock, so concurrent ``imgsearch
keys`` commands do not lose each other's keys. The server reads it again whenever it
changes (size, mtime or inode), so a revoked key stops working at its next request.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from imgsearch.errors import InvalidInputError, NotFoundError

KEYS_FILE_NAME = "api_keys.json"
SCOPES = ("read", "write", "admin")
TOKEN_PREFIX = "isk_"
_FORMAT = 1
_MAX_FILE_BYTES = 4 * 1024 * 1024
_MAX_TOKEN_CHARS = 200


class KeysFileError(InvalidInputError):
    """The keys file cannot be read or is not one this version writes."""

    code = "keys_file_invalid"


def allows(scope: str, needed: str) -> bool:
    """Whether a key of ``scope`` may do what needs ``needed``."""
    return SCOPES.index(scope) >= SCOPES.index(needed)


def _digest(token: str) -> str:
    return "sha256:" + hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    """One key as the file keeps it (never the token itself)."""

    id: str
    name: str
    scope: str
    hash: str
    created_at: float

    def public(self) -> dict[str, Any]:
        """What ``keys list`` shows: everything but the hash."""
        return {"id": self.id, "name": self.name, "scope": self.scope,
                "created_at": self.created_at}


def _parse(path: Path, raw: bytes) -> list[ApiKey]:
    try:
        data = json.loads(raw)
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise ValueError(f"not a format-{_FORMAT} keys file")
        keys = []
        for entry in data["keys"]:
            key = ApiKey(id=str(entry["id"]), name=str(entry.get("name", "")),
                         scope=str(entry["scope"]), hash=str(entry["hash"]),
                         created_at=float(entry.get("created_at", 0.0)))
            if key.scope not in SCOPES or not key.hash.startswith("sha256:"):
                raise ValueError(f"key {key.id!r} has scope {key.scope!r} or hash "
                                 f"{key.hash[:7]!r}")
            keys.append(key)
        return keys
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise KeysFileError(f"the API keys file {path} is damaged ({exc}); fix it, or "
                            f"move it aside and create keys again with `imgsearch keys "
                            f"create`") from None


class KeyStore:
    """The keys of one file: read (and re-read when it changes), made, revoked."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: tuple[int, int, int] | None = None
        self._keys: list[ApiKey] = []

    @classmethod
    def for_collection(cls, collection: Path, keys_file: str = "") -> KeyStore:
        """``keys_file`` when set (``IMGSEARCH_API_KEYS_FILE``), else the collection's."""
        return cls(Path(keys_file) if keys_file else collection / KEYS_FILE_NAME)

    def current(self) -> list[ApiKey]:
        """The current keys; reads the file again only when it changed. A missing file
        is no keys; a damaged or unreadable one raises KeysFileError."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._seen, self._keys = None, []
            return []
        except OSError as exc:
            raise KeysFileError(f"cannot read the API keys file {self.path}: "
                                f"{exc.strerror}") from None
        seen = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        if seen != self._seen:
            self._keys = self._read()
            self._seen = seen
        return list(self._keys)

    def _read(self) -> list[ApiKey]:
        try:
            with self.path.open("rb") as handle:
                raw = handle.read(_MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise KeysFileError(f"cannot read the API keys file {self.path}: "
                                f"{exc.strerror}") from None
        if len(raw) > _MAX_FILE_BYTES:
            raise KeysFileError(f"the API keys file {self.path} is over "
                                f"{_MAX_FILE_BYTES} bytes; it is not one imgsearch wrote")
        return _parse(self.path, raw)

    def verify(self, token: str) -> ApiKey | None:
        """The key this token is, or None. Compares digests in constant time."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > _MAX_TOKEN_CHARS:
            return None
        key_id = token[len(TOKEN_PREFIX):].partition("_")[0]
        digest = _digest(token)
        found = None
        for key in self.current():
            if hmac.compare_digest(key.hash, digest) and key.id == key_id:
                found = key
        return found

    def create(self, scope: str, name: str = "") -> tuple[ApiKey, str]:
        """A new key of ``scope``: returns it and its token (shown once, never stored)."""
        if scope not in SCOPES:
            raise InvalidInputError(f"unknown scope {scope!r}; scopes are "
                                    f"{', '.join(SCOPES)}")
        with self._locked() as keys:
            key_id = secrets.token_hex(4)
            while any(k.id == key_id for k in keys):
                key_id = secrets.token_hex(4)
            secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
            token = f"{TOKEN_PREFIX}{key_id}_{secret}"
            key = ApiKey(id=key_id, name=name or key_id, scope=scope, hash=_digest(token),
                         created_at=round(time.time(), 3))
            self._write([*keys, key])
        return key, token

    def revoke(self, which: str) -> list[ApiKey]:
        """Remove the keys whose id or name is ``which``; NotFoundError when none is."""
        with self._locked() as keys:
            gone = [k for k in keys if which in (k.id, k.name)]
            if not gone:
                raise NotFoundError(f"no API key with id or name {which!r} in {self.path}; "
                                    f"`imgsearch keys list` shows them")
            self._write([k for k in keys if k not in gone])
        return gone

    @contextmanager
    def _locked(self) -> Iterator[list[ApiKey]]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path.with_name(self.path.name + ".lock"),
                         os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise KeysFileError(f"cannot write the API keys file {self.path}: "
                                f"{exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield self._read()
        finally:
            os.close(fd)

    def _write(self, keys: list[ApiKey]) -> None:
        body = json.dumps({"format": _FORMAT, "keys": [asdict(k) for k in keys]}, indent=1)
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(body + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise KeysFileError(f"cannot write the API keys file {self.path}: "
                                f"{exc.strerror}") from None


__all__ = ["KEYS_FILE_NAME", "SCOPES", "TOKEN_PREFIX", "ApiKey", "KeyStore", "KeysFileError",
           "allows"]
