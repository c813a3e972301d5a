"""Decoding in worker processes that can be killed: a deadline that really stops work.

Pillow decodes in C and cannot be interrupted from Python, so a decode that runs far
past its deadline (a JPEG whose scans each pass over 60 MP, a decoder bug that loops)
can only be stopped by ending the process that runs it. A :class:`WorkerPool` keeps a
few worker processes, each a fresh interpreter started once (not forked from a threaded
server) and fed jobs one at a time over a socket:

- a job is a module-level function and its arguments (both pickled); its result or its
  ``ImgSearchError`` comes back;
- a job that passes its ``timeout_s`` gets its worker killed (SIGKILL) and replaced,
  and raises :class:`~imgsearch.errors.DecodeTimeoutError`; a worker that dies on a job
  (a crash in native code) is replaced too, and the job fails with
  :class:`~imgsearch.errors.CorruptImageError`;
- a worker is recycled after ``max_jobs`` jobs or when its resident memory passes
  ``max_rss_mb`` (decoders keep arenas that only the end of a process gives back);
- jobs queue for a free worker; a caller that stops waiting (its own deadline) cancels
  a job that has not started.

Each worker has a thread in the parent that feeds it and waits on its socket (the
wait releases the GIL), so callers on many threads share the workers. Workers ask the
kernel to end them when the parent dies, and end on their own when the socket closes.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import pickle
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from imgsearch.errors import (
    CorruptImageError,
    DecodersBusyError,
    DecodeTimeoutError,
    ImgSearchError,
)

_T = TypeVar("_T")
_STOP = None
_READY = "ready"
_BOOT_TIMEOUT_S = 120.0
_ALARM_GRACE_S = 5.0
_PAGE_KB = 4
# set in a worker before numpy loads (the BLAS libraries read them when they load)
_ONE_THREAD = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass
class _Job:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    label: str
    timeout_s: float
    future: Future[Any]


class _Worker:
    """One worker process and the parent-side end of its socket."""

    def __init__(self, preload: tuple[str, ...] = ()) -> None:
        parent_end, child_end = socket.socketpair()
        fd = child_end.fileno()
        # The child gets this interpreter's import path, so it imports imgsearch (and any
        # job's module) from where the parent did. Its numpy runs single-threaded: the
        # workers are the parallelism, and BLAS threads of each one spinning beside the
        # others (and beside this process) cost more CPU than they save.
        boot = (f"import os; [os.putenv(name, '1') for name in {_ONE_THREAD!r}]; "
                f"import sys; sys.path[:] = {sys.path!r}; "
                f"from imgsearch.ingest.workers import serve; serve({fd}, {preload!r})")
        self.process = subprocess.Popen([sys.executable, "-c", boot], pass_fds=(fd,),
                                        stdin=subprocess.DEVNULL, close_fds=True)
        child_end.close()
        self.conn = Connection(parent_end.detach())
        self.jobs = 0
        self.ready = False
        self._boot_lock = threading.Lock()

    def wait_ready(self) -> None:
        """Wait for the worker's first word (its imports done), so that a job's deadline
        counts decoding only, not an interpreter starting on a busy machine."""
        with self._boot_lock:
            if self.ready:
                return
            if not self.conn.poll(_BOOT_TIMEOUT_S) or self.conn.recv() != _READY:
                raise RuntimeError(f"decode worker {self.pid} did not start within "
                                   f"{_BOOT_TIMEOUT_S:g} s")
            self.ready = True

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self.process.kill()
        self.process.wait()
        self.conn.close()

    def stop(self) -> None:
        """Ask the worker to end; kill it if it does not within a second."""
        with contextlib.suppress(OSError):
            self.conn.send(_STOP)
        try:
            self.process.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.conn.close()


class WorkerPool:
    """``size`` worker processes running jobs with a deadline each (see module doc)."""

    def __init__(self, size: int, *, max_jobs: int = 2000, max_rss_mb: int = 1024,
                 preload: tuple[str, ...] = ()) -> None:
        self.size = max(1, size)
        self.preload = preload  # modules a worker imports before it says it is ready
        self.max_jobs = max_jobs
        self.max_rss_kb = max_rss_mb * 1024
        self.replaced = 0  # workers killed at a deadline or found dead
        self.recycled = 0  # workers ended after max_jobs or max_rss_mb
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._workers: list[_Worker | None] = [None] * self.size
        self._closed = False
        self._started = [threading.Event() for _ in range(self.size)]
        self._threads = [threading.Thread(target=self._feed, args=(slot,), daemon=True,
                                          name=f"imgsearch-worker-{slot}")
                         for slot in range(self.size)]
        for thread in self._threads:
            thread.start()

    @property
    def pids(self) -> list[int]:
        """The process ids of the workers running now."""
        with self._lock:
            return [w.pid for w in self._workers if w is not None]

    def start(self) -> None:
        """Wait until every worker has started (a server, before its first upload)."""
        for started in self._started:
            started.wait(_BOOT_TIMEOUT_S)

    def submit(self, fn: Callable[..., _T], *args: Any, label: str = "",
               timeout_s: float = 30.0) -> Future[_T]:
        """Run ``fn(*args)`` in a worker; the future fails with the job's error."""
        if self._closed:
            raise RuntimeError("the worker pool is closed")
        future: Future[_T] = Future()
        self._jobs.put(_Job(fn, args, label or "<image>", timeout_s, future))
        return future

    def run(self, fn: Callable[..., _T], *args: Any, label: str = "",
            timeout_s: float = 30.0) -> _T:
        """``submit`` and wait. A job that no worker has taken within ``timeout_s`` is
        cancelled (``DecodersBusyError``); one taken ends by its own deadline."""
        future = self.submit(fn, *args, label=label, timeout_s=timeout_s)
        try:
            return future.result(timeout=timeout_s)
        except FutureTimeout:
            if future.cancel():
                raise DecodersBusyError(
                    f"{label or '<image>'}: every decode worker stayed busy for "
                    f"{timeout_s:g} s; retry later") from None
        return future.result()  # started in time: it ends by its own deadline

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for _ in self._threads:
            self._jobs.put(_STOP)
        for thread in self._threads:
            thread.join(timeout=5.0)
        while True:  # jobs queued behind the stop signals: their callers must not hang
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job.future.cancel()
        with self._lock:
            workers, self._workers = self._workers, [None] * self.size
        for worker in workers:
            if worker is not None:
                worker.stop()

    # -- parent side: one feeding thread per worker -----------------------------------
    def _worker(self, slot: int) -> _Worker:
        with self._lock:
            worker = self._workers[slot]
            if worker is None:
                worker = self._workers[slot] = _Worker(self.preload)
            return worker

    def _drop(self, slot: int, worker: _Worker, *, kill: bool) -> None:
        with self._lock:
            if self._workers[slot] is worker:
                self._workers[slot] = None
        if kill:
            worker.kill()
        else:
            worker.stop()
        if not self._closed:
            self._worker(slot)  # its replacement boots while the caller hears the news

    def _feed(self, slot: int) -> None:
        # Workers are started by this long-lived thread only: Linux ends a worker when
        # the thread that started it ends (see _die_with_parent).
        with contextlib.suppress(RuntimeError, EOFError, OSError):
            self._worker(slot).wait_ready()
        self._started[slot].set()
        while True:
            job = self._jobs.get()
            if job is None:
                return
            if not job.future.set_running_or_notify_cancel():
                continue
            try:
                job.future.set_result(self._run_in(slot, job))
            except BaseException as exc:  # delivered to the caller, never lost here
                job.future.set_exception(exc)

    def _run_in(self, slot: int, job: _Job) -> Any:
        worker = self._worker(slot)
        try:
            worker.wait_ready()
        except (RuntimeError, EOFError, OSError):
            self._drop(slot, worker, kill=True)
            raise
        try:
            worker.conn.send((job.fn, job.args, job.timeout_s))
            if not worker.conn.poll(job.timeout_s):
                self.replaced += 1
                self._drop(slot, worker, kill=True)
                raise DecodeTimeoutError(
                    f"{job.label}: decoding did not finish within {job.timeout_s:g} s and "
                    "was stopped; the image costs far more to decode than its size "
                    "suggests (re-save it as a baseline JPEG or PNG) or raise "
                    "decode_timeout_s")
            ok, value, rss_kb = worker.conn.recv()
        except (EOFError, OSError):
            self.replaced += 1
            self._drop(slot, worker, kill=True)
            raise CorruptImageError(f"{job.label}: the decoder stopped on this image "
                                    f"(worker process {worker.pid} ended); the file is "
                                    "damaged or not a supported image") from None
        worker.jobs += 1
        if worker.jobs >= self.max_jobs or rss_kb > self.max_rss_kb:
            self.recycled += 1
            self._drop(slot, worker, kill=False)
        if not ok:
            raise value
        return value


# -- child side ------------------------------------------------------------------------
def serve(fd: int, preload: tuple[str, ...] = ()) -> None:
    """The worker's loop: run jobs from the socket ``fd`` until told to stop or orphaned.

    ``preload``: modules imported first, so that no job's deadline pays for imports."""
    _die_with_parent()
    conn = Connection(fd)
    for module in preload:
        importlib.import_module(module)
    conn.send(_READY)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:  # _STOP
            return
        fn, args, timeout_s = message
        # A second line of defence when the parent cannot kill this worker (it died
        # mid-job): SIGALRM's default action ends the process.
        signal.setitimer(signal.ITIMER_REAL, timeout_s + _ALARM_GRACE_S)
        try:
            reply = (True, fn(*args), _rss_kb())
        except (ImgSearchError, OSError) as exc:
            reply = (False, exc, _rss_kb())
        except Exception as exc:  # a bug, not bad input: the caller sees it as such
            reply = (False, RuntimeError(f"{type(exc).__name__}: {exc}"), _rss_kb())
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        try:
            conn.send(reply)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            conn.send((False, RuntimeError(f"cannot send the result back: {exc}"), 0))


def _rss_kb() -> int:
    try:
        with open("/proc/self/statm", "rb") as handle:
            return int(handle.read().split()[1]) * _PAGE_KB
    except (OSError, ValueError, IndexError):
        return 0


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this worker when its parent ends (no-op elsewhere).

    Linux sends it when the *thread* that started the worker ends, which is why only the
    pool's feeding threads, alive as long as the pool, start workers."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL))
    except (OSError, AttributeError):
        pass


# -- one pool per process and size -----------------------------------------------------
_POOLS: dict[tuple[int, int, int, tuple[str, ...]], WorkerPool] = {}
_POOLS_LOCK = threading.Lock()


def shared_pool(size: int, *, max_jobs: int = 2000, max_rss_mb: int = 1024,
                preload: tuple[str, ...] = ()) -> WorkerPool:
    """The process-wide pool of this size, started on first use and closed at exit.

    Every engine in a process shares it: workers are generic, and a server or a test
    run that opens many collections should not start workers for each.
    """
    key = (max(1, size), max_jobs, max_rss_mb, preload)
    with _POOLS_LOCK:
        pool = _POOLS.get(key)
        if pool is None:
            pool = _POOLS[key] = WorkerPool(size, max_jobs=max_jobs, max_rss_mb=max_rss_mb,
                                            preload=preload)
        return pool


@atexit.register
def _close_pools() -> None:
    with _POOLS_LOCK:
        pools = list(_POOLS.values())
        _POOLS.clear()
    for pool in pools:
        pool.close()


__all__ = ["WorkerPool", "serve", "shared_pool"]
