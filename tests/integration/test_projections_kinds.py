"""Read models of the after-sale kinds (SPEC section 7) and deadline changes (section 9):
the case's kind and exchange steps, one row per deadline change, violations and compliance
counted per kind, pending deadlines that were moved; the rebuild stores the same."""

from __future__ import annotations

from typing import Any

import pytest

from aftersales import Ledger
from projections.database import ReadModels
from projections.queries import scorecard
from projections.runner import Runner
from projections.schema import (
    deadline_changes,
    merchant_compliance,
    order_status,
    pending_deadlines,
    return_cases,
    violations,
)
from tests.integration.test_projections import one, project, rows, stored, views

__all__ = ["views"]  # the read models of the durable ledger (a fixture)
from tests.scenario import DAY, GOODS, HOUR, POSTAGE, SECOND, T0, Scenario


def counters(views: ReadModels, merchant: str = "M1") -> dict[str, Any]:
    found = rows(views, merchant_compliance, merchant_id=merchant)
    total: dict[str, Any] = {}
    for row in found:
        for k, v in row.items():
            if isinstance(v, int) and not isinstance(v, bool):
                total[k] = total.get(k, 0) + v
    return total


def test_refund_before_shipment_rows(durable_ledger: Ledger, views: ReadModels) -> None:
    s = Scenario(durable_ledger, "online").to_refund_before_shipment()
    durable_ledger.tick(s.now + 48 * HOUR + SECOND)
    project(durable_ledger, views)
    case = one(views, return_cases, order_id="D1")
    assert (case["kind"], case["before_shipment"], case["status"], case["decided_by"],
            case["paid_to_user_fen"]) == ("refund", True, "refunded", "system", GOODS + POSTAGE)
    order = one(views, order_status, order_id="D1")
    assert (order["order_status"], order["case_kind"], order["refunded_total_fen"],
            order["next_deadline"]) == ("cancelled", "refund", GOODS + POSTAGE, None)
    v = one(views, violations, order_id="D1")
    assert (v["kind"], v["rule"], v["consequence"], v["penalty"]) == (
        "refund", "REFUND_RESPONSE_48H", "auto_refunded", False)
    c = counters(views)
    assert (c["cases_opened"], c["refund_cases_opened"], c["refunds_auto_approved"],
            c["answered_on_time"]) == (1, 1, 1, 0)


def test_refund_after_shipment_keeps_the_order_and_its_deadline(
    durable_ledger: Ledger, views: ReadModels,
) -> None:
    s = Scenario(durable_ledger, "online").to_refund_after_shipment(amount=3000)
    s.do("deliver")  # the refund's deadline still runs
    project(durable_ledger, views)
    order = one(views, order_status, order_id="D1")
    assert (order["order_status"], order["next_deadline_rule"], order["awaiting"]) == (
        "delivered", "F-2", "merchant")
    assert one(views, pending_deadlines, order_id="D1")["rule"] == "F-2"
    s.do("approve_return")
    project(durable_ledger, views)
    case = one(views, return_cases, order_id="D1")
    assert (case["kind"], case["before_shipment"], case["status"], case["paid_to_user_fen"]) == (
        "refund", False, "refunded", 3000)
    assert rows(views, pending_deadlines, order_id="D1") == []
    assert counters(views)["answered_on_time"] == 1


@pytest.mark.parametrize("payment", ["online", "cod"])
def test_exchange_steps_and_a_late_replacement(durable_ledger: Ledger, views: ReadModels,
                                               payment: str) -> None:
    done = Scenario(durable_ledger, payment, order_id="X1").to_exchange_received()
    done.do("ship_replacement", carrier="SF", tracking_no="SF2")
    done.do("deliver_replacement", DAY)
    late = Scenario(durable_ledger, payment, order_id="X2").to_exchange_received()
    durable_ledger.tick(late.now + 48 * HOUR + SECOND)
    project(durable_ledger, views)
    x1 = one(views, return_cases, order_id="X1")
    assert (x1["kind"], x1["status"], x1["replacement_carrier"],
            x1["replacement_tracking_no"], x1["converted_to_refund"], x1["paid_to_user_fen"]) == (
        "exchange", "exchanged", "SF", "SF2", False, 0)
    assert x1["replacement_shipped_at"] < x1["replacement_delivered_at"] == x1["ended_at"]
    x2 = one(views, return_cases, order_id="X2")
    assert (x2["status"], x2["converted_to_refund"], x2["paid_to_user_fen"]) == (
        "refunded" if payment == "online" else "compensated", True, GOODS)
    assert x2["merchant_debt_fen"] == (GOODS if payment == "cod" else 0)
    v = one(views, violations, order_id="X2")
    assert (v["kind"], v["rule"], v["consequence"], v["penalty"]) == (
        "exchange", "EXCHANGE_RESHIP_48H", "converted_to_refund", payment == "cod")
    c = counters(views)
    assert (c["exchange_cases_opened"], c["reships_late"]) == (2, 1)
    assert c["compensations_paid"] == (1 if payment == "cod" else 0)
    card = {r["merchant_id"]: r for r in scorecard(views)}["M1"]
    assert card["violations"] == 1 and card["reships_late"] == 1


def test_deadline_changes_rows_and_moved_pending_deadlines(
    durable_ledger: Ledger, views: ReadModels,
) -> None:
    s = Scenario(durable_ledger, "online").to_in_transit()
    old = s.now + 7 * DAY
    s.do("extend_deadline")
    s.do("set_deadline", until=old + 10 * DAY, reason="holiday")
    unpaid = Scenario(durable_ledger, "online", order_id="U1")
    unpaid.do("set_deadline", at=T0 + HOUR, until=T0 + 3 * DAY, reason="feed")
    project(durable_ledger, views)
    changes = sorted(rows(views, deadline_changes), key=lambda r: r["position"])
    assert [(r["order_id"], r["case_no"], r["kind"], r["change"], r["changed_by"],
             r["deadline_rule"], r["shift_seconds"]) for r in changes] == [
        ("D1", 1, "return", "D-1", "merchant", "R-3", 7 * 86400),
        ("D1", 1, "return", "D-2", "platform", "R-3", 3 * 86400),
        ("U1", None, None, "D-2", "platform", "C-ON-4", 2 * 86400)]
    assert changes[1]["old_deadline"] == old + 7 * DAY
    assert changes[1]["new_deadline"] == old + 10 * DAY
    assert changes[1]["reason"] == "holiday"
    case = one(views, return_cases, order_id="D1")
    assert (case["deadline_changes"], case["deadline_changed_by"],
            case["deadline_shift_seconds"]) == (2, "merchant,platform", 10 * 86400)
    pending = one(views, pending_deadlines, order_id="D1")
    assert (pending["deadline"], pending["original_deadline"]) == (old + 10 * DAY, old)
    assert one(views, pending_deadlines, order_id="U1")["original_deadline"] == (
        T0 + 24 * HOUR)
    assert counters(views)["deadlines_extended"] == 1
    s.do("confirm_receipt")
    project(durable_ledger, views)
    assert rows(views, pending_deadlines, order_id="D1") == []


def test_receipt_rejected_rows(durable_ledger: Ledger, views: ReadModels) -> None:
    s = Scenario(durable_ledger, "cod").to_in_transit()
    s.do("reject_receipt", reason="not the item sold")
    project(durable_ledger, views)
    case = one(views, return_cases, order_id="D1")
    assert (case["status"], case["reject_reason"], case["decision"]) == (
        "rejected", "not the item sold", "approved")
    assert case["receipt_rejected_at"] == case["ended_at"]
    assert counters(views)["receipts_rejected"] == 1


def test_rebuild_of_every_kind_stores_what_the_runner_stored(
    durable_ledger: Ledger, views: ReadModels,
) -> None:
    for n, payment in enumerate(["online", "cod"]):
        Scenario(durable_ledger, payment, order_id=f"E{n}").to_exchange_received()
        t = Scenario(durable_ledger, payment, order_id=f"T{n}").to_in_transit()
        t.do("extend_deadline")
    Scenario(durable_ledger, "online", order_id="F1").to_refund_before_shipment()
    Scenario(durable_ledger, "online", order_id="F2").to_refund_after_shipment()
    durable_ledger.tick(T0 + 40 * DAY)
    project(durable_ledger, views)
    before = stored(views)
    Runner(durable_ledger, views, batch=3).rebuild(workers=1)
    after = stored(views)
    assert before == after
    assert before["deadline_changes"] and before["violations"]
