"""The built wheel installs into a fresh virtualenv and runs from there.

The wheel is built from this checkout and installed into a new venv with ``--no-deps``;
its dependencies (torch, FAISS, ...) come from the running interpreter's site-packages,
added to the new venv by a ``.pth`` line, since this machine cannot download them. What
is under test is the wheel itself: its name, its entry point, the package data it must
carry (templates, static files) and that nothing is imported from the source tree.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

import imagegen as gen

ROOT = Path(__file__).resolve().parents[2]
DISTRIBUTION = "imgsearch_engine"

pytestmark = pytest.mark.slow


def _run(args: list[str | Path], cwd: Path, env: dict[str, str]
         ) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, f"{args}: {proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    work = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["IMGSEARCH_TEXT_ENCODER"] = "fake"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
          "-w", work / "dist", ROOT], cwd=work, env=env)
    wheels = list((work / "dist").glob("*.whl"))
    assert len(wheels) == 1 and wheels[0].name.startswith(DISTRIBUTION + "-"), wheels
    venv = work / "venv"
    _run([sys.executable, "-m", "venv", venv], cwd=work, env=env)
    _run([venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", "--no-index",
          wheels[0]], cwd=work, env=env)
    site = subprocess.run([venv / "bin" / "python", "-c",
                           "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # dependencies from this interpreter, after the venv's own packages
    Path(site, "zz_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return venv, env


def test_wheel_carries_the_web_page_and_the_docs_assets(tmp_path: Path,
                                                        installed: tuple[Path, dict[str, str]]
                                                        ) -> None:
    venv, env = installed
    wheel = next((venv.parent / "dist").glob("*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for part in ("imgsearch/web/templates/index.html", "imgsearch/web/static/ui.js",
                 "imgsearch/web/static/favicon.svg", "imgsearch/py.typed"):
        assert part in names, part
    where = _run([venv / "bin" / "python", "-c", "import imgsearch; print(imgsearch.__file__)"],
                 cwd=tmp_path, env=env).stdout
    assert where.startswith(str(venv)), where


def test_installed_command_indexes_and_searches(tmp_path: Path,
                                                installed: tuple[Path, dict[str, str]]) -> None:
    venv, env = installed
    command = venv / "bin" / "imgsearch"
    assert "Usage" in _run([command, "--help"], cwd=tmp_path, env=env).stdout
    version = _run([command, "--version"], cwd=tmp_path, env=env).stdout.strip()
    assert version.startswith("imgsearch ") and version.split()[1][0].isdigit(), version
    photos = tmp_path / "photos"
    for seed in range(4):
        gen.write_image(photos / f"picture-{seed}.jpg", seed)
    _run([command, "index", photos, "-c", tmp_path / "coll", "--json"], cwd=tmp_path, env=env)
    found = _run([command, "search", "-c", tmp_path / "coll", "--image",
                  photos / "picture-2.jpg", "--json"], cwd=tmp_path, env=env).stdout
    assert json.loads(found)["results"][0]["id"] == "picture-2.jpg"
