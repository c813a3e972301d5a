"""HTTP load on loopback: requests/s, p50/p99 and the status mix of a live server.

A 100k-item collection is written once through ``Engine.commit`` of prepared items
(``bench/data/load-100k/``; ``--reuse`` keeps it): a ``descriptor`` image space (576-d,
clustered random unit vectors); titles of three words from a word list, so that text
queries find keyword matches; a ``minilm`` text space (384-d: the sum of the minilm
vectors of a title's words plus noise, so only ~150 words are encoded at build); and a
random 64-bit perceptual hash per item, so that duplicate folding has hashes to look at.
The engine turns the indexes into HNSW as they grow.

The server is the product's own command, ``python -m imgsearch.cli serve`` on 127.0.0.1,
in a process of its own with default settings (64 requests in flight at most). One
client process drives it, concurrency C meaning C requests outstanding at all times,
for a fixed time after a warm-up, at C = 1, 8, 32 for:

- ``similar``: ``GET /v1/items/{id}/similar?limit=10``, ids drawn without repetition;
- ``text``: ``GET /v1/search/text?q=<two words>&limit=10``, word pairs without repetition;
- ``image``: ``POST /v1/search/image`` with a 160x120 JPEG, each upload unique (a few
  bytes after the JPEG's end marker) so that no cache answers it;

then ``similar`` at twice the server's in-flight capacity, where only 200 and 503 (with
``Retry-After``) may come back. The client is a small keep-alive HTTP/1.1 client on
asyncio streams (``--client raw``); httpx's AsyncClient costs about 1 ms of CPU per
request, as much as the server, so ``GET /health`` and ``similar`` at C = 32 are also run
from the other client to show what the client itself costs. ``engine.similar`` from C
threads in this process (no HTTP) gives the engine's own ceiling. The CPU time of the
server, the client and everything else on the machine is recorded for every run: the
client shares the 2 cores with the server, and other jobs share them too. Prints
Markdown tables and writes ``bench/results/load.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import itertools
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import numpy as np
from PIL import Image

from common import (
    DATA_DIR,
    command_line,
    load_average,
    machine,
    machine_line,
    now,
    percentile,
    process_cpu_s,
    table,
    write_results,
)
from imgsearch import Engine, Item, Settings
from imgsearch.encode.registry import describe_encoder
from imgsearch.engine.pipeline import Prepared
from imgsearch.enrich.colors import normalize_color_name
from imgsearch.web.limits import Limits

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from imagegen import jpeg_bytes  # noqa: E402

LIMIT = 10
CLUSTERS = 2000
_ADJECTIVES = (
    "wooden metal vintage modern soft leather cotton linen woollen silk ceramic glass "
    "plastic bamboo rustic classic compact foldable portable heavy light slim tall short "
    "round square oval striped floral plain padded quilted waterproof handmade polished "
    "brushed matte glossy sturdy elegant casual formal outdoor indoor sporty cosy "
    "minimalist retro antique luxury budget organic recycled ergonomic adjustable "
    "stackable wireless electric manual"
)
_NOUNS = (
    "chair lamp table shoe bag watch mug shirt jacket bottle plate bowl vase clock "
    "cushion blanket rug mirror shelf desk stool sofa bench basket candle frame kettle "
    "teapot pan knife fork spoon glassware jug tray towel curtain pillow mattress "
    "wardrobe drawer cabinet hat scarf glove sock boot sandal sneaker backpack wallet "
    "belt umbrella necklace ring bracelet earring sunglasses helmet bicycle tent lantern "
    "cooler thermos notebook pen pencil folder stapler speaker headphone keyboard mouse "
    "monitor charger cable router camera tripod drone guitar drum violin piano ball "
    "racket skate kite puzzle"
)
ADJECTIVES = tuple(_ADJECTIVES.split())
NOUNS = tuple(_NOUNS.split())
CATEGORIES = ("furniture", "kitchen", "apparel", "footwear", "accessories", "electronics",
              "outdoors", "office", "music", "toys", "home", "sports")
BRANDS = ("acme", "globex", "initech", "umbrellacorp", "hooli", "vandelay", "wonka",
          "stark", "wayne", "tyrell", "soylent", "cyberdyne")


# -- the collection ----------------------------------------------------------------------
def words() -> tuple[list[str], list[str]]:
    """Adjectives and nouns with colour names left out: a colour in a query becomes a
    colour filter, and these items carry no colours."""
    keep = [w for w in ADJECTIVES if normalize_color_name(w) is None]
    return keep, [w for w in NOUNS if normalize_color_name(w) is None]


def unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def tiny_thumbnail() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (128, 128, 128)).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def item_id(i: int) -> str:
    return f"p{i:06d}"


def build_collection(directory: Path, n: int, batch: int, seed: int) -> dict[str, float]:
    """Write ``n`` items through ``Engine.commit``: the engine saves its indexes every
    ``index_save_every`` writes, turning them into the kind their size calls for."""
    shutil.rmtree(directory, ignore_errors=True)
    settings = Settings()  # descriptor + minilm: what the server opens it with
    _, image_dim = describe_encoder(settings.image_encoder, settings)
    _, text_dim = describe_encoder(settings.text_encoder, settings)
    adjectives, nouns = words()
    rng = np.random.default_rng(seed)
    centres = unit_rows(rng, CLUSTERS, image_dim)
    thumb = tiny_thumbnail()
    started = time.perf_counter()
    engine = Engine.open(directory, settings)
    try:
        # A title's text vector is the sum of its words' minilm vectors plus noise: close
        # to what minilm makes of the title, at the cost of encoding ~150 words, so that
        # text queries find semantic neighbours as well as keyword matches.
        word_vectors = engine.encoder("text").embed_texts([*adjectives, *nouns])
        noun_vectors = word_vectors[len(adjectives):]
        for start in range(0, n, batch):
            size = min(n, start + batch) - start
            image = unit_rows(rng, size, image_dim) + centres[rng.integers(0, CLUSTERS, size)]
            image /= np.linalg.norm(image, axis=1, keepdims=True)
            noun_of = rng.integers(0, len(nouns), size)
            adjectives_of = np.stack([rng.choice(len(adjectives), 2, replace=False)
                                      for _ in range(size)])
            text = (word_vectors[adjectives_of].sum(axis=1) + noun_vectors[noun_of]
                    + 0.5 * unit_rows(rng, size, text_dim))
            text /= np.linalg.norm(text, axis=1, keepdims=True)
            hashes = rng.integers(-(2 ** 63), 2 ** 63 - 1, size, dtype=np.int64)
            prepared = []
            for j in range(size):
                ident = item_id(start + j)
                noun = nouns[noun_of[j]]
                first, second = (adjectives[k] for k in adjectives_of[j])
                item = Item(id=ident, title=f"{first} {second} {noun}",
                            category=CATEGORIES[int(rng.integers(len(CATEGORIES)))],
                            brand=BRANDS[int(rng.integers(len(BRANDS)))],
                            price=round(float(rng.uniform(5, 500)), 2), tags=(noun,),
                            width=640, height=480, phash=int(hashes[j]),
                            content_hash=hashlib.sha256(ident.encode()).hexdigest())
                prepared.append(Prepared(item, {"image": image[j], "text": text[j]}, thumb))
            engine.commit(prepared)
        written = time.perf_counter()
    finally:
        engine.close()
    done = time.perf_counter()
    return {"commit_s": written - started, "close_s": done - written}


# -- requests ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Request:
    method: str
    target: str  # path and query string, already encoded
    body: bytes = b""
    content_type: str | None = None

    def wire(self, host: str) -> bytes:
        """The HTTP/1.1 request as bytes on the wire (keep-alive is HTTP/1.1's default)."""
        head = f"{self.method} {self.target} HTTP/1.1\r\nHost: {host}\r\n"
        if self.method != "GET":
            head += f"Content-Length: {len(self.body)}\r\n"
        if self.content_type:
            head += f"Content-Type: {self.content_type}\r\n"
        return head.encode("latin-1") + b"\r\n" + self.body


def similar_requests(n: int, seed: int) -> Iterator[Request]:
    rng = np.random.default_rng(seed)
    while True:  # a fresh permutation each pass: no id repeats within n requests
        for i in rng.permutation(n):
            yield Request("GET", f"/v1/items/{item_id(int(i))}/similar?limit={LIMIT}")


def text_requests(seed: int) -> Iterator[Request]:
    adjectives, nouns = words()
    vocabulary = adjectives + nouns
    pairs = [f"{a} {b}" for a, b in itertools.permutations(vocabulary, 2)]
    rng = random.Random(seed)
    while True:  # no pair repeats within a pass, so neither cache answers
        rng.shuffle(pairs)
        for q in pairs:
            yield Request("GET", "/v1/search/text?" + urlencode({"q": q, "limit": LIMIT}))


def multipart(fields: dict[str, str], filename: str, data: bytes, mime: str,
              boundary: str = "loadbenchboundary7d1f") -> Request:
    parts = [f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
             .encode() for k, v in fields.items()]
    parts.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                 f"filename=\"{filename}\"\r\nContent-Type: {mime}\r\n\r\n".encode()
                 + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return Request("POST", "/v1/search/image", b"".join(parts),
                   f"multipart/form-data; boundary={boundary}")


def image_requests(seed: int, distinct: int = 64) -> Iterator[Request]:
    pictures = [jpeg_bytes(seed + i) for i in range(distinct)]
    for serial in itertools.count():
        # Bytes after the end-of-image marker change the content hash (so no cache
        # answers) and nothing else: decoders stop at the marker.
        data = pictures[serial % distinct] + b"load-%d" % serial
        yield multipart({"limit": str(LIMIT)}, "q.jpg", data, "image/jpeg")


def health_requests() -> Iterator[Request]:
    while True:
        yield Request("GET", "/health")


# -- the engine alone ------------------------------------------------------------------
def engine_alone(directory: Path, n: int, seed: int, levels: Sequence[int],
                 duration_s: float) -> list[dict[str, Any]]:
    """``engine.similar`` in this process from C threads: the engine's own ceiling, and
    its CPU per query, with no HTTP in the way (the collection opened read-only)."""
    out = []
    order = [item_id(int(i)) for i in np.random.default_rng(seed).permutation(n)]
    serial = itertools.count()  # next() on a count is atomic; on a generator it is not

    def worker(stop_at: float, latencies: list[float]) -> None:
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            engine.similar(order[next(serial) % n], limit=LIMIT)
            latencies.append((time.perf_counter() - t0) * 1000)

    engine = Engine.open(directory, Settings(), readonly=True)
    try:
        worker(time.perf_counter() + 1.0, [])  # warm-up
        for concurrency in levels:
            latencies: list[float] = []
            stop_at = time.perf_counter() + duration_s
            cpu0, busy0, t0 = time.process_time(), machine_busy_s(), time.perf_counter()
            threads = [threading.Thread(target=worker, args=(stop_at, latencies))
                       for _ in range(concurrency)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            seconds = time.perf_counter() - t0
            cpu, busy = time.process_time() - cpu0, machine_busy_s() - busy0
            out.append({"endpoint": "engine.similar", "concurrency": concurrency,
                        "seconds": seconds, "requests": len(latencies),
                        "requests_per_s": len(latencies) / seconds,
                        "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99),
                        "cpu_ms_per_query": 1000 * cpu / len(latencies),
                        "cpu_pct": 100 * cpu / seconds,
                        "others_cpu_pct": 100 * max(0.0, busy - cpu) / seconds})
    finally:
        engine.close()
    return out


# -- the server --------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(directory: Path, port: int, log_path: Path, workers: int = 1
                 ) -> subprocess.Popen[bytes]:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    log = log_path.open("wb")
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "imgsearch.cli", "serve", "-c", str(directory),
             "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    finally:
        log.close()


def wait_ready(base: str, proc: subprocess.Popen[bytes], timeout_s: float,
               log_path: Path) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the server exited with {proc.returncode}:\n{tail}")
        try:
            if httpx.get(base + "/ready", timeout=2.0).status_code == 200:
                return time.perf_counter() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the server was not ready within {timeout_s:.0f} s; see {log_path}")


@contextmanager
def serving(directory: Path, name: str, args: argparse.Namespace
            ) -> Iterator[tuple[int, subprocess.Popen[bytes], float]]:
    """``imgsearch serve`` over ``directory`` on a free port, once ready: its port, process
    and seconds to ready. Stopped afterwards."""
    port = free_port()
    log_path = DATA_DIR / f"{name}-server.log"
    proc = start_server(directory, port, log_path, args.workers)
    try:
        ready_s = wait_ready(f"http://127.0.0.1:{port}", proc, args.start_timeout, log_path)
        print(f"server: pid {proc.pid} on 127.0.0.1:{port}, {args.workers} process(es), "
              f"ready after {ready_s:.1f} s", flush=True)
        yield port, proc, ready_s
    finally:
        stop_server(proc)


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def machine_busy_s() -> float:
    """CPU seconds every process on the machine has used (Linux /proc/stat): minus the
    server's and the client's, what other jobs on the shared machine took meanwhile."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values) - idle) / os.sysconf("SC_CLK_TCK")


# -- clients ---------------------------------------------------------------------------
@dataclass
class Answer:
    status: int
    retry_after: bool
    body: bytes


class RawConnection:
    """One keep-alive HTTP/1.1 connection over asyncio streams: a client light enough
    that it does not take the CPU the server needs (httpx costs ~1 ms of CPU a request)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self, request: Request) -> Answer:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        try:
            self.writer.write(request.wire(f"{self.host}:{self.port}"))
            head = await self.reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length, chunked, close, retry_after = 0, False, False, False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"transfer-encoding":
                    chunked = b"chunked" in value.lower()
                elif name == b"connection":
                    close = b"close" in value.lower()
                elif name == b"retry-after":
                    retry_after = True
            body = await self._chunked() if chunked else await self.reader.readexactly(length)
        except BaseException:
            self.close()
            raise
        if close:
            self.close()
        return Answer(status, retry_after, body)

    async def _chunked(self) -> bytes:
        assert self.reader is not None
        parts: list[bytes] = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await self.reader.readexactly(size + 2)  # the data and its CRLF
            if size == 0:  # the last chunk (no trailers come from this server)
                return b"".join(parts)
            parts.append(chunk[:-2])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class RawClient:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.idle: list[RawConnection] = []
        self.made: list[RawConnection] = []

    async def send(self, request: Request) -> Answer:
        if self.idle:
            connection = self.idle.pop()
        else:
            connection = RawConnection(self.host, self.port)
            self.made.append(connection)
        answer = await connection.send(request)
        self.idle.append(connection)
        return answer

    async def aclose(self) -> None:
        for connection in self.made:
            connection.close()


class HttpxClient:
    def __init__(self, base: str, connections: int) -> None:
        limits = httpx.Limits(max_connections=connections,
                              max_keepalive_connections=connections)
        self.client = httpx.AsyncClient(base_url=base, limits=limits, timeout=60.0)

    async def send(self, request: Request) -> Answer:
        headers = {"content-type": request.content_type} if request.content_type else None
        response = await self.client.request(request.method, request.target,
                                             content=request.body or None, headers=headers)
        return Answer(response.status_code, "retry-after" in response.headers,
                      response.content)

    async def aclose(self) -> None:
        await self.client.aclose()


Client = RawClient | HttpxClient
CLIENT_ERRORS = (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                 ValueError, httpx.HTTPError)


# -- driving it --------------------------------------------------------------------------
@dataclass
class Run:
    endpoint: str
    concurrency: int
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    unavailable_without_retry_after: int = 0
    hit_counts: list[int] = field(default_factory=list)
    client_cpu_s: float = 0.0
    server_cpu_s: float = 0.0
    machine_busy_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        done = sum(self.statuses.values())
        per_s = 1 / self.seconds if self.seconds else 0.0
        return {
            "endpoint": self.endpoint, "concurrency": self.concurrency,
            "seconds": round(self.seconds, 3), "requests": done,
            "requests_per_s": done * per_s, "ok_per_s": self.statuses[200] * per_s,
            "p50_ms": percentile(self.latencies_ms, 50),
            "p99_ms": percentile(self.latencies_ms, 99),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "errors": dict(self.errors),
            "503_without_retry_after": self.unavailable_without_retry_after,
            "mean_hits": float(np.mean(self.hit_counts)) if self.hit_counts else None,
            "client_cpu_pct": 100 * self.client_cpu_s * per_s,
            "server_cpu_pct": 100 * self.server_cpu_s * per_s,
            "others_cpu_pct": 100 * max(0.0, self.machine_busy_s - self.server_cpu_s
                                        - self.client_cpu_s) * per_s,
            "server_cpu_ms_per_request": 1000 * self.server_cpu_s / done if done else None,
        }


async def drive(client: Client, requests: Iterator[Request], run: Run, duration_s: float,
                server_pid: int, sample_every: int = 10) -> Run:
    """``run.concurrency`` requests outstanding at all times for ``duration_s``."""
    stop_at = time.perf_counter() + duration_s

    async def worker() -> None:
        while time.perf_counter() < stop_at:
            request = next(requests)
            t0 = time.perf_counter()
            try:
                answer = await client.send(request)
            except CLIENT_ERRORS as exc:
                run.errors[type(exc).__name__] += 1
                await asyncio.sleep(0.01)  # no busy loop on a refused connection
                continue
            run.latencies_ms.append((time.perf_counter() - t0) * 1000)
            run.statuses[answer.status] += 1
            if answer.status == 503 and not answer.retry_after:
                run.unavailable_without_retry_after += 1
            if answer.status == 200 and run.statuses[200] % sample_every == 1 \
                    and request.target.startswith("/v1/"):
                run.hit_counts.append(int(json.loads(answer.body)["count"]))

    cpu0, server0, busy0 = time.process_time(), process_cpu_s(server_pid), machine_busy_s()
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(run.concurrency)))
    run.seconds = time.perf_counter() - t0
    run.client_cpu_s = time.process_time() - cpu0
    run.server_cpu_s = process_cpu_s(server_pid) - server0
    run.machine_busy_s = machine_busy_s() - busy0
    return run


async def measure(port: int, kind: str, plan: Sequence[tuple[str, int]],
                  makers: dict[str, Callable[[], Iterator[Request]]], warmup_s: float,
                  duration_s: float, server_pid: int) -> list[Run]:
    streams = {name: make() for name, make in makers.items()}
    runs = []
    most = max(c for _, c in plan)
    client: Client = (RawClient("127.0.0.1", port) if kind == "raw"
                      else HttpxClient(f"http://127.0.0.1:{port}", most))
    try:
        for name in streams:  # the first query of a kind loads its encoder
            answer = await client.send(next(streams[name]))
            if answer.status != 200:
                raise RuntimeError(f"{name}: the server answered {answer.status}: "
                                   f"{answer.body[:500]!r}")
        for name, concurrency in plan:
            print(f"  {name} at concurrency {concurrency} ({kind} client) ...", flush=True)
            await drive(client, streams[name], Run(name, concurrency), warmup_s, server_pid)
            runs.append(await drive(client, streams[name], Run(name, concurrency),
                                    duration_s, server_pid))
    finally:
        await client.aclose()
    return runs


# -- report ------------------------------------------------------------------------------
def status_mix(summary: dict[str, Any]) -> str:
    parts = [f"{k}: {v}" for k, v in summary["statuses"].items()]
    parts += [f"{k}: {v}" for k, v in summary["errors"].items()]
    return ", ".join(parts) or "-"


def rows_of(summaries: Sequence[dict[str, Any]]) -> list[list[Any]]:
    return [[s["endpoint"], s["concurrency"], s["requests_per_s"], s["p50_ms"], s["p99_ms"],
             status_mix(s), "-" if s["mean_hits"] is None else s["mean_hits"],
             s["server_cpu_ms_per_request"],
             f"{s['server_cpu_pct']:.0f} / {s['client_cpu_pct']:.0f} / "
             f"{s['others_cpu_pct']:.0f}"]
            for s in summaries]


HEADERS = ["endpoint", "C", "requests/s", "p50 ms", "p99 ms", "status mix", "hits/resp",
           "server CPU ms/req", "CPU % server / client / others"]


def overload_only(args: argparse.Namespace, directory: Path, name: str,
                  build: dict[str, Any], manifest: dict[str, Any],
                  makers: dict[str, Callable[[], Iterator[Request]]], capacity: int,
                  info: dict[str, Any], load_before: Any) -> None:
    """Each of ``--overload-endpoints`` at twice the capacity for ``--duration`` s."""
    plan = [(e.strip(), 2 * capacity) for e in args.overload_endpoints.split(",")
            if e.strip()]
    with serving(directory, name, args) as (port, proc, ready_s):
        runs = asyncio.run(measure(port, args.client, plan, makers, args.warmup,
                                   args.duration, proc.pid))
    summaries = [r.summary() for r in runs]
    for s in summaries:
        s["only_200_503"] = (set(s["statuses"]) <= {"200", "503"} and not s["errors"]
                             and s["503_without_retry_after"] == 0)
    print()
    print(f"Overload: {args.n:,} items, {2 * capacity} concurrent (capacity {capacity} in "
          f"flight), {args.duration:g} s per run after {args.warmup:g} s warm-up")
    print(table(HEADERS, rows_of(summaries)))
    every = all(s["only_200_503"] for s in summaries)
    print(f"overload answers only 200/503 with Retry-After, no connection errors: "
          f"{'yes' if every else 'NO'}")
    load_after = load_average()
    print(f"load average (1, 5, 15 min) before: {load_before}, after: {load_after}")
    path = write_results("load-overload", {
        "benchmark": "load-overload", "command": command_line(), "date": now(),
        "machine": info, "n": args.n, "workers": args.workers, "duration_s": args.duration,
        "warmup_s": args.warmup, "capacity_in_flight": capacity, "build": build,
        "server_ready_s": ready_s, "indexes": manifest.get("index"),
        "client": args.client, "runs": summaries, "only_200_503": every,
        "load_average": {"before": load_before, "after": load_after}})
    print(f"\nwrote {path}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="items in the collection")
    parser.add_argument("--batch", type=int, default=2000, help="items per commit when building")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reuse", action="store_true",
                        help="keep a collection built earlier with the same --n and --seed")
    parser.add_argument("--workers", type=int, default=1,
                        help="server processes (imgsearch serve --workers)")
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated levels")
    parser.add_argument("--endpoints", default="similar,text,image")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before each run")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw",
                        help="raw: keep-alive HTTP/1.1 over asyncio streams; httpx: AsyncClient")
    parser.add_argument("--start-timeout", type=float, default=600.0,
                        help="seconds to wait for the server's /ready")
    parser.add_argument("--overload-only", action="store_true",
                        help="only the overload runs: --overload-endpoints at twice the "
                             "in-flight capacity, --duration each (results: "
                             "load-overload.json)")
    parser.add_argument("--overload-endpoints", default="similar,image",
                        help="endpoints of the --overload-only runs, one run each")
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    endpoints = [e.strip() for e in args.endpoints.split(",") if e.strip()]
    capacity = Limits().max_in_flight * args.workers

    info = machine()
    print(f"machine: {machine_line(info)}")
    load_before = load_average()
    name = "load-100k" if (args.n, args.seed) == (100_000, 0) else f"load-{args.n}-s{args.seed}"
    directory = DATA_DIR / name
    stamp = directory / ".complete"
    if args.reuse and stamp.exists():
        build = json.loads(stamp.read_text())
        print(f"collection: reusing {directory}")
    else:
        print(f"collection: writing {args.n:,} items into {directory} ...", flush=True)
        build = build_collection(directory, args.n, args.batch, args.seed)
        stamp.write_text(json.dumps(build))
        print(f"collection: {args.n:,} items committed in {build['commit_s']:.1f} s "
              f"(indexes grown and saved on the way), closed in {build['close_s']:.1f} s")
    manifest = json.loads((directory / "manifest.json").read_text())

    makers: dict[str, Callable[[], Iterator[Request]]] = {
        "similar": lambda: similar_requests(args.n, args.seed + 1),
        "text": lambda: text_requests(args.seed + 2),
        "image": lambda: image_requests(args.seed + 3),
        "health": health_requests,
    }
    if args.overload_only:
        overload_only(args, directory, name, build, manifest, makers, capacity, info,
                      load_before)
        return
    top = max(levels)
    plan = [(e, c) for e in endpoints for c in levels]
    plan += [("similar", 2 * capacity), ("health", top)]  # overload; the HTTP stack alone
    other = "httpx" if args.client == "raw" else "raw"
    compare = [("health", top), ("similar", top)]  # what the client itself costs

    alone: list[dict[str, Any]] = []
    if "similar" in endpoints:
        print("engine.similar in this process (no HTTP) ...", flush=True)
        alone = engine_alone(directory, args.n, args.seed + 4, (1, top), args.duration / 2)

    with serving(directory, name, args) as (port, proc, ready_s):
        runs = asyncio.run(measure(port, args.client, plan, makers, args.warmup,
                                   args.duration, proc.pid))
        other_runs = asyncio.run(measure(port, other, compare, makers, args.warmup,
                                         args.duration, proc.pid))
    summaries = [r.summary() for r in runs]
    main_rows, (over, ceiling) = summaries[:-2], summaries[-2:]
    over_ok = (set(over["statuses"]) <= {"200", "503"} and not over["errors"]
               and over["503_without_retry_after"] == 0)
    same = [ceiling, *(s for s in main_rows if (s["endpoint"], s["concurrency"]) == (
        "similar", top))]
    clients = {args.client: same, other: [r.summary() for r in other_runs]}

    print()
    print(f"HTTP on loopback, {args.n:,} items, limit {LIMIT}, {args.duration:g} s per run "
          f"after {args.warmup:g} s warm-up; one {args.client} client process; "
          f"{args.workers} server process(es)")
    print(table(HEADERS, rows_of(main_rows)))
    print()
    print(f"Overload: similar at {2 * capacity} concurrent (capacity {capacity} in flight)")
    print(table(HEADERS, rows_of([over])))
    print(f"overload answers only 200/503 with Retry-After, no connection errors: "
          f"{'yes' if over_ok else 'NO'}")
    print()
    print("The client's cost: the same runs from each client (GET /health: no engine work)")
    print(table(["client", *HEADERS], [[k, *row] for k, rows in clients.items()
                                       for row in rows_of(rows)]))
    if alone:
        print()
        print("The engine alone: engine.similar from C threads in one process, no HTTP")
        print(table(["call", "C", "queries/s", "p50 ms", "p99 ms", "CPU ms/query",
                     "CPU % it / others"],
                    [[a["endpoint"], a["concurrency"], a["requests_per_s"], a["p50_ms"],
                      a["p99_ms"], a["cpu_ms_per_query"],
                      f"{a['cpu_pct']:.0f} / {a['others_cpu_pct']:.0f}"] for a in alone]))
    target = next((s for s in main_rows if s["endpoint"] == "similar"
                   and s["concurrency"] == 32), None)
    if target is not None:
        met = target["ok_per_s"] >= 1000
        print(f"target >= 1,000 requests/s similar-by-id at C=32: "
              f"{target['ok_per_s']:,.0f} -> {'met' if met else 'missed'}")
    load_after = load_average()
    print(f"load average (1, 5, 15 min) before: {load_before}, after: {load_after}")
    results = {
        "benchmark": "load", "command": command_line(), "date": now(), "machine": info,
        "n": args.n, "workers": args.workers, "limit": LIMIT, "duration_s": args.duration,
        "warmup_s": args.warmup,
        "capacity_in_flight": capacity, "build": build, "server_ready_s": ready_s,
        "indexes": manifest.get("index"), "spaces": manifest.get("spaces"),
        "client": args.client, "httpx_version": httpx.__version__,
        "runs": main_rows, "overload": over, "overload_only_200_503": over_ok,
        "clients": clients, "engine_alone": alone,
        "load_average": {"before": load_before, "after": load_after},
    }
    path = write_results("load" if args.workers == 1 else f"load-workers{args.workers}",
                         results)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
