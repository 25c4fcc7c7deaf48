"""Where the ledger keeps its events, chosen by one URL.

    sqlite:///aftersales.db      a SQLite file (the default, relative to the working dir)
    sqlite:////abs/path.db       a SQLite file by absolute path
    postgresql://USER[:PASSWORD]@HOST[:PORT]/DBNAME[?pool_size=5&max_overflow=10&schema=S]
                                 PostgreSQL through psycopg 3 (the scale-out store)
    memory:                      in-process only (fast tests)

Besides eventsourcing's events table (`stored_events` in SQLite, `aftersales_events` in
PostgreSQL), the ledger keeps two small tables, written by its recorder in the same
transaction as the events they belong to:

    ledger_deadlines   one row per order with a pending deadline (the sweep's index)
    ledger_commands    one row per applied command id, with the digest of its content
"""

from __future__ import annotations

import getpass
import math
import os
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from aftersales.errors import StoreConfigError
from aftersales.settings import DEFAULT_SETTINGS, DEFAULT_URL, ENV_VAR, Settings

#: PostgreSQL URL query parameters: name -> (eventsourcing setting, default).
POSTGRES_SETTINGS = {
    "pool_size": ("POSTGRES_POOL_SIZE", "5"),
    "max_overflow": ("POSTGRES_MAX_OVERFLOW", "10"),
    "max_waiting": ("POSTGRES_MAX_WAITING", "0"),
    "conn_max_age": ("POSTGRES_CONN_MAX_AGE", "3600"),
    "connect_timeout": ("POSTGRES_CONNECT_TIMEOUT", "5"),
    "lock_timeout": ("POSTGRES_LOCK_TIMEOUT", ""),  # "": the lock timeout setting
    "pre_ping": ("POSTGRES_PRE_PING", "n"),
    "schema": ("POSTGRES_SCHEMA", ""),
    # The read models' schema (projections.database.reporting_schema); the ledger's
    # recorders ignore it.
    "reporting_schema": ("POSTGRES_REPORTING_SCHEMA", ""),
}


def resolve_url(url: str | None) -> str:
    """The URL given, else $AFTERSALES_DB, else the default SQLite file."""
    return url or os.environ.get(ENV_VAR) or DEFAULT_URL


@dataclass(frozen=True)
class PostgresTarget:
    """A PostgreSQL URL taken apart."""

    url: URL
    settings: dict[str, str]

    @property
    def schema(self) -> str:
        return self.settings.get("schema") or "public"

    def lock_timeout(self, settings: Settings) -> float:
        """The URL's `lock_timeout`, else the setting's."""
        return float(self.settings.get("lock_timeout") or settings.lock_timeout)

    def sqlalchemy_url(self) -> URL:
        """The same database for SQLAlchemy (psycopg 3), without our own parameters."""
        return self.url.set(drivername="postgresql+psycopg", query={})

    def engine_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "pool_size": int(self.settings.get("pool_size", "5")),
            "max_overflow": int(self.settings.get("max_overflow", "10")),
            "pool_pre_ping": self.settings.get("pre_ping", "n").lower() in ("y", "yes", "1",
                                                                           "true"),
        }
        if self.schema != "public":
            options["connect_args"] = {"options": f"-csearch_path={self.schema}"}
        return options


def postgres_target(url: str) -> PostgresTarget | None:
    """The PostgreSQL target a URL names, or None for other stores."""
    if not url.startswith(("postgresql:", "postgres:", "postgresql+psycopg:")):
        return None
    try:
        parsed = make_url(url.replace("postgres:", "postgresql:", 1)
                          if url.startswith("postgres:") else url)
    except ArgumentError as e:
        raise StoreConfigError(f"bad PostgreSQL URL: {e}") from None
    if not parsed.database:
        raise StoreConfigError("a PostgreSQL URL names its database: postgresql://USER@HOST/DB")
    unknown = set(parsed.query) - set(POSTGRES_SETTINGS)
    if unknown:
        raise StoreConfigError(
            f"unknown PostgreSQL URL parameter(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(POSTGRES_SETTINGS)}")
    settings = {k: str(v if isinstance(v, str) else v[-1]) for k, v in parsed.query.items()}
    for key in ("schema", "reporting_schema"):
        schema = settings.get(key)
        if schema and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,44}", schema):
            raise StoreConfigError(f"{key} {schema!r}: a PostgreSQL schema name here is 1-45 "
                                   "letters, digits and _, not starting with a digit")
    for name in ("lock_timeout", "connect_timeout", "pool_size", "max_overflow"):
        value = settings.get(name)
        if value is not None and not re.fullmatch(r"\d+(\.\d+)?", value):
            raise StoreConfigError(f"{name}={value!r}: expected a number")
    return PostgresTarget(parsed, settings)


def eventsourcing_env(url: str, settings: Settings = DEFAULT_SETTINGS) -> dict[str, str]:
    """The eventsourcing environment that selects the store a URL names, with the waits
    the settings bound (`LEDGER_*`: read by the ledger's factories)."""
    if url in ("memory:", "memory://"):
        return {"PERSISTENCE_MODULE": "aftersales.storage.memory:LedgerPOPOFactory"}
    if url.startswith("sqlite://"):
        path = url.removeprefix("sqlite://")
        if path in ("", "/", "/:memory:"):
            raise StoreConfigError("use 'memory:' for an in-process store")
        if not path.startswith("/"):
            raise StoreConfigError(f"bad SQLite URL {url!r}: expected sqlite:///PATH")
        return {
            "PERSISTENCE_MODULE": "aftersales.storage.sqlite:LedgerSQLiteFactory",
            "SQLITE_DBNAME": path[1:],
            "LEDGER_LOCK_TIMEOUT": str(settings.lock_timeout),
        }
    target = postgres_target(url)
    if target is not None:
        u = target.url
        env = {
            "PERSISTENCE_MODULE": "aftersales.storage.postgres:LedgerPostgresFactory",
            "POSTGRES_DBNAME": str(u.database),
            "POSTGRES_HOST": u.host or "127.0.0.1",
            "POSTGRES_PORT": str(u.port or 5432),
            "POSTGRES_USER": u.username or os.environ.get("PGUSER") or getpass.getuser(),
            "POSTGRES_PASSWORD": u.password or os.environ.get("PGPASSWORD", ""),
        }
        for name, (setting, default) in POSTGRES_SETTINGS.items():
            env[setting] = target.settings.get(name, default)
        lock = target.lock_timeout(settings)
        # The library's lock timeout is whole seconds (0 would mean no limit).
        env["POSTGRES_LOCK_TIMEOUT"] = str(max(1, math.ceil(lock)))
        env["LEDGER_LOCK_TIMEOUT"] = str(lock)
        env["LEDGER_STATEMENT_TIMEOUT"] = str(settings.statement_timeout)
        env["LEDGER_ANSWER_TIMEOUT"] = str(settings.answer_timeout)
        return env
    raise StoreConfigError(
        f"unknown store URL {url!r}: use sqlite:///PATH, postgresql://USER@HOST/DB or memory:")


def sqlite_path(url: str) -> str | None:
    """The file a SQLite URL names (None for other stores)."""
    if not url.startswith("sqlite:///"):
        return None
    return url.removeprefix("sqlite:///")


def redacted(url: str) -> str:
    """The URL without its password, for messages and logs."""
    target = postgres_target(url)
    return url if target is None else target.url.render_as_string(hide_password=True)
