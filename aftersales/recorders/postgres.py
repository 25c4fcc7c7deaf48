"""The ledger's recorder for PostgreSQL: eventsourcing's (psycopg 3, pooled), plus the
deadline index and command ids written in the same transaction as the events."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification, PersistenceError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

from aftersales.partition import Partition
from aftersales.recorders.rows import CommandRow, DeadlineRow
from aftersales.retry import retrying

DDL_ATTEMPTS = 5
#: An order's shard (aftersales/partition.py): the low four bits of its id.
SHARD = "(get_byte(uuid_send(originator_id), 15) & 15)"
EARLIEST = datetime(1, 1, 1, tzinfo=UTC)


#: Above every order id (uuid5 ids carry version bits, so none is all ones).
LAST_ID = UUID(int=2**128 - 1)


class PostgresLedgerRecorder(PostgresApplicationRecorder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        schema = Identifier(self.datastore.schema)
        self._q = {
            "upsert": SQL(
                "INSERT INTO {s}.ledger_deadlines VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT (originator_id) DO UPDATE SET order_id = excluded.order_id, "
                "due = excluded.due, rule = excluded.rule, case_no = excluded.case_no"
            ).format(s=schema),
            "delete": SQL("DELETE FROM {s}.ledger_deadlines WHERE originator_id = %s")
            .format(s=schema),
            "command": SQL("INSERT INTO {s}.ledger_commands VALUES (%s, %s, %s)")
            .format(s=schema),
            "due": SQL("SELECT originator_id, order_id FROM {s}.ledger_deadlines "
                       "WHERE due < %s AND due >= %s ORDER BY due LIMIT %s").format(s=schema),
            # The shard: the id's low four bits (see aftersales/partition.py).
            "due_mine": SQL("SELECT originator_id, order_id FROM {s}.ledger_deadlines "
                            "WHERE due < %s AND due >= %s "
                            "AND " + SHARD + " %% %s = %s "
                            "ORDER BY due LIMIT %s").format(s=schema),
            "digest": SQL("SELECT digest FROM {s}.ledger_commands WHERE command_id = %s")
            .format(s=schema),
            "digests": SQL("SELECT command_id, digest FROM {s}.ledger_commands "
                           "WHERE command_id = ANY(%s)").format(s=schema),
            "by_order": SQL(
                "SELECT notification_id, originator_id, originator_version, topic, state "
                "FROM {s}.{t} WHERE notification_id <= %s AND "
                "(originator_id, originator_version) > (%s, %s) AND originator_id < %s "
                "ORDER BY originator_id, originator_version LIMIT %s").format(
                s=schema, t=Identifier(self.events_table_name)),
            "between": SQL("SELECT notification_id, originator_id FROM {s}.{t} "
                           "WHERE notification_id > %s AND notification_id <= %s").format(
                s=schema, t=Identifier(self.events_table_name)),
            "between_mine": SQL("SELECT notification_id, originator_id FROM {s}.{t} "
                                "WHERE notification_id > %s AND notification_id <= %s "
                                "AND " + SHARD + " %% %s = %s").format(
                s=schema, t=Identifier(self.events_table_name)),
            "many": SQL("SELECT originator_id, originator_version, topic, state FROM {s}.{t} "
                        "WHERE originator_id = ANY(%s) "
                        "ORDER BY originator_id, originator_version").format(
                s=schema, t=Identifier(self.events_table_name)),
            "commands": SQL("SELECT command_id FROM {s}.ledger_commands").format(s=schema),
            "pending": SQL("SELECT originator_id, order_id, due, rule, case_no "
                           "FROM {s}.ledger_deadlines ORDER BY due").format(s=schema),
            "version": SQL("SELECT MAX(originator_version) AS v FROM {s}.{t} "
                           "WHERE originator_id = %s").format(
                s=schema, t=Identifier(self.events_table_name)),
        }
        self.sql_create_statements += [
            SQL("CREATE TABLE IF NOT EXISTS {s}.ledger_deadlines ("
                "originator_id uuid PRIMARY KEY, order_id text NOT NULL, "
                "due timestamptz NOT NULL, rule text NOT NULL, case_no integer)")
            .format(s=schema),
            SQL("CREATE INDEX IF NOT EXISTS ledger_deadlines_due ON {s}.ledger_deadlines "
                "(due)").format(s=schema),
            SQL("CREATE TABLE IF NOT EXISTS {s}.ledger_commands ("
                "command_id text PRIMARY KEY, originator_id uuid NOT NULL, "
                "digest text NOT NULL)").format(s=schema),
        ]

    def create_table(self) -> None:
        """Create what is missing; processes starting together may race on PostgreSQL's
        catalog (`tuple concurrently updated`, duplicate types): the loser tries again and
        then finds everything there."""
        retrying(super().create_table, (PersistenceError,), DDL_ATTEMPTS)

    @contextmanager
    def listen(self) -> Iterator[Callable[[float], None]]:
        """A wait(timeout) that returns when new events are recorded (the library's NOTIFY
        on every insert) or after `timeout` seconds."""
        with self.datastore.get_connection() as conn:
            conn.execute(SQL("LISTEN {}").format(Identifier(self.channel_name)))

            def wait(timeout: float) -> None:
                for _ in conn.notifies(timeout=timeout, stop_after=1):
                    pass

            try:
                yield wait
            finally:
                conn.execute(SQL("UNLISTEN {}").format(Identifier(self.channel_name)))

    def create_schema(self) -> None:
        def create() -> None:
            with self.datastore.transaction(commit=True) as curs:
                curs.execute(SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                    Identifier(self.datastore.schema)))

        retrying(create, (PersistenceError,), DDL_ATTEMPTS)

    def _insert_events(self, curs: Cursor[DictRow], stored_events: Sequence[Any],
                       **kwargs: Any) -> None:
        super()._insert_events(curs, stored_events, **kwargs)
        for oid, row in sorted(kwargs.get("deadlines", {}).items()):  # in key order
            self._put_deadline(curs, oid, row)
        commands: Sequence[CommandRow] = kwargs.get("commands", ())
        if commands:
            curs.executemany(self._q["command"], sorted(
                (x.command_id, x.originator_id, x.digest) for x in commands))

    def _put_deadline(self, curs: Cursor[DictRow], oid: UUID, row: DeadlineRow | None) -> None:
        if row is None:
            curs.execute(self._q["delete"], (oid,), prepare=True)
        else:
            curs.execute(self._q["upsert"], (oid, row.order_id, row.deadline, row.rule,
                                             row.case), prepare=True)

    def repair_deadline(self, originator_id: UUID, row: DeadlineRow | None,
                        version: int) -> bool:
        """Set an order's index row from its state at `version`, only if no event was
        recorded since; the events table lock serialises this with every insert."""
        with self.datastore.transaction(commit=True) as curs:
            self._lock_table(curs)
            curs.execute(self._q["version"], (originator_id,))
            found = curs.fetchone()
            if ((found["v"] if found else None) or 0) != version:
                return False
            self._put_deadline(curs, originator_id, row)
            return True

    def due_orders(self, before: datetime, limit: int, since: datetime | None = None,
                   partition: Partition | None = None) -> list[tuple[UUID, str]]:
        with self.datastore.transaction(commit=False) as curs:
            if partition is None:
                curs.execute(self._q["due"], (before, since or EARLIEST, limit), prepare=True)
            else:
                curs.execute(self._q["due_mine"], (before, since or EARLIEST, partition.count,
                                                   partition.index, limit), prepare=True)
            return [(r["originator_id"], r["order_id"]) for r in curs.fetchall()]

    def command_digest(self, command_id: str) -> str | None:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self._q["digest"], (command_id,), prepare=True)
            found = curs.fetchone()
            return None if found is None else str(found["digest"])

    def known_digests(self, command_ids: Sequence[str]) -> dict[str, str]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self._q["digests"], (list(command_ids),), prepare=True)
            return {str(r["command_id"]): str(r["digest"]) for r in curs.fetchall()}

    def recorded_between(self, after: int, upto: int, partition: Partition | None = None
                         ) -> list[tuple[int, UUID]]:
        with self.datastore.transaction(commit=False) as curs:
            if partition is None:
                curs.execute(self._q["between"], (after, upto), prepare=True)
            else:
                curs.execute(self._q["between_mine"], (after, upto, partition.count,
                                                       partition.index), prepare=True)
            return [(r["notification_id"], r["originator_id"]) for r in curs.fetchall()]

    def events_by_order(self, upto: int, after: tuple[UUID, int] | None, limit: int,
                        before: UUID | None = None) -> list[Notification]:
        oid, version = (UUID(int=0), 0) if after is None else after
        end = LAST_ID if before is None else before
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self._q["by_order"], (upto, oid, version, end, limit), prepare=True)
            return [Notification(id=r["notification_id"], originator_id=r["originator_id"],
                                 originator_version=r["originator_version"],
                                 topic=r["topic"], state=bytes(r["state"]))
                    for r in curs.fetchall()]

    def select_events_many(
        self, originator_ids: Sequence[UUID]
    ) -> dict[UUID, list[StoredEvent]]:
        found: dict[UUID, list[StoredEvent]] = {}
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self._q["many"], (list(originator_ids),), prepare=True)
            for r in curs.fetchall():
                found.setdefault(r["originator_id"], []).append(StoredEvent(
                    originator_id=r["originator_id"],
                    originator_version=r["originator_version"], topic=r["topic"],
                    state=bytes(r["state"])))
        return found

    def command_ids(self) -> set[str]:
        """Every applied command id (for audits and tests)."""
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self._q["commands"])
            return {str(r["command_id"]) for r in curs.fetchall()}

    def pending_deadlines(self) -> list[tuple[UUID, DeadlineRow]]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self._q["pending"])
            return [(r["originator_id"],
                     DeadlineRow(r["order_id"], r["due"], r["rule"], r["case_no"]))
                    for r in curs.fetchall()]
