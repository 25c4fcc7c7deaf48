"""The wall clock, read at the edge: how far ahead of it business time may run.

The domain reads no clock; a command's business time `at` is data.  But a command or a
sweep dated far in the future (a runaway clock, a wrong year or offset) would time out
every open case at once, paying compensation and penalising merchants for deadlines that
have not come, and nothing could undo it.  The ledger's edges therefore give it a
`FutureGuard`, which refuses (`FUTURE`) a business time more than `margin` ahead of the
wall clock, before anything is decided: such a line reveals nothing.  Replays of
future-dated test data lift it (`--allow-future`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aftersales.domain import rules
from aftersales.errors import CommandRefused
from aftersales.settings import Settings


def wall_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class FutureGuard:
    margin: timedelta
    now: Callable[[], datetime] = wall_clock

    def refusal(self, at: datetime) -> CommandRefused | None:
        """The refusal of `at` if it is more than `margin` ahead of the wall clock."""
        now = self.now()
        if at <= now + self.margin:
            return None
        return CommandRefused(
            rules.FUTURE, f"business time {at.isoformat()} is {_span(at - now)} ahead of the "
            f"wall clock ({now.replace(microsecond=0).isoformat()}); at most "
            f"{_span(self.margin)} is allowed (AFTERSALES_FUTURE_MARGIN).  Replaying "
            "future-dated data on purpose?  Use --allow-future")

    def checker(self) -> Callable[[datetime], CommandRefused | None]:
        """`refusal`, for many business times decided in a moment (a batch): the clock is
        read once here, and again only for a time beyond that reading's limit.  (Reading
        it for each of a batch's thousands of commands cost 2% of an ingest.)"""
        limit = self.now() + self.margin
        return lambda at: None if at <= limit else self.refusal(at)


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= 2 * size:
            return f"{seconds // size} {unit}"
    return f"{seconds} seconds"


def guard_for(settings: Settings) -> FutureGuard | None:
    """The guard the settings ask for (None: `--allow-future`)."""
    margin = settings.future_margin
    return None if margin is None else FutureGuard(margin)
