"""Store fixtures: one parameter runs the same tests on every store.

`ledger` runs on memory, SQLite and PostgreSQL; `db_url` / `durable_ledger` on the two
durable stores.  Each PostgreSQL test gets a schema of its own in the database named by
$AFTERSALES_TEST_PG (default postgresql://postgres@127.0.0.1:5432/aftersales_test), dropped
afterwards.  Without a reachable server the PostgreSQL cases skip, with the reason; in CI
($CI set) they fail instead: there a skipped PostgreSQL test is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from hypothesis import settings
from psycopg import sql
from sqlalchemy.engine import make_url

from aftersales import Ledger

# No test asserts a time: Hypothesis's default limit of 200 ms an example is one, and on a
# loaded machine it fails tests whose behaviour is right.
settings.register_profile("aftersales", deadline=None)
settings.load_profile("aftersales")

PG_URL = os.environ.get("AFTERSALES_TEST_PG",
                        "postgresql://postgres@127.0.0.1:5432/aftersales_test")
_pg_state: dict[str, str | None] = {}


def _conninfo(database: str) -> str:
    u = make_url(PG_URL)
    return psycopg.conninfo.make_conninfo(
        host=u.host or "127.0.0.1", port=u.port or 5432, user=u.username or "postgres",
        password=u.password or "", dbname=database, connect_timeout=5)


def postgres_unavailable() -> str | None:
    """Why PostgreSQL cannot be used (None when it can); creates the test database."""
    if "reason" not in _pg_state:
        database = make_url(PG_URL).database or "aftersales_test"
        try:
            with psycopg.connect(_conninfo("postgres"), autocommit=True) as conn:
                found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                     (database,)).fetchone()
                if not found:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(
                        sql.Identifier(database)))
            _pg_state["reason"] = None
        except psycopg.Error as e:
            _pg_state["reason"] = f"PostgreSQL at {PG_URL} is not reachable: {e}"
    return _pg_state["reason"]


def require_postgres() -> None:
    reason = postgres_unavailable()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI runs the PostgreSQL tests, never skips them: {reason}")
    pytest.skip(reason)


def new_schema_url() -> str:
    """A PostgreSQL store URL in a fresh schema."""
    require_postgres()
    return f"{PG_URL}?schema=t_{uuid.uuid4().hex[:16]}"


def drop_schema(url: str) -> None:
    """The test's schema, and its read models' (and their rebuild's shadow) beside it."""
    schema = str(make_url(url).query["schema"])
    with psycopg.connect(_conninfo(make_url(PG_URL).database or ""), autocommit=True) as c:
        for name in (schema, f"{schema}_reporting", f"{schema}_reporting_rebuild"):
            c.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                sql.Identifier(name)))


def store_url_for(kind: str, tmp_path: Path) -> str:
    if kind == "memory":
        return "memory:"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return new_schema_url()


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    url = store_url_for(request.param, tmp_path)
    yield url
    if request.param == "postgresql":
        drop_schema(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A durable store: a SQLite file or a PostgreSQL schema."""
    url = store_url_for(request.param, tmp_path)
    yield url
    if request.param == "postgresql":
        drop_schema(url)


@pytest.fixture
def ledger(store_url: str) -> Iterator[Ledger]:
    app = Ledger(store_url)
    yield app
    app.close()


@pytest.fixture
def durable_ledger(db_url: str) -> Iterator[Ledger]:
    app = Ledger(db_url)
    yield app
    app.close()
