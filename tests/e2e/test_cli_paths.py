"""`--format paths` prints plain absolute paths, one a line, whatever way the images
came in: a folder or a catalog given by a relative path, a file added by a relative
path, a HEIC photo."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import imagegen as gen

ENV = dict(os.environ, IMGSEARCH_IMAGE_ENCODER="descriptor", IMGSEARCH_TEXT_ENCODER="fake")


def run(cwd: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "imgsearch.cli", *map(str, args)],
                          capture_output=True, text=True, env=ENV, timeout=300, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return proc


def test_paths_are_absolute_for_relative_sources(tmp_path: Path) -> None:
    gen.write_image(tmp_path / "photos" / "trip" / "IMG 0001.jpg", 1)  # a space in the name
    gen.write_image(tmp_path / "photos" / "phone.heic", 2)
    gen.write_image(tmp_path / "shop" / "img" / "mug.png", 3)
    (tmp_path / "shop" / "items.csv").write_text("id,image,title\nmug,img/mug.png,a mug\n")
    gen.write_image(tmp_path / "single.jpg", 4)
    run(tmp_path, "index", "photos", "-c", "c")
    run(tmp_path, "index", "shop/items.csv", "-c", "c")
    run(tmp_path, "add", "single.jpg", "-c", "c")
    out = run(tmp_path, "search", "-c", "c", "--image", "photos/phone.heic", "-f", "paths",
              "--min-confidence", "0", "--limit", "10").stdout
    lines = out.splitlines()
    assert sorted(lines) == sorted(str((tmp_path / p).resolve()) for p in (
        "photos/trip/IMG 0001.jpg", "photos/phone.heic", "shop/img/mug.png", "single.jpg"))
    assert lines[0] == str((tmp_path / "photos" / "phone.heic").resolve())
    assert out.endswith("\n") and "\t" not in out and "%" not in out  # nothing else printed
