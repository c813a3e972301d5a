"""The command line's conveniences: --version, shell completion, serve's -c, busy ports."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
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


def test_show_completion_prints_the_script_for_the_shell_named():
    # named, the shell is taken as given, whatever shell (if any) this runs under
    zsh = run("--show-completion", "zsh", env=dict(ENV, SHELL="/bin/bash"))
    assert zsh.returncode == 0, zsh.stderr
    assert "compdef" in zsh.stdout and "COMP_WORDS" not in zsh.stdout
    unknown = run("--show-completion", "tcsh")
    assert unknown.returncode == 2
    assert "tcsh" in unknown.stderr and "bash" in unknown.stderr and unknown.stdout == ""


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


def _shop(tmp_path: Path) -> Path:
    rows = ["id,image,title,category,brand"]
    for i in range(6):
        gen.write_image(tmp_path / "img" / f"{i}.jpg", i)
        category = ("mugs", "mugs", "mugs", "hats", "hats", "bags")[i]
        rows.append(f"s{i},img/{i}.jpg,thing {i},{category},{'acme' if i % 2 else 'zenith'}")
    (tmp_path / "shop.csv").write_text("\n".join(rows) + "\n")
    proc = run("index", tmp_path / "shop.csv", "-c", tmp_path / "shop")
    assert proc.returncode == 0, proc.stderr
    return tmp_path / "shop"


def test_an_unknown_category_or_brand_lists_the_known_values(tmp_path: Path):
    shop = _shop(tmp_path)
    proc = run("search", "-c", shop, "--text", "thing", "--category", "mugz")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: unknown category 'mugz'")
    assert "most common first: mugs, hats, bags" in proc.stderr
    brand = run("search", "-c", shop, "--category", "mugs", "--brand", "acme corp")
    assert brand.returncode == 2 and "unknown brand 'acme corp'" in brand.stderr
    assert "acme" in brand.stderr and "zenith" in brand.stderr
    anycase = run("search", "-c", shop, "--text", "thing", "--category", "MUGS",
                  "--min-confidence", "0", "--json")
    assert anycase.returncode == 0, anycase.stderr
    assert {h["category"] for h in json.loads(anycase.stdout)["results"]} == {"mugs"}


def test_a_collection_without_categories_refuses_no_category(tmp_path: Path):
    gen.write_image(tmp_path / "pics" / "one.jpg", 1)
    assert run("index", tmp_path / "pics", "-c", tmp_path / "c").returncode == 0
    proc = run("search", "-c", tmp_path / "c", "--text", "one", "--category", "mugs",
               "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["results"] == []


def test_an_empty_collection_says_it_is_empty(tmp_path: Path):
    (tmp_path / "nothing").mkdir()
    assert run("index", tmp_path / "nothing", "-c", tmp_path / "empty").returncode == 0
    for query in (["--text", "x"], ["--category", "mugs"]):
        proc = run("search", "-c", tmp_path / "empty", *query,
                   env=dict(ENV, IMGSEARCH_TEXT_ENCODER="none"))
        assert proc.returncode == 0, proc.stderr
        assert "this collection is empty: add images with imgsearch index" in proc.stdout
        assert "no text to search" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("args", [
    ["search", "--help"], ["search", "--bogus"], ["search"], ["--debug", "info", "--help"],
    ["import-embeddings", "--help"], ["serach"], ["--help"], ["keys", "--help"], []])
def test_a_command_reads_the_same_through_main_as_through_the_whole_app(
        args: list[str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # main() builds only the command it runs; what a user sees must not change
    from imgsearch.cli import app, main

    def outcome(call: Callable[[], object]) -> tuple[object, str, str]:
        with pytest.raises(SystemExit) as ended:
            call()
        printed = capsys.readouterr()
        return ended.value.code, printed.out, printed.err

    commands = list(app.registered_commands)
    monkeypatch.setattr(sys, "argv", ["imgsearch", *args])
    whole = outcome(lambda: app(args=args))
    assert outcome(main) == whole
    assert app.registered_commands == commands  # as it was, for whatever runs next
