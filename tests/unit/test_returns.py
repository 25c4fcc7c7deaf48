"""SPEC section 3: return cases R-1 .. R-5, with their deadlines and boundaries."""

from __future__ import annotations

import pytest

from aftersales import Ledger
from tests.scenario import DAY, GOODS, HOUR, SECOND, Scenario

BOTH = pytest.mark.parametrize("payment", ["online", "cod"])


# --- the merchant answers within 48 h, else the system approves ----------------------

@BOTH
def test_R_1_merchant_approves_a_return(ledger: Ledger, payment: str) -> None:
    s = Scenario(ledger, payment).to_requested()
    requested = s.now
    assert s.doc["return"] == {"case": 1, "status": "requested", "awaiting": "merchant",
                               "deadline": (requested + 48 * HOUR).isoformat(),
                               "amount": GOODS, "kind": "return", "case_ref": None,
                               "carrier": None, "tracking_no": None,
                               "replacement_carrier": None, "replacement_tracking_no": None,
                               "arbitration": None}
    s.do("approve_return", 48 * HOUR)  # exactly at the deadline: on time
    assert s.case_status == "approved"
    assert s.last("MerchantApproved").actor == "merchant"
    assert s.doc["violations"] == []
    assert s.doc["return"]["awaiting"] == "user"
    assert s.doc["return"]["deadline"] == (s.now + 7 * DAY).isoformat()


@BOTH
def test_R_1_merchant_rejects_with_a_reason(ledger: Ledger, payment: str) -> None:
    s = Scenario(ledger, payment).to_requested()
    s.do("reject_return", reason="item was used")
    assert s.case_status == "rejected"
    assert s.doc["return"]["awaiting"] is None and s.doc["return"]["deadline"] is None
    assert s.last("MerchantRejected").reason == "item was used"  # type: ignore[attr-defined]


def test_R_1_rejection_without_a_reason_is_refused(ledger: Ledger) -> None:
    s = Scenario(ledger).to_requested()
    s.refused("INPUT", "reject_return", reason=" ")
    assert s.case_status == "requested"


@BOTH
def test_R_1_one_second_late_the_system_has_approved_and_a_violation_is_recorded(
    ledger: Ledger, payment: str
) -> None:
    s = Scenario(ledger, payment).to_requested()
    deadline = s.now + 48 * HOUR
    s.refused("DEADLINE", "approve_return", 48 * HOUR + SECOND)
    s.refused("DEADLINE", "reject_return", reason="too late")
    auto = s.last("ReturnAutoApproved")
    assert (auto.at, auto.actor, auto.rule) == (deadline, "system", "R-1")  # type: ignore[attr-defined]
    assert s.case_status == "approved"
    assert s.doc["violations"] == [{"rule": "RETURN_RESPONSE_48H", "case": 1,
                                    "deadline": deadline.isoformat(),
                                    "consequence": "auto_approved", "penalty": False}]
    # R-2 starts at the automatic approval time.
    assert s.doc["return"]["deadline"] == (deadline + 7 * DAY).isoformat()


# --- the user submits tracking within 7 days of approval, else the case closes -------

@BOTH
def test_R_2_user_submits_tracking_exactly_at_the_deadline(ledger: Ledger, payment: str) -> None:
    s = Scenario(ledger, payment).to_approved()
    s.do("submit_tracking", 7 * DAY, carrier="YTO", tracking_no="YT9")
    assert s.case_status == "in_transit"
    assert s.doc["return"]["awaiting"] == "merchant"
    assert s.doc["lapses"] == []


@BOTH
def test_R_2_no_tracking_within_7_days_closes_the_case_as_a_user_lapse(
    ledger: Ledger, payment: str
) -> None:
    s = Scenario(ledger, payment).to_approved()
    deadline = s.now + 7 * DAY
    s.refused("DEADLINE", "submit_tracking", 7 * DAY + SECOND, carrier="YTO", tracking_no="1")
    closed = s.last("ReturnAutoClosed")
    assert closed.at == deadline
    assert s.case_status == "closed"
    assert s.doc["lapses"] == [{"rule": "RETURN_TRACKING_7D", "case": 1,
                                "deadline": deadline.isoformat()}]
    assert s.doc["violations"] == []
    assert s.doc["refunded_total"] == 0


def test_R_2_the_tracking_deadline_runs_from_an_automatic_approval(ledger: Ledger) -> None:
    s = Scenario(ledger).to_requested()
    approved = s.now + 48 * HOUR
    assert s.tick(48 * HOUR + SECOND) == 1
    s.do("submit_tracking", at=approved + 7 * DAY, carrier="YTO", tracking_no="1")
    assert s.case_status == "in_transit"


# --- the merchant confirms receipt within 7 days of tracking, else the system does ---

@BOTH
def test_R_3_merchant_confirms_receipt_exactly_at_the_deadline(
    ledger: Ledger, payment: str
) -> None:
    s = Scenario(ledger, payment).to_in_transit()
    s.do("confirm_receipt", 7 * DAY)
    assert s.last("ReceiptConfirmed").actor == "merchant"
    assert s.doc["violations"] == []


@BOTH
def test_R_3_no_confirmation_within_7_days_the_system_confirms_with_a_violation(
    ledger: Ledger, payment: str
) -> None:
    s = Scenario(ledger, payment).to_in_transit()
    deadline = s.now + 7 * DAY
    s.refused("DEADLINE", "confirm_receipt", 7 * DAY + SECOND)
    auto = s.last("ReceiptAutoConfirmed")
    assert (auto.at, auto.rule) == (deadline, "R-3")  # type: ignore[attr-defined]
    assert s.doc["violations"][0]["rule"] == "RECEIPT_CONFIRM_7D"
    assert s.doc["violations"][0]["consequence"] == "auto_confirmed"


# --- R-ON-4: online returns are refunded by the platform at receipt -----------------------

def test_R_ON_4_platform_refunds_at_once_on_receipt_without_postage(ledger: Ledger) -> None:
    s = Scenario(ledger, "online").to_received()
    refund = s.last("PlatformRefunded")
    assert refund.at == s.now and refund.actor == "platform"
    assert refund.amount == GOODS  # type: ignore[attr-defined]
    assert s.case_status == "refunded"
    assert s.doc["refunded_total"] == GOODS  # postage is not refunded


def test_R_ON_4_platform_refunds_on_automatic_receipt_too(ledger: Ledger) -> None:
    s = Scenario(ledger, "online").to_in_transit()
    deadline = s.now + 7 * DAY
    s.tick(8 * DAY)
    assert s.event_names()[-2:] == ["ReceiptAutoConfirmed", "PlatformRefunded"]
    assert s.last("PlatformRefunded").at == deadline
    assert s.case_status == "refunded"


def test_R_ON_4_partial_return_refunds_the_amount_asked(ledger: Ledger) -> None:
    s = Scenario(ledger, "online")
    s.to_delivered().do("request_return", amount=3000, reason="one item broken")
    s.do("approve_return")
    s.do("submit_tracking", carrier="YTO", tracking_no="1")
    s.do("confirm_receipt")
    assert s.doc["refunded_total"] == 3000


# --- R-COD-4: the cod merchant refunds and uploads a voucher within 48 h ------------------

def test_R_COD_4_voucher_for_the_amount_refunds_the_case(ledger: Ledger) -> None:
    s = Scenario(ledger, "cod").to_received()
    assert s.case_status == "received"
    assert s.doc["return"]["awaiting"] == "merchant"
    s.do("upload_refund_voucher", 48 * HOUR, voucher_ref="V-1", amount=GOODS)
    assert s.case_status == "refunded"
    assert s.doc["refunded_total"] == GOODS
    assert s.doc["violations"] == []


def test_R_COD_4_voucher_for_another_amount_is_refused(ledger: Ledger) -> None:
    s = Scenario(ledger, "cod").to_received()
    s.refused("R-AMOUNT", "upload_refund_voucher", voucher_ref="V-1", amount=GOODS - 1)
    assert s.case_status == "received"


def test_R_COD_4_no_voucher_in_48h_platform_compensates_and_merchant_is_penalised(
    ledger: Ledger,
) -> None:
    s = Scenario(ledger, "cod").to_received()
    deadline = s.now + 48 * HOUR
    assert s.tick(48 * HOUR + SECOND) == 1
    assert s.event_names()[-2:] == ["AdvanceCompensationPaid", "MerchantPenalized"]
    assert s.last("AdvanceCompensationPaid").at == deadline
    assert s.case_status == "compensated"
    assert s.doc["refunded_total"] == GOODS
    assert s.doc["violations"] == [{"rule": "COD_REFUND_VOUCHER_48H", "case": 1,
                                    "deadline": deadline.isoformat(),
                                    "consequence": "advance_compensated", "penalty": True}]


def test_R_COD_4_late_voucher_settles_the_debt_and_never_pays_the_user_twice(
    ledger: Ledger,
) -> None:
    s = Scenario(ledger, "cod").to_received()
    s.do("upload_refund_voucher", 3 * DAY, voucher_ref="V-late", amount=GOODS)
    assert s.event_names()[-3:] == ["AdvanceCompensationPaid", "MerchantPenalized",
                                    "RefundVoucherUploaded"]
    assert s.last("RefundVoucherUploaded").settles_debt  # type: ignore[attr-defined]
    assert s.case_status == "compensated"  # terminal: unchanged
    assert s.doc["refunded_total"] == GOODS  # once
    order = ledger.get_order("D1")
    assert order is not None and order.cases[0].merchant_debt == 0
    s.refused("FLOW", "upload_refund_voucher", voucher_ref="V-again", amount=GOODS)


def test_R_COD_4_late_voucher_reaches_a_compensated_case_after_a_newer_one_opened(
    ledger: Ledger,
) -> None:
    s = Scenario(ledger, "cod").to_delivered()
    s.do("request_return", amount=4000, reason="first")
    for step, fields in (("approve_return", {}), ("submit_tracking",
                         {"carrier": "YTO", "tracking_no": "1"}), ("confirm_receipt", {})):
        s.do(step, **fields)
    s.tick(3 * DAY)  # case 1 compensated, the merchant owes 4000
    s.do("request_return", amount=4000, reason="second")
    s.do("upload_refund_voucher", voucher_ref="V1", amount=4000)
    order = ledger.get_order("D1")
    assert order is not None
    assert [(c.status.value, c.merchant_debt) for c in order.cases] == [
        ("compensated", 0), ("requested", 0)]
    assert s.doc["refunded_total"] == 4000


def test_R_COD_4_online_orders_take_no_voucher(ledger: Ledger) -> None:
    s = Scenario(ledger, "online").to_in_transit()
    s.refused("FLOW", "upload_refund_voucher", voucher_ref="V", amount=GOODS)


# --- the user withdraws before submitting tracking -----------------------------------

@BOTH
@pytest.mark.parametrize("stage", ["requested", "approved"])
def test_R_5_user_withdraws_before_tracking(ledger: Ledger, payment: str, stage: str) -> None:
    s = Scenario(ledger, payment)
    s.to_requested() if stage == "requested" else s.to_approved()
    s.do("withdraw_return")
    assert s.case_status == "withdrawn"
    assert s.doc["return"]["awaiting"] is None


def test_R_5_no_withdrawal_after_tracking(ledger: Ledger) -> None:
    s = Scenario(ledger).to_in_transit()
    s.refused("R-5", "withdraw_return")
    assert s.case_status == "in_transit"


def test_R_5_no_withdrawal_after_the_system_closed_the_case(ledger: Ledger) -> None:
    s = Scenario(ledger).to_approved()
    s.refused("DEADLINE", "withdraw_return", 8 * DAY)


# --- cases, partial returns, cascades -----------------------------------------------------

def test_cascade_one_sweep_long_after_a_request_approves_then_closes(ledger: Ledger) -> None:
    s = Scenario(ledger).to_requested()
    requested = s.now
    assert s.tick(30 * DAY) == 2
    assert s.event_names()[-2:] == ["ReturnAutoApproved", "ReturnAutoClosed"]
    assert s.last("ReturnAutoApproved").at == requested + 48 * HOUR
    assert s.last("ReturnAutoClosed").at == requested + 48 * HOUR + 7 * DAY
    assert s.case_status == "closed"
    assert [v["rule"] for v in s.doc["violations"]] == ["RETURN_RESPONSE_48H"]
    assert [x["rule"] for x in s.doc["lapses"]] == ["RETURN_TRACKING_7D"]


def test_cascade_cod_in_transit_is_auto_received_then_compensated(ledger: Ledger) -> None:
    s = Scenario(ledger, "cod").to_in_transit()
    tracked = s.now
    s.tick(30 * DAY)
    assert s.event_names()[-3:] == ["ReceiptAutoConfirmed", "AdvanceCompensationPaid",
                                    "MerchantPenalized"]
    assert s.last("MerchantPenalized").at == tracked + 7 * DAY + 48 * HOUR
    assert [v["rule"] for v in s.doc["violations"]] == ["RECEIPT_CONFIRM_7D",
                                                        "COD_REFUND_VOUCHER_48H"]


def test_cascade_lazily_before_a_command(ledger: Ledger) -> None:
    s = Scenario(ledger).to_requested()
    requested = s.now
    s.do("request_return", 30 * DAY, reason="again")  # case 1 was approved, then closed
    assert s.event_names()[-3:] == ["ReturnAutoApproved", "ReturnAutoClosed",
                                    "ReturnRequested"]
    assert s.last("ReturnAutoClosed").at == requested + 48 * HOUR + 7 * DAY
    assert s.doc["return"]["case"] == 2


def test_partial_returns_then_another_case_for_the_rest(ledger: Ledger) -> None:
    s = Scenario(ledger, "online")
    s.to_delivered().do("request_return", amount=4000, reason="a")
    s.refused("R-OPEN", "request_return", amount=1000, reason="b")
    for step, fields in (("approve_return", {}), ("submit_tracking",
                         {"carrier": "YTO", "tracking_no": "1"}), ("confirm_receipt", {})):
        s.do(step, **fields)
    s.refused("R-AMOUNT", "request_return", amount=GOODS - 4000 + 1, reason="too much")
    s.do("request_return", reason="the rest")  # default: what is left
    assert s.doc["return"]["case"] == 2 and s.doc["return"]["amount"] == GOODS - 4000
    for step, fields in (("approve_return", {}), ("submit_tracking",
                         {"carrier": "YTO", "tracking_no": "2"}), ("confirm_receipt", {})):
        s.do(step, **fields)
    assert s.doc["refunded_total"] == GOODS
    s.refused("R-AMOUNT", "request_return", reason="nothing left")


def test_a_rejected_case_can_be_followed_by_a_new_one(ledger: Ledger) -> None:
    s = Scenario(ledger, "cod").to_requested()
    s.do("reject_return", reason="used")
    s.do("request_return", reason="again, with photos")
    assert s.doc["return"]["case"] == 2 and s.case_status == "requested"
