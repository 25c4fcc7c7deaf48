"""The reading port: all the read side (`projections`) may ask of the ledger.

The projections read the ledger's notification log a page at a time, replay it order by
order, compare an order's last event with its head record, and ask which orders a walk of
the log found broken; they decode each notification into a domain event and never touch a
recorder, a table of the ledger, or a command.  `aftersales.application.ledger.Ledger`
implements it; the command line hands it over.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol
from uuid import UUID

from eventsourcing.persistence import Notification, StoredEvent

from aftersales.storage.chain import Head
from aftersales.storage.port import ChainedNotification


class Positions(NamedTuple):
    """How a ledger's log positions are numbered in the read models, where the rows of a
    violation, a lapse, a deadline change or a discrepancy are keyed by position: one
    store's as they are; partition K's of a map of N > 1, `position * 16 + K`, so that the
    partitions' rows never share a key (and a position says which partition it is)."""

    stride: int = 1
    offset: int = 0

    def of(self, notification_id: int) -> int:
        return notification_id * self.stride + self.offset


#: One store's positions: as they are.
AS_RECORDED = Positions()


class LogReading(Protocol):
    """The ledger's log as the read side reads it."""

    def max_notification_id(self) -> int | None: ...

    def select_notifications(self, start: int | None, limit: int, stop: int | None = None,
                             topics: Sequence[str] = (), *, inclusive_of_start: bool = True
                             ) -> Sequence[Notification]: ...

    def events_by_order(self, upto: int, after: tuple[UUID, int] | None, limit: int,
                        before: UUID | None = None) -> list[ChainedNotification]: ...

    def heads_of(self, originator_ids: Sequence[UUID]) -> dict[UUID, Head]: ...

    def versions_present(self, pairs: Sequence[tuple[UUID, int]]
                         ) -> set[tuple[UUID, int]]: ...


class LedgerReading(Protocol):
    """A ledger opened for reading."""

    name: str
    #: The store's URL (for the rebuild's own processes and for saying which store).
    url: str
    #: How its log positions are numbered in the read models (a partition's apart from
    #: the others').
    positions: Positions

    @property
    def store_log(self) -> LogReading: ...

    def to_domain_event(self, stored: StoredEvent) -> Any:
        """The domain event a stored event (or notification) holds."""

    def walked_limits(self, cut: int) -> dict[str, tuple[int, str]]:
        """Walk the whole log up to `cut` and record the breaks it finds; every recorded
        break, by order_uuid: (the first version not to adopt, why)."""

    def recorded_limits(self) -> dict[str, tuple[int, str]]:
        """Every break recorded so far, as `walked_limits` gives them (no walk)."""

    def opener(self) -> Callable[[], LedgerReading]:
        """A picklable callable that opens this ledger again, for reading, in another
        process."""

    def close(self) -> None: ...
