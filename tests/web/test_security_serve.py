"""Keys from the command line, and keys with several server processes: each request is
checked by the process that received it, and forwarded writes keep working."""

from __future__ import annotations

import base64
import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from imagegen import jpeg_bytes
from imgsearch.cli import app
from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.types import Item
from imgsearch.web import create_app
from imgsearch.web.forward import publish_writer
from imgsearch.web.keys import KEYS_FILE_NAME

SETTINGS = Settings(image_encoder="descriptor", text_encoder="none", ingest_workers=2)
ENV = dict(os.environ, IMGSEARCH_IMAGE_ENCODER="descriptor", IMGSEARCH_TEXT_ENCODER="none")


def cli(*args: str | Path, check: int = 0) -> Any:
    """The command line in this process (``serve`` below runs it as a user would)."""
    result = CliRunner().invoke(app, [str(a) for a in args], env=ENV)
    assert result.exit_code == check, (result.output, result.exception)
    return result


def _body(seed: int) -> dict[str, Any]:
    return {"title": "t", "image_base64": base64.b64encode(jpeg_bytes(seed)).decode()}


def _seeded(directory: Path) -> Path:
    with Engine.open(directory, SETTINGS) as engine:
        assert engine.ingest_items([(Item(id=f"p{i}", title=f"item {i}"), jpeg_bytes(i))
                                    for i in range(6)]).ok
    return directory


def test_keys_create_list_revoke_from_the_command_line(tmp_path: Path) -> None:
    collection = tmp_path / "shop"
    made = cli("keys", "create", "-c", collection, "--scope", "write", "--name", "ci")
    token = made.stdout.strip()
    assert token.startswith("isk_") and "shown only now" in made.stderr
    keys_file = collection / KEYS_FILE_NAME
    assert token not in keys_file.read_text()
    assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600
    admin = json.loads(cli("keys", "create", "-c", collection, "--scope", "admin",
                           "--json").stdout)
    assert admin["scope"] == "admin" and admin["token"].startswith(f"isk_{admin['id']}_")

    listed = cli("keys", "list", "-c", collection)
    assert "ci" in listed.stdout and "write" in listed.stdout and token not in listed.stdout
    assert [k["scope"] for k in json.loads(cli("keys", "list", "-c", collection,
                                               "--json").stdout)["keys"]] == ["write", "admin"]
    assert "ci" in cli("keys", "revoke", "ci", "-c", collection).stdout
    assert [k["id"] for k in json.loads(cli("keys", "list", "-c", collection,
                                            "--json").stdout)["keys"]] == [admin["id"]]
    missing = cli("keys", "revoke", "ci", "-c", collection, check=3)
    assert "no API key" in missing.stderr
    bad = cli("keys", "create", "-c", collection, "--scope", "root", check=2)
    assert "unknown scope 'root'" in bad.stderr
    elsewhere = tmp_path / "secrets" / "keys.json"
    cli("keys", "create", "-c", collection, "--keys-file", elsewhere)
    assert len(json.loads(elsewhere.read_text())["keys"]) == 1


@pytest.fixture
def keyed_writer(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str], str]]:
    """A writer built as listening beyond loopback, with a read and a write key, served
    on a loopback port (not yet published); the tokens by scope and its address."""
    directory = _seeded(tmp_path / "collection")
    tokens = {scope: cli("keys", "create", "-c", directory, "--scope", scope).stdout.strip()
              for scope in ("read", "write")}
    engine = Engine.open(directory, SETTINGS)
    sock = socket.create_server(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(engine, listen_host="0.0.0.0"),
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    yield directory, tokens, f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(10)
    sock.close()
    engine.close()


def test_a_reader_checks_keys_itself_and_forwards_keyed_writes(
        keyed_writer: tuple[Path, dict[str, str], str]) -> None:
    directory, tokens, writer_url = keyed_writer
    app = create_app(collection=directory, forward_writes=True, listen_host="0.0.0.0",
                     settings=SETTINGS.replace(allowed_hosts="testserver"))
    with TestClient(app) as reader:
        assert reader.get("/health").json()["role"] == "reader"
        # refused here, before any forwarding: with no writer published a forwarded
        # request would have answered 503 writer_unavailable instead
        assert reader.put("/v1/items/k1", json=_body(50)).status_code == 401
        read = {"Authorization": f"Bearer {tokens['read']}"}
        assert reader.put("/v1/items/k1", json=_body(50), headers=read).status_code == 403

        publish_writer(directory, writer_url)
        write = {"Authorization": f"Bearer {tokens['write']}"}
        put = reader.put("/v1/items/k1", json=_body(50), headers=write)
        assert put.status_code == 201, put.text
        assert reader.get("/v1/items/k1").status_code == 200
        # the page's own origin, seen by the reader, is not judged again by the writer
        same_site = reader.delete("/v1/items/k1",
                                  headers={**write, "Origin": "http://testserver"})
        assert same_site.status_code == 200, same_site.text
        cross = reader.delete("/v1/items/p1", headers={**write, "Origin": "https://x.example"})
        assert cross.status_code == 403
        batch = reader.post("/v1/items:batch", headers=write,
                            json={"operations": [{"op": "delete", "id": "p2"}]})
        assert batch.status_code == 200, batch.text
        assert reader.get("/v1/items/p2").status_code == 404


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_with_two_workers_needs_a_write_key_on_every_process(tmp_path: Path) -> None:
    directory = _seeded(tmp_path / "collection")
    token = cli("keys", "create", "-c", directory, "--scope", "write").stdout.strip()
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "imgsearch.cli", "serve", "-c", str(directory),
                             "--port", str(port), "--workers", "2",
                             "--allowed-host", "search.example"], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        roles: dict[str, int] = {}
        statuses: dict[str, set[int]] = {"anonymous": set(), "keyed": set()}
        deadline = time.monotonic() + 120
        i = 0
        while time.monotonic() < deadline and (len(roles) < 2 or i < 6):
            try:  # a new connection each time: either process may take it
                with httpx.Client(base_url=base, headers={"connection": "close"}) as c:
                    role = c.get("/health").json()["role"]
                with httpx.Client(base_url=base, headers={"connection": "close"}) as c:
                    statuses["anonymous"].add(c.put(f"/v1/items/n{i}", json=_body(60 + i)
                                                     ).status_code)
                with httpx.Client(base_url=base, headers={
                        "connection": "close", "Authorization": f"Bearer {token}",
                        "Host": "search.example"}) as c:
                    statuses["keyed"].add(c.put(f"/v1/items/n{i}", json=_body(60 + i)
                                                ).status_code)
                roles[role] = roles.get(role, 0) + 1
                i += 1
            except httpx.HTTPError:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                time.sleep(0.2)
        assert set(roles) == {"reader", "writer"}
        # a key exists, so even on loopback anonymous writes are refused, by whichever
        # process took them
        assert statuses == {"anonymous": {401}, "keyed": {201}}
        foreign = httpx.get(base + "/v1/stats", headers={"Host": "evil.example"})
        assert foreign.status_code == 400
    finally:
        proc.terminate()
        proc.wait(30)
    with Engine.open(directory, SETTINGS, readonly=True) as engine:
        assert engine.catalog.count() == 6 + i
