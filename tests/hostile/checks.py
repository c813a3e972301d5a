"""Checks shared by the hostile-input modules: the known items and their settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from imagegen import jpeg_bytes
from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.types import Item, Query

KNOWN = {f"k{i}": 40 + i for i in range(6)}  # id -> picture seed
MAX_FILE_BYTES = 3_000_000


def hostile_settings(**changes: Any) -> Settings:
    values: dict[str, Any] = {"image_encoder": "descriptor", "text_encoder": "fake",
                              "ingest_workers": 1, "max_file_bytes": MAX_FILE_BYTES,
                              "download_retries": 0, "download_timeout_s": 3.0,
                              "log_searches": False}
    values.update(changes)
    return Settings(**values)

def known_items() -> list[tuple[Item, bytes]]:
    return [(Item(id=item_id, title=f"known item {item_id}", category="known",
                  price=10.0 + seed), jpeg_bytes(seed)) for item_id, seed in KNOWN.items()]

def check_known(engine: Engine, extra_ids: set[str] | None = None,
                known: dict[str, int] | None = None) -> None:
    """The known items (and nothing unexpected) are there and found by their image."""
    known = KNOWN if known is None else known
    ids = {item.id for item in engine.catalog.iter_items()}
    assert set(known) <= ids, f"known items lost: {set(known) - ids}"
    if extra_ids is not None:
        assert ids == set(known) | extra_ids, f"unexpected items: {ids - set(known)}"
    for item_id, seed in known.items():
        hits = engine.search(Query(images=[jpeg_bytes(seed)], limit=3,
                                   collapse_duplicates=False)).hits
        best = {hit.id for hit in hits if hit.score >= hits[0].score - 1e-6}
        assert item_id in best, (item_id, hits)  # exact copies tie at the top


def reopen_and_check(directory: Path, known: dict[str, int] | None = None) -> None:
    with Engine.open(directory, hostile_settings(), create=False) as engine:
        for name, space in engine.spaces.items():
            assert len(space.index) == engine.catalog.count_vectors(name), name
        check_known(engine, extra_ids=set(), known=known)


CLI_ENV = {"IMGSEARCH_TEXT_ENCODER": "fake", "IMGSEARCH_LOG_SEARCHES": "0",
           "IMGSEARCH_INGEST_WORKERS": "1", "IMGSEARCH_DOWNLOAD_RETRIES": "0",
           "IMGSEARCH_MAX_FILE_BYTES": str(MAX_FILE_BYTES)}


@dataclass(frozen=True)
class CliRun:
    code: int
    stdout: str
    stderr: str


def cli(*args: str | Path, env: dict[str, str] | None = None) -> CliRun:
    """Run the command line in this process; an uncaught exception fails the test."""
    from typer.testing import CliRunner

    from imgsearch.cli import app

    result = CliRunner().invoke(app, [str(a) for a in args], env={**CLI_ENV, **(env or {})})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"uncaught {type(result.exception).__name__}: "
                             f"{result.exception}") from result.exception
    return CliRun(result.exit_code, result.stdout, result.stderr)


def assert_intact(client: TestClient) -> None:
    """Over HTTP: exactly the known items, each still its own image's best match."""
    stats = client.get("/v1/stats")
    assert stats.status_code == 200 and stats.json()["items"] == len(KNOWN), stats.text
    for item_id, seed in list(KNOWN.items())[:2]:
        found = client.post("/v1/search/image", files={"file": ("q.jpg", jpeg_bytes(seed))},
                            data={"limit": "1"})
        assert found.status_code == 200, found.text
        assert found.json()["results"][0]["id"] == item_id
