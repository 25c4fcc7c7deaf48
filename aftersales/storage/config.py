"""Where the ledger keeps its events, chosen by one URL.

    sqlite:///aftersales.db      a SQLite file (the default, relative to the working dir)
    sqlite:////abs/path.db       a SQLite file by absolute path
    sqlite:////abs/path.db?mode=ro   the same, only read; `?immutable=1`: only read, and
                                 taken as unchanging (no -wal or -shm file made beside
                                 it).  A file on a read-only file system, or one this
                                 user cannot write, is read so without asking
                                 (`sqlite_name`)
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
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from aftersales.errors import StoreConfigError
from aftersales.settings import DEFAULT_SETTINGS, DEFAULT_URL, ENV_VAR, Settings

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

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
    from sqlalchemy.engine import make_url  # (loaded for a PostgreSQL store only)
    from sqlalchemy.exc import ArgumentError
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
        path = url.removeprefix("sqlite://").split("?", 1)[0]
        if path in ("", "/", "/:memory:"):
            raise StoreConfigError("use 'memory:' for an in-process store")
        if not path.startswith("/"):
            raise StoreConfigError(f"bad SQLite URL {url!r}: expected sqlite:///PATH")
        return {
            "PERSISTENCE_MODULE": "aftersales.storage.sqlite:LedgerSQLiteFactory",
            "SQLITE_DBNAME": sqlite_name(url),
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
    return url.removeprefix("sqlite:///").split("?", 1)[0]


#: A SQLite URL's parameters: how its file is opened.
SQLITE_READING = {"mode": ("ro",), "immutable": ("1",)}


def sqlite_name(url: str) -> str:
    """What SQLite opens for a SQLite URL: its file's path, or a `file:` URI that opens it
    read-only (`mode=ro`), or read-only and taken as unchanging (`immutable=1`: no -wal or
    -shm file is made beside it), as the URL asks or, without asking, where writing cannot
    be: a file on a read-only file system is read immutable (nothing can change it); a
    file (or its directory) this user cannot write, read-only (a WAL file needs its -shm
    beside it, made by the reader if it is not there)."""
    path = sqlite_path(url) or ""
    query = url.split("?", 1)[1] if "?" in url else ""
    asked: dict[str, str] = {}
    for pair in filter(None, query.split("&")):
        name, _, value = pair.partition("=")
        if value not in SQLITE_READING.get(name, ()):
            raise StoreConfigError(
                f"SQLite URL parameter {pair!r}: known ones are mode=ro (read only) and "
                "immutable=1 (read only, the file taken as unchanging: for a copy on "
                "read-only media)")
        asked[name] = value
    if asked.get("immutable") == "1":
        return _uri(path, "mode=ro&immutable=1")
    if asked.get("mode") == "ro":
        return _uri(path, "mode=ro")
    if not os.path.exists(path):
        return path
    where = os.path.dirname(os.path.abspath(path))
    if _read_only_file_system(where):  # (a WAL not yet folded in must be read: not that)
        return _uri(path, "mode=ro" if _pending_wal(path) else "mode=ro&immutable=1")
    if not os.access(path, os.W_OK) or (not os.access(where, os.W_OK) and not all(
            os.access(path + end, os.W_OK) for end in ("-wal", "-shm"))):
        return _uri(path, "mode=ro")
    return path


def _pending_wal(path: str) -> bool:
    """Whether the file's -wal holds transactions (not yet folded into the file)."""
    try:
        return os.path.getsize(path + "-wal") > 0
    except OSError:
        return False


def _uri(path: str, query: str) -> str:
    return f"file:{quote(os.path.abspath(path))}?{query}"


def _read_only_file_system(directory: str) -> bool:
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def sqlite_hint(url: str) -> str:
    """For a SQLite URL with a relative path: the file it names, resolved, and the
    four-slash form where the path was perhaps meant as absolute ("" for other URLs)."""
    path = sqlite_path(url)
    if not path or os.path.isabs(path):
        return ""
    resolved = os.path.abspath(path)
    said = f" (a relative path: the file {resolved}, in the working directory"
    absolute = "/" + path
    if os.path.exists(absolute) or (os.sep in path and not os.path.exists(
            os.path.dirname(resolved)) and os.path.isdir(os.path.dirname(absolute))):
        said += (f"; for {absolute}, give four slashes: "
                 f"sqlite:///{absolute}{url[len('sqlite:///') + len(path):]}")
    return said + ")"


def redacted(url: str) -> str:
    """The URL without its password, for messages and logs."""
    target = postgres_target(url)
    return url if target is None else target.url.render_as_string(hide_password=True)


def cannot_open(name: str) -> str:
    """Why SQLite could not open the file `name` (a path, or a `file:` URI) for the
    ledger: its directory missing, or a directory it cannot write the -wal and -shm
    files in."""
    path = unquote(name.removeprefix("file:").split("?", 1)[0])
    resolved = os.path.abspath(path)
    where = os.path.dirname(resolved)
    hint = sqlite_hint(f"sqlite:///{path}")
    read_only = _read_only_file_system(where)
    unwritable = f"its directory {where} cannot be written" + (
        " (a read-only file system)" if read_only else "")
    if not os.path.isdir(where):
        why = f"its directory {where} does not exist{hint}"
    elif (read_only or not os.access(where, os.W_OK)) and not os.path.exists(resolved):
        why = f"{resolved} cannot be made: {unwritable}"
    elif (read_only or not os.access(where, os.W_OK)) and _pending_wal(resolved):
        base = os.path.basename(resolved)
        why = (f"{unwritable}, and SQLite needs {base}-shm beside {base}-wal to read the "
               "transactions the -wal file holds: copy the file with both, or open it once "
               "where it can be written, which folds them into the file")
    elif read_only or not os.access(where, os.W_OK):
        why = (f"{unwritable}, and SQLite keeps {os.path.basename(resolved)}-wal and -shm "
               "beside the file, even to read it (a read-only copy: give the URL "
               "?immutable=1)")
    else:
        why = f"{resolved} cannot be opened"
    return f"unable to open database file: {why}"
