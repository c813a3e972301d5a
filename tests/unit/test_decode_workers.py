"""The decode worker pool: results and errors come back, deadlines kill, workers renew."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

import slowdecode
from imgsearch.errors import (
    CorruptImageError,
    DecodersBusyError,
    DecodeTimeoutError,
)
from imgsearch.ingest.workers import WorkerPool


@pytest.fixture
def pool() -> Iterator[WorkerPool]:
    workers = WorkerPool(2, max_jobs=3)
    workers.start()
    yield workers
    workers.close()


def test_a_job_runs_in_another_process_and_its_result_comes_back(pool: WorkerPool) -> None:
    assert pool.run(pow, 2, 10) == 1024
    worker_pid = pool.run(slowdecode.pid)
    assert worker_pid != os.getpid()
    assert worker_pid in pool.pids


def test_an_error_of_the_job_arrives_with_its_class_and_message(pool: WorkerPool) -> None:
    with pytest.raises(CorruptImageError, match="broken on purpose"):
        pool.run(slowdecode.raise_corrupt, "x.jpg: broken on purpose")
    assert pool.run(pow, 3, 3) == 27
    assert pool.replaced == 0


def test_a_job_past_its_deadline_is_killed_and_its_worker_replaced(pool: WorkerPool) -> None:
    before = set(pool.pids)
    with pytest.raises(DecodeTimeoutError, match=r"bomb\.jpg: decoding did not finish "
                                                  r"within 0\.5 s"):
        pool.run(slowdecode.spin, 600.0, label="bomb.jpg", timeout_s=0.5)
    assert pool.replaced == 1
    gone = before - set(pool.pids)
    assert len(gone) == 1
    assert not slowdecode.alive(gone.pop())  # no CPU burnt after the answer: the process is gone
    assert len(pool.pids) == 2  # a replacement took its place
    assert pool.run(pow, 2, 5) == 32


def test_a_worker_that_dies_fails_its_job_only(pool: WorkerPool) -> None:
    with pytest.raises(CorruptImageError, match=r"crash\.jpg: the decoder stopped"):
        pool.run(slowdecode.die, label="crash.jpg")
    assert pool.replaced == 1
    assert pool.run(pow, 2, 3) == 8


def test_workers_are_recycled_after_max_jobs() -> None:
    pool = WorkerPool(1, max_jobs=2)
    try:
        first = pool.run(slowdecode.pid)
        assert pool.run(slowdecode.pid) == first
        third = pool.run(slowdecode.pid)
        assert third != first
        assert pool.recycled == 1
        assert not slowdecode.alive(first)
    finally:
        pool.close()


def test_a_caller_waits_for_a_busy_pool_only_as_long_as_its_deadline() -> None:
    pool = WorkerPool(1)
    try:
        busy = pool.submit(slowdecode.spin, 2.0, timeout_s=30.0)
        with pytest.raises(DecodersBusyError, match="every decode worker stayed busy"):
            pool.run(pow, 2, 2, timeout_s=0.2)
        busy.result()
        assert pool.run(pow, 2, 2) == 4  # the refused job never ran, the pool goes on
    finally:
        pool.close()


def test_close_ends_every_worker() -> None:
    pool = WorkerPool(2)
    pool.start()
    pids = pool.pids
    assert len(pids) == 2
    pool.close()
    assert not any(slowdecode.alive(p) for p in pids)
    with pytest.raises(RuntimeError, match="closed"):
        pool.submit(pow, 2, 2)
