"""Where the ledger keeps its events, chosen by one URL.

    sqlite:///aftersales.db      a SQLite file (the default, relative to the working dir)
    sqlite:////abs/path.db       a SQLite file by absolute path
    memory:                      in-process only (fast tests)

Besides eventsourcing's `stored_events` table, the ledger keeps two small tables, written
by the recorder in the same transaction as the events they belong to:

    ledger_deadlines   one row per order with a pending deadline (the sweep's index)
    ledger_commands    one row per applied command id, with the digest of its content
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.persistence import (
    ApplicationRecorder,
    InfrastructureFactory,
    IntegrityError,
    StoredEvent,
)
from eventsourcing.popo import POPOApplicationRecorder, POPOFactory
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteFactory

from aftersales.domain.errors import AftersalesError

DEFAULT_URL = "sqlite:///aftersales.db"
ENV_VAR = "AFTERSALES_DB"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class StoreConfigError(AftersalesError):
    """The store URL cannot be used."""


def resolve_url(url: str | None) -> str:
    """The URL given, else $AFTERSALES_DB, else the default SQLite file."""
    return url or os.environ.get(ENV_VAR) or DEFAULT_URL


def eventsourcing_env(url: str) -> dict[str, str]:
    """The eventsourcing environment that selects the store a URL names."""
    if url in ("memory:", "memory://"):
        return {"PERSISTENCE_MODULE": "eventsourcing.popo"}
    if url.startswith("sqlite://"):
        path = url.removeprefix("sqlite://")
        if path in ("", "/", "/:memory:"):
            raise StoreConfigError("use 'memory:' for an in-process store")
        if not path.startswith("/"):
            raise StoreConfigError(f"bad SQLite URL {url!r}: expected sqlite:///PATH")
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": path[1:],
            "SQLITE_LOCK_TIMEOUT": "30",
        }
    if url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        raise StoreConfigError("the PostgreSQL store is not available yet (issue 4)")
    raise StoreConfigError(f"unknown store URL {url!r}: use sqlite:///PATH or memory:")


def to_micros(at: datetime) -> int:
    """An aware datetime as integer microseconds since the epoch (exact, sortable)."""
    return (at - _EPOCH) // _MICROSECOND


@dataclass(frozen=True)
class DeadlineRow:
    order_id: str
    deadline: datetime
    rule: str
    case: int | None


@dataclass(frozen=True)
class CommandRow:
    command_id: str
    originator_id: UUID
    digest: str


class LedgerRecorder(Protocol):
    """What the ledger needs beside an ApplicationRecorder."""

    def due_orders(self, before: datetime, limit: int) -> list[UUID]: ...

    def command_digest(self, command_id: str) -> str | None: ...

    def pending_deadlines(self) -> list[tuple[UUID, DeadlineRow]]: ...

    def repair_deadline(self, originator_id: UUID, row: DeadlineRow | None,
                        version: int) -> bool: ...


def sidecar_kwargs(
    deadlines: Mapping[UUID, DeadlineRow | None], commands: Sequence[CommandRow]
) -> dict[str, Any]:
    """The keyword arguments `Application.save` passes down to `_insert_events`."""
    return {"deadlines": deadlines, "commands": commands}


class SQLiteLedgerRecorder(SQLiteApplicationRecorder):
    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            "CREATE TABLE IF NOT EXISTS ledger_deadlines ("
            "originator_id TEXT PRIMARY KEY, order_id TEXT NOT NULL, "
            "due_us INTEGER NOT NULL, deadline TEXT NOT NULL, rule TEXT NOT NULL, "
            "case_no INTEGER)",
            "CREATE INDEX IF NOT EXISTS ledger_deadlines_due ON ledger_deadlines (due_us)",
            "CREATE TABLE IF NOT EXISTS ledger_commands ("
            "command_id TEXT PRIMARY KEY, originator_id TEXT NOT NULL, digest TEXT NOT NULL)",
        ]

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        ids = super()._insert_events(c, stored_events, **kwargs)
        for oid, row in kwargs.get("deadlines", {}).items():
            self._put_deadline(c, oid, row)
        commands: Sequence[CommandRow] = kwargs.get("commands", ())
        if commands:
            c.executemany(
                "INSERT INTO ledger_commands VALUES (?,?,?)",
                [(x.command_id, x.originator_id.hex, x.digest) for x in commands],
            )
        return ids

    @staticmethod
    def _put_deadline(c: SQLiteCursor, oid: UUID, row: DeadlineRow | None) -> None:
        if row is None:
            c.execute("DELETE FROM ledger_deadlines WHERE originator_id=?", (oid.hex,))
            return
        c.execute(
            "INSERT INTO ledger_deadlines VALUES (?,?,?,?,?,?) ON CONFLICT (originator_id) "
            "DO UPDATE SET order_id=excluded.order_id, due_us=excluded.due_us, "
            "deadline=excluded.deadline, rule=excluded.rule, case_no=excluded.case_no",
            (oid.hex, row.order_id, to_micros(row.deadline), row.deadline.isoformat(),
             row.rule, row.case),
        )

    def repair_deadline(self, originator_id: UUID, row: DeadlineRow | None,
                        version: int) -> bool:
        """Set an order's index row from its state at `version`, only if no event was
        recorded since (else the writer of that event has set the row); True if set."""
        with self.datastore.transaction(commit=True) as c:
            c.execute(f"SELECT MAX(originator_version) FROM {self.events_table_name} "
                      "WHERE originator_id=?", (originator_id.hex,))
            latest = c.fetchone()[0] or 0
            if latest != version:
                return False
            self._put_deadline(c, originator_id, row)
            return True

    def due_orders(self, before: datetime, limit: int) -> list[UUID]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                "SELECT originator_id FROM ledger_deadlines WHERE due_us < ? "
                "ORDER BY due_us LIMIT ?",
                (to_micros(before), limit),
            )
            return [UUID(r[0]) for r in c.fetchall()]

    def command_digest(self, command_id: str) -> str | None:
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT digest FROM ledger_commands WHERE command_id=?", (command_id,))
            row = c.fetchone()
            return None if row is None else str(row[0])

    def pending_deadlines(self) -> list[tuple[UUID, DeadlineRow]]:
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT originator_id, order_id, deadline, rule, case_no "
                      "FROM ledger_deadlines ORDER BY due_us")
            return [
                (UUID(r[0]), DeadlineRow(r[1], datetime.fromisoformat(r[2]), r[3], r[4]))
                for r in c.fetchall()
            ]


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

    def due_orders(self, before: datetime, limit: int) -> list[UUID]:
        with self._database_lock:
            due = sorted((r.deadline, oid) for oid, r in self._deadlines.items()
                         if r.deadline < before)
            return [oid for _, oid in due[:limit]]

    def command_digest(self, command_id: str) -> str | None:
        with self._database_lock:
            return self._commands.get(command_id)

    def pending_deadlines(self) -> list[tuple[UUID, DeadlineRow]]:
        with self._database_lock:
            return sorted(self._deadlines.items(), key=lambda x: x[1].deadline)


def construct_recorder(factory: InfrastructureFactory[Any]) -> ApplicationRecorder:
    """The ledger's recorder for the store the factory was configured for."""
    if isinstance(factory, SQLiteFactory):
        recorder = SQLiteLedgerRecorder(datastore=factory.datastore)
        recorder.create_table()
        return recorder
    if isinstance(factory, POPOFactory):
        return MemoryLedgerRecorder()
    raise StoreConfigError(f"no ledger recorder for {type(factory).__name__}")
