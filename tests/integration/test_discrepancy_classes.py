"""Discrepancies counted per merchant and class (docs/reporting.md, `merchant_compliance`):
a platform's account that differs from the ledger counts once in `discrepancies` and once
under its class, the most serious way it differs (`outcome`, `actor`, `amount`,
`deadline`, `time`), per merchant and business day; the classes add up to the total, in
the live read models, in `report` (JSON, CSV, the table, whose `(total)` row adds up) and
in a rebuild alike; read models of the version before them are replayed, not mixed."""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text, update

from aftersales import Ledger
from projections import rebuild as rebuild_module
from projections.database import ReadModels
from projections.fold import DISCREPANCY_COUNTERS
from projections.queries import (
    DISCREPANCY_CLASSES,
    SCORECARD,
    list_discrepancies,
    scorecard_table,
    scorecard_with_total,
)
from projections.runner import Runner, verify
from projections.schema import SCHEMA_VERSION, merchant_compliance, projection_meta
from tests.e2e.test_cli import run
from tests.integration.test_projections import project, rows, stored, views
from tests.integration.test_projections_kinds import counters
from tests.scenario import DAY, GOODS, HOUR, T0, Scenario

__all__ = ["views"]  # the read models of the durable ledger (a fixture)

MINUTE = HOUR / 60
#: What `reconciled` records for merchant M1, by class (and one account that agrees).
M1 = {"outcome": 1, "actor": 2, "amount": 1, "deadline": 1, "time": 1}


def reconciled(ledger: Ledger) -> None:
    """Merchant M1's platform reports one approval that agrees and six accounts that
    differ, of every class (one differs two ways: it counts once, as `actor`), over two
    business days; merchant M2's platform says an order was cancelled that was not."""
    s = Scenario(ledger, order_id="D1").to_requested()
    s.do("approve_return")  # by the merchant, 2026-03-03T13:00+08:00
    approved = s.now
    s.now += 4 * HOUR

    def account(ref: str, fact: str, **fields: object) -> None:
        s.do("reconcile", 10 * MINUTE, source="douyin", ref=ref, fact=fact,
             tolerance=600, **fields)

    account("agree", "approved", by="merchant", step_at=approved + 5 * MINUTE)
    account("time", "approved", by="merchant", step_at=approved + 2 * HOUR)
    account("actor", "approved", by="system", step_at=approved)
    account("rejected", "rejected", by="merchant", step_at=approved)
    s.now += DAY  # the next business day, 2026-03-04
    account("actor.time", "approved", by="system", step_at=approved + 3 * HOUR)
    account("deadline", "deadline", deadline=approved + 30 * DAY)
    refunded = Scenario(ledger, order_id="R1").to_received()  # the platform refunds
    refunded.do("reconcile", source="douyin", ref="amount", fact="refunded",
                amount=GOODS - 100, step_at=refunded.now - HOUR, tolerance=600)
    other = Scenario(ledger, order_id="B1", merchant_id="M2")
    other.do("reconcile", source="douyin", ref="cancel", fact="cancelled", by="user",
             step_at=other.now)


def by_class(found: Mapping[str, Any]) -> dict[str, Any]:
    return {kind: found[column] for kind, column in DISCREPANCY_COUNTERS.items()}


def test_a_discrepancy_counts_once_under_its_most_serious_class(
    durable_ledger: Ledger, views: ReadModels,
) -> None:
    reconciled(durable_ledger)
    project(durable_ledger, views)
    listed = list_discrepancies(views)
    assert [(d["ref"], d["discrepancy"], d["kinds"]) for d in listed
            if d["ref"] == "actor.time"] == [("actor.time", "actor", "actor,time")]
    c = counters(views, "M1")
    assert by_class(c) == M1
    assert (c["discrepancies"], c["platform_agreed"]) == (6, 1)
    assert by_class(counters(views, "M2")) == {**dict.fromkeys(M1, 0), "outcome": 1}
    # the rows of `discrepancies`, per merchant and class, say the same
    assert Counter((d["merchant_id"], d["discrepancy"]) for d in listed) == Counter(
        {("M1", kind): n for kind, n in M1.items()} | {("M2", "outcome"): 1})
    # per business day, each day's classes add up to its total
    days = {r["business_day"]: r for r in rows(views, merchant_compliance, merchant_id="M1")
            if r["discrepancies"] or r["platform_agreed"]}
    assert {day: by_class(r) for day, r in days.items()} == {
        date(2026, 3, 3): {"outcome": 1, "actor": 1, "amount": 0, "deadline": 0, "time": 1},
        date(2026, 3, 4): {"outcome": 0, "actor": 1, "amount": 1, "deadline": 1, "time": 0},
    }
    for row in rows(views, merchant_compliance):
        assert row["discrepancies"] == sum(by_class(row).values())


def test_the_scorecard_counts_by_class_and_its_total_adds_up(
    durable_ledger: Ledger, views: ReadModels,
) -> None:
    reconciled(durable_ledger)
    project(durable_ledger, views)
    found, total = scorecard_with_total(views)
    by = {r["merchant_id"]: r for r in found}
    assert by_class(by["M1"]) == M1 and by["M1"]["discrepancies"] == 6
    assert by_class(by["M2"])["outcome"] == by["M2"]["discrepancies"] == 1
    for column in ("discrepancies", *DISCREPANCY_CLASSES):
        assert total[column] == sum(r[column] for r in found)
    assert by_class(total) == {**M1, "outcome": 2}
    assert list(SCORECARD[SCORECARD.index("discrepancies"):][:6]) == [
        "discrepancies", *DISCREPANCY_CLASSES]
    assert scorecard_table(total) == SCORECARD  # a feed reported some: the split is shown
    # a window of one business day counts that day's
    start = T0 + 3 * DAY - 10 * HOUR  # 2026-03-04T00:00+08:00
    _, day = scorecard_with_total(views, start, start + DAY)
    assert by_class(day) == {"outcome": 0, "actor": 1, "amount": 1, "deadline": 1,
                             "time": 0}


def test_report_shows_the_classes_in_json_csv_and_the_table(
    durable_ledger: Ledger, views: ReadModels, tmp_path: Path,
) -> None:
    reconciled(durable_ledger)
    project(durable_ledger, views)
    db = durable_ledger.url
    as_json = {r["merchant_id"]: r for r in json.loads(
        run("report", "--format", "json", "--db", db, cwd=tmp_path).stdout)}
    assert list(as_json["M1"]) == list(SCORECARD)
    assert by_class(as_json["M1"]) == M1 and as_json["M1"]["discrepancies"] == 6
    assert by_class(as_json["M2"])["outcome"] == 1
    as_csv = {r["merchant_id"]: r for r in csv.DictReader(io.StringIO(
        run("report", "--format", "csv", "--db", db, cwd=tmp_path).stdout))}
    assert {k: int(v) for k, v in by_class(as_csv["M1"]).items()} == M1
    table = run("report", "--db", db, cwd=tmp_path).stdout.split("\n\n", 1)[1].splitlines()
    head = re.split(r"\s{2,}", table[0])
    assert head[head.index("discrepancies"):][:6] == ["discrepancies", *DISCREPANCY_CLASSES]
    shown = {line.split()[0]: re.split(r"\s{2,}", line) for line in table[1:]}
    total = shown["(total)"]
    assert [total[head.index(c)] for c in ("discrepancies", *DISCREPANCY_CLASSES)] == [
        "7", "2", "2", "1", "1", "1"]
    for column in ("discrepancies", *DISCREPANCY_CLASSES):
        assert int(total[head.index(column)]) == sum(
            int(shown[m][head.index(column)]) for m in ("M1", "M2"))


def test_without_a_discrepancy_the_table_leaves_the_classes_out(
    durable_ledger: Ledger, views: ReadModels, tmp_path: Path,
) -> None:
    s = Scenario(durable_ledger).to_requested()
    s.do("approve_return")
    s.do("reconcile", source="douyin", ref="agree", fact="approved", by="merchant",
         step_at=s.now)
    project(durable_ledger, views)
    _, total = scorecard_with_total(views)
    assert (total["platform_agreed"], total["discrepancies"]) == (1, 0)
    assert not set(scorecard_table(total)) & set(DISCREPANCY_CLASSES)
    head = run("report", "--db", durable_ledger.url, cwd=tmp_path).stdout.split(
        "\n\n", 1)[1].splitlines()[0].split()
    assert "discrepancies" in head and not set(head) & set(DISCREPANCY_CLASSES)
    (row,) = json.loads(run("report", "--format", "json", "--db", durable_ledger.url,
                            cwd=tmp_path).stdout)
    assert by_class(row) == dict.fromkeys(M1, 0)  # a program always has every field


@pytest.mark.parametrize("page,workers", [(3, 1), (3, 3)])
def test_a_rebuild_counts_the_classes_as_the_runner_did(
    durable_ledger: Ledger, views: ReadModels, page: int, workers: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reconciled(durable_ledger)
    project(durable_ledger, views)
    before = stored(views)
    assert verify(durable_ledger, views) == []
    monkeypatch.setattr(rebuild_module, "PAGE", page)  # an order's counts across pages
    Runner(durable_ledger, views, batch=3).rebuild(workers=workers)
    assert stored(views) == before
    assert by_class(counters(views, "M1")) == M1


def test_read_models_of_the_version_before_the_classes_are_replayed(
    durable_ledger: Ledger, views: ReadModels,
) -> None:
    reconciled(durable_ledger)
    project(durable_ledger, views)
    with views.engine.begin() as conn:  # as the previous version left them
        for column in DISCREPANCY_CLASSES:
            conn.execute(text(f"ALTER TABLE merchant_compliance DROP COLUMN {column}"))
        conn.execute(update(projection_meta).values(schema_version=SCHEMA_VERSION - 1))
    older = ReadModels(views.url)
    try:
        runner = Runner(durable_ledger, older)
        assert older.rebuilt_for_version
        runner.catch_up()
        assert by_class(counters(older, "M1")) == M1
        assert verify(durable_ledger, older) == []
    finally:
        older.close()
