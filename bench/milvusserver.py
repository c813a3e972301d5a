"""The standalone Milvus 2.3.5 server of the ``milvus`` package, started for a benchmark
beside (not instead of) the one the test suite starts.

``tests/milvuskit.py`` starts the same binary with the package's configuration, whose
embedded etcd always listens on peer port 2380 and client port 2379, so only one such
server runs per machine. Here the embedded etcd gets a configuration file of its own
(``etcd.config.path``) with free loopback ports, so a benchmark's server and a test run's
server do not collide. Everything else is the package's default configuration (time tick
200 ms, 512 MB segments, one index build at a time).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import milvuskit
from rediskit import free_port

_RESERVED = {2379, 2380}  # the test suite's server keeps these

_SCRIPT = """
import os, signal, sys, time
import milvus
from milvus import MilvusServer, MilvusServerConfig
config = MilvusServerConfig(template=sys.argv[3])
# set only when the package's own template is used
config.glog_conf_file = os.path.join(os.path.dirname(milvus.__file__), "data", "glog.conf")
server = MilvusServer(config)
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


def _port() -> int:
    while True:
        port = free_port()
        if port not in _RESERVED:
            return port


def _template(directory: Path) -> Path:
    """The package's configuration template with the embedded etcd's own config file."""
    import milvus

    peer, client = _port(), _port()
    etcd = directory / "etcd.yaml"
    etcd.write_text(
        "name: bench\n"
        f"listen-peer-urls: http://127.0.0.1:{peer}\n"
        f"initial-advertise-peer-urls: http://127.0.0.1:{peer}\n"
        f"initial-cluster: bench=http://127.0.0.1:{peer}\n"
        f"listen-client-urls: http://127.0.0.1:{client}\n"
        f"advertise-client-urls: http://127.0.0.1:{client}\n")
    source = Path(milvus.__file__).parent / "data" / "config.yaml.template"
    text = source.read_text()
    anchor = "  use:\n    embed: true"
    if anchor not in text:
        raise RuntimeError(f"{source}: no embedded-etcd section to extend")
    text = text.replace(anchor, f"  config:\n    path: {etcd}\n{anchor}", 1)
    template = directory / "milvus.yaml.template"
    template.write_text(text)
    return template


def milvus_server(directory: Path) -> Iterator[tuple[str, int]]:
    """Start the server; yield (host:port, pid of its process tree's root) once it
    answers; stop it afterwards."""
    port = _port()
    directory.mkdir(parents=True, exist_ok=True)
    template = _template(directory)
    log = (directory / "server.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-c", _SCRIPT, str(directory / "server"),
                             str(port), str(template)], stdout=log, stderr=subprocess.STDOUT)
    try:
        milvuskit._wait_for_port(port, proc, 180)
        milvuskit._wait_until_serving(f"http://127.0.0.1:{port}", proc)
        yield f"127.0.0.1:{port}", proc.pid
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        log.close()
