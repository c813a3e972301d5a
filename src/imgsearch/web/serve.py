"""Run the HTTP API with uvicorn (the CLI's ``serve`` command calls :func:`serve`).

One process by default: concurrency comes from the event loop and the threads that run
engine work, and Python runs one of them at a time. ``workers=N`` starts N processes
on one listening socket, each with an engine of its own: the first holds the collection
and takes the writes, the others open it read-only and hand writes to it
(``web.forward``). A process that dies is started again; if it was the writer, the one
that takes its place takes the writer lock.
"""

from __future__ import annotations

import errno
import multiprocessing
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.engine.stream import ConsumeOptions
from imgsearch.errors import (
    CollectionError,
    CollectionLockedError,
    InvalidInputError,
    PortInUseError,
)
from imgsearch.web.access_log import configure_json_logging
from imgsearch.web.app import create_app
from imgsearch.web.forward import publish_writer, withdraw_writer
from imgsearch.web.limits import Limits
from imgsearch.web.protocol import guarded_protocol
from imgsearch.web.stream_metrics import StreamCollector

_UVICORN: dict[str, Any] = {"log_level": "info", "access_log": False, "proxy_headers": False,
                            "server_header": False, "log_config": None,
                            # longer than the idle time of common client pools, so that a
                            # client rarely reuses a connection the server is closing
                            "timeout_keep_alive": 75}
_RESTART_PAUSE_S = 1.0
_QUICK_DEATH_S = 30.0  # a process that dies sooner than this after starting ...
_MAX_QUICK_DEATHS = 5  # ... this many times in a row: stop restarting, say so


def uvicorn_options(limits: Limits | None = None) -> dict[str, Any]:
    """How the server runs uvicorn: quiet, headers capped, keep-alive past client pools."""
    limits = limits or Limits()
    return {**_UVICORN, "http": guarded_protocol(limits),
            "h11_max_incomplete_event_size": limits.max_header_bytes}


def serve(collection: Path, host: str, port: int, settings: Settings,
          limits: Limits | None = None, workers: int = 1,
          consume: ConsumeOptions | None = None) -> None:
    """Open ``collection`` and serve it until interrupted, in ``workers`` processes;
    with ``consume``, index from that stream too."""
    if workers < 1:
        raise InvalidInputError(f"workers must be 1 or more, got {workers}")
    if consume is not None and workers != 1:
        raise InvalidInputError("--consume runs in a single server process; leave out "
                                "--workers (or run `imgsearch consume` beside the server)")
    configure_json_logging()
    if consume is not None:
        _serve_consuming(collection, host, port, settings, limits, consume)
        return
    # bound before anything else, so that a busy port is said at once and plainly
    listener = _listen(host, port)
    if workers == 1:
        try:
            app = create_app(collection=collection, settings=settings, limits=limits,
                             listen_host=host)
            server = uvicorn.Server(uvicorn.Config(app, host=host, port=port,
                                                   **uvicorn_options(limits)))
            server.run(sockets=[listener])
        finally:
            listener.close()
        return
    listener.set_inheritable(True)
    context = multiprocessing.get_context("spawn")
    args = (listener, collection, settings, limits, host)
    stopping = False

    def stop(_signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    processes: list[Any] = []
    try:
        # The first process opens the collection (creating it if need be) and takes the
        # writer lock before the others look for it.
        opened = context.Event()
        first = context.Process(target=_worker, args=(*args, opened),
                                name="imgsearch-serve-0")
        first.start()
        processes = [first]
        while not opened.wait(0.2) and first.is_alive() and not stopping:
            pass  # opening may rebuild indexes: as long as it takes
        if not opened.is_set() and not stopping:
            # it said why on stderr (a bad collection or settings): so many more would too
            raise CollectionError(f"the first server process could not open {collection} "
                                  f"(exit code {first.exitcode}); see the message above")
        started = {0: time.monotonic()}
        quick_deaths = 0
        for i in range(1, workers):
            p = context.Process(target=_worker, args=args, name=f"imgsearch-serve-{i}")
            p.start()
            processes.append(p)
            started[i] = time.monotonic()
        while not stopping:
            time.sleep(0.2)
            for i, p in enumerate(processes):
                if p.is_alive() or stopping:
                    continue
                quick = time.monotonic() - started[i] < _QUICK_DEATH_S
                quick_deaths = quick_deaths + 1 if quick else 0
                if quick_deaths >= _MAX_QUICK_DEATHS:
                    raise CollectionError(f"server processes keep exiting as they start "
                                          f"({quick_deaths} in a row, last exit code "
                                          f"{p.exitcode}); see the messages above")
                time.sleep(_RESTART_PAUSE_S)
                processes[i] = context.Process(target=_worker, args=args, name=p.name)
                processes[i].start()
                started[i] = time.monotonic()
    finally:
        for p in processes:
            if p.is_alive():
                p.terminate()  # uvicorn shuts down gracefully on SIGTERM
        for p in processes:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
        listener.close()
        for s, handler in previous.items():
            signal.signal(s, handler)


def _serve_consuming(collection: Path, host: str, port: int, settings: Settings,
                     limits: Limits | None, consume: ConsumeOptions) -> None:
    """One process that serves and consumes; the consumer stops before the engine closes,
    so that no write is cut short by the shutdown."""
    listener = _listen(host, port)
    engine = Engine.open(collection, settings)
    stop = threading.Event()
    thread: threading.Thread | None = None
    try:
        app = create_app(engine=engine, settings=settings, limits=limits, listen_host=host)
        consumer = consume.consumer_for(engine)
        app.state.imgsearch.metrics.registry.register(StreamCollector(consumer))
        thread = threading.Thread(target=consumer.run, args=(stop,), name="imgsearch-consume",
                                  daemon=True)
        thread.start()
        server = uvicorn.Server(uvicorn.Config(app, host=host, port=port,
                                               **uvicorn_options(limits)))
        server.run(sockets=[listener])
    finally:
        stop.set()
        if thread is not None:
            thread.join(timeout=60)
        engine.close()
        listener.close()


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(f"port {port} on {host} is already in use; choose another "
                                 f"with --port") from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise InvalidInputError(f"not allowed to listen on port {port} on {host} "
                                    f"({exc.strerror}); ports under 1024 need privileges: "
                                    f"choose another with --port") from None
        if exc.errno == errno.EADDRNOTAVAIL or isinstance(exc, socket.gaierror):
            raise InvalidInputError(f"cannot listen on {host} ({exc.strerror}); give an "
                                    f"address of this machine with --host") from None
        raise


def _worker(listener: socket.socket, collection: Path, settings: Settings,
            limits: Limits | None, host: str, opened: Any = None) -> None:
    configure_json_logging()
    private: socket.socket | None = None
    try:
        app = create_app(collection=collection, settings=settings, limits=limits,
                         listen_host=host)
    except CollectionLockedError:
        # keys are checked here, on the process that received the request, and again
        # by the writer it is handed to
        app = create_app(collection=collection, settings=settings, limits=limits,
                         forward_writes=True, listen_host=host)
    else:
        if not app.state.imgsearch.engine.readonly:  # on read-only storage nobody writes
            private = socket.create_server(("127.0.0.1", 0))
            host, port = private.getsockname()[:2]
            publish_writer(collection, f"http://{host}:{port}")
    if opened is not None:
        opened.set()
    server = uvicorn.Server(uvicorn.Config(app, **uvicorn_options(limits)))
    # uvicorn shuts down gracefully on SIGTERM, then raises it again under the handler
    # found before it started: make that an exit that runs the clean-up below
    signal.signal(signal.SIGTERM, _exit)
    try:
        server.run(sockets=[listener] + ([private] if private is not None else []))
    finally:
        if private is not None:
            withdraw_writer(collection)
            private.close()



def _exit(_signum: int, _frame: Any) -> None:
    raise SystemExit(0)


__all__ = ["serve", "uvicorn_options"]
