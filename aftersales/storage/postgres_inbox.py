"""The webhook's inbox on PostgreSQL (`aftersales.storage.inbox` describes the table and
its order): `ledger_inbox` in the ledger's schema, and the applier's lock, a
session-level advisory lock on a connection of its own."""

from __future__ import annotations

import contextlib
import threading
from datetime import UTC, datetime
from typing import Any

import psycopg
from eventsourcing.persistence import OperationalError
from eventsourcing.postgres import PostgresDatastore
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier

from aftersales.storage.inbox import NO_STATS, TABLE, advisory_key, utc
from aftersales.storage.port import InboxRow, InboxStats, inbox_digest

POSTGRES_DDL = [
    "CREATE TABLE IF NOT EXISTS {s}.ledger_inbox (seq bigserial PRIMARY KEY, "
    "digest text NOT NULL UNIQUE, received_at timestamptz NOT NULL, body bytea NOT NULL, "
    "applied_at timestamptz)",
    "CREATE INDEX IF NOT EXISTS ledger_inbox_unapplied ON {s}.ledger_inbox (seq) "
    "WHERE applied_at IS NULL",
]


class PostgresInbox:
    """`ledger_inbox` in the ledger's schema, through the recorder's connection pool."""

    def __init__(self, datastore: PostgresDatastore) -> None:
        self.datastore = datastore
        schema = datastore.schema
        self.writer_key = advisory_key("inbox writer", schema)
        self.applier_key = advisory_key("inbox applier", schema)

        def q(text: str) -> Composed:
            return SQL(text).format(s=Identifier(schema))

        self.ddl = [q(x) for x in POSTGRES_DDL]
        self._q = {
            "seq": q("SELECT seq FROM {s}.ledger_inbox WHERE digest = %s"),
            "insert": q("INSERT INTO {s}.ledger_inbox (digest, received_at, body) "
                        "VALUES (%s, %s, %s) ON CONFLICT (digest) DO NOTHING RETURNING seq"),
            "unapplied": q("SELECT seq, digest, received_at, body FROM {s}.ledger_inbox "
                           "WHERE applied_at IS NULL AND seq > %s ORDER BY seq LIMIT %s"),
            "mark": q("UPDATE {s}.ledger_inbox SET applied_at = %s "
                      "WHERE applied_at IS NULL AND seq < %s"),
            # One statement: one snapshot.
            "stats": q("SELECT (SELECT count(*) FROM {s}.ledger_inbox) AS received, "
                       "(SELECT count(*) FROM {s}.ledger_inbox WHERE applied_at IS NULL) "
                       "AS backlog, f.seq, f.received_at FROM (SELECT 1) AS one "
                       "LEFT JOIN (SELECT seq, received_at FROM {s}.ledger_inbox "
                       "WHERE applied_at IS NULL ORDER BY seq LIMIT 1) AS f ON true"),
        }
        self._present = SQL("SELECT count(*) AS n FROM pg_class c JOIN pg_namespace s "
                            "ON s.oid = c.relnamespace WHERE s.nspname = %s "
                            "AND c.relname = %s AND c.relkind IN ('r', 'p')")

    def _has_table(self, curs: psycopg.Cursor[DictRow]) -> bool:
        curs.execute(self._present, (self.datastore.schema, TABLE))
        found = curs.fetchone()
        return found is not None and found["n"] > 0

    def add(self, body: bytes, received_at: datetime) -> tuple[int, bool]:
        found = inbox_digest(body)
        at = utc(received_at)
        with self.datastore.get_connection() as conn:
            row = conn.execute(self._q["seq"], (found,), prepare=True).fetchone()
            if row is not None:  # a retry: no lock taken
                return int(row["seq"]), False
            with conn.transaction(), conn.cursor() as curs:
                # The inbox's own lock (not the events table's): inserts commit one at a
                # time, so rows become visible in seq order.
                curs.execute("SELECT pg_advisory_xact_lock(%s)", (self.writer_key,),
                             prepare=True)
                curs.execute(self._q["insert"], (found, at, bytes(body)), prepare=True)
                row = curs.fetchone()
                if row is not None:
                    return int(row["seq"]), True
                curs.execute(self._q["seq"], (found,), prepare=True)
                row = curs.fetchone()
                assert row is not None
                return int(row["seq"]), False

    def unapplied(self, after: int, limit: int) -> list[InboxRow]:
        with self.datastore.transaction(commit=False) as curs:
            if not self._has_table(curs):
                return []
            curs.execute(self._q["unapplied"], (after, limit), prepare=True)
            return [InboxRow(int(r["seq"]), str(r["digest"]), r["received_at"].astimezone(UTC),
                             bytes(r["body"])) for r in curs.fetchall()]

    def mark_applied(self, before: int, at: datetime) -> int:
        stamp = utc(at)
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(self._q["mark"], (stamp, before), prepare=True)
            return int(curs.rowcount)

    def stats(self) -> InboxStats:
        with self.datastore.transaction(commit=False) as curs:
            if not self._has_table(curs):
                return NO_STATS
            curs.execute(self._q["stats"], prepare=True)
            r = curs.fetchone()
        assert r is not None
        received, backlog = int(r["received"]), int(r["backlog"])
        first = r["received_at"]
        return InboxStats(received, received - backlog, backlog,
                          None if first is None else first.astimezone(UTC),
                          None if r["seq"] is None else int(r["seq"]))

    def mark_in(self, curs: psycopg.Cursor[DictRow], before: int) -> None:
        """Mark the unapplied rows before `before` applied, in the caller's transaction
        (the one that records the last of their messages)."""
        curs.execute(self._q["mark"], (datetime.now(UTC), before), prepare=True)

    def applier_lock(self) -> PostgresApplierLock:
        return PostgresApplierLock(self.datastore, self.applier_key)


class PostgresApplierLock:
    """The applier's lock on a PostgreSQL store: a session advisory lock held by a
    connection of its own (autocommit, made as the pool's are: bounded waits, TCP
    keepalives).  When that connection is lost (killed, the server restarted, the
    process died) the lock is gone, and another process may take it: `held()` asks."""

    def __init__(self, datastore: PostgresDatastore, key: int) -> None:
        self.datastore = datastore
        self.key = key
        self._conn: psycopg.Connection[Any] | None = None
        self._held = False
        self._guard = threading.Lock()

    def _connect(self) -> psycopg.Connection[Any]:
        pool = self.datastore.pool
        # (psycopg_pool may also take them as functions that give them)
        found = pool.kwargs() if callable(pool.kwargs) else pool.kwargs
        conninfo = pool.conninfo() if callable(pool.conninfo) else pool.conninfo
        kwargs = {**(found or {}), "autocommit": True}
        try:
            return pool.connection_class.connect(conninfo, **kwargs)
        except psycopg.Error as e:
            raise OperationalError(str(e)) from e

    def _drop(self) -> None:
        conn, self._conn, self._held = self._conn, None, False
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def try_acquire(self) -> bool:
        with self._guard:
            if self._held and self._alive():
                return True
            if self._conn is None or self._conn.closed:
                self._drop()
                self._conn = self._connect()
            try:
                row = self._conn.execute("SELECT pg_try_advisory_lock(%s) AS got",
                                         (self.key,)).fetchone()
            except psycopg.Error as e:
                self._drop()
                raise OperationalError(str(e)) from e
            self._held = bool(row is not None and _first(row))
            return self._held

    def _alive(self) -> bool:
        """Whether the lock's connection still answers (a cheap query); if not, it is
        dropped, and the lock with it."""
        conn = self._conn
        if conn is None or conn.closed:
            self._drop()
            return False
        try:
            conn.execute("SELECT 1")
        except psycopg.Error:
            self._drop()
            return False
        return True

    def held(self) -> bool:
        with self._guard:
            return self._held and self._alive()

    def release(self) -> None:
        with self._guard:
            conn = self._conn
            if conn is not None and self._held and not conn.closed:
                with contextlib.suppress(psycopg.Error):
                    conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
            self._drop()  # (closing the session would let go of it too, a little later)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.release()


def _first(row: Any) -> Any:
    """A row's first value (a dict row or a tuple)."""
    return next(iter(row.values())) if isinstance(row, dict) else row[0]

