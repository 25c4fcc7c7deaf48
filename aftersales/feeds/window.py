"""Out-of-order input put back in business-time order, within a lateness window.

Items are held until no earlier one can still arrive: an item is released once the latest
business time seen is `lateness` past it (and everything at the end).  Items at the same
time go by their rank (a message's tag: its step in the life of an order), then by their
arrival.  An item that arrives later than the window (earlier than
one already released) is released at once, marked late: its consumer decides what a late
item means (the ledger refuses a step before an order's latest event, `TIME`).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Generic, TypeVar

T = TypeVar("T")


class Window(Generic[T]):
    def __init__(self, lateness: timedelta) -> None:
        self.lateness = lateness
        self._held: list[tuple[datetime, int, int, T]] = []
        self._arrived = 0
        self._latest: datetime | None = None  # the latest business time seen
        self._released: datetime | None = None  # the latest business time released

    def add(self, at: datetime, item: T, rank: int = 0) -> Iterator[tuple[T, bool]]:
        """Hold `item` (at business time `at`, of `rank` among items at that time); the
        items now due, each with whether it came late (after a later one was
        released)."""
        if self._released is not None and at < self._released:
            yield item, True
            return
        self._arrived += 1
        heapq.heappush(self._held, (at, rank, self._arrived, item))
        self._latest = at if self._latest is None else max(self._latest, at)
        yield from self._due(self._latest - self.lateness)

    def release(self, upto: datetime) -> Iterator[tuple[T, bool]]:
        """The items held whose business time is `upto` or before (a live feed: the wall
        clock has passed them by the lateness)."""
        yield from self._due(upto)

    def held(self) -> list[T]:
        """The items still held, in no order."""
        return [item for _, _, _, item in self._held]

    def drain(self) -> Iterator[tuple[T, bool]]:
        """Every item still held, in order (the end of the input)."""
        yield from self._due(None)

    def _due(self, upto: datetime | None) -> Iterator[tuple[T, bool]]:
        while self._held and (upto is None or self._held[0][0] <= upto):
            at, _, _, item = heapq.heappop(self._held)
            self._released = at
            yield item, False

    def __len__(self) -> int:
        return len(self._held)
