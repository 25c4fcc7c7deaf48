"""The upgrade path of the read models: a store whose read models were built by schema
version 8 (`day`, `placed_day`, `goods_amount`, ..., SQLite times without offset; the
tables as that version made them, from tests/fixtures/read_models_v8/) is rebuilt by the
next run (into shadow tables, swapped in at once), never mixed: afterwards it holds the
rows of this version, the calendar among them, exactly what a rebuild stores, and `verify`
agrees."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import inspect, select

from aftersales import Ledger
from aftersales.storage.config import postgres_target
from projections.database import ReadModels, reporting_schema, views_url
from projections.runner import Runner, projected, verify
from projections.schema import (
    READ_MODELS,
    SCHEMA_VERSION,
    business_calendar,
    order_status,
    return_cases,
)
from tests.conftest import _conninfo, drop_schema, new_schema_url
from tests.integration.test_projections import stored
from tests.reliability.snapshot import run_cli
from tests.scenario import DAY, T0, Scenario

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "read_models_v8"


def the_fixture_s_orders(ledger: Ledger) -> None:
    """The events the version-8 read models of the fixture were projected from."""
    Scenario(ledger, "online", order_id="V1").to_received()
    Scenario(ledger, "cod", order_id="V2").to_requested()
    ledger.tick(T0 + 5 * DAY)
    appealed = Scenario(ledger, "online", order_id="V3").to_appealed()
    appealed.do("arbitrate", outcome="user", blame="merchant", note="sold used")


def fixture_statements(dialect: str) -> list[str]:
    """The statements of the version-8 fixture for a dialect, comments left out."""
    script = (FIXTURES / f"{dialect}.sql").read_text()
    bodies = ("\n".join(line for line in statement.splitlines()
                        if not line.startswith("--")).strip()
              for statement in script.split(";\n"))
    return [body for body in bodies if body]


@pytest.fixture
def version_8(durable_ledger: Ledger) -> Iterator[ReadModels]:
    """The ledger with the read models version 8 built of it."""
    the_fixture_s_orders(durable_ledger)
    views = ReadModels(views_url(durable_ledger.url))
    with views.engine.begin() as conn:
        for statement in fixture_statements(views.engine.dialect.name):
            conn.exec_driver_sql(statement)
    yield views
    views.close()


def test_read_models_of_version_8_are_rebuilt(durable_ledger: Ledger,
                                                           version_8: ReadModels) -> None:
    before = projected(version_8, durable_ledger.name)
    assert (before.schema_version, before.position) == (
        8, durable_ledger.recorder.max_notification_id())
    columns = {c["name"] for c in inspect(version_8.engine).get_columns("order_status")}
    assert {"placed_day", "goods_amount"} <= columns  # version 8's names

    views = ReadModels(version_8.url)
    runner = Runner(durable_ledger, views)  # what every command does first: a rebuild
    assert views.rebuilt_for_version
    assert runner.position == durable_ledger.recorder.max_notification_id()
    assert runner.catch_up() == 0
    after = projected(views, durable_ledger.name)
    assert (after.schema_version, after.timezone) == (SCHEMA_VERSION, "Asia/Shanghai")
    with views.engine.connect() as conn:
        order = conn.execute(select(order_status).where(order_status.c.order_id == "V1")
                             ).mappings().one()
        cases = conn.execute(select(return_cases.c.order_id, return_cases.c.amount_fen,
                                    return_cases.c.paid_to_user_fen)
                             .order_by(return_cases.c.order_id)).all()
        days = conn.execute(select(business_calendar.c.business_day)
                            .order_by(business_calendar.c.business_day)).scalars().all()
    assert (order["placed_business_day"], order["goods_amount_fen"],
            order["refunded_total_fen"]) == (T0.date(), 9900, 9900)
    assert order["placed_at"] == T0 and order["placed_at"].utcoffset() is not None
    assert [tuple(c) for c in cases] == [("V1", 9900, 9900), ("V2", 9900, 0),
                                        ("V3", 9900, 0)]
    assert days[0] == T0.date() and len(days) == (days[-1] - days[0]).days + 1
    if views.engine.dialect.name == "sqlite":
        with views.engine.connect() as conn:
            (text,) = conn.exec_driver_sql(
                "SELECT placed_at FROM order_status WHERE order_id = 'V1'").one()
        assert text == "2026-03-01T02:00:00.000000+00:00"
    assert verify(durable_ledger, views) == []
    replayed = stored(views)
    Runner(durable_ledger, views).rebuild(workers=1)
    assert stored(views) == replayed
    views.close()


def test_the_next_command_upgrades_them(durable_ledger: Ledger, version_8: ReadModels,
                                        tmp_path: Path) -> None:
    """What a person does after upgrading aftersales: any command that reads the read
    models (here `report`) replays them first, and answers from the new ones."""
    shown = run_cli("report", "--db", durable_ledger.url, "--format", "csv", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    header, row = shown.stdout.splitlines()
    scorecard = dict(zip(header.split(","), row.split(","), strict=True))
    assert (scorecard["merchant_id"], scorecard["orders_placed"],
            scorecard["disputes_lost"]) == ("M1", "3", "1")
    after = projected(version_8, durable_ledger.name)
    assert (after.schema_version, after.position) == (
        SCHEMA_VERSION, durable_ledger.recorder.max_notification_id())


def test_version_8_read_models_beside_the_ledger_are_dropped_for_the_reporting_schema(
) -> None:
    """PostgreSQL: version 8 kept the read models in the ledger's own schema; this one
    keeps them in `<schema>_reporting`.  The old ones are dropped (a dashboard still
    pointed at them fails rather than showing rows that no longer move), the new ones
    built from the events."""
    url = new_schema_url()
    ledger = Ledger(url)
    try:
        the_fixture_s_orders(ledger)
        target = postgres_target(url)
        assert target is not None
        with psycopg.connect(_conninfo(target.url.database or ""), autocommit=True,
                             options=f"-c search_path={target.schema}") as c:
            for statement in fixture_statements("postgresql"):
                c.execute(statement)  # type: ignore[call-overload]
            assert c.execute("SELECT count(*) FROM order_status").fetchone() == (3,)
        views = ReadModels(views_url(url))
        try:
            Runner(ledger, views).catch_up()
            assert projected(views, ledger.name).position == (
                ledger.recorder.max_notification_id())
            with psycopg.connect(_conninfo(target.url.database or "")) as c:
                left = c.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s",
                                 (target.schema,)).fetchall()
                moved = c.execute("SELECT count(*) FROM pg_tables WHERE schemaname = %s",
                                  (reporting_schema(target),)).fetchone()
            assert not {t for (t,) in left} & set(READ_MODELS)
            assert moved is not None and moved[0] >= len(READ_MODELS)
            assert verify(ledger, views) == []
        finally:
            views.close()
    finally:
        ledger.close()
        drop_schema(url)
