"""Read models of what a platform feed records (docs/platforms/douyin.md): the case's
platform reference, an amended amount and unknown tracking on the `return_cases` row; a
withdrawn appeal and a ruling whose blame is given later on the `disputes` row and in the
merchants' counters (unknown-blame disputes apart from lost and won ones, moved on the
ruling's business day when the blame is recorded); the order's cancellation reconciled
without a case, with its tolerance; the rebuild stores the same (I6)."""

from __future__ import annotations

from datetime import date

from aftersales import Ledger
from projections.database import ReadModels
from projections.queries import (
    disputes_by_merchant,
    list_discrepancies,
    list_disputes,
    scorecard_with_total,
)
from projections.runner import verify
from projections.schema import (
    discrepancies,
    disputes,
    merchant_compliance,
    order_status,
    pending_deadlines,
    return_cases,
)
from tests.integration.test_projections import (
    assert_rebuild_stores_what_was_projected,
    one,
    project,
    rows,
    views,
)
from tests.integration.test_projections_kinds import counters
from tests.scenario import DAY, HOUR, SECOND, T0, Scenario

__all__ = ["views"]  # the read models of the durable ledger (a fixture)

REF = "7130036489474212096"


def test_the_case_row_keeps_its_ref_follows_an_amendment_and_shows_unknown_tracking(
    durable_ledger: Ledger, views: ReadModels,
) -> None:
    s = Scenario(durable_ledger).to_delivered()
    s.do("request_return", amount=5000, reason="one broken", case_ref=REF)
    project(durable_ledger, views)
    case = one(views, return_cases, order_id="D1")
    assert (case["case_ref"], case["amount_fen"], case["amended_at"]) == (REF, 5000, None)
    s.do("amend_request", amount=7000, reason="two broken")
    amended = s.now
    project(durable_ledger, views)
    case = one(views, return_cases, order_id="D1")
    assert (case["amount_fen"], case["reason"], case["amended_at"], case["status"]) == (
        7000, "two broken", amended, "requested")
    assert one(views, pending_deadlines, order_id="D1")["deadline"] == amended - HOUR + 48 * HOUR
    s.do("approve_return")
    s.do("submit_tracking")
    s.do("confirm_receipt", DAY)
    project(durable_ledger, views)
    case = one(views, return_cases, order_id="D1")
    assert (case["carrier"], case["tracking_no"], case["status"], case["paid_to_user_fen"]) == (
        None, None, "refunded", 7000)


def test_a_withdrawn_appeal_is_neither_lost_nor_won(
    durable_ledger: Ledger, views: ReadModels,
) -> None:
    s = Scenario(durable_ledger).to_appealed()
    s.do("withdraw_appeal")
    withdrawn = s.now
    durable_ledger.tick(s.now + 5 * DAY)  # past the evidence deadline: nothing happens
    project(durable_ledger, views)
    d = one(views, disputes, order_id="D1")
    assert (d["status"], d["withdrawn_at"], d["ruled_at"], d["outcome"], d["blame"],
            d["lost"]) == ("withdrawn", withdrawn, None, None, None, None)
    case = one(views, return_cases, order_id="D1")
    assert (case["status"], case["arbitration"], case["ended_at"]) == (
        "rejected", "withdrawn", withdrawn)
    order = one(views, order_status, order_id="D1")
    assert (order["case_status"], order["awaiting"], order["next_deadline"]) == (
        "rejected", None, None)
    assert rows(views, pending_deadlines, order_id="D1") == []
    c = counters(views)
    assert (c["disputes_opened"], c["disputes_lost"], c["disputes_won"],
            c["disputes_unknown_blame"], c["evidence_missed"]) == (1, 0, 0, 0, 0)
    assert [r["order_id"] for r in list_disputes(views, status="withdrawn")] == ["D1"]
    (summary,) = disputes_by_merchant(views)
    assert (summary["withdrawn"], summary["open"], summary["lost"], summary["won"]) == (
        1, 0, 0, 0)


def test_an_unknown_blame_is_counted_apart_then_moves_on_the_ruling_s_day(
    durable_ledger: Ledger, views: ReadModels,
) -> None:
    lost = Scenario(durable_ledger, order_id="L1").to_appealed()
    lost.do("arbitrate", outcome="user", blame="unknown")
    ruled_day = lost.now.date()
    won = Scenario(durable_ledger, "cod", order_id="W1").to_appealed()
    won.do("arbitrate", outcome="merchant", blame="unknown")
    project(durable_ledger, views)
    d = one(views, disputes, order_id="L1")
    assert (d["status"], d["outcome"], d["blame"], d["lost"]) == (
        "ruled", "user", "unknown", None)
    assert one(views, return_cases, order_id="L1")["blame"] == "unknown"
    c = counters(views)
    assert (c["disputes_lost"], c["disputes_won"], c["disputes_unknown_blame"]) == (0, 0, 2)
    assert [r["order_id"] for r in list_disputes(views, blame="unknown")] == ["L1", "W1"]
    assert list_disputes(views, lost=True) == []
    (summary,) = disputes_by_merchant(views)
    assert (summary["unknown_blame"], summary["lost"], summary["won"]) == (2, 0, 0)

    lost.do("record_blame", 3 * DAY, blame="both")  # days later
    won.do("record_blame", 3 * DAY, blame="user")
    project(durable_ledger, views)
    d = one(views, disputes, order_id="L1")
    assert (d["blame"], d["lost"]) == ("both", True)
    assert (one(views, disputes, order_id="W1")["lost"],
            one(views, return_cases, order_id="W1")["blame"]) == (False, "user")
    c = counters(views)
    assert (c["disputes_lost"], c["disputes_won"], c["disputes_unknown_blame"]) == (1, 1, 0)
    day = one(views, merchant_compliance, merchant_id="M1", business_day=ruled_day)
    assert (day["disputes_lost"], day["disputes_won"], day["disputes_unknown_blame"]) == (
        1, 1, 0)  # on the ruling's business day, not the blame's
    assert ruled_day == date(2026, 3, 4)
    assert verify(durable_ledger, views) == []


def test_the_scorecard_shows_unknown_blame_apart_and_its_total_adds_up(
    durable_ledger: Ledger, views: ReadModels,
) -> None:
    Scenario(durable_ledger, order_id="A1", merchant_id="M1").to_appealed().do(
        "arbitrate", outcome="user", blame="unknown")
    Scenario(durable_ledger, order_id="B1", merchant_id="M2").to_appealed().do(
        "arbitrate", outcome="user", blame="merchant")
    c = Scenario(durable_ledger, order_id="C1", merchant_id="M2").to_appealed()
    c.do("arbitrate", outcome="merchant", blame="unknown")
    project(durable_ledger, views)
    rows_, total = scorecard_with_total(views)
    by = {r["merchant_id"]: r for r in rows_}
    assert (by["M1"]["disputes_unknown_blame"], by["M1"]["disputes_lost"]) == (1, 0)
    assert (by["M2"]["disputes_unknown_blame"], by["M2"]["disputes_lost"]) == (1, 1)
    for column in ("disputes_unknown_blame", "disputes_lost", "disputes_won",
                   "disputes_opened"):
        assert total[column] == sum(r[column] for r in rows_)
    assert total["disputes_unknown_blame"] == 2
    # a window of the ruling's day holds the blame recorded later
    c.do("record_blame", 2 * DAY, blame="user")
    project(durable_ledger, views)
    start = T0 + 3 * DAY - 10 * HOUR  # 2026-03-04T00:00+08:00: the rulings' day
    rows_, total = scorecard_with_total(views, start, start + DAY)
    assert (total["disputes_unknown_blame"], total["disputes_lost"],
            total["disputes_won"]) == (1, 1, 1)


def test_the_order_s_cancellation_reconciled_has_no_case_and_keeps_the_tolerance(
    durable_ledger: Ledger, views: ReadModels,
) -> None:
    s = Scenario(durable_ledger)
    s.tick(25 * HOUR)  # C-ON-4
    s.do("reconcile", source="douyin", ref="m1", fact="cancelled", by="system",
         step_at=T0 + 24 * HOUR + 5 * 60 * SECOND, tolerance=600)
    s.do("reconcile", source="douyin", ref="m2", fact="cancelled", by="user",
         step_at=T0 + 24 * HOUR, tolerance=600)
    project(durable_ledger, views)
    (found,) = list_discrepancies(views)
    assert (found["case_no"], found["kind"], found["fact"], found["discrepancy"],
            found["tolerance_seconds"]) == (None, None, "cancelled", "actor", 600)
    assert one(views, discrepancies, ref="m2")["ledger"].startswith("cancelled by system")
    c = counters(views)
    assert (c["platform_agreed"], c["discrepancies"]) == (1, 1)


def test_rebuild_of_the_feed_s_rows_stores_what_the_runner_stored_I6(
    durable_ledger: Ledger, views: ReadModels,
) -> None:
    for n, payment in enumerate(["online", "cod"]):
        a = Scenario(durable_ledger, payment, order_id=f"A{n}").to_appealed()
        a.do("arbitrate", outcome="user", blame="unknown")
        a.do("record_blame", 2 * DAY, blame="merchant")
        Scenario(durable_ledger, payment, order_id=f"U{n}").to_appealed().do(
            "arbitrate", outcome="merchant", blame="unknown")
        Scenario(durable_ledger, payment, order_id=f"W{n}").to_appealed().do(
            "withdraw_appeal")
        r = Scenario(durable_ledger, payment, order_id=f"R{n}").to_delivered()
        r.do("request_exchange", amount=3000, reason="size", case_ref=f"{REF}{n}")
        r.do("amend_request", amount=4000)
        r.do("approve_return")
        r.do("submit_tracking")
        r.do("reconcile", source="douyin", ref="m", fact="approved", step_at=r.now,
             case=1, tolerance=60)
    assert_rebuild_stores_what_was_projected(durable_ledger, views, T0 + 60 * DAY, disputes=6)
