"""Trying a store step again: when several processes race on first use (`retrying`), and
when the store fails in a way that may pass (`Patience`).

A failure that may pass: a lost or refused connection (a server restarting), a locked
database (another process holds SQLite's write lock past the busy timeout, or a
PostgreSQL lock past `lock_timeout`), a serialisation failure or deadlock, a statement
cut by the statement timeout, a server that stopped answering, a full disk.  Such a step
is tried again with growing pauses (0.1 s, doubling, at most 5 s) until it succeeds or
`retry_for` seconds have passed since the first failure; then, or at once for a failure
that will not pass (a read-only file, a missing database, a wrong password), the caller
gets `StoreUnavailable`, which names the cause.  A step must be one unit of work that
either happened or did not (one transaction), or be safe to do again (it re-reads what
it needs): then trying it again cannot decide anything twice.
"""

from __future__ import annotations

import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, TypeVar

from eventsourcing.persistence import InterfaceError, OperationalError, PersistenceError

from aftersales.errors import ConflictError, StoreUnavailable

T = TypeVar("T")

#: PostgreSQL error classes and codes of failures that may pass.
_PASSING_CLASSES = ("08", "40", "53", "57")  # connection, rollback, resources, operator
_PASSING_CODES = {"55P03", "55006", "58000", "58030", "XX000"}
#: What a failure to connect says when it will not pass by waiting: a database or role
#: that does not exist, credentials refused, a host that does not resolve.
_LASTING_CONNECT = ("does not exist", "authentication failed", "pg_hba.conf",
                    "no password supplied", "translate host name", "resolve host",
                    "Name or service not known", "nodename nor servname")
#: What psycopg says of a server that refused the connection: nothing listens there.
_REFUSED = ("Connection refused", "No such file or directory")
#: SQLite messages of failures that may pass.
_PASSING_SQLITE = ("locked", "busy", "disk is full", "disk i/o error", "out of memory")
#: Pauses between attempts: the first, and the longest.
FIRST_PAUSE, LONGEST_PAUSE = 0.1, 5.0


class FirstContact:
    """Which PostgreSQL servers (host, port) this process has connected to, and whether
    it waits for one that refuses its first connection.

    A server that refuses a connection after this process was connected to it is most
    likely restarting: that is waited for, as any failure that may pass.  One that
    refused the very first connection may as well never have been there (a wrong port,
    or no server started): a command says so at once, rather than wait a minute for
    nothing; a service (`serve-webhook`, `project --follow`: `wait_at_start`), started
    perhaps before its database, waits for it as for any failure that may pass."""

    reached: ClassVar[set[tuple[str, str]]] = set()
    waits: ClassVar[bool] = False

    @classmethod
    def wait_at_start(cls) -> None:
        cls.waits = True

    @classmethod
    def connected(cls, host: str, port: str) -> None:
        cls.reached.add((host, port))

    @classmethod
    def refused_at_once(cls, host: str, port: str, error: BaseException) -> bool:
        """Whether a failure to connect is given up on at once: refused by a server this
        process never reached, and this process does not wait at start."""
        return (not cls.waits and (host, port) not in cls.reached
                and any(x in str(error) for x in _REFUSED))


def retrying(step: Callable[[], T], errors: tuple[type[BaseException], ...],
             attempts: int = 5, pause: float = 0.0) -> T:
    """`step()`, tried up to `attempts` times while it raises one of `errors`, waiting
    `pause` times the attempt number between tries; the last error is raised."""
    for attempt in range(1, attempts + 1):
        try:
            return step()
        except errors:
            if attempt == attempts:
                raise
            time.sleep(pause * attempt)
    raise AssertionError("unreachable")


def catalog_race(error: BaseException) -> bool:
    """Whether a DDL failure is two processes creating the same thing at once."""
    text = str(error)
    return any(x in text for x in ("concurrently", "already exists", "duplicate key",
                                   "UNIQUE constraint failed"))


def retry_races(step: Callable[[], T], errors: tuple[type[BaseException], ...],
                attempts: int = 5) -> T:
    """`step()`, tried again when it lost a race with another process creating the same
    tables (PostgreSQL's catalog: the loser then finds them there); any other failure is
    raised at once (a lock is waited for by the lock timeout and the caller's patience,
    not here)."""
    for attempt in range(1, attempts + 1):
        try:
            return step()
        except errors as e:
            if attempt == attempts or not catalog_race(e):
                raise
    raise AssertionError("unreachable")


def _causes(error: BaseException) -> list[BaseException]:
    found, seen = [], set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        found.append(current)
        current = current.__cause__ or current.__context__
    return found


class _Never(Exception):
    """Stands for the error classes of a driver this process never loaded (no error of
    it can have been raised)."""


def _loaded(module: str, name: str) -> type[BaseException]:
    """An error class of PostgreSQL's driver or of SQLAlchemy, if the process loaded it:
    they are imported by the stores that use them, never here (`status` on SQLite loads
    neither: docs/performance.md, "Starting a command")."""
    found = sys.modules.get(module)
    cls = getattr(found, name, None) if found is not None else None
    return cls if isinstance(cls, type) and issubclass(cls, BaseException) else _Never


def _psycopg_errors() -> tuple[type[BaseException], type[BaseException]]:
    """psycopg's Error and OperationalError."""
    return _loaded("psycopg", "Error"), _loaded("psycopg", "OperationalError")


def is_store_error(error: BaseException) -> bool:
    """Whether the error came from the store (its driver, the library's persistence, or
    SQLAlchemy), rather than from the ledger's rules."""
    return isinstance(error, (PersistenceError, _loaded("sqlalchemy.exc", "SQLAlchemyError"),
                              sqlite3.Error, _loaded("psycopg", "Error"), StoreUnavailable,
                              ConnectionError))


def may_pass(error: BaseException) -> bool:
    """Whether trying the step again may succeed (see the module's docstring)."""
    if isinstance(error, StoreUnavailable):
        return False
    if isinstance(error, ConflictError):  # writers kept conflicting: try the unit again
        return True
    pg_error, pg_operational = _psycopg_errors()
    disconnected = _loaded("sqlalchemy.exc", "DisconnectionError")
    for cause in _causes(error):
        if isinstance(cause, sqlite3.Error):
            text = str(cause).lower()
            return any(x in text for x in _PASSING_SQLITE)
        if isinstance(cause, pg_error):
            code = getattr(cause, "sqlstate", None)
            if code is None:  # connecting: refused or timed out may pass; the rest not
                text = str(cause)
                return isinstance(cause, pg_operational) and not any(
                    x in text for x in _LASTING_CONNECT)
            return code[:2] in _PASSING_CLASSES or code in _PASSING_CODES
        if isinstance(cause, (disconnected, ConnectionError, TimeoutError)):
            return True
    # The library's own, with no driver error behind it: a connection it could not get
    # (a pool's timeout), or a server the ledger could not reach when it opened.
    return isinstance(error, (OperationalError, InterfaceError))


#: What SQLite's words for a file it may not write mean, and what to do.
READ_ONLY_MEANING = (
    "it is read here only: a read-only file system, a file or directory this user cannot "
    "write, or mode=ro or immutable=1 in the URL; the commands that only read (status, "
    "history, verify, the reports once the read models are up to date) read it as it is; "
    "to write, copy it (with its -wal file, if there is one) where it can be written")


def describe(error: BaseException) -> str:
    """The store's own words for a failure, on one line."""
    for cause in _causes(error):
        if isinstance(cause, (sqlite3.Error, _loaded("psycopg", "Error"))):
            text = " ".join(str(cause).split())
            for noise in ("connection failed: ", "FATAL: "):
                text = text.replace(noise, "")
            if "readonly database" in text:
                text += f" ({READ_ONLY_MEANING})"
            return text or type(cause).__name__
    if isinstance(error, _loaded("sqlalchemy.exc", "SQLAlchemyError")):
        return str(error).splitlines()[0]
    return " ".join(str(error).split()) or type(error).__name__


@dataclass
class Patience:
    """How long a store step is tried again (`retry_for` seconds; None: as long as it
    takes), and who hears of each wait (`on_wait`, told what is waited for)."""

    retry_for: float | None
    store: str = "the store"
    on_wait: Callable[[str], None] = lambda text: None
    explain: Callable[[], str | None] = lambda: None  # the cause, asked of the store itself
    #: What is said while waiting ("waiting for" the store, "reconnecting to" it).
    waits: str = "waiting for"
    #: How a pause is waited (a service's stop event may cut it short).
    sleep: Callable[[float], object] = time.sleep
    _told: str = field(default="", repr=False)
    #: How many times a step was tried again (a unit of work recorded in several
    #: transactions may have recorded some before its store failed).
    retries: int = 0

    def run(self, step: Callable[[], T], doing: str,
            progressed: Callable[[], bool] = lambda: False) -> T:
        """`step()`; a store failure that may pass is tried again until `retry_for`
        seconds after the first one; one that does not pass, or outlasts that, is raised
        as `StoreUnavailable` naming the cause.  (Each attempt is bounded by the store's
        own timeouts: the lock, statement and connect timeouts.)  A step that runs on
        (a service) and `progressed` before it failed starts a new run of failures: the
        time and the pauses count again from this failure."""
        first_failure: float | None = None
        pause = FIRST_PAUSE
        while True:
            try:
                return step()
            except Exception as e:
                if not is_store_error(e) and not may_pass(e):
                    raise
                now = time.monotonic()
                if first_failure is None or progressed():
                    first_failure, pause = now, FIRST_PAUSE
                waited = now - first_failure
                reason = self._reason(e)
                left = None if self.retry_for is None else self.retry_for - waited
                if not may_pass(e) or (left is not None and left <= 0):
                    if isinstance(e, StoreUnavailable):
                        raise
                    raise StoreUnavailable(f"{doing}: {self.store}: {reason}",
                                           waited if may_pass(e) else 0.0) from e
                self._tell(f"{doing}: {reason}; {self.waits} {self.store} "
                           + ("" if left is None else f"(for up to {left:.0f} s more)"))
                self.retries += 1
                self.sleep(pause if left is None else min(pause, left))
                pause = min(pause * 2, LONGEST_PAUSE)

    def _reason(self, error: BaseException) -> str:
        reason = describe(error)
        if "couldn't get a connection" in reason:  # the pool's words: ask the server
            reason = self.explain() or reason
        return reason

    def _tell(self, text: str) -> None:
        key = text.split(";")[0]
        if key != self._told:  # once per cause, not once per attempt
            self._told = key
            self.on_wait(text)
