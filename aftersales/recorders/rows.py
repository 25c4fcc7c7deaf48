"""What the ledger keeps beside its events, and what it asks of a recorder about them."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, Protocol
from uuid import UUID

from eventsourcing.persistence import Notification, StoredEvent

from aftersales.partition import Partition

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def to_micros(at: datetime) -> int:
    """An aware datetime as integer microseconds since the epoch (exact, sortable)."""
    return (at - _EPOCH) // _MICROSECOND


class DeadlineRow(NamedTuple):
    order_id: str
    deadline: datetime
    rule: str
    case: int | None


class CommandRow(NamedTuple):
    command_id: str
    originator_id: UUID
    digest: str


class LedgerRecorder(Protocol):
    """What the ledger needs beside an ApplicationRecorder."""

    def due_orders(self, before: datetime, limit: int, since: datetime | None = None,
                   partition: Partition | None = None) -> list[tuple[UUID, str]]:
        """(originator id, order id) of orders with a deadline before `before` (and not
        before `since`; of the partition's orders only), earliest first."""

    def command_digest(self, command_id: str) -> str | None: ...

    def pending_deadlines(self) -> list[tuple[UUID, DeadlineRow]]: ...

    def repair_deadline(self, originator_id: UUID, row: DeadlineRow | None,
                        version: int) -> bool: ...

    def command_ids(self) -> set[str]: ...

    def known_digests(self, command_ids: Sequence[str]) -> dict[str, str]: ...

    def recorded_between(self, after: int, upto: int, partition: Partition | None = None
                         ) -> list[tuple[int, UUID]]:
        """(notification id, originator id) of the events recorded after position `after`
        up to `upto` (of the partition's orders only)."""

    def events_by_order(self, upto: int, after: tuple[UUID, int] | None, limit: int,
                        before: UUID | None = None) -> list[Notification]:
        """Up to `limit` events at positions up to `upto`, in the order of (originator id,
        version), after the event `after` names and of originators before `before` (a
        page of a replay order by order)."""

    def select_events_many(
        self, originator_ids: Sequence[UUID]
    ) -> dict[UUID, list[StoredEvent]]: ...


CHUNK = 500


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def sidecar_kwargs(
    deadlines: Mapping[UUID, DeadlineRow | None], commands: Sequence[CommandRow],
    positions: list[tuple[int, int]] | None = None,
) -> dict[str, Any]:
    """The keyword arguments `insert_events` passes down to `_insert_events`: the index
    rows and command ids to write in the events' transaction, and a list to which the
    recorder appends the first and last notification ids of the events once they are
    inserted (the transaction holds the write lock then: they are contiguous)."""
    return {"deadlines": deadlines, "commands": commands, "positions": positions}


class StaleRepair(Exception):
    """An event was recorded since the state a repair was computed from (rolled back)."""
