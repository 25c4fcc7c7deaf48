"""The guides' examples stay true: every SQL example of docs/reporting.md runs on the
database it is written for, against read models that hold every kind of case and disputes
ruled every way, the dispute examples answer their questions, and the command file of
docs/commands.md is accepted line by line."""

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
from tests.scenario import DAY, HOUR, T0, Scenario

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
    disputes(durable_ledger)
    durable_ledger.tick(T0 + 12 * DAY)
    models = ReadModels(views_url(durable_ledger.url))
    Runner(durable_ledger, models).catch_up()
    yield models
    models.close()


def disputes(ledger: Ledger) -> None:
    """Four appeals, ruled 6 h, 48 h (by the system: no evidence), 1 h and 10 h after they
    were opened: two lost (blame merchant), one won, one neither (for the user, blame
    platform); with the three orders above, 7 orders placed in March 2026."""
    lost = Scenario(ledger, "online", order_id="A1").to_appealed()
    lost.do("submit_evidence", evidence=["IMG-1"], note="worn")
    lost.do("arbitrate", 5 * HOUR, outcome="user", blame="merchant", note="sold used")
    Scenario(ledger, "cod", order_id="A2").to_appealed()  # no evidence: the system rules
    won = Scenario(ledger, "online", order_id="A3").to_appealed()
    won.do("arbitrate", outcome="merchant", blame="user")
    neither = Scenario(ledger, "cod", order_id="A4").to_appealed()
    neither.do("submit_evidence", 2 * HOUR, evidence=["IMG-2", "IMG-3"])
    neither.do("arbitrate", 8 * HOUR, outcome="user", blame="platform")


def dispute_examples(dialect: str) -> dict[str, str]:
    """The guide's dispute statements for `dialect`, by the question they answer; "last
    month" is April 2026's last month, March, the month of the fixture's disputes."""
    found: dict[str, str] = {}
    for statement in examples(dialect):
        if "disputes_lost" in statement and "orders_placed" in statement:
            found["loss_rate"] = (
                statement.replace("'now'", "'2026-04-10 00:00:00'") if dialect == "sqlite"
                else statement.replace("now()", "TIMESTAMPTZ '2026-04-10 00:00:00+08:00'"))
        elif "FROM disputes" in statement and "median_hours" in statement:
            found["median"] = statement
        elif "FROM disputes" in statement and "evidence_missed" in statement:
            found["per_merchant"] = statement
    return found


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
    ruled = durable_ledger.get_order("D3")
    assert ruled is not None
    doc = status_document(ruled)
    assert (doc["return"]["kind"], doc["return"]["status"], doc["refunded_total"]) == (
        "refund", "refunded", 5900)
    assert {k: doc["return"]["arbitration"][k] for k in (
        "status", "outcome", "blame", "ruled_by", "evidence")} == {
        "status": "ruled", "outcome": "user", "blame": "merchant", "ruled_by": "platform",
        "evidence": ["IMG-1", "IMG-2"]}
    missed = durable_ledger.get_order("D4")
    assert missed is not None
    doc = status_document(missed)
    assert (doc["return"]["status"], doc["return"]["arbitration"]["ruled_by"]) == (
        "closed", "system")
    assert [v["rule"] for v in doc["violations"]] == ["ARBITRATION_EVIDENCE_48H"]
    assert [x["rule"] for x in doc["lapses"]] == ["RETURN_TRACKING_7D"]


def test_the_dispute_examples_answer_their_questions(views: ReadModels) -> None:
    statements = dispute_examples(views.engine.dialect.name)
    assert sorted(statements) == ["loss_rate", "median", "per_merchant"]
    with views.engine.connect() as conn:
        (rate,) = conn.execute(text(statements["loss_rate"])).fetchall()
        assert (rate[0], rate[1], rate[2], float(rate[3])) == ("M1", 7, 2, 285.71)
        (median,) = conn.execute(text(statements["median"])).fetchall()
        assert (float(median[0]), median[1]) == (8.0, 4)  # of 1, 6, 10, 48 hours
        (merchant,) = conn.execute(text(statements["per_merchant"])).fetchall()
        assert tuple(merchant) == ("M1", 4, 0, 2, 1, 1)
