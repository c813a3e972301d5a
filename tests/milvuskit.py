"""Throwaway Milvus servers for the backend tests, started once per test session.

``lite``: Milvus Lite (the milvus-lite package: Milvus's API over FAISS, in Python).
``server``: the standalone Milvus 2.3.5 binary the ``milvus`` package ships (the real
engine, offline; it predates BM25 and several vector fields per collection). Each runs
in a process of its own on a free loopback port, its data in a temporary folder.
"""

from __future__ import annotations

import importlib.util
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from rediskit import free_port

_SERVER_SCRIPT = """
import signal, sys, time
from milvus import MilvusServer
server = MilvusServer()
server.set_base_dir(sys.argv[1])
server.listen_port = int(sys.argv[2])
def stop(*_):
    server.stop()
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
server.start()
print("started", flush=True)
while True:
    time.sleep(1)
"""


def lite_available() -> str | None:
    """None when Milvus Lite can run here, else why not."""
    for module in ("pymilvus", "milvus_lite"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install imgsearch[milvus])"
    return None


def server_available() -> str | None:
    """None when the standalone Milvus binary can run here, else why not."""
    if importlib.util.find_spec("pymilvus") is None:
        return "pymilvus is not installed (pip install imgsearch[milvus])"
    if importlib.util.find_spec("milvus") is None:
        return "the milvus package (standalone Milvus 2.3.5 binary) is not installed"
    if not sys.platform.startswith("linux"):
        return "the standalone Milvus binary runs on Linux only"
    # its embedded etcd always takes peer port 2380: one such server per machine
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", 2380))
        except OSError:
            return ("port 2380 is taken (another standalone Milvus 2.3.5 on this machine?): "
                    "its embedded etcd cannot start beside it")
    return None


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the Milvus process exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"Milvus did not listen on port {port} within {seconds:.0f} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def milvus_lite(directory: Path, port: int | None = None) -> Iterator[str]:
    """Start a Milvus Lite server (on ``port``, a free one if None); yield its address
    (host:port) while it runs."""
    port = free_port() if port is None else port
    proc = subprocess.Popen([sys.executable, "-m", "milvus_lite", "server", "--data-dir",
                             str(directory / "lite"), "--host", "127.0.0.1", "--port",
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_port(port, proc, 60)
        yield f"127.0.0.1:{port}"
    finally:
        _stop(proc)


def milvus_server(directory: Path) -> Iterator[str]:
    """Start the standalone Milvus binary; yield its address once it answers."""
    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    log = (directory / "server.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-c", _SERVER_SCRIPT, str(directory / "server"),
                             str(port)], stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(port, proc, 120)
        _wait_until_serving(f"http://127.0.0.1:{port}", proc)
        yield f"127.0.0.1:{port}"
    finally:
        _stop(proc)
        log.close()


def _wait_until_serving(address: str, proc: subprocess.Popen[bytes]) -> None:
    from pymilvus import MilvusClient

    deadline = time.monotonic() + 120
    while True:
        try:
            MilvusClient(uri=address, timeout=5).list_collections()
            return
        except Exception:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.5)
