"""The command line's conveniences: --version, shell completion, serve's -c, busy ports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import imgsearch

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
