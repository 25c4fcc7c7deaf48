"""The ledger's recorder for SQLite (eventsourcing's, plus the deadline index and command
ids in the same transaction)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification, OperationalError, StoredEvent
from eventsourcing.sqlite import (
    SQLiteApplicationRecorder,
    SQLiteConnection,
    SQLiteConnectionPool,
    SQLiteCursor,
    SQLiteFactory,
)
from eventsourcing.utils import Environment, EnvType

from aftersales.partition import Partition
from aftersales.recorders.rows import (
    CommandRow,
    DeadlineRow,
    StaleRepair,
    chunks,
    to_micros,
)
from aftersales.retry import retrying

FIRST_USE_ATTEMPTS = 20
#: An order's shard (aftersales/partition.py): the last hex digit of its id.
SHARD = "(instr('0123456789abcdef', substr(originator_id, 32, 1)) - 1)"

#: Set on every connection.  Events and command ids are keyed by random ids, so a batch's
#: inserts land all over their indexes: group commit inserts them in key order (each index
#: is walked once, so an 8 MiB page cache serves; SQLite's default is 2 MiB), and
#: checkpointing every 20,000 WAL pages (default 1,000) copies a page that many
#: transactions rewrote back once.  Measured on 460,000 inserts in batches: 32 to 8.5 µs
#: per row for the commits.  Durability is unchanged (`synchronous` stays FULL).
PRAGMAS = ("PRAGMA cache_size=-8192", "PRAGMA wal_autocheckpoint=20000")


class TunedConnectionPool(SQLiteConnectionPool):
    def _create_connection(self) -> SQLiteConnection:
        try:
            # Connections made at once to a new file race to switch it to WAL, and SQLite
            # answers the loser `database is locked` at once: wait a little and try again
            # (here: the pool does not give its writer lock back when this fails).
            connection = retrying(super()._create_connection, (sqlite3.OperationalError,),
                                  FIRST_USE_ATTEMPTS, pause=0.01)
            cursor = connection.cursor()
            for pragma in PRAGMAS:
                cursor.execute(pragma)
        except sqlite3.OperationalError as e:
            raise OperationalError(e) from e
        return connection


class LedgerSQLiteFactory(SQLiteFactory):
    """eventsourcing's SQLite factory, with connections set up as `PRAGMAS` says."""

    def __init__(self, env: Environment | EnvType | None):
        super().__init__(env)
        plain = self.datastore.pool  # no connection is made before first use
        self.datastore.pool = TunedConnectionPool(db_name=plain.db_name,
                                                  lock_timeout=plain.lock_timeout)


class SQLiteLedgerRecorder(SQLiteApplicationRecorder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._last_id: tuple[str, UUID | str] = ("", "")

    def convert_originator_id(self, originator_id: str) -> UUID | str:
        """The library converts the id of every row it reads; an order's rows share one,
        so the last conversion is kept (an order of 200 events read as of a time: 15% of
        the time went to building the same UUID 200 times).  One tuple, swapped whole, so
        threads sharing the recorder never see a half-updated pair."""
        last = self._last_id
        if last[0] == originator_id:
            return last[1]
        converted = super().convert_originator_id(originator_id)
        self._last_id = (originator_id, converted)
        return converted

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
        # One executemany (rowids, the notification ids, follow the insertion order); the
        # ids themselves are not needed by the ledger.
        c.executemany(self.insert_events_statement, [
            (s.originator_id.hex if isinstance(s.originator_id, UUID) else s.originator_id,
             s.originator_version, s.topic, s.state) for s in stored_events])
        ids = None
        positions: list[tuple[int, int]] | None = kwargs.get("positions")
        if positions is not None and stored_events:
            c.execute(f"SELECT MAX(rowid) FROM {self.events_table_name}")
            last = c.fetchone()[0]
            positions.append((last - len(stored_events) + 1, last))
        self._put_deadlines(c, kwargs.get("deadlines", {}))
        commands: Sequence[CommandRow] = kwargs.get("commands", ())
        if commands:
            c.executemany(
                "INSERT INTO ledger_commands VALUES (?,?,?)",
                sorted((x.command_id, x.originator_id.hex, x.digest) for x in commands),
            )
        return ids

    @staticmethod
    def _put_deadlines(c: SQLiteCursor, rows: Mapping[UUID, DeadlineRow | None]) -> None:
        """Set the orders' index rows (None: the order has no pending deadline), in key
        order."""
        gone = sorted((oid.hex,) for oid, row in rows.items() if row is None)
        if gone:
            c.executemany("DELETE FROM ledger_deadlines WHERE originator_id=?", gone)
        put = sorted((oid.hex, row.order_id, to_micros(row.deadline), row.deadline.isoformat(),
                      row.rule, row.case) for oid, row in rows.items() if row is not None)
        if put:
            c.executemany(
                "INSERT INTO ledger_deadlines VALUES (?,?,?,?,?,?) ON CONFLICT (originator_id) "
                "DO UPDATE SET order_id=excluded.order_id, due_us=excluded.due_us, "
                "deadline=excluded.deadline, rule=excluded.rule, case_no=excluded.case_no",
                put)

    def repair_deadline(self, originator_id: UUID, row: DeadlineRow | None,
                        version: int) -> bool:
        """Set an order's index row from its state at `version`, only if no event was
        recorded since (else the writer of that event has set the row); True if set.
        The write comes first, so the transaction holds the write lock when it looks."""
        with contextlib.suppress(StaleRepair), self.datastore.transaction(commit=True) as c:
            self._put_deadlines(c, {originator_id: row})
            c.execute(f"SELECT MAX(originator_version) FROM {self.events_table_name} "
                      "WHERE originator_id=?", (originator_id.hex,))
            if (c.fetchone()[0] or 0) != version:
                raise StaleRepair
            return True
        return False

    def due_orders(self, before: datetime, limit: int, since: datetime | None = None,
                   partition: Partition | None = None) -> list[tuple[UUID, str]]:
        params: list[object] = [to_micros(before),
                                -(2**62) if since is None else to_micros(since)]
        mine = ""
        if partition is not None:
            mine = f"AND {SHARD} % ? = ? "
            params += [partition.count, partition.index]
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                "SELECT originator_id, order_id FROM ledger_deadlines "
                f"WHERE due_us < ? AND due_us >= ? {mine}ORDER BY due_us LIMIT ?",
                [*params, limit],
            )
            return [(UUID(r[0]), r[1]) for r in c.fetchall()]

    def command_digest(self, command_id: str) -> str | None:
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT digest FROM ledger_commands WHERE command_id=?", (command_id,))
            row = c.fetchone()
            return None if row is None else str(row[0])

    def known_digests(self, command_ids: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        with self.datastore.transaction(commit=False) as c:
            for part in chunks(command_ids):
                c.execute("SELECT command_id, digest FROM ledger_commands WHERE command_id "
                          f"IN ({','.join('?' * len(part))})", list(part))
                found.update((str(r[0]), str(r[1])) for r in c.fetchall())
        return found

    def recorded_between(self, after: int, upto: int, partition: Partition | None = None
                         ) -> list[tuple[int, UUID]]:
        params: list[object] = [after, upto]
        mine = ""
        if partition is not None:
            mine = f"AND {SHARD} % ? = ?"
            params += [partition.count, partition.index]
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT rowid, originator_id FROM {self.events_table_name} "
                      f"WHERE rowid > ? AND rowid <= ? {mine}", params)
            return [(r[0], UUID(r[1])) for r in c.fetchall()]

    def events_by_order(self, upto: int, after: tuple[UUID, int] | None, limit: int,
                        before: UUID | None = None) -> list[Notification]:
        oid, version = ("", 0) if after is None else (after[0].hex, after[1])
        end = "g" if before is None else before.hex  # "g" sorts after every hex id
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT rowid, originator_id, originator_version, topic, state "
                      f"FROM {self.events_table_name} WHERE rowid <= ? AND "
                      "(originator_id, originator_version) > (?, ?) AND originator_id < ? "
                      "ORDER BY originator_id, originator_version LIMIT ?",
                      (upto, oid, version, end, limit))
            ids: dict[str, UUID] = {}
            return [Notification(id=r[0], originator_id=ids.get(r[1]) or ids.setdefault(
                r[1], UUID(r[1])), originator_version=r[2], topic=r[3], state=r[4])
                for r in c.fetchall()]

    def select_events_many(
        self, originator_ids: Sequence[UUID]
    ) -> dict[UUID, list[StoredEvent]]:
        found: dict[UUID, list[StoredEvent]] = {}
        with self.datastore.transaction(commit=False) as c:
            for part in chunks(originator_ids):
                ids = {x.hex: x for x in part}
                c.execute(f"SELECT originator_id, originator_version, topic, state FROM "
                          f"{self.events_table_name} WHERE originator_id IN "
                          f"({','.join('?' * len(part))}) "
                          "ORDER BY originator_id, originator_version", list(ids))
                current = ""
                events: list[StoredEvent] = []
                for hex_id, version, topic, state in c.fetchall():  # grouped by order
                    if hex_id != current:
                        current, events = hex_id, []
                        oid = ids[hex_id]
                        found[oid] = events
                    events.append(StoredEvent(oid, version, topic, state))
        return found

    def command_ids(self) -> set[str]:
        """Every applied command id (for audits and tests)."""
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT command_id FROM ledger_commands")
            return {str(r[0]) for r in c.fetchall()}

    def pending_deadlines(self) -> list[tuple[UUID, DeadlineRow]]:
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT originator_id, order_id, deadline, rule, case_no "
                      "FROM ledger_deadlines ORDER BY due_us")
            return [
                (UUID(r[0]), DeadlineRow(r[1], datetime.fromisoformat(r[2]), r[3], r[4]))
                for r in c.fetchall()
            ]
