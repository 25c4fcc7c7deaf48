"""SPEC section 4: a violation for every missed merchant deadline (I5), user lapses apart."""

from __future__ import annotations

from aftersales import Ledger
from tests.scenario import DAY, HOUR, SECOND, Scenario


def rules(s: Scenario, key: str) -> list[str]:
    return [v["rule"] for v in s.doc[key]]


def test_RETURN_RESPONSE_48H_one_violation_per_missed_answer(ledger: Ledger) -> None:
    s = Scenario(ledger, "cod").to_requested()
    s.tick(48 * HOUR + SECOND)
    s.tick(HOUR)  # a second sweep records nothing more
    assert rules(s, "violations") == ["RETURN_RESPONSE_48H"]
    assert s.doc["violations"][0]["consequence"] == "auto_approved"


def test_RECEIPT_CONFIRM_7D_one_violation_per_missed_receipt(ledger: Ledger) -> None:
    s = Scenario(ledger, "online").to_in_transit()
    s.tick(7 * DAY + SECOND)
    assert rules(s, "violations") == ["RECEIPT_CONFIRM_7D"]


def test_COD_REFUND_VOUCHER_48H_violation_with_penalty(ledger: Ledger) -> None:
    s = Scenario(ledger, "cod").to_received()
    s.tick(48 * HOUR + SECOND)
    assert s.doc["violations"] == [{
        "rule": "COD_REFUND_VOUCHER_48H", "case": 1,
        "deadline": (s.now - SECOND).isoformat(), "consequence": "advance_compensated",
        "penalty": True}]


def test_no_violation_when_every_merchant_deadline_is_met(ledger: Ledger) -> None:
    s = Scenario(ledger, "cod").to_received()
    s.do("upload_refund_voucher", voucher_ref="V", amount=9900)
    s.tick(60 * DAY)
    assert s.doc["violations"] == [] and s.doc["lapses"] == []


def test_UNPAID_24H_is_a_user_lapse_not_a_violation(ledger: Ledger) -> None:
    s = Scenario(ledger, "online")
    s.tick(2 * DAY)
    assert rules(s, "lapses") == ["UNPAID_24H"] and s.doc["violations"] == []


def test_RETURN_TRACKING_7D_is_a_user_lapse_not_a_violation(ledger: Ledger) -> None:
    s = Scenario(ledger, "online").to_approved()
    s.tick(8 * DAY)
    assert rules(s, "lapses") == ["RETURN_TRACKING_7D"] and s.doc["violations"] == []


def test_a_violation_names_order_merchant_case_rule_deadline_and_consequence(
    ledger: Ledger,
) -> None:
    s = Scenario(ledger, "online", order_id="D7", merchant_id="M9").to_requested()
    s.tick(3 * DAY)
    doc = s.doc
    assert (doc["order_id"], doc["merchant_id"]) == ("D7", "M9")
    assert set(doc["violations"][0]) >= {"rule", "case", "deadline", "consequence"}


def test_REFUND_RESPONSE_48H_one_violation_per_unanswered_refund(ledger: Ledger) -> None:
    s = Scenario(ledger, "online").to_refund_after_shipment()
    s.tick(48 * HOUR + SECOND)
    s.tick(HOUR)
    assert rules(s, "violations") == ["REFUND_RESPONSE_48H"]
    assert s.doc["violations"][0]["consequence"] == "auto_refunded"


def test_EXCHANGE_RESHIP_48H_one_violation_per_late_replacement_penalised_for_cod(
    ledger: Ledger,
) -> None:
    for payment, order_id in (("online", "X1"), ("cod", "X2")):
        s = Scenario(ledger, payment, order_id=order_id).to_exchange_received()
        s.tick(48 * HOUR + SECOND)
        s.tick(DAY)
        assert [(v["rule"], v["consequence"], v["penalty"]) for v in s.doc["violations"]] == [
            ("EXCHANGE_RESHIP_48H", "converted_to_refund", payment == "cod")]
