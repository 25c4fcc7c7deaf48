"""The guides' examples stay true: every SQL example of docs/reporting.md runs on the
database it is written for, against read models that hold every kind of case, and the
command file of docs/commands.md is accepted line by line."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from aftersales import Ledger, status_document
from aftersales.ingest.serial import ingest
from aftersales.readmodels.database import ReadModels, views_url
from aftersales.readmodels.runner import Runner
from tests.scenario import DAY, T0, Scenario

DOCS = Path(__file__).resolve().parents[2] / "docs"
GUIDE = DOCS / "reporting.md"


def examples(dialect: str) -> list[str]:
    """The guide's statements for `dialect` (`sqlite`, `postgresql`): those marked for it
    and those marked for none (or `any database`)."""
    found: list[str] = []
    for block in re.findall(r"```sql\n(.*?)```", GUIDE.read_text(), flags=re.S):
        current: str | None = None
        statement: list[str] = []
        for line in block.splitlines():
            marker = re.match(r"--\s*(PostgreSQL|SQLite|any database)", line)
            if marker:
                current = {"PostgreSQL": "postgresql", "SQLite": "sqlite"}.get(
                    marker.group(1))
                continue
            if line.strip().startswith("--"):
                continue
            statement.append(line)
            if line.rstrip().endswith(";"):
                if current in (None, dialect):
                    found.append("\n".join(statement))
                statement = []
    return found


@pytest.fixture
def views(durable_ledger: Ledger) -> Iterator[ReadModels]:
    Scenario(durable_ledger, "online", order_id="R1").to_refund_after_shipment()
    Scenario(durable_ledger, "cod", order_id="X1").to_exchange_received()
    t = Scenario(durable_ledger, "online", order_id="T1").to_in_transit()
    t.do("extend_deadline")
    t.do("set_deadline", until=t.now + 20 * DAY, reason="holiday")
    durable_ledger.tick(T0 + 12 * DAY)
    models = ReadModels(views_url(durable_ledger.url))
    Runner(durable_ledger, models).catch_up()
    yield models
    models.close()


def test_every_sql_example_of_the_reporting_guide_runs(views: ReadModels) -> None:
    dialect = views.engine.dialect.name
    statements = examples(dialect)
    assert len(statements) >= 10
    with views.engine.connect() as conn:
        for statement in statements:
            conn.execute(text(statement)).fetchall()
        moved = conn.execute(text(
            "SELECT count(*) FROM pending_deadlines WHERE original_deadline IS NOT NULL"
        )).scalar()
        assert moved == 1


def test_the_command_file_of_the_guide_is_accepted(durable_ledger: Ledger) -> None:
    block = re.search(r"```jsonl\n(.*?)```", (DOCS / "commands.md").read_text(), flags=re.S)
    assert block is not None
    lines = [line.encode() for line in block.group(1).splitlines()]
    refused: list[str] = []
    report = ingest(durable_ledger, lines, lambda n, e: refused.append(f"line {n}: {e}"))
    assert refused == [] and report.lines == len(lines)
    order = durable_ledger.get_order("D1")
    assert order is not None
    doc = status_document(order)
    assert (doc["return"]["kind"], doc["return"]["status"]) == ("exchange", "exchanged")
    assert [c.kind.value for c in order.cases] == ["refund", "exchange"]
