"""kill -9 at random moments, in a loop, during CLI ingest and during HTTP writes.

After every kill the collection is opened again and must hold every acknowledged
write: each id ``index --print-committed`` printed, each 2xx PUT (and no item whose
DELETE answered 2xx); only the one request in flight at the kill may have gone either
way. Every acknowledged item's vector, read from the vector file its space keeps
outside the catalog, must be the vector of its image. Catalog and indexes must agree
(the ids in the catalog are the ids in every index) and a search must never return an
id without its metadata.

CI runs ``--crash-iterations`` rounds (default 3) of each loop; run it long with
``pytest tests/hostile/test_crash_loop.py --crash-iterations 200`` or
``IMGSEARCH_TEST_CRASH_ITERATIONS=200``. Every acknowledgement is also written to
``acks.jsonl`` in the test's temporary folder, for a failing long run to be read.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pytest
from test_crash import _committed, _start

from hostile.checks import hostile_settings
from imagegen import jpeg_bytes, make_photo_folder
from imgsearch.engine import Engine
from imgsearch.types import Query

pytestmark = pytest.mark.slow


def check_consistent(engine: Engine, probe: bytes | None = None) -> set[str]:
    """Catalog and indexes agree; searches name only items that exist. Returns the ids."""
    items = list(engine.catalog.iter_items())
    ids = {item.id for item in items}
    assert len(ids) == len(items), "an id appears twice in the catalog"
    keys = {engine.catalog.key_of(item_id) for item_id in ids}
    for name, space in engine.spaces.items():
        space_keys, vids = engine.catalog.key_vid_pairs(name)
        assert set(space_keys.tolist()) <= keys, f"{name}: vectors of items that do not exist"
        labels = set(np.asarray(space.index.labels()).tolist())
        assert labels == set(vids.tolist()), f"{name}: index and catalog disagree"
        if name == "image":
            assert set(space_keys.tolist()) == keys, "an item without its image vector"
    if probe is not None and ids:
        hits = engine.search(Query(images=[probe], limit=min(50, len(ids)),
                                   min_confidence=0.0, collapse_duplicates=False)).hits
        assert hits, "a search over a non-empty collection found nothing"
        for hit in hits:
            assert hit.id in ids and engine.get(hit.id).id == hit.id, hit
    return ids


def check_vectors(engine: Engine, images: dict[str, bytes]) -> None:
    """Each item's stored image vector (from the memory-mapped vector file) is the vector
    of its image: nothing acknowledged names a row that a crash lost or tore."""
    for item_id, image in images.items():
        key = engine.catalog.key_of(item_id)
        assert key is not None, item_id
        stored = engine.catalog.vector_of("image", key)
        assert stored is not None, f"{item_id}: no stored vector"
        expected = engine.embed_query_image(image)
        assert np.allclose(stored, expected, atol=1e-5), f"{item_id}: another vector"


def _top_ties(engine: Engine, image: bytes | Path) -> set[str]:
    hits = engine.search(Query(images=[image], limit=3, collapse_duplicates=False)).hits
    return {hit.id for hit in hits if hit.score >= hits[0].score - 1e-6}


# ---- CLI ingest ----------------------------------------------------------------------


def test_kill_9_during_cli_ingest(tmp_path: Path, crash_iterations: int) -> None:
    folder = tmp_path / "photos"
    ids = make_photo_folder(folder, 160, seed=23)
    collection, out = tmp_path / "collection", tmp_path / "committed.txt"
    out.touch()
    rng = random.Random(1407)
    kills = 0
    for _round in range(crash_iterations):
        proc = _start(folder, collection, out)
        time.sleep(rng.uniform(0.6, 2.2))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=60)
        if not collection.exists():
            continue  # killed before the collection was created
        committed = _committed(out)
        with Engine.open(collection, hostile_settings(), create=False) as engine:
            present = check_consistent(engine, (folder / ids[0]).read_bytes())
            assert committed <= present, f"acknowledged items lost: {committed - present}"
            for item_id in sorted(committed)[:: max(1, len(committed) // 8)]:
                assert item_id in _top_ties(engine, folder / item_id), item_id
            check_vectors(engine, {i: (folder / i).read_bytes() for i in committed})
        if len(present) == len(ids):
            # finished before the kill: start over, so that later rounds still kill
            out.write_text("")
            for path in list(collection.rglob("*"))[::-1]:
                path.unlink() if not path.is_dir() else path.rmdir()
            collection.rmdir()
    assert kills >= 1, "the indexing process always finished before it could be killed"
    proc = _start(folder, collection, out)
    assert proc.wait(timeout=300) == 0
    with Engine.open(collection, hostile_settings(), create=False) as engine:
        assert check_consistent(engine, (folder / ids[0]).read_bytes()) == set(ids)


# ---- HTTP writes ---------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(collection: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, IMGSEARCH_TEXT_ENCODER="fake", IMGSEARCH_LOG_SEARCHES="0",
               IMGSEARCH_INGEST_WORKERS="1")
    with open(log, "ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "imgsearch.cli", "serve", "-c", str(collection), "--port",
             str(port)], stdout=sink, stderr=subprocess.STDOUT, env=env)


def _wait_ready(proc: subprocess.Popen[bytes], base: str, log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-2000:]
        try:
            if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("the server did not become ready")


@dataclass
class AckLog:
    """What the server acknowledged, in order, and what was in flight at the kill."""

    path: Path
    present: dict[str, int] = field(default_factory=dict)  # id -> seed of its image
    deleted: set[str] = field(default_factory=set)
    in_flight: tuple[str, str, int] | None = None  # op, id, seed
    acks: int = 0

    @property
    def open_id(self) -> str | None:
        return self.in_flight[1] if self.in_flight else None

    def settle(self, engine: Engine) -> None:
        """After a kill: the request in flight went either way; learn which."""
        if self.in_flight is None:
            return
        op, item_id, seed = self.in_flight
        self.in_flight = None
        if item_id not in engine:
            self.present.pop(item_id, None)
            self.deleted.add(item_id)
            return
        written = hashlib.sha256(jpeg_bytes(seed, (64, 48))).hexdigest()
        if op == "put" and engine.get(item_id).content_hash == written:
            self.present[item_id] = seed
            self.deleted.discard(item_id)

    def ack(self, op: str, item_id: str, seed: int) -> None:
        if op == "put":
            self.present[item_id] = seed
            self.deleted.discard(item_id)
        else:
            self.present.pop(item_id, None)
            self.deleted.add(item_id)
        self.acks += 1
        with open(self.path, "a") as out:
            out.write(json.dumps({"op": op, "id": item_id, "seed": seed}) + "\n")


def _kill_after_a_write(proc: subprocess.Popen[bytes], log: AckLog, acks_before: int,
                        delay_s: float) -> None:
    """SIGKILL ``proc`` ``delay_s`` after its first acknowledged write of the round (or
    after 60 s without one): on a busy machine a fixed delay could end every round before
    any write is acknowledged, and the round would check nothing."""
    deadline = time.monotonic() + 60
    while log.acks == acks_before and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    time.sleep(delay_s)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)


def _write_until_killed(base: str, log: AckLog, rng: random.Random, counter: list[int]
                        ) -> None:
    with httpx.Client(base_url=base, timeout=30) as client:
        while True:
            if log.present and rng.random() < 0.3:
                op, item_id = "delete", rng.choice(sorted(log.present))
                seed = log.present[item_id]
            else:
                counter[0] += 1
                op, seed = "put", 1000 + counter[0]
                # ids of several folders and now and then a re-upload of a known id
                item_id = f"w{counter[0] % 97}/{counter[0]}" if rng.random() < 0.8 \
                    else rng.choice(sorted(log.present) or ["w0/0"])
            log.in_flight = (op, item_id, seed)
            try:
                if op == "put":
                    image = jpeg_bytes(seed, (64, 48))
                    if rng.random() < 0.5:
                        response = client.put(f"/v1/items/{item_id}", json={
                            "title": f"written {seed}",
                            "image_base64": base64.b64encode(image).decode()})
                    else:
                        response = client.put(f"/v1/items/{item_id}",
                                              files={"file": ("w.jpg", image)})
                else:
                    response = client.delete(f"/v1/items/{item_id}")
            except httpx.TransportError:
                return  # killed: this request is the one in flight
            assert response.status_code in (200, 201), response.text
            log.ack(op, item_id, seed)
            log.in_flight = None


def test_kill_9_during_http_writes(tmp_path: Path, crash_iterations: int) -> None:
    collection = tmp_path / "collection"
    server_log = tmp_path / "server.log"
    log = AckLog(tmp_path / "acks.jsonl")
    rng = random.Random(1408)
    counter = [0]
    for _round in range(crash_iterations):
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        proc = _serve(collection, port, server_log)
        try:
            _wait_ready(proc, base, server_log)
            killer = threading.Thread(target=_kill_after_a_write,
                                      args=(proc, log, log.acks, rng.uniform(0.0, 1.7)))
            killer.start()
            _write_until_killed(base, log, rng, counter)
            killer.join()
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=60)
        with Engine.open(collection, hostile_settings(), create=False) as engine:
            present = check_consistent(engine, jpeg_bytes(1001, (64, 48)))
            expected = set(log.present) - {log.open_id}
            assert expected <= present, f"acknowledged PUTs lost: {expected - present}"
            resurrected = (log.deleted - {log.open_id}) & present
            assert not resurrected, f"acknowledged DELETEs undone: {resurrected}"
            unexpected = present - set(log.present) - {log.open_id}
            assert not unexpected, f"items nobody acknowledged: {unexpected}"
            for item_id in sorted(expected)[:: max(1, len(expected) // 6)]:
                seed = log.present[item_id]
                assert item_id in _top_ties(engine, jpeg_bytes(seed, (64, 48))), item_id
            check_vectors(engine, {i: jpeg_bytes(log.present[i], (64, 48)) for i in expected})
            log.settle(engine)
    assert log.acks >= crash_iterations, "too few writes were acknowledged to mean anything"
