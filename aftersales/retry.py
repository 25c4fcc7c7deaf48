"""Trying a first-use step again when another process was doing it at the same moment."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def retrying(step: Callable[[], T], errors: tuple[type[BaseException], ...],
             attempts: int = 5, pause: float = 0.0) -> T:
    """`step()`, tried up to `attempts` times while it raises one of `errors`, waiting
    `pause` times the attempt number between tries; the last error is raised."""
    for attempt in range(1, attempts + 1):
        try:
            return step()
        except errors:
            if attempt == attempts:
                raise
            time.sleep(pause * attempt)
    raise AssertionError("unreachable")
