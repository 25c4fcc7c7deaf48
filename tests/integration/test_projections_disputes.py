"""Read models of platform intervention (SPEC section 8): one `disputes` row per appeal,
the case's arbitration columns, who is awaited while it runs, the evidence violation, and
the merchants' disputes opened, lost, won and missed; the rebuild stores the same (I6)."""

from __future__ import annotations

import json

from aftersales import Ledger
from projections.database import ReadModels
from projections.queries import list_disputes, list_violations, loss_rate, scorecard
from projections.schema import disputes, order_status, pending_deadlines, return_cases
from tests.integration.test_projections import (
    assert_rebuild_stores_what_was_projected,
    one,
    project,
    rows,
    views,
)
from tests.integration.test_projections_kinds import counters
from tests.scenario import DAY, GOODS, HOUR, SECOND, T0, Scenario

__all__ = ["views"]  # the read models of the durable ledger (a fixture)


def test_an_appeal_ruled_by_the_platform_fills_its_disputes_row(
    durable_ledger: Ledger, views: ReadModels,
) -> None:
    s = Scenario(durable_ledger).to_appealed()
    opened = s.now
    project(durable_ledger, views)
    d = one(views, disputes, order_id="D1")
    assert (d["case_no"], d["kind"], d["status"], d["rejected"], d["appeal_reason"],
            d["opened_at"], d["evidence_deadline"], d["evidence_count"]) == (
        1, "return", "open", "request", "it was not used", opened, opened + 48 * HOUR, 0)
    order = one(views, order_status, order_id="D1")
    assert (order["case_status"], order["awaiting"], order["next_deadline_rule"]) == (
        "arbitrating", "merchant", "A-2")
    assert one(views, pending_deadlines, order_id="D1")["rule"] == "A-2"

    s.do("submit_evidence", evidence=["IMG-1", "IMG-2"], note="worn")
    project(durable_ledger, views)
    order = one(views, order_status, order_id="D1")
    assert (order["awaiting"], order["next_deadline"]) == ("platform", None)
    assert rows(views, pending_deadlines, order_id="D1") == []

    s.do("arbitrate", 5 * HOUR, outcome="user", blame="both", note="half each")
    project(durable_ledger, views)
    d = one(views, disputes, order_id="D1")
    assert (d["status"], d["ruled_by"], d["outcome"], d["blame"], d["lost"],
            d["resumed_as"], d["evidence_count"], json.loads(d["evidence"])) == (
        "ruled", "platform", "user", "both", True, "approved", 2, ["IMG-1", "IMG-2"])
    assert d["hours_to_ruling"] == 6.0
    case = one(views, return_cases, order_id="D1")
    assert (case["status"], case["arbitration"], case["outcome"], case["blame"],
            case["decided_by"], case["ended_at"]) == (
        "approved", "ruled", "user", "both", "merchant", None)
    order = one(views, order_status, order_id="D1")
    assert (order["awaiting"], order["next_deadline_rule"]) == ("user", "R-2")
    c = counters(views)
    assert (c["disputes_opened"], c["disputes_lost"], c["disputes_won"],
            c["evidence_missed"]) == (1, 1, 0, 0)


def test_missed_evidence_is_a_violation_and_a_lost_dispute(
    durable_ledger: Ledger, views: ReadModels,
) -> None:
    s = Scenario(durable_ledger, "online").to_refund_after_shipment()
    s.do("reject_return", reason="it was delivered")
    s.do("appeal", reason="it was not")
    deadline = s.now + 48 * HOUR
    durable_ledger.tick(deadline + SECOND)
    project(durable_ledger, views)
    d = one(views, disputes, order_id="D1")
    assert (d["kind"], d["ruled_by"], d["ruled_at"], d["outcome"], d["blame"], d["lost"],
            d["resumed_as"]) == ("refund", "system", deadline, "user", "merchant", True,
                                 "refunded")
    case = one(views, return_cases, order_id="D1")
    assert (case["status"], case["paid_to_user_fen"]) == ("refunded", GOODS)
    assert [(v["rule"], v["consequence"]) for v in list_violations(
        views, rule="ARBITRATION_EVIDENCE_48H")] == [
        ("ARBITRATION_EVIDENCE_48H", "ruled_for_user")]
    c = counters(views)
    assert (c["disputes_opened"], c["disputes_lost"], c["evidence_missed"]) == (1, 1, 1)


def test_a_dispute_won_by_the_merchant_and_the_scorecard_s_loss_rate(
    durable_ledger: Ledger, views: ReadModels,
) -> None:
    won = Scenario(durable_ledger, "cod", order_id="W1").to_appealed()
    won.do("submit_evidence", evidence=["IMG-1"])
    won.do("arbitrate", outcome="merchant", blame="user")
    lost = Scenario(durable_ledger, "online", order_id="L1").to_appealed()
    lost.do("arbitrate", outcome="user", blame="merchant")
    for n in range(3):
        Scenario(durable_ledger, "online", order_id=f"P{n}")
    project(durable_ledger, views)
    assert one(views, disputes, order_id="W1")["lost"] is False
    assert one(views, return_cases, order_id="W1")["status"] == "rejected"
    c = counters(views)
    assert (c["orders_placed"], c["disputes_opened"], c["disputes_lost"],
            c["disputes_won"]) == (5, 2, 1, 1)
    (card,) = scorecard(views)
    assert card["dispute_loss_per_1000_orders"] == 200.0  # 1 lost of 5 orders
    found = list_disputes(views, merchant="M1")
    assert [(r["order_id"], r["outcome"], r["lost"]) for r in found] == [
        ("L1", "user", True), ("W1", "merchant", False)]  # opened at once: by order
    assert [r["order_id"] for r in list_disputes(views, lost=True)] == ["L1"]


def test_moving_the_evidence_deadline_moves_the_disputes_row(
    durable_ledger: Ledger, views: ReadModels,
) -> None:
    s = Scenario(durable_ledger).to_appealed()
    until = s.now + 5 * DAY
    s.do("set_deadline", until=until, reason="holiday")
    project(durable_ledger, views)
    assert one(views, disputes, order_id="D1")["evidence_deadline"] == until


def test_rebuild_of_disputes_stores_what_the_runner_stored_I6(
    durable_ledger: Ledger, views: ReadModels,
) -> None:
    for n, payment in enumerate(["online", "cod"]):
        a = Scenario(durable_ledger, payment, order_id=f"A{n}").to_appealed()
        a.do("submit_evidence", evidence=["IMG-1"], note="n")
        a.do("arbitrate", outcome="user", blame="merchant")
        Scenario(durable_ledger, payment, order_id=f"M{n}").to_appealed()  # evidence missed
        b = Scenario(durable_ledger, payment, order_id=f"B{n}").to_appealed()
        b.do("arbitrate", outcome="merchant", blame="creator")
    assert_rebuild_stores_what_was_projected(durable_ledger, views, T0 + 60 * DAY, disputes=6)


def test_the_loss_rate_rounds_halves_up_as_sql_does() -> None:
    assert loss_rate(1, 1600) == 0.63  # 0.625: Python's round would give 0.62
    assert loss_rate(1, 3) == 333.33 and loss_rate(0, 5) == 0.0 and loss_rate(2, 0) is None
