"""A rebuild without a gap: the read models are built into shadow tables and swapped in,
all of them, in one transaction.

Readers see the old tables, whole, until the transaction that swaps them commits, then the
new ones, whole; a rebuild that fails or is stopped before that leaves the old tables
serving (and the shadow behind, dropped by the next rebuild).

- **PostgreSQL.** The shadow tables are built in the schema `<schema>_rebuild` of the same
  database.  The swap drops each old table and moves its shadow into the schema
  (`ALTER TABLE … SET SCHEMA`: no copy, indexes move along), then grants the new table
  what the old one had been granted (a reporting role's SELECT survives; so do grants made
  by hand).  A view of someone else's on a read model stops the swap (PostgreSQL will not
  drop a table a view depends on): the rebuild fails, saying which, and the old tables
  serve on.
- **SQLite.** The shadow tables are built in a file of their own, `<file>-rebuild`.  The
  swap attaches it and, in one `BEGIN IMMEDIATE` transaction, replaces each table by a
  copy of its shadow (SQLite cannot move a table between files; the copy runs inside
  SQLite, and readers in WAL mode see the old tables until it commits).  The shadow file
  is deleted afterwards.
"""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
import time

from sqlalchemy import Connection, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.schema import CreateIndex, CreateTable

from aftersales.errors import RebuildFailed, RebuildInterrupted
from aftersales.storage.config import postgres_target
from projections.database import (
    PROJECTION_NAME,
    ReadModels,
    reporting_schema,
    shadow_url,
    sqlite_path,
)
from projections.schema import SCHEMA_VERSION, metadata

#: What the shadow's `projection_meta` says once its rebuild finished (checked inside the
#: swap's transaction: a second rebuild that started meanwhile is never swapped in half).
_FINISHED = "SELECT schema_version, timezone FROM {s}.projection_meta WHERE name = :n"


def shadow_of(views: ReadModels) -> ReadModels:
    """The read models a rebuild of `views` fills (`views` itself when they are held in
    memory: nobody else reads them)."""
    url = shadow_url(views.url)
    return views if url is None else ReadModels(url, views.tz_name, views.settings)


def copies(views: ReadModels, shadow: ReadModels) -> bool:
    """Whether `swap_in` copies the shadow's rows (SQLite: its indexes are built again on
    the copy) rather than moving its tables."""
    return shadow is not views and postgres_target(views.url) is None


def swap_in(views: ReadModels, shadow: ReadModels) -> None:
    """Replace every read model of `views` by its shadow, in one transaction."""
    if shadow is views:
        return
    shadow.close()
    if postgres_target(views.url) is not None:
        _swap_postgres(views, shadow)
    else:
        _swap_sqlite(views, shadow)


def _swap_postgres(views: ReadModels, shadow: ReadModels) -> None:
    """Every table locked at once, or none: each attempt waits at most `LOCK_STEP` for
    the locks and gives them all back if it did not get them (a reader in the middle of a
    statement over two read models would otherwise deadlock with the swap, and one of the
    two be cancelled); attempts go on for the lock timeout of the settings."""
    live_target, shadow_target = postgres_target(views.url), postgres_target(shadow.url)
    assert live_target is not None and shadow_target is not None
    live, built = reporting_schema(live_target), reporting_schema(shadow_target)
    deadline = time.monotonic() + views.settings.lock_timeout
    while True:
        try:
            with views.engine.begin() as conn:
                _swap_locked(views, conn, live, built)
            return
        except sa_exc.OperationalError as e:
            code = getattr(e.orig, "sqlstate", None)
            if code not in _LOCK_NOT_GOT or time.monotonic() > deadline:
                raise
        time.sleep(random.uniform(0, LOCK_STEP))


#: How long one attempt of the swap waits for its locks (below PostgreSQL's default
#: deadlock_timeout of 1 s, so that the swap gives up before a deadlock is looked for).
LOCK_STEP = 0.1
#: lock_not_available, deadlock_detected.
_LOCK_NOT_GOT = {"55P03", "40P01"}


def _swap_locked(views: ReadModels, conn: Connection, live: str, built: str) -> None:
    existing = set(conn.execute(text(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = :s AND c.relkind = 'r'"), {"s": live}).scalars())
    tables = [f'"{built}"."{t.name}"' for t in metadata.sorted_tables] + [
        f'"{live}"."{t.name}"' for t in metadata.sorted_tables if t.name in existing]
    conn.execute(text(f"SET LOCAL lock_timeout = '{round(LOCK_STEP * 1000)}ms'"))
    conn.execute(text(f"LOCK TABLE {', '.join(tables)} IN ACCESS EXCLUSIVE MODE"))
    conn.execute(text("SET LOCAL lock_timeout = 0"))  # got them all: nothing left to wait
    _check_finished(views, conn.execute(text(_FINISHED.format(s=f'"{built}"')),
                                        {"n": PROJECTION_NAME}).first())
    for table in reversed(metadata.sorted_tables):
        grants = _grants(conn, live, table.name)
        dependent = _dependent_views(conn, live, table.name)
        if dependent:
            raise RebuildFailed(
                f"cannot swap in the rebuilt {live}.{table.name}: the view(s) "
                f"{', '.join(dependent)} depend on it (drop them, or keep them outside "
                "the database of the read models, and run `aftersales rebuild` again); "
                "the old read models still serve")
        conn.execute(text(f'DROP TABLE IF EXISTS "{live}"."{table.name}"'))
        conn.execute(text(f'ALTER TABLE "{built}"."{table.name}" SET SCHEMA "{live}"'))
        for grantee, privilege in grants:
            conn.execute(text(f'GRANT {privilege} ON "{live}"."{table.name}" '
                              f"TO {grantee}"))
    # The shadow schema stays, empty: its default privileges (`grant_reader`) give a
    # reporting role SELECT on tables the next rebuild creates that the old did not.


def _check_finished(views: ReadModels, meta: object) -> None:
    if meta is None or tuple(meta) != (SCHEMA_VERSION, views.tz_name):  # type: ignore[arg-type]
        raise RebuildInterrupted("another rebuild started while this one finished; its "
                                 "read models will be swapped in when it ends (or run "
                                 "`aftersales rebuild` again)")


def _grants(conn: Connection, schema: str, table: str) -> list[tuple[str, str]]:
    """What the table's owner granted others on it: (grantee, privilege)."""
    rows = conn.execute(text(
        "SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END, "
        "a.privilege_type FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "CROSS JOIN LATERAL aclexplode(c.relacl) a LEFT JOIN pg_roles r ON r.oid = a.grantee "
        "WHERE n.nspname = :s AND c.relname = :t AND a.grantee <> c.relowner "
        "ORDER BY 1, 2"), {"s": schema, "t": table})
    return [(str(grantee), str(privilege)) for grantee, privilege in rows]


def _dependent_views(conn: Connection, schema: str, table: str) -> list[str]:
    rows = conn.execute(text(
        "SELECT DISTINCT vn.nspname || '.' || v.relname FROM pg_depend d "
        "JOIN pg_rewrite w ON w.oid = d.objid JOIN pg_class v ON v.oid = w.ev_class "
        "JOIN pg_namespace vn ON vn.oid = v.relnamespace "
        "JOIN pg_class t ON t.oid = d.refobjid JOIN pg_namespace tn ON tn.oid = t.relnamespace "
        "WHERE tn.nspname = :s AND t.relname = :t AND v.oid <> t.oid ORDER BY 1"),
        {"s": schema, "t": table})
    return [str(name) for (name,) in rows]


def _swap_sqlite(views: ReadModels, shadow: ReadModels) -> None:
    live_path, built_path = sqlite_path(views.url), sqlite_path(shadow.url)
    assert live_path is not None and built_path is not None
    dialect = views.engine.dialect
    con = sqlite3.connect(live_path, timeout=views.settings.lock_timeout,
                          isolation_level=None)  # transactions as written below
    try:
        con.execute("ATTACH DATABASE ? AS rebuild", (built_path,))
        con.execute("BEGIN IMMEDIATE")
        try:
            _check_finished(views, con.execute(_FINISHED.format(s="rebuild").replace(
                ":n", "?"), (PROJECTION_NAME,)).fetchone())
            for table in reversed(metadata.sorted_tables):
                con.execute(f'DROP TABLE IF EXISTS main."{table.name}"')
            for table in metadata.sorted_tables:
                con.execute(str(CreateTable(table).compile(dialect=dialect)))
                con.execute(f'INSERT INTO main."{table.name}" '
                            f'SELECT * FROM rebuild."{table.name}"')
                for index in table.indexes:
                    con.execute(str(CreateIndex(index).compile(dialect=dialect)))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        finally:
            con.execute("DETACH DATABASE rebuild")
    finally:
        con.close()
    _remove_sqlite(built_path)


def _remove_sqlite(path: str) -> None:
    for name in (path, f"{path}-wal", f"{path}-shm", f"{path}-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(name)
