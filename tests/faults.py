"""Real faults for the reliability tests: a second process holding SQLite's write lock, a
PostgreSQL cluster of the test's own that the test stops, starts, freezes and thaws,
backends terminated by the server, a small file system that fills up, a read-only one,
and bytes changed in stored events."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from aftersales.domain.order import order_uuid
from aftersales.storage.chain import ZERO, digest, id_bytes
from tests.conftest import _conninfo

PG_VERSION = next(iter(sorted(os.listdir("/etc/postgresql"))), "15") \
    if os.path.isdir("/etc/postgresql") else "15"


# --- SQLite: a lock held by another process -------------------------------------------


class SQLiteLock:
    """Another process that holds the SQLite file's write lock (BEGIN EXCLUSIVE) until
    `release()`: it says `locked` once it holds it, and lets go when its input closes."""

    def __init__(self, path: Path) -> None:
        code = textwrap.dedent(f"""
            import sqlite3, sys
            c = sqlite3.connect({str(path)!r}, timeout=60, isolation_level=None)
            c.execute("BEGIN EXCLUSIVE")
            print("locked", flush=True)
            sys.stdin.read()
            c.execute("ROLLBACK")
        """)
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "locked"

    def release(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(timeout=60)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> SQLiteLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class StoreLock:
    """Another connection of this process that takes the store's write lock when told (a
    real lock: SQLite's BEGIN IMMEDIATE, PostgreSQL's lock on the events table)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: Any = None

    def take(self) -> None:
        if self.url.startswith("sqlite:///"):
            self._conn = sqlite3.connect(self.url.removeprefix("sqlite:///"),
                                         isolation_level=None, timeout=30)
            self._conn.execute("BEGIN IMMEDIATE")
        else:
            schema = make_url(self.url).query["schema"]
            self._conn = psycopg.connect(_conninfo(make_url(self.url).database or ""))
            self._conn.execute(f'LOCK TABLE "{schema}".aftersales_events IN EXCLUSIVE MODE')

    def release(self) -> None:
        if self._conn is not None:
            self._conn.rollback()
            self._conn.close()
            self._conn = None


# --- PostgreSQL: a cluster of the test's own ------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """A PostgreSQL cluster of this test's own on another port (never the shared one),
    with a database `ledger`, trust authentication."""

    def __init__(self) -> None:
        if shutil.which("pg_createcluster") is None:
            pytest.fail("pg_createcluster is needed for the tests that stop a server")
        self.name = f"t{uuid.uuid4().hex[:10]}"
        self.port = free_port()
        subprocess.run(["pg_createcluster", PG_VERSION, self.name, "-p", str(self.port),
                        "--start", "--", "--auth=trust"], check=True,
                       capture_output=True, text=True)
        self.frozen: list[int] = []
        with psycopg.connect(self.conninfo("postgres"), autocommit=True) as conn:
            conn.execute("CREATE DATABASE ledger")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/ledger?connect_timeout=2"

    def conninfo(self, database: str = "ledger") -> str:
        return psycopg.conninfo.make_conninfo(host="127.0.0.1", port=self.port,
                                              user="postgres", dbname=database,
                                              connect_timeout=5)

    def ctl(self, action: str) -> None:
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", PG_VERSION, self.name,
                        action, "-m", "fast"] if action == "stop" else
                       ["pg_ctlcluster", "--skip-systemctl-redirect", PG_VERSION, self.name,
                        action], check=True, capture_output=True, text=True)

    def stop(self) -> None:
        self.ctl("stop")

    def start(self) -> None:
        self.ctl("start")

    def _pids(self) -> list[int]:
        pidfile = Path(f"/var/lib/postgresql/{PG_VERSION}/{self.name}/postmaster.pid")
        main = int(pidfile.read_text().split()[0])
        children = subprocess.run(["pgrep", "-P", str(main)], capture_output=True,
                                  text=True).stdout.split()
        return [main, *map(int, children)]

    def freeze(self) -> None:
        """Stop every process of the server (SIGSTOP): its kernel still accepts and
        acknowledges, but nothing answers."""
        self.frozen = self._pids()
        for pid in self.frozen:
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in self.frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self.frozen = []

    def drop(self) -> None:
        self.thaw()
        subprocess.run(["pg_dropcluster", "--stop", PG_VERSION, self.name],
                       capture_output=True, text=True)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    found = Cluster()
    try:
        yield found
    finally:
        found.drop()


def terminate_backends(application_name: str, database: str) -> int:
    """Have the shared server end every connection of this application (as an operator's
    pg_terminate_backend, or a server restart, would); how many."""
    with psycopg.connect(_conninfo(database), autocommit=True) as conn:
        rows = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE application_name = %s", (application_name,)).fetchall()
    return len(rows)


# --- the stored events, as someone with write access to the database -------------------


class Store:
    """SQL on the ledger's own tables, as someone with write access to the database."""

    def __init__(self, url: str) -> None:
        if url.startswith("sqlite:///"):
            self.engine = create_engine(url)
            self.events, self.heads, self.id = "stored_events", "ledger_heads", "rowid"
            self.breaks = "ledger_breaks"
            self.key = lambda oid: oid.hex
        else:
            schema = make_url(url).query["schema"]
            base = make_url(url).set(drivername="postgresql+psycopg", query={})
            self.engine = create_engine(base)
            self.events = f'"{schema}".aftersales_events'
            self.heads, self.id = f'"{schema}".ledger_heads', "notification_id"
            self.breaks = f'"{schema}".ledger_breaks'
            self.key = lambda oid: oid

    def rows(self, order_id: str) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(text(
                f"SELECT {self.id} AS n, originator_version AS v, e.* FROM {self.events} e "
                "WHERE originator_id = :o ORDER BY originator_version"),
                {"o": self.key(order_uuid(order_id))}))

    def run(self, sql: str, **params: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(text(sql.format(events=self.events, heads=self.heads, id=self.id,
                                         breaks=self.breaks)), params)
        self.engine.dispose()

    COLUMNS = ("originator_id", "originator_version", "topic", "state", "event_digest",
               "log_link", "prev_id", "prev_version", "prev_link")

    def saved(self, order_id: str) -> list[dict[str, Any]]:
        """Every column of the order's rows (to put them back with `restore`)."""
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(text(
                f"SELECT {self.id} AS n, {', '.join(self.COLUMNS)} FROM {self.events} "
                "WHERE originator_id = :o ORDER BY originator_version"),
                {"o": self.key(order_uuid(order_id))}).mappings()]

    def restore(self, order_id: str, rows: list[dict[str, Any]]) -> None:
        """The order's rows exactly as saved (same positions)."""
        self.run("DELETE FROM {events} WHERE originator_id = :o",
                 o=self.key(order_uuid(order_id)))
        names = ", ".join(self.COLUMNS)
        marks = ", ".join(f":{c}" for c in self.COLUMNS)
        for row in rows:
            self.run(f"INSERT INTO {{events}} ({{id}}, {names}) VALUES (:n, {marks})", **row)
        self.run("DELETE FROM {breaks} WHERE originator_id = :o",
                 o=self.key(order_uuid(order_id)))

    def head(self, order_id: str) -> tuple[int, bytes]:
        with self.engine.connect() as conn:
            found = conn.execute(text(f"SELECT version, event_digest FROM {self.heads} "
                                      "WHERE originator_id = :o"),
                                 {"o": self.key(order_uuid(order_id))}).one()
        return int(found[0]), bytes(found[1])

    def set_head(self, order_id: str, version: int, digest: bytes) -> None:
        self.run("UPDATE {heads} SET version = :v, event_digest = :d WHERE originator_id = :o",
                 v=version, d=digest, o=self.key(order_uuid(order_id)))

    def close(self) -> None:
        self.engine.dispose()


# --- file systems ----------------------------------------------------------------------


class SmallDisk:
    """A tmpfs of a given size at `path`, which a test can fill, grow and make read-only."""

    def __init__(self, path: Path, size: str) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                               str(path)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.fail(f"these tests mount a small file system (as root): {done.stderr}")

    def remount(self, options: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{options}", str(self.path)], check=True,
                       capture_output=True, text=True)

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True, text=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    disk = SmallDisk(tmp_path / "disk", "1m")
    try:
        yield disk
    finally:
        disk.unmount()


def recompute_order(db: Store, order_id: str) -> None:
    """Rewrite the order's digests and head record to match its (altered) events."""
    oid = order_uuid(order_id)
    previous = ZERO
    with db.engine.connect() as conn:
        rows = list(conn.execute(text(
            f"SELECT {db.id} AS n, originator_version AS v, topic, state FROM {db.events} "
            "WHERE originator_id = :o ORDER BY originator_version"), {"o": db.key(oid)}))
    for r in rows:
        previous = digest(previous, id_bytes(oid), r.v, r.topic, bytes(r.state))
        db.run("UPDATE {events} SET event_digest = :d WHERE {id} = :n", d=previous, n=r.n)
    db.run("UPDATE {heads} SET event_digest = :d WHERE originator_id = :o", d=previous,
           o=db.key(oid))
