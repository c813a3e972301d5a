"""Faults for tests: a small tmpfs that fills up, a read-only bind mount, damaged files.

Mounting needs root (and a kernel that allows it); where it is refused, the helpers
yield None and the caller falls back to injecting the error.
"""

from __future__ import annotations

import contextlib
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

from imagegen import jpeg_bytes
from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.types import Item, Query

FAST = Settings(image_encoder="descriptor", text_encoder="fake", ingest_workers=1,
                ingest_batch_size=8)


def _run(*args: str) -> bool:
    try:
        return subprocess.run(args, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@contextlib.contextmanager
def small_tmpfs(parent: Path, size: str) -> Iterator[Path | None]:
    """A tmpfs of ``size`` (e.g. "600k") mounted under ``parent``, or None."""
    mount = parent / f"tmpfs-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    if not _run("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)):
        yield None
        return
    try:
        yield mount
    finally:
        _run("umount", "-l", str(mount))


def grow(mount: Path, size: str) -> bool:
    """Give a tmpfs from ``small_tmpfs`` more room (as if space had been freed)."""
    return _run("mount", "-o", f"remount,size={size}", str(mount))


@contextlib.contextmanager
def read_only_view(source: Path) -> Iterator[Path | None]:
    """``source`` seen through a read-only bind mount (writes fail with EROFS even for
    root), or None where bind mounts are not permitted."""
    view = source.parent / f"{source.name}-ro-{uuid.uuid4().hex[:6]}"
    view.mkdir()
    if not _run("mount", "--bind", str(source), str(view)):
        yield None
        return
    try:
        if not _run("mount", "-o", "remount,ro,bind", str(view)):
            yield None
            return
        yield view
    finally:
        _run("umount", "-l", str(view))


def build(path: Path, n: int = 12, settings: Settings = FAST) -> list[str]:
    """A collection of ``n`` generated images; returns their ids."""
    with Engine.open(path, settings) as engine:
        report = engine.ingest_items(
            (Item(id=f"item-{i}", title=f"thing number {i}"), jpeg_bytes(i))
            for i in range(n))
        assert report.added == n, report.failed
    return [f"item-{i}" for i in range(n)]


def top_k(engine: Engine, ids: list[str], k: int = 5) -> dict[str, list[str]]:
    """The nearest items of each id: what must survive a backup and a restore."""
    return {i: [h.id for h in engine.search(Query(similar_to=i, limit=k)).hits] for i in ids}


def all_ids(engine: Engine) -> set[str]:
    return {item.id for item in engine.catalog.iter_items()}


def listing(path: Path) -> dict[str, tuple[int, float]]:
    return {str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime)
            for p in sorted(path.rglob("*"))}
