"""The CLI under faults: every one ends in a message and its own exit code, never a
traceback (unless --debug asks for it)."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import imgsearch.engine.core as core
import imgsearch.engine.writer as writer
from faultkit import build, read_only_view, small_tmpfs
from imagegen import jpeg_bytes
from imgsearch import cli

ENV = dict(os.environ, IMGSEARCH_TEXT_ENCODER="fake", IMGSEARCH_INGEST_BATCH_SIZE="8")


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "imgsearch.cli", *map(str, args)],
                          capture_output=True, text=True, env=ENV, timeout=300)


def invoke(*args: str | Path):
    return CliRunner().invoke(cli.app, [str(a) for a in args], env=ENV)


def _folder(root: Path, n: int, size: tuple[int, int] = (160, 120)) -> Path:
    root.mkdir(parents=True)
    for i in range(n):
        (root / f"photo{i:03d}.jpg").write_bytes(jpeg_bytes(i, size=size))
    return root


def test_an_unexpected_error_is_one_line_and_its_own_exit_code(tmp_path, monkeypatch):
    build(tmp_path / "c", n=2)

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("something nobody foresaw\nsecond line")

    monkeypatch.setattr(core.Engine, "info", broken)
    result = invoke("info", "-c", tmp_path / "c")
    assert result.exit_code == cli.EXIT_INTERNAL == 8
    assert "RuntimeError: something nobody foresaw" in result.output
    assert "second line" not in result.output and "Traceback" not in result.output
    debug = invoke("--debug", "info", "-c", tmp_path / "c")
    assert debug.exit_code == 8 and "Traceback" in debug.output


def test_a_full_disk_during_index_writes_the_partial_report_and_exits_7(tmp_path,
                                                                        monkeypatch):
    photos = _folder(tmp_path / "photos", 20)
    real = writer.write_thumbnail
    calls = {"n": 0}

    def fills_up(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 8:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(writer, "write_thumbnail", fills_up)
    result = invoke("index", photos, "-c", tmp_path / "c", "--json", "-q")
    assert result.exit_code == cli.EXIT_STORAGE_FULL == 7, result.output
    report = json.loads(result.stdout.splitlines()[0])
    assert report["added"] == 8
    assert {f["code"] for f in report["failed"]} == {"insufficient_storage"}
    assert "no space left" in result.output and "Traceback" not in result.output
    monkeypatch.undo()
    info = json.loads(invoke("info", "-c", tmp_path / "c", "--json").stdout)
    assert info["items"] == 8


def test_a_real_full_tmpfs_exits_7_with_the_report(tmp_path):
    photos = _folder(tmp_path / "photos", 120, size=(800, 600))
    with small_tmpfs(tmp_path, "700k") as mount:
        if mount is None:
            pytest.skip("tmpfs cannot be mounted here; the injected ENOSPC test covers it")
        proc = run("index", photos, "-c", mount / "c", "--json", "-q", "--print-committed")
        assert proc.returncode == 7, proc.stderr
        assert "Traceback" not in proc.stderr and "no space left" in proc.stderr
        lines = proc.stdout.splitlines()
        committed = [line.split(" ", 1)[1] for line in lines if line.startswith("committed ")]
        report = json.loads(next(line for line in lines if line.startswith("{")))
        assert report["added"] == len(committed) > 0
        info = run("info", "-c", mount / "c", "--json")
        assert info.returncode == 0, info.stderr
        assert json.loads(info.stdout)["items"] == len(committed)


def test_a_damaged_catalog_says_what_and_how_to_restore(tmp_path):
    build(tmp_path / "c", n=4)
    catalog = tmp_path / "c" / "catalog.sqlite3"
    catalog.write_bytes(b"\0garbage" * 4096)
    for args in (("info",), ("search", "--text", "thing"), ("index", tmp_path)):
        proc = run(*args, "-c", tmp_path / "c")
        assert proc.returncode == cli.EXIT_COLLECTION, (args, proc.stderr)
        assert "Traceback" not in proc.stderr and "backup" in proc.stderr, proc.stderr
    check = run("check", "-c", tmp_path / "c", "--json")
    assert check.returncode == 4
    assert json.loads(check.stdout)["findings"][0]["part"] == "catalog"


def test_check_repair_backup_from_the_command_line(tmp_path):
    build(tmp_path / "c", n=6)
    healthy = run("check", "-c", tmp_path / "c")
    assert healthy.returncode == 0 and "healthy" in healthy.stdout
    assert run("backup", "-c", tmp_path / "c", tmp_path / "bk").returncode == 0
    (tmp_path / "c" / "manifest.json").write_text('{"spaces": ')
    (tmp_path / "c" / "logs.sqlite3").write_bytes(b"not a database" * 300)
    damaged = run("check", "-c", tmp_path / "c", "--json")
    assert damaged.returncode == 4
    assert {f["part"] for f in json.loads(damaged.stdout)["findings"]} == {
        "manifest", "search log"}
    repaired = run("repair", "-c", tmp_path / "c", "--json")
    assert repaired.returncode == 0, repaired.stderr
    assert json.loads(repaired.stdout)["healthy"]
    assert run("check", "-c", tmp_path / "bk").returncode == 0


def test_read_only_storage_from_the_command_line(tmp_path):
    build(tmp_path / "c", n=6)
    with read_only_view(tmp_path / "c") as view:
        if view is None:
            pytest.skip("read-only bind mounts are not permitted here (the engine test "
                        "covers it by pretending)")
        info = run("info", "-c", view, "--json")
        assert info.returncode == 0, info.stderr
        assert json.loads(info.stdout)["items"] == 6
        search = run("search", "-c", view, "--text", "thing", "--json")
        assert search.returncode == 0, search.stderr
        assert "read-only" in search.stderr  # the log is off, and it says so
        assert run("check", "-c", view).returncode == 0
        write = run("add", tmp_path / "x.jpg", "-c", view)
        assert write.returncode == cli.EXIT_COLLECTION
        assert "read-only storage" in write.stderr and "Traceback" not in write.stderr
