"""The read models' database: a SQLAlchemy engine, the schema (versioned), and the tracking
position, implementing eventsourcing's `TrackingRecorder` so that positions are recorded
atomically with the rows they account for."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from eventsourcing.persistence import IntegrityError, Tracking, TrackingRecorder
from sqlalchemy import (
    Connection,
    Engine,
    create_engine,
    event,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.pool import QueuePool, StaticPool

from aftersales.errors import ViewsConfigError, ViewsMismatch
from aftersales.settings import DEFAULT_SETTINGS, VIEWS_ENV_VAR, Settings, business_zone
from aftersales.storage.config import PostgresTarget, postgres_target, sqlite_name
from aftersales.storage.connections import answering, connect_kwargs
from aftersales.storage.retry import retry_races
from projections.schema import (
    SCHEMA_VERSION,
    metadata,
    projection_meta,
    projection_tracking,
)

PROJECTION_NAME = "reporting"
#: Processes creating the read models at once each try again after losing a race; two of
#: them creating a dozen tables side by side can each lose on several tables in turn (a
#: run of the multi-process test lost five times in a row on SQLite).
DDL_ATTEMPTS = 20
#: On PostgreSQL the read models live in a schema of their own (`reporting_schema`): the
#: boundary a reporting role is given (`projections.boundary.grant_reader`).
REPORTING_SCHEMA = "reporting"
#: A rebuild fills shadow tables first: the schema `<schema>_rebuild` on PostgreSQL, the
#: file `<file>-rebuild` beside a SQLite file.
SHADOW_SUFFIX = "_rebuild"
#: The rebuild's scratch table, as an earlier version may have left it.
LEGACY_SCRATCH = ("projection_rebuild_compliance",)


class StaleTracking(IntegrityError):
    """Another runner recorded these events first: nothing of this batch was written."""


def views_url(store_url: str, url: str | None = None) -> str:
    """Explicit URL, else $AFTERSALES_VIEWS_DB, else the events' own database (on
    PostgreSQL in the schema `reporting`, or `<ledger's schema>_reporting`)."""
    chosen = url or os.environ.get(VIEWS_ENV_VAR)
    if chosen:
        return chosen
    return "sqlite://" if store_url.startswith("memory:") else store_url


def reporting_schema(target: PostgresTarget) -> str:
    """The schema the read models of a PostgreSQL URL live in: the URL's
    `reporting_schema=`, else `reporting` (or `<schema>_reporting` when the URL names the
    ledger's `schema=`)."""
    chosen = target.settings.get("reporting_schema")
    if chosen:
        return chosen
    return (REPORTING_SCHEMA if target.schema == "public"
            else f"{target.schema}_{REPORTING_SCHEMA}")


def shadow_url(url: str) -> str | None:
    """Where a rebuild of the read models at `url` fills its shadow tables (None: in
    place, for read models held in memory)."""
    target = postgres_target(url)
    if target is not None:
        return target.url.update_query_dict(
            {"reporting_schema": reporting_schema(target) + SHADOW_SUFFIX}
        ).render_as_string(hide_password=False)
    path = sqlite_path(url)
    return None if path is None else f"sqlite:///{path}-rebuild"


def sqlite_path(url: str) -> str | None:
    """The file of a SQLite URL (None: in memory, or not SQLite)."""
    if not url.startswith("sqlite:///"):
        return None
    return url.removeprefix("sqlite:///").split("?", 1)[0] or None


def make_engine(url: str, settings: Settings = DEFAULT_SETTINGS) -> Engine:
    """The read models' engine, every wait bounded as the settings say."""
    if url == "sqlite://":  # in-process, shared by every connection
        return create_engine(url, poolclass=StaticPool,
                             connect_args={"check_same_thread": False})
    if url.startswith("sqlite:"):
        name = sqlite_name(url)
        if name.startswith("file:"):  # a file read only (asked, or where it cannot be written)
            engine = create_engine("sqlite://", poolclass=QueuePool, creator=lambda: (
                sqlite3.connect(name, uri=True, timeout=settings.lock_timeout,
                                check_same_thread=False)))
        else:
            engine = create_engine(url, connect_args={"timeout": settings.lock_timeout})

        @event.listens_for(engine, "connect")
        def _wal(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            mode = dbapi_connection.execute("PRAGMA journal_mode").fetchone()[0]
            if mode.lower() != "wal":
                # Another process switching the new file at the same moment wins: fine.
                with contextlib.suppress(sqlite3.OperationalError):
                    dbapi_connection.execute("PRAGMA journal_mode=WAL")
            dbapi_connection.execute("PRAGMA synchronous=NORMAL")

        return engine
    target = postgres_target(url)
    if target is not None:
        schema = reporting_schema(target)
        target = PostgresTarget(target.url, {**target.settings, "schema": schema})
        engine = _postgres_engine(target, settings)
        if schema != "public":
            def create_schema() -> None:
                with engine.begin() as conn:
                    conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))

            retry_races(create_schema, (sa_exc.DBAPIError,), DDL_ATTEMPTS)
        return engine
    raise ViewsConfigError(f"unknown read-model URL {url!r}")


def _postgres_engine(target: PostgresTarget, settings: Settings) -> Engine:
    """Connections like the ledger's (`aftersales.storage.connections.session`), with a
    client that stops waiting for a server that does not answer."""
    connection = answering(settings.answer_timeout)
    kwargs = connect_kwargs(target, settings)
    engine_options = {k: v for k, v in target.engine_options().items()
                      if k != "connect_args"}
    return create_engine("postgresql+psycopg://", creator=lambda: connection.connect(**kwargs),
                         **engine_options)


class ReadModels(TrackingRecorder):
    """The read-model tables and their tracking position."""

    def __init__(self, url: str, tz: str | None = None,
                 settings: Settings = DEFAULT_SETTINGS) -> None:
        self.url = url
        self.settings = settings
        self.tz_name, self.tz = business_zone(tz)
        self.engine = make_engine(url, settings)
        #: Read models of an older schema version were found (`create_table`).
        self.outdated = False
        #: A runner rebuilt them for this version.
        self.rebuilt_for_version = False

    def create_table(self) -> None:
        """Create the tables.  Read models of an older schema version are left serving and
        marked `outdated` (the runner then rebuilds them into shadow tables and swaps them
        in: the upgrade path); read models of a newer version, or of another business time
        zone, are refused: never mixed, never silently replaced."""
        retry_races(self._create_table, (sa_exc.DBAPIError,), DDL_ATTEMPTS)

    def _create_table(self) -> None:
        self._drop_legacy()
        with self.engine.begin() as conn:
            metadata.create_all(conn, tables=[projection_meta])
            meta = self._meta(conn)
        if meta is not None and meta != (SCHEMA_VERSION, self.tz_name):
            if meta[0] < SCHEMA_VERSION:
                self.outdated = True
                return
            raise ViewsMismatch(self.mismatch(meta))
        with self.engine.begin() as conn:
            metadata.create_all(conn)
            if meta is None:
                conn.execute(insert(projection_meta).values(
                    name=PROJECTION_NAME, schema_version=SCHEMA_VERSION,
                    timezone=self.tz_name))

    def _drop_legacy(self) -> None:
        """PostgreSQL: drop the read models an earlier version kept beside the ledger's
        tables (in the ledger's schema), now that they live in a schema of their own: a
        dashboard still pointed at them fails, rather than showing rows that no longer
        move."""
        target = postgres_target(self.url)
        if target is None or target.schema == reporting_schema(target):
            return
        legacy = target.schema
        with self.engine.begin() as conn:
            found = conn.execute(text(
                "SELECT 1 FROM pg_tables WHERE schemaname = :s AND tablename = :t"),
                {"s": legacy, "t": projection_meta.name}).first()
            if found is None or conn.execute(text(
                    f'SELECT 1 FROM "{legacy}".{projection_meta.name} WHERE name = :n'),
                    {"n": PROJECTION_NAME}).first() is None:
                return
            for table in [*(t.name for t in reversed(metadata.sorted_tables)), *LEGACY_SCRATCH]:
                conn.execute(text(f'DROP TABLE IF EXISTS "{legacy}"."{table}"'))

    @staticmethod
    def _meta(conn: Connection) -> tuple[int, str] | None:
        row = conn.execute(select(projection_meta).where(
            projection_meta.c.name == PROJECTION_NAME)).first()
        return None if row is None else (row.schema_version, row.timezone)

    def mismatch(self, meta: tuple[int, str]) -> str:
        version, tz = meta
        if version > SCHEMA_VERSION:
            return (f"the read models were built by a newer version (schema {version}; "
                    f"this is {SCHEMA_VERSION}): upgrade aftersales")
        if version == 0:
            return ("the read models are being rebuilt (or a rebuild stopped midway): wait, "
                    "or run `aftersales rebuild`")
        if version < SCHEMA_VERSION:
            return f"the read models are of schema {version}: run `aftersales rebuild`"
        return (f"the read models count business days in {tz}, this process in "
                f"{self.tz_name}: set AFTERSALES_TZ={tz}, or `aftersales rebuild` to change")

    def check(self, conn: Connection) -> None:
        """Inside a batch's transaction: refuse to write into read models that another
        process rebuilt for another schema version or time zone meanwhile."""
        meta = self._meta(conn)
        if meta != (SCHEMA_VERSION, self.tz_name):
            raise ViewsMismatch(self.mismatch(meta) if meta else "the read models were dropped")

    def drop(self) -> None:
        """Drop every read model and the tracking position (the next run replays all)."""
        with self.engine.begin() as conn:
            metadata.drop_all(conn)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    @staticmethod
    def one_writer(conn: Connection) -> None:
        """Hold, until the transaction ends, the right to change the read models' rows: the
        runners of several partitions write the same merchants' daily counters, which a
        batch reads and writes back (SQLite's write lock does this already; on PostgreSQL a
        transaction-scoped advisory lock)."""
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended("
                              "'aftersales read models ' || current_schema(), 0))"))

    # --- TrackingRecorder ----------------------------------------------------------------

    def insert_tracking(self, tracking: Tracking) -> None:
        with self.transaction() as conn:
            self.advance(conn, tracking, self._max(conn, tracking.application_name))

    def max_tracking_id(self, application_name: str) -> int | None:
        with self.engine.connect() as conn:
            return self._max(conn, application_name)

    def positions(self) -> dict[str, int]:
        """Every recorded position, by the name of the ledger (or partition) projected."""
        with self.engine.connect() as conn:
            if not inspect(conn).has_table(projection_tracking.name):
                return {}
            return {name: position for name, position in conn.execute(
                select(projection_tracking.c.application_name,
                       projection_tracking.c.notification_id))}

    @staticmethod
    def _max(conn: Connection, application_name: str) -> int | None:
        return conn.execute(
            select(projection_tracking.c.notification_id).where(
                projection_tracking.c.application_name == application_name)
        ).scalar_one_or_none()

    @staticmethod
    def advance(conn: Connection, tracking: Tracking, expected: int | None) -> None:
        """Move the position from `expected` forward to `tracking` (compare-and-set), as the
        first write of the batch's transaction; `StaleTracking` if another runner moved it
        or the position would not move forward."""
        if tracking.notification_id <= (expected or 0):
            raise StaleTracking(f"{tracking.application_name}: position {expected} is at or "
                                f"past {tracking.notification_id}")
        if expected is None:
            try:
                conn.execute(insert(projection_tracking).values(
                    application_name=tracking.application_name,
                    notification_id=tracking.notification_id))
            except sa_exc.IntegrityError as e:  # another runner inserted it first
                raise StaleTracking(str(e)) from e
            return
        moved = conn.execute(
            update(projection_tracking)
            .where(projection_tracking.c.application_name == tracking.application_name,
                   projection_tracking.c.notification_id == expected)
            .values(notification_id=tracking.notification_id))
        if moved.rowcount != 1:
            raise StaleTracking(
                f"{tracking.application_name}: position moved from {expected} by another "
                "runner")

    def close(self) -> None:
        self.engine.dispose()
