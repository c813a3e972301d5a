"""The command line's conveniences: --version, shell completion, serve's -c, busy ports."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import imagegen as gen
import imgsearch
from imgsearch.cli import EXIT_PORT_IN_USE

ENV = dict(os.environ, IMGSEARCH_TEXT_ENCODER="fake")


def run(*args: str | Path, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "imgsearch.cli", *map(str, args)],
                          capture_output=True, text=True, env=env or ENV, timeout=120)


def test_version_prints_the_package_version():
    proc = run("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"imgsearch {imgsearch.__version__}"


def test_show_completion_prints_a_bash_completion_script():
    proc = run("--show-completion", "bash", env=dict(ENV, SHELL="/bin/bash"))
    assert proc.returncode == 0, proc.stderr
    assert "complete " in proc.stdout and "COMP_WORDS" in proc.stdout
    assert "--install-completion" in run("--help").stdout


def _collection(directory: Path) -> Path:
    gen.write_image(directory.parent / "pics" / "one.jpg", 1)
    proc = run("index", directory.parent / "pics", "-c", directory)
    assert proc.returncode == 0, proc.stderr
    return directory


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_on_a_busy_port_says_so_with_its_own_exit_code(tmp_path: Path, workers: str):
    directory = _collection(tmp_path / "coll")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = run("serve", "-c", directory, "--port", port, "--workers", workers)
    assert proc.returncode == EXIT_PORT_IN_USE == 9, proc.stderr
    assert f"port {port} on 127.0.0.1 is already in use; choose another with --port" \
        in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_serve_takes_the_collection_with_c_and_positionally_with_a_note(tmp_path: Path):
    directory = _collection(tmp_path / "coll")
    with socket.socket() as busy:  # a busy port ends serve once its collection is known
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with_c = run("serve", "-c", directory, "--port", port)
        positional = run("serve", directory, "--port", port)
    assert with_c.returncode == 9 and "deprecated" not in with_c.stderr, with_c.stderr
    assert positional.returncode == 9, positional.stderr
    assert "positional argument is deprecated; use -c/--collection" in positional.stderr
    neither = run("serve", "--port", port)
    assert neither.returncode == 2 and "-c/--collection" in neither.stderr
    both = run("serve", directory, "-c", tmp_path / "other", "--port", port)
    assert both.returncode == 2 and "two collections given" in both.stderr
