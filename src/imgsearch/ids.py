"""Unique ids for searches and requests, made without a system call each.

A random 64-bit prefix drawn once per process (again in a forked child), then a
counter: 32 hex characters, as unique as a random id across processes and restarts for
any realistic number of them, and cheaper than ``uuid.uuid4`` (which reads
``os.urandom`` every time) on the path of every request.
"""

from __future__ import annotations

import itertools
import os

_prefix = os.urandom(8).hex()
_counter = itertools.count()


def new_id() -> str:
    return f"{_prefix}{next(_counter):016x}"


def _reseed() -> None:
    global _prefix, _counter
    _prefix = os.urandom(8).hex()
    _counter = itertools.count()


os.register_at_fork(after_in_child=_reseed)

__all__ = ["new_id"]
