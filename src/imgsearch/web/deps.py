"""What routes receive by dependency injection: the engine and the app's services.

Tests hand an engine on a temporary collection to ``create_app``; routes never open
one themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request

from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.web.limits import Gate, Limits, run_blocking
from imgsearch.web.metrics import Metrics

_T = TypeVar("_T")


@dataclass
class AppState:
    engine: Engine
    settings: Settings
    limits: Limits
    gate: Gate
    metrics: Metrics
    owns_engine: bool

    @property
    def max_body_bytes(self) -> int:
        return self.limits.max_body_bytes or self.settings.max_file_bytes

    @property
    def max_image_bytes(self) -> int:
        return min(self.settings.max_file_bytes, self.max_body_bytes)

    async def call(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """Blocking engine work (encoding, SQLite, disk), off the event loop."""
        return await run_blocking(self.gate, fn, *args, **kwargs)


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.imgsearch
    return state


def get_engine(request: Request) -> Engine:
    return get_state(request).engine


State = Annotated[AppState, Depends(get_state)]
EngineDep = Annotated[Engine, Depends(get_engine)]

__all__ = ["AppState", "EngineDep", "State", "get_engine", "get_state"]
