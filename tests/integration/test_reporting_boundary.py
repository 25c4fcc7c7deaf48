"""The read side as reporting users meet it: a rebuild never shows them an empty or half
table (shadow tables swapped in at once), a rebuild that fails leaves the old tables
serving, and a reporting role (`grant_reader`) reads every read model, before and after a
rebuild, and nothing of the ledger."""

from __future__ import annotations

import sqlite3
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from aftersales import Ledger
from aftersales.errors import RebuildFailed, ViewsConfigError
from aftersales.settings import Settings
from aftersales.storage.config import postgres_target
from projections import rebuild as rebuild_module
from projections.boundary import grant_reader
from projections.database import ReadModels, reporting_schema, views_url
from projections.runner import Runner, verify
from projections.schema import order_status, return_cases
from tests.conftest import PG_URL, _conninfo, drop_schema, new_schema_url
from tests.reliability.snapshot import cli, env, run_cli
from tests.scenario import refunded_returns

ORDERS = [f"B{k}" for k in range(8)]


@contextmanager
def projected_orders(ledger: Ledger) -> Iterator[ReadModels]:
    """The ledger with ORDERS in it, and its read models caught up."""
    refunded_returns(ledger, *ORDERS)
    models = ReadModels(views_url(ledger.url))
    Runner(ledger, models).catch_up()
    try:
        yield models
    finally:
        models.close()


@pytest.fixture
def views(durable_ledger: Ledger) -> Iterator[ReadModels]:
    with projected_orders(durable_ledger) as models:
        yield models


def counts(views: ReadModels) -> tuple[int, int]:
    with views.engine.connect() as conn:
        return (conn.execute(select(func.count()).select_from(order_status)).scalar_one(),
                conn.execute(select(func.count()).select_from(return_cases)).scalar_one())


@contextmanager
def owner_reader(views: ReadModels) -> Iterator[Callable[[], tuple[int, int]]]:
    """Counts of two read models from a connection of their own, outside SQLAlchemy, as a
    BI tool reads them: one statement, so one snapshot."""
    target = postgres_target(views.url)
    query = ("SELECT (SELECT count(*) FROM {s}order_status), "
             "(SELECT count(*) FROM {s}return_cases)")
    if target is None:
        path = views.url.removeprefix("sqlite:///")
        con = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        q = query.format(s="")
        try:
            yield lambda: tuple(con.execute(q).fetchone())  # type: ignore[return-value]
        finally:
            con.close()
        return
    with psycopg.connect(_conninfo(target.url.database or ""), autocommit=True) as pg:
        q = query.format(s=f'"{reporting_schema(target)}".')
        yield lambda: tuple(pg.execute(q).fetchone())  # type: ignore[arg-type,return-value]


def test_readers_see_the_whole_old_tables_until_the_rebuilt_ones_are_swapped_in(
        durable_ledger: Ledger, views: ReadModels, monkeypatch: pytest.MonkeyPatch) -> None:
    before = counts(views)
    assert before[0] == len(ORDERS) and before[1] > 0
    seen: list[tuple[int, int]] = []
    errors: list[BaseException] = []
    stop = threading.Event()
    turn = threading.Condition()

    def reader() -> None:
        with owner_reader(views) as read:
            while not stop.is_set():
                try:
                    found = read()
                except BaseException as e:  # a missing table would end up here
                    errors.append(e)
                    with turn:
                        turn.notify_all()
                    return
                with turn:
                    seen.append(found)
                    turn.notify_all()

    def on_page(n: int) -> None:
        """Between two pages of the rebuild (the shadow half filled), wait until the
        reader has read again."""
        with turn:
            reads = len(seen)
            assert turn.wait_for(lambda: len(seen) > reads or errors, timeout=30)

    monkeypatch.setattr(rebuild_module, "PAGE", 6)  # an order a page or so: many pages
    thread = threading.Thread(target=reader)
    thread.start()
    try:
        Runner(durable_ledger, views, prepare=False).rebuild(on_page, workers=1)
        with turn:  # and once more after the swap
            reads = len(seen)
            assert turn.wait_for(lambda: len(seen) > reads or errors, timeout=30)
    finally:
        stop.set()
        thread.join()
    assert errors == []
    assert len(seen) >= len(ORDERS)  # read between the pages
    assert set(seen) == {before}  # never an empty, half or missing table
    assert counts(views) == before


def test_a_rebuild_that_cannot_swap_leaves_the_old_tables_serving_sqlite(
        tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    refunded_returns(ledger, *ORDERS)
    views_file = tmp_path / "reports.db"
    views = ReadModels(f"sqlite:///{views_file}", settings=Settings(lock_timeout=0.2))
    try:
        Runner(ledger, views).catch_up()
        before = counts(views)
        held = sqlite3.connect(views_file, isolation_level=None)
        held.execute("BEGIN IMMEDIATE")  # another writer holds the reports file
        try:
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                Runner(ledger, views, prepare=False).rebuild(workers=1)
        finally:
            held.execute("ROLLBACK")
            held.close()
        assert counts(views) == before  # the old tables serve on, whole
        assert Path(f"{views_file}-rebuild").exists()  # the shadow, for the next rebuild
        Runner(ledger, views, prepare=False).rebuild(workers=1)
        assert counts(views) == before
        assert not Path(f"{views_file}-rebuild").exists()
    finally:
        views.close()
        ledger.close()


@pytest.fixture
def pg_ledger() -> Iterator[Ledger]:
    url = new_schema_url()
    ledger = Ledger(url)
    yield ledger
    ledger.close()
    drop_schema(url)


@pytest.fixture
def pg_views(pg_ledger: Ledger) -> Iterator[ReadModels]:
    with projected_orders(pg_ledger) as models:
        yield models


def test_a_view_over_a_read_model_stops_the_swap_and_the_old_tables_serve(
        pg_ledger: Ledger, pg_views: ReadModels) -> None:
    target = postgres_target(pg_views.url)
    assert target is not None
    schema = reporting_schema(target)
    with psycopg.connect(_conninfo(target.url.database or ""), autocommit=True) as c:
        c.execute(sql.SQL("CREATE VIEW {}.open_cases AS SELECT * FROM {}.return_cases")
                  .format(sql.Identifier(schema), sql.Identifier(schema)))
    before = counts(pg_views)
    with pytest.raises(RebuildFailed, match=rf"{schema}\.open_cases.*old read models still"):
        Runner(pg_ledger, pg_views, prepare=False).rebuild(workers=1)
    assert counts(pg_views) == before


@pytest.fixture
def role(pg_views: ReadModels) -> Iterator[str]:
    name = f"bi_{uuid.uuid4().hex[:10]}"
    admin = _conninfo(make_url(PG_URL).database or "")
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
    yield name
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
        c.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def as_role(role: str) -> psycopg.Connection[Any]:
    u = make_url(PG_URL)
    return psycopg.connect(host=u.host or "127.0.0.1", port=u.port or 5432,
                           dbname=u.database, user=role, autocommit=True)


def test_a_reader_role_reads_every_read_model_before_and_after_a_rebuild_and_no_ledger_table(
        pg_ledger: Ledger, pg_views: ReadModels, role: str) -> None:
    target = postgres_target(pg_views.url)
    assert target is not None
    ledger_schema, schema = target.schema, reporting_schema(target)
    done = grant_reader(pg_views, role)
    assert any("GRANT SELECT ON ALL TABLES" in s for s in done)
    expected = counts(pg_views)

    def read_as_role() -> tuple[int, int]:
        with as_role(role) as c:
            # the role's search_path names the reporting schema: plain table names work
            found = c.execute("SELECT (SELECT count(*) FROM order_status), "
                              "(SELECT count(*) FROM return_cases)").fetchone()
            assert found is not None
            return int(found[0]), int(found[1])

    assert read_as_role() == expected
    Runner(pg_ledger, pg_views, prepare=False).rebuild(workers=1)
    assert read_as_role() == expected  # the grant survived the swap
    with as_role(role) as c:
        c.execute(sql.SQL("SELECT count(*) FROM {}.violations").format(
            sql.Identifier(schema)))
        for statement in (
                sql.SQL("DELETE FROM {}.violations").format(sql.Identifier(schema)),
                sql.SQL("UPDATE {}.order_status SET order_status = 'x'").format(
                    sql.Identifier(schema)),
                sql.SQL("SELECT count(*) FROM {}.aftersales_events").format(
                    sql.Identifier(ledger_schema)),
                sql.SQL("TRUNCATE {}.ledger_commands").format(sql.Identifier(ledger_schema)),
                sql.SQL("SELECT count(*) FROM {}.ledger_refusals").format(
                    sql.Identifier(ledger_schema)),
                sql.SQL("DELETE FROM {}.ledger_heads").format(sql.Identifier(ledger_schema))):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                c.execute(statement)
    assert counts(pg_views) == expected


def test_grant_reader_on_sqlite_says_to_give_a_file_of_its_own(tmp_path: Path) -> None:
    views = ReadModels(f"sqlite:///{tmp_path / 'reports.db'}")
    try:
        with pytest.raises(ViewsConfigError, match="file of their own"):
            grant_reader(views, "bi")
    finally:
        views.close()


def test_a_projection_beside_a_rebuild_goes_on_from_the_swapped_in_position(
        durable_ledger: Ledger, views: ReadModels, monkeypatch: pytest.MonkeyPatch) -> None:
    """`project --follow` may run while `rebuild` does: it keeps the old tables current
    meanwhile, and carries on from the rebuilt position after the swap; nothing is counted
    twice or missed."""
    follower = Runner(durable_ledger, views, prepare=False)
    later = iter([f"L{k}" for k in range(3)])
    projected_meanwhile: list[int] = []

    def on_page(n: int) -> None:  # new events after the rebuild's cut, projected at once
        order = next(later, None)
        if order is not None:
            refunded_returns(durable_ledger, order)
            projected_meanwhile.append(follower.catch_up())

    monkeypatch.setattr(rebuild_module, "PAGE", 6)
    Runner(durable_ledger, views, prepare=False).rebuild(on_page, workers=1)
    assert len(projected_meanwhile) == 3 and all(projected_meanwhile)
    assert counts(views)[0] == len(ORDERS)  # the swap: the rows up to the cut
    assert follower.catch_up() > 0  # the later orders' events, again, into the new tables
    assert counts(views)[0] == len(ORDERS) + 3
    assert verify(durable_ledger, views) == []


def test_db_grant_reader_on_the_command_line_survives_a_rebuild(
        pg_ledger: Ledger, pg_views: ReadModels, role: str, tmp_path: Path) -> None:
    url = pg_ledger.url
    granted = run_cli("db", "grant-reader", role, "--db", url, cwd=tmp_path)
    assert granted.returncode == 0, granted.stderr
    assert f"{role} may read the read models" in granted.stdout

    def merchants() -> list[tuple[str, int]]:
        with as_role(role) as c:
            return [(str(m), int(n)) for m, n in c.execute(
                "SELECT merchant_id, count(*) FROM order_status GROUP BY 1").fetchall()]

    assert merchants() == [("M1", len(ORDERS))]
    rebuilt = run_cli("rebuild", "--db", url, cwd=tmp_path)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert merchants() == [("M1", len(ORDERS))]


def test_db_grant_reader_on_sqlite_and_its_argument_mistakes_exit_2(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    for args, said in ((("db", "grant-reader", "bi"), "file of their own"),
                       (("db", "grant-reader"), "a role is named by"),
                       (("db", "check", "bi"), "a role is named by")):
        done = run_cli(*args, "--db", db, cwd=tmp_path)
        assert done.returncode == 2 and said in done.stderr, done.stderr
        assert "Traceback" not in done.stderr


def test_the_spreadsheet_csv_from_the_command_line(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = Ledger(db)
    refunded_returns(ledger, *ORDERS)
    ledger.close()
    done = subprocess.run(cli("report", "--format", "csv", "--excel", "--db", db),
                          cwd=tmp_path, capture_output=True, env=env(), timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("\ufeff".encode()) and b"\r\n" in done.stdout
    heading = done.stdout.decode("utf-8-sig").splitlines()[0]
    assert "merchant_id" in heading and "(CNY)" in heading
    plain = run_cli("report", "--format", "csv", "--db", db, cwd=tmp_path)
    assert not plain.stdout.startswith("\ufeff") and "\r\n" not in plain.stdout
    wrong = run_cli("report", "--excel", "--db", db, cwd=tmp_path)
    assert wrong.returncode == 2 and "--excel is for --format csv" in wrong.stderr
