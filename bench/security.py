"""What the security middleware costs a request: ASGI calls in this process, no network.

A bare ASGI app that answers 200 with a small JSON body is called directly, alone and
wrapped the way ``create_app`` wraps the real app (security headers, the Host
allow-list, the key check), for: a read without a key, a read with a key, a write with a
write key (SHA-256 of the token, a stat of the keys file), a refused foreign Host and a
refused write without a key. The policy is the one ``imgsearch serve --host 0.0.0.0``
builds, with 10 keys in its file. Reports microseconds per request (best of 5 rounds of
N requests; the middleware's own work, as a share of the ~1.5-2 ms of server CPU a
similar-by-id request costs in the HTTP load benchmark).

    python bench/security.py [--n 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from common import machine, machine_line, table, write_results
from imgsearch.config import Settings
from imgsearch.web.headers import HostAllowList, SecurityHeadersMiddleware
from imgsearch.web.keys import KeyStore
from imgsearch.web.security import AccessPolicy, AuthMiddleware

BODY = b'{"ok":true}'


async def bare(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(BODY)).encode())]})
    await send({"type": "http.response.body", "body": BODY})


def wrapped(policy: AccessPolicy) -> Any:
    app: Any = AuthMiddleware(bare, policy)
    app = HostAllowList(app, policy.allowed_hosts)
    return SecurityHeadersMiddleware(app)


def scope(method: str, path: str, headers: dict[str, str]) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "raw_path": path.encode(),
            "query_string": b"", "headers": [(k.lower().encode(), v.encode())
                                             for k, v in headers.items()],
            "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000)}


async def per_request_us(app: Any, request: dict[str, Any], n: int) -> tuple[float, int]:
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    best = float("inf")
    for _ in range(5):
        statuses.clear()
        start = time.perf_counter()
        for _ in range(n):
            await app(dict(request), receive, send)
        best = min(best, (time.perf_counter() - start) / n * 1e6)
    return best, statuses[-1]


async def main(n: int) -> None:
    print(machine_line(machine()))
    with tempfile.TemporaryDirectory() as tmp:
        store = KeyStore(Path(tmp) / "api_keys.json")
        tokens = [store.create("write" if i % 2 else "read")[1] for i in range(10)]
        policy = AccessPolicy.build(Settings(api_keys_file=str(store.path)), Path(tmp),
                                    listen_host="0.0.0.0")
        app = wrapped(policy)
        host = {"host": "127.0.0.1:8000"}
        cases = [
            ("read, no key", scope("GET", "/v1/items/a/similar", host)),
            ("read, read key", scope("GET", "/v1/items/a/similar",
                                     {**host, "authorization": f"Bearer {tokens[0]}"})),
            ("write, write key", scope("PUT", "/v1/items/a",
                                       {**host, "authorization": f"Bearer {tokens[1]}"})),
            ("write, no key (401)", scope("DELETE", "/v1/items/a", host)),
            ("foreign Host (400)", scope("GET", "/v1/stats", {"host": "evil.example"})),
        ]
        base, _ = await per_request_us(bare, cases[0][1], n)
        rows: list[list[Any]] = [["bare app (no middleware)", 200, round(base, 1), "-"]]
        results: dict[str, Any] = {"bare_us": base}
        for name, request in cases:
            us, status = await per_request_us(app, request, n)
            rows.append([name, status, round(us, 1), round(us - base, 1)])
            results[name] = {"us": us, "added_us": us - base, "status": status}
    print(table(["request", "status", "µs per request", "added by security µs"], rows))
    write_results("security", {"n": n, "machine": machine(), "results": results})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    asyncio.run(main(parser.parse_args().n))
