"""The ledger's SQLite connections: eventsourcing's pool, with writing transactions that
take the write lock first, the connection settings (`PRAGMAS`) and a first use that waits
out another process switching a new file to WAL."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from eventsourcing.persistence import InterfaceError, OperationalError
from eventsourcing.sqlite import (
    SQLiteConnection,
    SQLiteConnectionPool,
    SQLiteCursor,
    SQLiteTransaction,
)

from aftersales.storage.config import cannot_open
from aftersales.storage.retry import retrying

FIRST_USE_ATTEMPTS = 20

#: Set on every connection.  Events and command ids are keyed by random ids, so a batch's
#: inserts land all over their indexes: group commit inserts them in key order (each index
#: is walked once, so an 8 MiB page cache serves; SQLite's default is 2 MiB), and
#: checkpointing every 20,000 WAL pages (default 1,000) copies a page that many
#: transactions rewrote back once.  Measured on 460,000 inserts in batches: 32 to 8.5 µs
#: per row for the commits.  Durability is unchanged (`synchronous` stays FULL).
PRAGMAS = ("PRAGMA cache_size=-8192", "PRAGMA wal_autocheckpoint=20000")


class _Transaction(SQLiteTransaction):
    """The library's transaction, but a writing one begins IMMEDIATE: it takes the write
    lock first (waiting for it as long as the busy timeout allows), so what it reads before
    it writes (the log's last link, an order's head) cannot change under it."""

    def __enter__(self) -> SQLiteCursor:
        cursor = self.connection.cursor()
        try:
            cursor.execute("BEGIN IMMEDIATE" if self.commit else "BEGIN")
        except sqlite3.OperationalError as e:
            cursor.__exit__()
            raise OperationalError(e) from e
        return cursor


class _Connection(SQLiteConnection):
    @contextmanager
    def transaction(self, *, commit: bool) -> Iterator[SQLiteCursor]:
        with _Transaction(self, commit=commit) as curs, curs:
            yield curs


class TunedConnectionPool(SQLiteConnectionPool):
    #: Seconds a connection waits for another process's lock when no lock timeout is set.
    DEFAULT_BUSY_TIMEOUT = 5.0

    def _create_connection(self) -> SQLiteConnection:
        try:
            # Connections made at once to a new file race to switch it to WAL, and SQLite
            # answers the loser `database is locked` at once: wait a little and try again
            # (here: the pool does not give its writer lock back when this fails).
            plain = retrying(super()._create_connection, (sqlite3.OperationalError,),
                             FIRST_USE_ATTEMPTS, pause=0.01)
        except (sqlite3.OperationalError, InterfaceError) as e:
            cause = e if isinstance(e, sqlite3.Error) else e.__cause__
            if isinstance(cause, sqlite3.Error) and "unable to open" in str(cause):
                said = sqlite3.OperationalError(cannot_open(self.db_name))  # which, and why
                raise OperationalError(said) from said
            if isinstance(e, sqlite3.OperationalError):
                raise OperationalError(e) from e
            raise
        try:
            raw = plain._sqlite_conn  # rewrapped, with our transactions
            for pragma in PRAGMAS:
                raw.execute(pragma)
            busy = self.lock_timeout or self.DEFAULT_BUSY_TIMEOUT
            raw.execute(f"PRAGMA busy_timeout={max(1, int(busy * 1000))}")
        except sqlite3.OperationalError as e:
            raise OperationalError(e) from e
        return _Connection(raw, max_age=self.max_age)
