"""Search and click logs, and the report made from them."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from imagegen import picture
from imgsearch import cli
from imgsearch.config import Settings
from imgsearch.encode.fake import FakeEncoder
from imgsearch.encode.registry import register_encoder
from imgsearch.engine import Engine
from imgsearch.errors import InvalidInputError
from imgsearch.types import Item, Query


def test_searches_and_clicks_make_a_report(tmp_path):
    with Engine.open(tmp_path / "c", Settings(text_encoder="fake")) as engine:
        engine.ingest_items((Item(id=f"i{i}", title=f"thing {i}"), picture(i))
                            for i in range(25))
        first = engine.search(Query(images=[picture(3)], limit=5))
        # no confidence floor: the click below needs a second hit, and among 25 generated
        # pictures only the query's own copy is a confident match
        second = engine.search(Query(images=[picture(4)], limit=5, min_confidence=0.0))
        empty = engine.search(Query(text="quantum chromodynamics lecture"))
        similar = engine.similar("i1", limit=3)
        assert first.search_id and first.search_id != second.search_id
        engine.record_click(first.search_id, "i3", 1)
        engine.record_click(second.search_id, second.hits[1].id)  # position from the log
        with pytest.raises(InvalidInputError):
            engine.record_click(first.search_id, "i3", 0)
        report = engine.report()
    assert report["image"]["searches"] == 2
    assert report["image"]["click_through_rate"] == 1.0
    assert report["image"]["mrr_of_clicks"] == pytest.approx((1 + 1 / 2) / 2)
    assert report["text"]["zero_result_rate"] == (1.0 if not empty.hits else 0.0)
    assert report["item"]["searches"] == 1 and similar.hits
    assert report["all"]["searches"] == 4
    assert report["all"]["click_through_rate"] == 0.5
    assert set(report["all"]["latency_ms"]) == {"p50", "p95", "p99"}


def test_report_command(tmp_path):
    with Engine.open(tmp_path / "c", Settings(text_encoder="fake")) as engine:
        engine.upsert(Item(id="a", title="x"), picture(1))
        engine.search(Query(images=[picture(1)]))
    env = dict(os.environ, IMGSEARCH_TEXT_ENCODER="fake")
    proc = subprocess.run([sys.executable, "-m", "imgsearch.cli", "report", "-c",
                           str(tmp_path / "c"), "--json"], capture_output=True, text=True,
                          env=env, check=True)
    assert json.loads(proc.stdout)["image"]["searches"] == 1


def test_logging_can_be_turned_off(tmp_path):
    with Engine.open(tmp_path / "c", Settings(text_encoder="fake", log_searches=False)) as eng:
        eng.upsert(Item(id="a"), picture(1))
        assert eng.search(Query(images=[picture(1)])).search_id is None
        assert eng.report() == {}
    assert not (tmp_path / "c" / "logs.sqlite3").exists()


def test_a_line_that_cannot_be_made_costs_only_itself(tmp_path):
    from imgsearch.store.logs import SearchLog, SearchRecord

    def broken() -> SearchRecord:
        raise ValueError("cannot describe this search")

    log = SearchLog(tmp_path)
    try:
        log.log_search(broken)
        log.log_search(SearchRecord(kind="text", text="red shoe", filters={},
                                    interpretation={}, result_ids=["a"], scores=[0.5],
                                    latency_ms=1.0, empty_reason=None))
        report = log.report()
        assert report["all"]["searches"] == 1 and report["text"]["searches"] == 1
    finally:
        log.close()


class LoadingEncoder(FakeEncoder):
    """The fake encoder with a model to load: the first ``load`` takes 20 ms."""

    name = "loading"

    def __init__(self) -> None:
        super().__init__()
        self.loaded = False

    def load(self) -> bool:
        if self.loaded:
            return False
        time.sleep(0.02)
        self.loaded = True
        return True


def test_model_load_is_logged_apart_from_query_time(tmp_path):
    register_encoder("loading", lambda settings: LoadingEncoder())
    with Engine.open(tmp_path / "c", Settings(text_encoder="loading",
                                              result_cache_size=0)) as engine:
        engine.ingest_items((Item(id=f"i{i}", title=f"thing {i}"), picture(i))
                            for i in range(5))
        engine.close()
    with Engine.open(tmp_path / "c", Settings(text_encoder="loading",
                                              result_cache_size=0)) as engine:
        first = engine.search(Query(text="thing one", min_confidence=0.0))
        second = engine.search(Query(text="thing two", min_confidence=0.0))
        report = engine.report()
    assert first.stage_ms["model_load"] >= 20.0  # it slept that long
    assert "model_load" not in second.stage_ms
    assert report["text"]["searches"] == 2
    assert report["text"]["model_loads"] == 1
    assert report["text"]["model_load_ms"]["p50"] == pytest.approx(
        first.stage_ms["model_load"], abs=0.01)
    with sqlite3.connect(tmp_path / "c" / "logs.sqlite3") as conn:
        rows = conn.execute("SELECT text, latency_ms, model_load_ms FROM searches "
                            "ORDER BY at").fetchall()
    (_, first_latency, first_load), (_, _, second_load) = rows
    assert first_load == pytest.approx(first.stage_ms["model_load"], abs=0.01)
    assert first_latency == pytest.approx(first.query_time_ms - first_load, abs=0.01)
    assert second_load == 0.0
    # in this process, where the "loading" encoder is registered
    done = CliRunner().invoke(cli.app, ["report", "-c", str(tmp_path / "c")])
    assert done.exit_code == 0, done.output
    header, *lines = done.stdout.splitlines()
    assert "model loads" in header and "load p50 ms" in header
    text_line = next(line for line in lines if line.startswith("text "))
    assert text_line.split()[-2] == "1"


def test_a_log_from_before_model_load_times_still_reports(tmp_path):
    from imgsearch.store.logs import SearchLog, SearchRecord

    with sqlite3.connect(tmp_path / "logs.sqlite3") as conn:
        conn.executescript("""
            CREATE TABLE searches (
                id TEXT PRIMARY KEY, at REAL NOT NULL, kind TEXT NOT NULL, text TEXT,
                filters TEXT NOT NULL, interpretation TEXT NOT NULL,
                result_ids TEXT NOT NULL, scores TEXT NOT NULL, latency_ms REAL NOT NULL,
                empty_reason TEXT);
            INSERT INTO searches VALUES ('old', 1.0, 'text', 'shoe', '{}', '{}', '["a"]',
                                         '[0.5]', 7.0, NULL);
        """)
    log = SearchLog(tmp_path)
    try:
        log.log_search(SearchRecord(kind="text", text="boot", filters={}, interpretation={},
                                    result_ids=["b"], scores=[0.4], latency_ms=3.0,
                                    empty_reason=None, model_load_ms=250.0))
        report = log.report()
    finally:
        log.close()
    assert report["text"]["searches"] == 2
    assert report["text"]["model_loads"] == 1
    assert report["text"]["model_load_ms"] == {"p50": 250.0, "max": 250.0}
    assert report["text"]["latency_ms"]["p50"] == pytest.approx(5.0)
