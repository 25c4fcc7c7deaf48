"""The upgrade path of the read models: a store whose read models were built by schema
version 8 (`day`, `placed_day`, `goods_amount`, ..., SQLite times without offset; the
tables as that version made them, from tests/fixtures/read_models_v8/) is dropped and
replayed by the next run, never mixed: afterwards it holds the rows of this version,
the calendar among them, exactly what a rebuild stores, and `verify` agrees."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect, select

from aftersales import Ledger
from projections.database import ReadModels, views_url
from projections.runner import Runner, projected, verify
from projections.schema import (
    SCHEMA_VERSION,
    business_calendar,
    order_status,
    return_cases,
)
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


@pytest.fixture
def version_8(durable_ledger: Ledger) -> Iterator[ReadModels]:
    """The ledger with the read models version 8 built of it."""
    the_fixture_s_orders(durable_ledger)
    views = ReadModels(views_url(durable_ledger.url))
    dialect = views.engine.dialect.name
    script = (FIXTURES / f"{dialect}.sql").read_text()
    with views.engine.begin() as conn:
        for statement in script.split(";\n"):
            body = "\n".join(line for line in statement.splitlines()
                             if not line.startswith("--")).strip()
            if body:
                conn.exec_driver_sql(body)
    yield views
    views.close()


def test_read_models_of_version_8_are_dropped_and_replayed(durable_ledger: Ledger,
                                                           version_8: ReadModels) -> None:
    before = projected(version_8, durable_ledger.name)
    assert (before.schema_version, before.position) == (
        8, durable_ledger.recorder.max_notification_id())
    columns = {c["name"] for c in inspect(version_8.engine).get_columns("order_status")}
    assert {"placed_day", "goods_amount"} <= columns  # version 8's names

    views = ReadModels(version_8.url)
    runner = Runner(durable_ledger, views)  # what every command does first
    assert views.rebuilt_for_version
    assert runner.position == 0
    assert runner.catch_up() == durable_ledger.recorder.max_notification_id()
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
