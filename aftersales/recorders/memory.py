"""The ledger's in-process recorder (fast tests): eventsourcing's POPO recorder, plus the
deadline index and command ids under the same lock."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError, Notification, StoredEvent
from eventsourcing.popo import POPOApplicationRecorder

from aftersales.partition import Partition
from aftersales.recorders.rows import CommandRow, DeadlineRow


class MemoryLedgerRecorder(POPOApplicationRecorder):
    def __init__(self) -> None:
        super().__init__()
        self._deadlines: dict[UUID, DeadlineRow] = {}
        self._commands: dict[str, str] = {}

    def _insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        with self._database_lock:
            commands: Sequence[CommandRow] = kwargs.get("commands", ())
            for x in commands:
                if x.command_id in self._commands:
                    raise IntegrityError(f"command id {x.command_id} already recorded")
            ids = super()._insert_events(stored_events, **kwargs)
            positions: list[tuple[int, int]] | None = kwargs.get("positions")
            if positions is not None and ids:
                positions.append((min(ids), max(ids)))
            for x in commands:
                self._commands[x.command_id] = x.digest
            for oid, row in kwargs.get("deadlines", {}).items():
                self._put_deadline(oid, row)
            return ids

    def _put_deadline(self, originator_id: UUID, row: DeadlineRow | None) -> None:
        if row is None:
            self._deadlines.pop(originator_id, None)
        else:
            self._deadlines[originator_id] = row

    def repair_deadline(self, originator_id: UUID, row: DeadlineRow | None,
                        version: int) -> bool:
        with self._database_lock:
            if len(self._stored_events_index[str(originator_id)]) != version:
                return False
            self._put_deadline(originator_id, row)
            return True

    def due_orders(self, before: datetime, limit: int, since: datetime | None = None,
                   partition: Partition | None = None) -> list[tuple[UUID, str]]:
        with self._database_lock:
            due = sorted((r.deadline, oid, r.order_id) for oid, r in self._deadlines.items()
                         if r.deadline < before and (since is None or r.deadline >= since)
                         and (partition is None or partition.owns_id(oid)))
            return [(oid, order_id) for _, oid, order_id in due[:limit]]

    def command_digest(self, command_id: str) -> str | None:
        with self._database_lock:
            return self._commands.get(command_id)

    def known_digests(self, command_ids: Sequence[str]) -> dict[str, str]:
        with self._database_lock:
            return {x: self._commands[x] for x in command_ids if x in self._commands}

    def recorded_between(self, after: int, upto: int, partition: Partition | None = None
                         ) -> list[tuple[int, UUID]]:
        found = []
        for n in self.select_notifications(after, upto - after, stop=upto,
                                           inclusive_of_start=False):
            oid = n.originator_id
            assert isinstance(oid, UUID)
            if partition is None or partition.owns_id(oid):
                found.append((n.id, oid))
        return found

    def events_by_order(self, upto: int, after: tuple[UUID, int] | None, limit: int,
                        before: UUID | None = None) -> list[Notification]:
        found = sorted((n for n in self.select_notifications(1, upto, stop=upto)
                        if before is None or str(n.originator_id) < str(before)),
                       key=lambda n: (str(n.originator_id), n.originator_version))
        if after is not None:
            key = (str(after[0]), after[1])
            found = [n for n in found if (str(n.originator_id), n.originator_version) > key]
        return found[:limit]

    def select_events_many(
        self, originator_ids: Sequence[UUID]
    ) -> dict[UUID, list[StoredEvent]]:
        found = {x: list(self.select_events(x)) for x in originator_ids}
        return {x: events for x, events in found.items() if events}

    def command_ids(self) -> set[str]:
        with self._database_lock:
            return set(self._commands)

    def pending_deadlines(self) -> list[tuple[UUID, DeadlineRow]]:
        with self._database_lock:
            return sorted(self._deadlines.items(), key=lambda x: x[1].deadline)
