"""SPEC section 7: refund-only before and after shipment (F-1, F-2, F-3), exchange (E-1,
E-2) and refused returned goods (R-6), with their deadlines, boundaries and cascades."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from aftersales import Ledger, Policy
from tests.scenario import DAY, GOODS, HOUR, POSTAGE, SECOND, Scenario

BOTH = pytest.mark.parametrize("payment", ["online", "cod"])


def violations(s: Scenario) -> list[tuple[str, str, bool]]:
    return [(v["rule"], v["consequence"], v["penalty"]) for v in s.doc["violations"]]


# --- F-1: refund before shipment ----------------------------------------------------------

def test_F_1_an_approved_refund_before_shipment_refunds_the_whole_order_and_cancels_it(
    ledger: Ledger,
) -> None:
    s = Scenario(ledger, "online").to_refund_before_shipment()
    assert s.doc["return"] == {"case": 1, "status": "requested", "awaiting": "merchant",
                               "deadline": (s.now + 48 * HOUR).isoformat(),
                               "amount": GOODS + POSTAGE, "kind": "refund",
                               "case_ref": None, "carrier": None, "tracking_no": None,
                               "replacement_carrier": None, "replacement_tracking_no": None,
                               "arbitration": None}
    s.do("approve_return", 48 * HOUR)  # exactly at the deadline: on time
    assert s.event_names()[-3:] == ["RefundApproved", "PlatformRefunded",
                                    "OrderCancelledByRefund"]
    assert s.last("PlatformRefunded").rule == "F-1"  # type: ignore[attr-defined]
    assert (s.case_status, s.order_status) == ("refunded", "cancelled")
    assert s.doc["refunded_total"] == GOODS + POSTAGE
    assert s.doc["return"]["awaiting"] is None and s.doc["violations"] == []


def test_F_1_the_merchant_refuses_by_shipping(ledger: Ledger) -> None:
    s = Scenario(ledger, "online").to_refund_before_shipment()
    s.do("ship", carrier="SF", tracking_no="SF1")
    assert s.event_names()[-2:] == ["OrderShipped", "MerchantRejected"]
    rejected = s.last("MerchantRejected")
    assert (rejected.actor, rejected.reason) == ("merchant", "shipped")  # type: ignore[attr-defined]
    assert (s.case_status, s.order_status) == ("rejected", "shipped")
    assert s.doc["refunded_total"] == 0


def test_F_1_reject_return_is_refused_before_shipment(ledger: Ledger) -> None:
    s = Scenario(ledger, "online").to_refund_before_shipment()
    err = s.refused("FLOW", "reject_return", reason="no")
    assert "F-1" in err.reason
    assert s.case_status == "requested"


def test_F_1_a_refund_before_shipment_is_for_the_whole_order(ledger: Ledger) -> None:
    s = Scenario(ledger, "online")
    s.do("pay")
    s.refused("R-AMOUNT", "request_refund", amount=GOODS, reason="x")
    s.do("request_refund", amount=GOODS + POSTAGE, reason="x")
    assert s.doc["return"]["amount"] == GOODS + POSTAGE


def test_F_1_one_second_late_the_system_refunds_with_a_violation(ledger: Ledger) -> None:
    s = Scenario(ledger, "online").to_refund_before_shipment()
    deadline = s.now + 48 * HOUR
    s.refused("DEADLINE", "approve_return", 48 * HOUR + SECOND)
    auto = s.last("RefundAutoApproved")
    assert (auto.at, auto.rule, auto.actor) == (deadline, "F-1", "system")  # type: ignore[attr-defined]
    refund = s.last("PlatformRefunded")  # a consequence of the deadline: it names it too
    assert (refund.rule, refund.deadline) == ("F-1", deadline)  # type: ignore[attr-defined]
    assert (s.case_status, s.order_status) == ("refunded", "cancelled")
    assert s.doc["refunded_total"] == GOODS + POSTAGE
    assert violations(s) == [("REFUND_RESPONSE_48H", "auto_refunded", False)]


def test_F_1_the_platform_does_not_cancel_while_a_refund_is_open(ledger: Ledger) -> None:
    s = Scenario(ledger, "online").to_refund_before_shipment()
    s.refused("FLOW", "cancel", by="platform", reason="x")


# --- F-2: refund after shipment ------------------------------------------------------------

@pytest.mark.parametrize("reach", ["shipped", "delivered"])
def test_F_2_an_approved_refund_after_shipment_refunds_the_amount_and_keeps_the_order(
    ledger: Ledger, reach: str,
) -> None:
    s = Scenario(ledger, "online")
    s.to_shipped() if reach == "shipped" else s.to_delivered()
    s.do("request_refund", amount=3000, reason="damaged")
    assert s.doc["return"]["kind"] == "refund" and s.doc["return"]["amount"] == 3000
    s.do("approve_return")
    assert s.last("PlatformRefunded").rule == "F-2"  # type: ignore[attr-defined]
    assert (s.case_status, s.order_status) == ("refunded", reach)
    assert s.doc["refunded_total"] == 3000


def test_F_2_the_default_amount_is_the_refundable_goods_and_later_cases_get_the_rest(
    ledger: Ledger,
) -> None:
    s = Scenario(ledger, "online").to_refund_after_shipment(amount=4000)
    s.do("approve_return")
    s.do("deliver", DAY)
    s.do("request_return", reason="rest")
    assert s.doc["return"]["amount"] == GOODS - 4000
    s.refused("R-OPEN", "request_refund", reason="again")


def test_F_2_a_rejected_refund_needs_a_reason_and_refunds_nothing(ledger: Ledger) -> None:
    s = Scenario(ledger, "online").to_refund_after_shipment()
    s.refused("INPUT", "reject_return", reason=" ")
    s.do("reject_return", reason="delivered in good order")
    assert s.case_status == "rejected" and s.doc["refunded_total"] == 0


def test_F_2_postage_is_not_refunded_after_shipment_even_where_returns_refund_it() -> None:
    ledger = Ledger("memory:", policy=Policy(refund_postage_on_return=True))
    s = Scenario(ledger, "online").to_shipped()
    s.refused("R-AMOUNT", "request_refund", amount=GOODS + 1, reason="x")
    s.do("request_refund", reason="x")
    assert s.doc["return"]["amount"] == GOODS
    e = Scenario(ledger, "online", order_id="X1").to_exchange_requested()
    assert e.doc["return"]["amount"] == GOODS
    r = Scenario(ledger, "online", order_id="R1").to_requested()
    assert r.doc["return"]["amount"] == GOODS + POSTAGE  # the policy's switch: returns only
    ledger.close()


def test_F_2_more_than_the_refundable_goods_is_refused(ledger: Ledger) -> None:
    s = Scenario(ledger, "online").to_shipped()
    s.refused("R-AMOUNT", "request_refund", amount=GOODS + 1, reason="x")


def test_F_2_one_second_late_the_system_refunds_with_a_violation(ledger: Ledger) -> None:
    s = Scenario(ledger, "online").to_refund_after_shipment()
    deadline = s.now + 48 * HOUR
    assert s.tick(48 * HOUR) == 0  # exactly at the deadline: nothing yet
    assert s.tick(SECOND) == 1
    auto = s.last("RefundAutoApproved")
    assert (auto.at, auto.rule) == (deadline, "F-2")  # type: ignore[attr-defined]
    assert (s.case_status, s.order_status) == ("refunded", "shipped")
    assert s.doc["refunded_total"] == GOODS
    assert violations(s) == [("REFUND_RESPONSE_48H", "auto_refunded", False)]


def test_F_2_a_refund_case_takes_no_return_tracking(ledger: Ledger) -> None:
    s = Scenario(ledger, "online").to_refund_after_shipment()
    s.refused("FLOW", "submit_tracking", carrier="YTO", tracking_no="Y1")
    s.refused("FLOW", "ship_replacement", carrier="SF", tracking_no="S2")
    s.do("withdraw_return")
    assert s.case_status == "withdrawn"


# --- F-3: refund-only is for online orders ------------------------------------------------

@pytest.mark.parametrize("reach", ["pending_confirmation", "shipped", "delivered"])
def test_F_3_a_cod_order_takes_no_refund_only_case(ledger: Ledger, reach: str) -> None:
    s = Scenario(ledger, "cod")
    if reach == "shipped":
        s.to_shipped()
    elif reach == "delivered":
        s.to_delivered()
    err = s.refused("FLOW", "request_refund", reason="x")
    assert "F-3" in err.reason
    assert s.doc["return"] is None


def test_F_3_nothing_is_refunded_before_payment_or_after_cancellation(ledger: Ledger) -> None:
    s = Scenario(ledger, "online")
    s.refused("FLOW", "request_refund", reason="x")  # awaiting payment
    s.do("cancel", by="user", reason="x")
    s.refused("C-ANY", "request_refund", reason="x")


# --- E-1: exchange: answer, tracking and receipt as, R-3 -------------------------

@BOTH
def test_E_1_an_exchange_is_answered_sent_back_and_received_without_a_refund(
    ledger: Ledger, payment: str,
) -> None:
    s = Scenario(ledger, payment).to_exchange_requested()
    assert s.doc["return"]["kind"] == "exchange" and s.doc["return"]["amount"] == GOODS
    s.do("approve_return", 48 * HOUR)
    assert (s.case_status, s.doc["return"]["awaiting"]) == ("approved", "user")
    s.do("submit_tracking", 7 * DAY, carrier="YTO", tracking_no="Y1")
    s.do("confirm_receipt", 7 * DAY)
    assert (s.case_status, s.doc["return"]["awaiting"]) == ("received", "merchant")
    assert s.doc["return"]["deadline"] == (s.now + 48 * HOUR).isoformat()
    assert s.doc["refunded_total"] == 0 and s.doc["violations"] == []
    assert "PlatformRefunded" not in s.event_names()


@BOTH
def test_E_1_an_exchange_never_answered_is_approved_then_closed(
    ledger: Ledger, payment: str,
) -> None:
    s = Scenario(ledger, payment).to_exchange_requested()
    assert s.tick(48 * HOUR + 7 * DAY + SECOND) == 2
    assert s.event_names()[-2:] == ["ReturnAutoApproved", "ReturnAutoClosed"]
    assert s.case_status == "closed"
    assert violations(s) == [("RETURN_RESPONSE_48H", "auto_approved", False)]
    assert [x["rule"] for x in s.doc["lapses"]] == ["RETURN_TRACKING_7D"]


@BOTH
def test_E_1_an_unconfirmed_exchange_receipt_is_confirmed_by_the_system(
    ledger: Ledger, payment: str,
) -> None:
    s = Scenario(ledger, payment).to_exchange_in_transit()
    s.refused("DEADLINE", "confirm_receipt", 7 * DAY + SECOND)
    assert s.case_status == "received" and s.doc["refunded_total"] == 0
    assert violations(s) == [("RECEIPT_CONFIRM_7D", "auto_confirmed", False)]


def test_E_1_an_exchange_needs_a_delivered_order_and_no_open_case(ledger: Ledger) -> None:
    s = Scenario(ledger, "online").to_shipped()
    s.refused("FLOW", "request_exchange", reason="size")
    s.do("deliver")
    s.do("request_exchange", reason="size")
    s.refused("R-OPEN", "request_return", reason="x")
    s.refused("R-OPEN", "request_exchange", reason="x")
    assert s.doc["cases"] == 1


# --- E-2: the replacement ships within 48 h of receipt, else a refund ---------------------

@BOTH
def test_E_2_the_replacement_shipped_on_time_and_delivered_ends_the_exchange(
    ledger: Ledger, payment: str,
) -> None:
    s = Scenario(ledger, payment).to_exchange_received()
    s.do("ship_replacement", 48 * HOUR, carrier="SF", tracking_no="SF2")  # exactly on time
    assert (s.case_status, s.doc["return"]["awaiting"]) == ("replacement_shipped", "carrier")
    assert s.doc["return"]["deadline"] is None
    s.do("deliver_replacement", DAY)
    assert s.last("ReplacementDelivered").actor == "carrier"
    assert (s.case_status, s.doc["return"]["awaiting"]) == ("exchanged", None)
    assert s.doc["refunded_total"] == 0 and s.doc["violations"] == []
    assert s.tick(60 * DAY) == 0


def test_E_2_online_one_second_late_the_exchange_turns_into_a_platform_refund(
    ledger: Ledger,
) -> None:
    s = Scenario(ledger, "online").to_exchange_received()
    deadline = s.now + 48 * HOUR
    s.refused("DEADLINE", "ship_replacement", 48 * HOUR + SECOND, carrier="SF",
              tracking_no="SF2")
    assert s.event_names()[-2:] == ["ExchangeConvertedToRefund", "PlatformRefunded"]
    converted = s.last("ExchangeConvertedToRefund")
    assert (converted.at, converted.rule) == (deadline, "E-2")  # type: ignore[attr-defined]
    assert s.case_status == "refunded" and s.doc["refunded_total"] == GOODS
    assert violations(s) == [("EXCHANGE_RESHIP_48H", "converted_to_refund", False)]


def test_E_2_cod_one_second_late_the_platform_pays_in_advance_and_the_merchant_owes_it(
    ledger: Ledger,
) -> None:
    s = Scenario(ledger, "cod").to_exchange_received()
    assert s.tick(48 * HOUR + SECOND) == 1
    assert s.event_names()[-2:] == ["ExchangeConvertedToRefund", "AdvanceCompensationPaid"]
    assert s.case_status == "compensated" and s.doc["refunded_total"] == GOODS
    assert violations(s) == [("EXCHANGE_RESHIP_48H", "converted_to_refund", True)]
    s.do("upload_refund_voucher", voucher_ref="V-9", amount=GOODS)  # settles the debt
    assert s.last("RefundVoucherUploaded").settles_debt  # type: ignore[attr-defined]
    assert s.doc["refunded_total"] == GOODS  # the user is never paid twice


def test_E_2_a_received_exchange_takes_no_voucher_but_an_older_debt_is_settled(
    ledger: Ledger,
) -> None:
    s = Scenario(ledger, "cod").to_requested(amount=3000)
    s.do("approve_return")
    s.do("submit_tracking", carrier="YTO", tracking_no="Y1")
    s.do("confirm_receipt")
    s.tick(48 * HOUR + SECOND)  # R-COD-4: compensated, the merchant owes 3000
    s.do("request_exchange", reason="size")
    s.do("approve_return")
    s.do("submit_tracking", carrier="YTO", tracking_no="Y2")
    s.do("confirm_receipt")
    assert s.case_status == "received"
    s.refused("R-AMOUNT", "upload_refund_voucher", voucher_ref="V", amount=GOODS - 3000)
    s.do("upload_refund_voucher", voucher_ref="V-1", amount=3000)
    late = s.last("RefundVoucherUploaded")
    assert (late.case, late.settles_debt) == (1, True)  # type: ignore[attr-defined]
    assert s.case_status == "received" and s.doc["refunded_total"] == 3000


def test_E_2_the_replacement_needs_a_received_exchange(ledger: Ledger) -> None:
    s = Scenario(ledger, "cod").to_exchange_in_transit()
    s.refused("FLOW", "ship_replacement", carrier="SF", tracking_no="SF2")
    s.refused("FLOW", "deliver_replacement")
    s.do("confirm_receipt")
    s.refused("FLOW", "upload_refund_voucher", voucher_ref="V", amount=GOODS)
    s.refused("FLOW", "deliver_replacement")
    r = Scenario(ledger, "cod", order_id="D2").to_received()
    r.refused("FLOW", "ship_replacement", carrier="SF", tracking_no="SF2")


# --- the merchant refuses the returned goods ------------------------------------------

@BOTH
@pytest.mark.parametrize("kind", ["return", "exchange"])
def test_R_6_the_merchant_refuses_the_goods_in_transit_with_a_reason(
    ledger: Ledger, payment: str, kind: str,
) -> None:
    s = Scenario(ledger, payment)
    s.to_in_transit() if kind == "return" else s.to_exchange_in_transit()
    s.refused("INPUT", "reject_receipt", HOUR, reason="")
    s.do("reject_receipt", 7 * DAY - HOUR, reason="damaged")  # exactly at the deadline
    assert s.last("ReceiptRejected").actor == "merchant"
    assert (s.case_status, s.doc["return"]["awaiting"]) == ("rejected", None)
    assert s.doc["refunded_total"] == 0 and s.doc["violations"] == []
    assert s.tick(60 * DAY) == 0


@BOTH
def test_R_6_after_the_receipt_deadline_the_goods_were_received(
    ledger: Ledger, payment: str,
) -> None:
    s = Scenario(ledger, payment).to_in_transit()
    s.refused("DEADLINE", "reject_receipt", 7 * DAY + SECOND, reason="damaged")


def test_R_6_only_goods_in_transit_are_refused(ledger: Ledger) -> None:
    s = Scenario(ledger, "online").to_approved()
    s.refused("FLOW", "reject_receipt", reason="damaged")
    r = Scenario(ledger, "online", order_id="D2").to_refund_after_shipment()
    r.refused("FLOW", "reject_receipt", reason="damaged")


# --- events recorded before exchanges existed ------------------------------------------------

def test_a_receipt_recorded_before_exchanges_is_read_with_no_reship_deadline() -> None:
    """`ReceiptConfirmed` gained `reship_deadline` (class version 2): an event stored by
    an earlier version, without it, is upcast by the library on reading."""
    ledger = Ledger("memory:")
    s = Scenario(ledger, "cod").to_received()
    new = s.last("ReceiptConfirmed")
    stored = ledger.mapper.to_stored_event(new)
    state = json.loads(stored.state)
    assert state.pop("class_version") == 2 and state.pop("reship_deadline") is None
    old = replace(stored, state=json.dumps(state).encode())
    read = ledger.mapper.to_domain_event(old)
    assert read.reship_deadline is None  # type: ignore[attr-defined]
    assert read.voucher_deadline == new.voucher_deadline  # type: ignore[attr-defined]
    ledger.close()
