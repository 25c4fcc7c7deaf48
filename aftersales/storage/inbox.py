"""The webhook's inbox in the ledger's own store (SQLite and PostgreSQL; the memory store
keeps its own, `aftersales.storage.memory`): every push body received is committed to
`ledger_inbox` before the webhook answers; one applier (`ApplierLock`: one holder at a
time, across processes) takes the unapplied rows in `seq` order, applies them and marks
them applied.

    ledger_inbox   seq (the order received: ascending, never reused), digest (sha256 hex
                   of the body, unique), received_at (UTC), body (its exact bytes),
                   applied_at (NULL until applied); partial index ledger_inbox_unapplied
                   on (seq) WHERE applied_at IS NULL

Rows become visible in `seq` order: an applier that has read every unapplied row up to
seq N may mark "every row before N + 1" applied without passing over a row committed
late with a smaller seq.  SQLite gives this by its one writer; PostgreSQL by a lock of
the inbox's own (a transaction-level advisory lock) taken by each insert, never the
events table's lock: bodies keep being accepted while the applier writes events
(`aftersales.storage.postgres_inbox`: loaded only for a PostgreSQL store).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from eventsourcing.persistence import OperationalError
from eventsourcing.sqlite import SQLiteCursor, SQLiteDatastore

from aftersales.storage.port import InboxRow, InboxStats, inbox_digest

TABLE = "ledger_inbox"
INDEX = "ledger_inbox_unapplied"

SQLITE_DDL = [
    f"CREATE TABLE IF NOT EXISTS {TABLE} (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
    "digest TEXT NOT NULL UNIQUE, received_at TEXT NOT NULL, body BLOB NOT NULL, "
    "applied_at TEXT)",
    f"CREATE INDEX IF NOT EXISTS {INDEX} ON {TABLE} (seq) WHERE applied_at IS NULL",
]

NO_STATS = InboxStats(0, 0, 0, None, None)


def utc(at: datetime) -> datetime:
    """An aware datetime as UTC (a naive one is refused: its instant is unknown)."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"received_at must be timezone-aware, not {at!r}")
    return at.astimezone(UTC)


def _iso(at: datetime) -> str:
    """UTC, with microseconds always written (so that the text sorts as the time)."""
    return utc(at).isoformat(timespec="microseconds")


def advisory_key(*names: str) -> int:
    """A fixed signed bigint for PostgreSQL's advisory locks, from names."""
    found = hashlib.sha256("\x00".join(("aftersales", *names)).encode()).digest()
    return int.from_bytes(found[:8], "big", signed=True)


# --- SQLite --------------------------------------------------------------------------


class SQLiteInbox:
    """`ledger_inbox` in a SQLite file, through the recorder's connection pool (each
    connection is lent to one thread at a time; a writer first takes the pool's one writer
    slot, then SQLite's write lock: `BEGIN IMMEDIATE`, waiting as long as the busy timeout
    allows for another process's)."""

    def __init__(self, datastore: SQLiteDatastore) -> None:
        self.datastore = datastore

    @contextmanager
    def _writing(self) -> Iterator[SQLiteCursor]:
        """A write transaction.  The pool's writer slot is waited for as long as SQLite's
        busy timeout (the pool's own wait, 5 s, is shorter): a body waits for the
        applier's transaction as a write from another process would."""
        pool = self.datastore.pool
        wait = max(float(pool.pool_timeout), float(pool.lock_timeout or 0))
        conn = pool.get_connection(timeout=wait, is_writer=True)
        try:
            with conn.transaction(commit=True) as c:
                yield c
        finally:
            pool.put_connection(conn)

    @staticmethod
    def _present(c: SQLiteCursor) -> bool:
        c.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,))
        return c.fetchone() is not None

    def add(self, body: bytes, received_at: datetime) -> tuple[int, bool]:
        found = inbox_digest(body)
        at = _iso(received_at)
        with self.datastore.transaction(commit=False) as c:  # a retry: no write lock
            c.execute(f"SELECT seq FROM {TABLE} WHERE digest = ?", (found,))
            row = c.fetchone()
        if row is not None:
            return int(row[0]), False
        with self._writing() as c:
            c.execute(f"INSERT INTO {TABLE} (digest, received_at, body) VALUES (?, ?, ?) "
                      "ON CONFLICT (digest) DO NOTHING", (found, at, bytes(body)))
            if c.sqlite_cursor.rowcount == 1:
                return int(c.sqlite_cursor.lastrowid or 0), True
            c.execute(f"SELECT seq FROM {TABLE} WHERE digest = ?", (found,))
            return int(c.fetchone()[0]), False

    def unapplied(self, after: int, limit: int) -> list[InboxRow]:
        with self.datastore.transaction(commit=False) as c:
            if not self._present(c):
                return []
            c.execute(f"SELECT seq, digest, received_at, body FROM {TABLE} "
                      "WHERE applied_at IS NULL AND seq > ? ORDER BY seq LIMIT ?",
                      (after, limit))
            return [InboxRow(int(r[0]), str(r[1]), datetime.fromisoformat(r[2]),
                             bytes(r[3])) for r in c.fetchall()]

    def mark_applied(self, before: int, at: datetime) -> int:
        stamp = _iso(at)
        with self._writing() as c:
            c.execute(f"UPDATE {TABLE} SET applied_at = ? WHERE applied_at IS NULL "
                      "AND seq < ?", (stamp, before))
            return int(c.sqlite_cursor.rowcount)

    def stats(self) -> InboxStats:
        with self.datastore.transaction(commit=False) as c:  # one snapshot
            if not self._present(c):
                return NO_STATS
            c.execute(f"SELECT count(*), (SELECT count(*) FROM {TABLE} "
                      f"WHERE applied_at IS NULL) FROM {TABLE}")
            received, backlog = c.fetchone()
            c.execute(f"SELECT seq, received_at FROM {TABLE} WHERE applied_at IS NULL "
                      "ORDER BY seq LIMIT 1")
            first = c.fetchone()
        return InboxStats(int(received), int(received) - int(backlog), int(backlog),
                          None if first is None else datetime.fromisoformat(first[1]),
                          None if first is None else int(first[0]))

    @staticmethod
    def mark_in(c: SQLiteCursor, before: int) -> None:
        """Mark the unapplied rows before `before` applied, in the caller's transaction
        (the one that records the last of their messages)."""
        c.execute("UPDATE ledger_inbox SET applied_at = ? WHERE applied_at IS NULL AND "
                  "seq < ?", (_iso(datetime.now(UTC)), before))

    def applier_lock(self) -> SQLiteApplierLock:
        pool = self.datastore.pool
        return SQLiteApplierLock(pool.db_name, in_memory=pool.is_sqlite_memory_mode)


class _FileSlot:
    """A database file as this process locks it: one read-only descriptor, and which
    holder of this process has its flock (flock is per open file, so two holders of one
    process would both "have" it: the thread lock keeps them apart)."""

    def __init__(self, fd: int | None) -> None:
        self.fd = fd
        self.owner = threading.Lock()


#: Per file (device, inode).  The descriptors are never closed: closing any descriptor of
#: a file drops every POSIX lock this process holds on it, and SQLite's connections hold
#: theirs on the database file (a WAL reader's shared lock, which tells another process
#: not to checkpoint and delete the WAL under it).  One descriptor per file and process;
#: an open descriptor also keeps its inode from being reused for another file.
_SLOTS: dict[tuple[Any, ...], _FileSlot] = {}
_SPARE: list[int] = []  # opened in a race with another thread: kept open, for the same reason
_SLOTS_GUARD = threading.Lock()


def _slot_of(path: str, in_memory: bool) -> _FileSlot:
    with _SLOTS_GUARD:
        if in_memory:
            return _SLOTS.setdefault(("memory", path), _FileSlot(None))
        st = os.stat(path)
        key: tuple[Any, ...] = (st.st_dev, st.st_ino)
        if key in _SLOTS:
            return _SLOTS[key]
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        st = os.fstat(fd)  # (the file may have been replaced since the stat)
        key = (st.st_dev, st.st_ino)
        if key in _SLOTS:
            _SPARE.append(fd)
            return _SLOTS[key]
        _SLOTS[key] = slot = _FileSlot(fd)
        return slot


class SQLiteApplierLock:
    """The applier's lock on a SQLite store: `flock(LOCK_EX | LOCK_NB)` on the database
    file, opened read-only.  On Linux a BSD flock and SQLite's POSIX (fcntl) locks are
    independent (not so on NFS, where flock is emulated with fcntl locks; SQLite's WAL
    does not work there either).  A process that dies lets go of it."""

    def __init__(self, path: str, *, in_memory: bool = False) -> None:
        self.path = path
        self.in_memory = in_memory
        self._slot: _FileSlot | None = None
        self._guard = threading.Lock()

    def try_acquire(self) -> bool:
        with self._guard:
            if self._slot is not None:
                return True
            try:
                slot = _slot_of(self.path, self.in_memory)
            except OSError as e:
                raise OperationalError(f"cannot open {self.path} to lock it: {e}") from e
            if not slot.owner.acquire(blocking=False):
                return False
            if slot.fd is not None:
                try:
                    fcntl.flock(slot.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    slot.owner.release()
                    return False
                except OSError as e:
                    slot.owner.release()
                    raise OperationalError(f"cannot lock {self.path}: {e}") from e
            self._slot = slot
            return True

    def held(self) -> bool:
        return self._slot is not None

    def release(self) -> None:
        with self._guard:
            slot, self._slot = self._slot, None
            if slot is None:
                return
            if slot.fd is not None:
                with contextlib.suppress(OSError):
                    fcntl.flock(slot.fd, fcntl.LOCK_UN)  # (the descriptor stays open)
            slot.owner.release()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.release()
