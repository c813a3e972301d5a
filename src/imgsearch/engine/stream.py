"""Index from a Redis stream, as a member of a consumer group: ``imgsearch consume``.

Delivery is at least once: a message is acknowledged (XACK) only after its write
committed, so a consumer killed at any instant leaves its unacknowledged messages
pending, and they are read again -- by the same consumer when it comes back (its
pending entries first), or by another one that claims them once they have been idle
for ``claim_idle_ms`` (XAUTOCLAIM). Applying a message twice changes nothing: an
upsert replaces the item with that id, and one whose metadata and image (by content
hash) are those already stored is not written again. A message that cannot be applied
goes, with its reason, to the dead-letter stream ``STREAM:dead`` and is acknowledged in
the same transaction.

Kafka would fit the same interface (a group, offsets committed after the write) but is
not provided.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from imgsearch.engine.core import Engine
from imgsearch.engine.stream_messages import Change, MessageError, parse_message, unchanged
from imgsearch.errors import (
    CollectionError,
    ImgSearchError,
    InvalidInputError,
    StorageFullError,
    StreamError,
)
from imgsearch.types import ImageInput, Item

_log = logging.getLogger("imgsearch.stream")
Entry = tuple[str, dict[str, str]]  # a message id and its fields


@dataclass(frozen=True)
class StreamAddress:
    """``redis://[user:password@]HOST[:PORT]/STREAM``: a Redis server and a stream on it."""

    host: str
    port: int
    stream: str
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> StreamAddress:
        parts = urlsplit(url)
        if parts.scheme != "redis":
            raise InvalidInputError(f"{url!r}: give a stream as redis://HOST:6379/STREAM "
                                    f"(Kafka is not provided)")
        stream = unquote(parts.path.lstrip("/"))
        if not parts.hostname or not stream:
            raise InvalidInputError(f"{url!r}: give a stream as redis://HOST:6379/STREAM")
        try:
            port = parts.port or 6379
        except ValueError:
            raise InvalidInputError(f"{url!r}: the port is not a number") from None
        return cls(parts.hostname, port, stream, parts.username,
                   unquote(parts.password) if parts.password else None)

    @property
    def dead_letters(self) -> str:
        return f"{self.stream}:dead"

    def __str__(self) -> str:
        return f"redis://{self.host}:{self.port}/{self.stream}"


@dataclass
class ConsumerStats:
    """What a consumer did since it started."""

    upserted: int = 0
    unchanged: int = 0
    deleted: int = 0
    dead: int = 0
    reclaimed: int = 0
    errors: int = 0
    last_error: str | None = None
    dead_reasons: list[str] = field(default_factory=list)  # the latest few


@dataclass(frozen=True)
class ConsumeOptions:
    """How ``serve --consume`` consumes: the stream and the consumer's options."""

    address: StreamAddress
    group: str = "imgsearch"
    consumer: str | None = None
    image_roots: tuple[Path, ...] = ()
    batch_size: int = 32
    claim_idle_ms: int = 60_000

    def consumer_for(self, engine: Engine) -> StreamConsumer:
        return StreamConsumer(engine, self.address, group=self.group, consumer=self.consumer,
                              image_roots=self.image_roots, batch_size=self.batch_size,
                              claim_idle_ms=self.claim_idle_ms)


def default_consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class StreamConsumer:
    """Reads ``address`` in consumer group ``group`` and applies it to ``engine``."""

    def __init__(self, engine: Engine, address: StreamAddress, *, group: str = "imgsearch",
                 consumer: str | None = None, image_roots: Sequence[Path] = (),
                 batch_size: int = 32, block_ms: int = 1000, claim_idle_ms: int = 60_000,
                 client: Any = None) -> None:
        if batch_size < 1 or block_ms < 1 or claim_idle_ms < 0:
            raise InvalidInputError("batch size and block time must be 1 or more, the claim "
                                    "idle time 0 or more")
        self.engine = engine
        self.address = address
        self.group = group
        self.consumer = consumer or default_consumer_name()
        self.image_roots = list(image_roots)
        self.batch_size = batch_size
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.stats = ConsumerStats()
        self._redis = client or _connect(address)
        self._claim_from = "0-0"
        self._last_claim = 0.0

    # -- the loop --------------------------------------------------------------------
    def ensure_group(self) -> None:
        """Create the group (and the stream) when missing; it starts at the beginning."""
        import redis

        try:
            self._call(self._redis.xgroup_create, self.address.stream, self.group, id="0",
                       mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise StreamError(f"{self.address}: cannot create group {self.group!r} "
                                  f"({exc})") from None

    def run(self, stop: threading.Event | None = None, *,
            stop_when_idle: bool = False) -> ConsumerStats:
        """Consume until ``stop`` is set (or, with ``stop_when_idle``, until a round finds
        nothing to do); errors of Redis or of the collection are logged and retried with
        backoff, with nothing acknowledged."""
        stop = stop or threading.Event()
        backoff = 0.5
        ready = False
        while not stop.is_set():
            try:
                if not ready:
                    self.ensure_group()
                    ready = True
                if self.poll() == 0 and stop_when_idle:
                    claimed = self._claim(force=True)  # none left idle at others either
                    if not claimed:
                        break
                    self.stats.reclaimed += len(claimed)
                    self.apply(claimed)
                backoff = 0.5
            except (ImgSearchError, OSError, _redis_errors()) as exc:
                self.stats.errors += 1
                self.stats.last_error = str(getattr(exc, "message", exc))
                _log.warning("stream %s: %s; retrying in %.1fs", self.address,
                             self.stats.last_error, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
        return self.stats

    def poll(self) -> int:
        """One round: this consumer's own pending messages first (left by a crash),
        then messages idle too long at other consumers, then new ones. How many."""
        mine = self._read("0")
        if mine:
            self.apply(mine)
            return len(mine)
        claimed = self._claim()
        if claimed:
            self.stats.reclaimed += len(claimed)
            self.apply(claimed)
            return len(claimed)
        fresh = self._read(">", block=self.block_ms)
        self.apply(fresh)
        return len(fresh)

    def _read(self, start: str, block: int | None = None) -> list[Entry]:
        answer = self._call(self._redis.xreadgroup, self.group, self.consumer,
                            {self.address.stream: start}, count=self.batch_size, block=block)
        entries: list[Entry] = []
        trimmed: list[str] = []
        for _stream, messages in answer or []:
            for mid, data in messages:
                if data is None:
                    trimmed.append(mid)  # pending, but trimmed from the stream since
                else:
                    entries.append((mid, data))
        self._ack(trimmed)  # nothing left to apply; else they would come first for ever
        return entries

    def _claim(self, force: bool = False) -> list[Entry]:
        now = time.monotonic()
        if not force and now - self._last_claim < max(self.claim_idle_ms / 2000.0, 0.2):
            return []
        self._last_claim = now
        answer = self._call(self._redis.xautoclaim, self.address.stream, self.group,
                            self.consumer, self.claim_idle_ms, start_id=self._claim_from,
                            count=self.batch_size)
        self._claim_from = answer[0] if answer[0] else "0-0"
        return [(mid, data) for mid, data in answer[1] if data is not None]

    # -- applying a batch ------------------------------------------------------------
    def apply(self, entries: list[Entry]) -> None:
        """Apply messages in order; acknowledge each once its write committed.

        Redis and the collection failing (``ImgSearchError``, ``OSError``) is left to the
        caller to retry. Any other exception is a message this code cannot handle: the
        batch is applied again one message at a time, and the message that fails alone
        goes to the dead-letter stream, so that one message never blocks the stream."""
        try:
            self._apply(entries)
        except (ImgSearchError, OSError, _redis_errors()):
            raise
        except Exception as exc:
            if len(entries) > 1:
                _log.warning("stream %s: a batch failed (%s: %s); applying its messages one "
                             "at a time", self.address, type(exc).__name__, exc)
                for entry in entries:
                    self.apply([entry])
                return
            _log.exception("stream %s: message %s cannot be applied", self.address,
                           entries[0][0])
            self._dead(entries[0][0], entries[0][1], f"{type(exc).__name__}: {exc}",
                       "internal_error")

    def _apply(self, entries: list[Entry]) -> None:
        run: list[tuple[str, dict[str, str], Change]] = []
        limit = self.engine.settings.max_file_bytes
        for message_id, data in entries:
            try:
                change = parse_message(data, self.image_roots, limit)
            except MessageError as exc:
                self._flush(run)
                self._dead(message_id, data, exc.reason, exc.code)
                continue
            if run and run[-1][2].op != change.op:
                self._flush(run)
            run.append((message_id, data, change))
        self._flush(run)

    def _flush(self, run: list[tuple[str, dict[str, str], Change]]) -> None:
        if not run:
            return
        if run[0][2].op == "delete":
            self.stats.deleted += self.engine.delete_many(
                dict.fromkeys(change.item_id for _, _, change in run))
            self._ack([mid for mid, _, _ in run])
        else:
            self._upsert(run)
        run.clear()

    def _upsert(self, run: list[tuple[str, dict[str, str], Change]]) -> None:
        last: dict[str, str] = {}  # item id -> its last message: a later one wins
        changes: dict[str, Change] = {}
        for message_id, _, change in run:
            last[change.item_id] = message_id
            changes[change.item_id] = change
        todo: list[tuple[Item, ImageInput | None]] = []
        skipped = 0
        for item_id, change in changes.items():
            assert change.item is not None
            if unchanged(_stored(self.engine, item_id), change, _content_hash(change)):
                skipped += 1
                continue
            todo.append((change.item, change.image))
        # the one write path of items with their images (as the item routes): decoded
        # and encoded as one batch and committed in one transaction, durable when it
        # returns; no index snapshot as ingest takes at its end: the journal keeps the
        # indexes up to date, saved every ``index_save_every`` changes
        outcomes = self.engine.upsert_many(todo) if todo else []
        failed: dict[str, tuple[str, str]] = {}  # item id -> (reason, code)
        for (item, _image), outcome in zip(todo, outcomes, strict=True):
            if isinstance(outcome, str):
                continue
            if isinstance(outcome, CollectionError | StorageFullError):
                raise outcome  # the commit failed: nothing acknowledged, retried
            label = item.image or item.id
            if isinstance(outcome, ImgSearchError):
                message = outcome.message
                reason = message[len(label) + 2:] if message.startswith(label + ": ") \
                    else message
                failed[item.id] = (f"{label}: {reason}", outcome.code)
            else:
                failed[item.id] = (f"{label}: cannot read: {outcome}", "io_error")
        done = []
        for message_id, data, change in run:
            failure = failed.get(change.item_id)
            if failure is not None and last[change.item_id] == message_id:
                self._dead(message_id, data, *failure)
            else:
                done.append(message_id)
        self._ack(done)
        self.stats.unchanged += skipped
        self.stats.upserted += len(todo) - len(failed)

    def _ack(self, message_ids: list[str]) -> None:
        if message_ids:
            self._call(self._redis.xack, self.address.stream, self.group, *message_ids)

    def _dead(self, message_id: str, data: dict[str, str], reason: str, code: str) -> None:
        """Move a message to the dead-letter stream with its reason, acknowledged in the
        same transaction: it is never lost, and never applied."""
        record = {**{f"field_{k}": v for k, v in data.items()},
                  "message_id": message_id, "reason": reason[:2000], "code": code,
                  "consumer": self.consumer}

        def move() -> None:
            pipe = self._redis.pipeline(transaction=True)
            pipe.xadd(self.address.dead_letters, record)
            pipe.xack(self.address.stream, self.group, message_id)
            pipe.execute()

        self._call(move)
        self.stats.dead += 1
        self.stats.dead_reasons = [*self.stats.dead_reasons[-9:], f"{message_id}: {reason}"]

    # -- lag -------------------------------------------------------------------------
    def lag(self) -> dict[str, int | None]:
        """The group's lag (entries not yet delivered) and pending count (delivered, not
        acknowledged), from XINFO GROUPS."""
        for group in self._call(self._redis.xinfo_groups, self.address.stream):
            if group.get("name") == self.group:
                lag = group.get("lag")
                return {"lag": None if lag is None else int(lag),
                        "pending": int(group.get("pending", 0))}
        return {"lag": None, "pending": None}

    def _call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        import redis

        try:
            return method(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise StreamError(f"Redis at {self.address.host}:{self.address.port} cannot be "
                              f"reached ({exc})") from None


def _stored(engine: Engine, item_id: str) -> Item | None:
    return engine.get(item_id) if item_id in engine else None


def _content_hash(change: Change) -> str | None:
    """The content hash an upsert's image will have, where it is cheap to know."""
    if isinstance(change.image, bytes):
        return hashlib.sha256(change.image).hexdigest()
    if isinstance(change.image, Path):
        try:
            return _file_hash(change.image)
        except OSError:
            return ""  # unreadable: never "unchanged"; decoding says why
    return None


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _redis_errors() -> type[Exception]:
    import redis

    return redis.RedisError


def _connect(address: StreamAddress) -> Any:
    try:
        import redis
    except ImportError:
        raise InvalidInputError("consuming a Redis stream needs the redis package: pip "
                                "install 'imgsearch-engine[redis]'") from None
    return redis.Redis(host=address.host, port=address.port, username=address.username,
                       password=address.password, decode_responses=True,
                       socket_timeout=30, socket_connect_timeout=5)


def iter_dead_letters(client: Any, address: StreamAddress) -> Iterator[dict[str, str]]:
    """The dead-letter stream's records, oldest first."""
    for _mid, data in client.xrange(address.dead_letters):
        yield data
