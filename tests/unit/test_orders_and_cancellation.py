"""SPEC section 2: order life cycles and the cancellation rules C-*."""

from __future__ import annotations

import pytest

from aftersales import Ledger
from tests.scenario import DAY, GOODS, HOUR, POSTAGE, SECOND, T0, Scenario


def test_online_life_cycle_awaiting_payment_paid_shipped_delivered(ledger: Ledger) -> None:
    s = Scenario(ledger, "online")
    assert s.order_status == "awaiting_payment"
    s.do("pay")
    assert s.order_status == "paid"
    s.do("ship", carrier="SF", tracking_no="SF1")
    assert s.order_status == "shipped"
    s.do("deliver")
    assert s.order_status == "delivered"
    assert s.event_names() == ["OrderPlaced", "PaymentReceived", "OrderShipped",
                               "OrderDelivered"]
    assert [e.actor for e in s.events()] == ["user", "user", "merchant", "carrier"]


def test_cod_life_cycle_pending_confirmation_stocking_shipped_delivered(ledger: Ledger) -> None:
    s = Scenario(ledger, "cod")
    assert s.order_status == "pending_confirmation"
    s.do("confirm_order")
    assert s.order_status == "stocking"
    s.do("ship", carrier="SF", tracking_no="SF1")
    s.do("deliver")
    assert s.order_status == "delivered"
    assert s.event_names() == ["OrderPlaced", "OrderConfirmed", "OrderShipped",
                               "OrderDelivered"]


# --- C-COD-1 ------------------------------------------------------------------------------

@pytest.mark.parametrize("stage", ["pending_confirmation", "stocking", "shipped", "delivered"])
def test_C_COD_1_user_cannot_cancel_cod_order_at_any_stage(ledger: Ledger, stage: str) -> None:
    s = Scenario(ledger, "cod")
    steps = {"stocking": ["confirm_order"], "shipped": ["confirm_order", "ship"],
             "delivered": ["confirm_order", "ship", "deliver"]}.get(stage, [])
    for step in steps:
        s.do(step, **({"carrier": "SF", "tracking_no": "1"} if step == "ship" else {}))
    assert s.order_status == stage
    s.refused("C-COD-1", "cancel", by="user")
    assert s.order_status == stage


# --- C-COD-2 ------------------------------------------------------------------------------

def test_C_COD_2_merchant_cancels_cod_order_pending_confirmation(ledger: Ledger) -> None:
    s = Scenario(ledger, "cod")
    s.do("cancel", by="merchant", reason="out of stock")
    assert s.order_status == "cancelled"
    assert s.last("OrderCancelled").actor == "merchant"


def test_C_COD_2_merchant_cancels_cod_order_stocking(ledger: Ledger) -> None:
    s = Scenario(ledger, "cod")
    s.do("confirm_order")
    s.do("cancel", by="merchant")
    assert s.order_status == "cancelled"
    assert s.doc["refunded_total"] == 0


# --- C-COD-3 ------------------------------------------------------------------------------

def test_C_COD_3_merchant_cannot_cancel_shipped_cod_order(ledger: Ledger) -> None:
    s = Scenario(ledger, "cod").to_shipped()
    s.refused("C-COD-3", "cancel", by="merchant")
    assert s.order_status == "shipped"


def test_C_COD_3_platform_cancels_shipped_cod_order_on_users_request(ledger: Ledger) -> None:
    s = Scenario(ledger, "cod").to_shipped()
    s.do("cancel", by="platform", reason="user asked customer service")
    assert s.order_status == "cancelled"
    assert s.doc["refunded_total"] == 0  # nothing was paid, nothing is refunded


@pytest.mark.parametrize("confirmed", [False, True])
def test_C_COD_3_platform_does_not_cancel_cod_order_before_shipping(
    ledger: Ledger, confirmed: bool
) -> None:
    s = Scenario(ledger, "cod")
    if confirmed:
        s.do("confirm_order")
    s.refused("C-COD-3", "cancel", by="platform")


# --- C-ON-1 .. C-ON-4 ---------------------------------------------------------------------

def test_C_ON_1_user_cancels_online_order_awaiting_payment(ledger: Ledger) -> None:
    s = Scenario(ledger, "online")
    s.do("cancel", by="user", reason="changed mind")
    assert s.order_status == "cancelled"
    assert s.doc["refunded_total"] == 0
    assert s.doc["next_deadline"] is None  # no C-ON-4 deadline is left pending


def test_C_ON_2_user_cannot_cancel_paid_order_themselves(ledger: Ledger) -> None:
    s = Scenario(ledger, "online")
    s.do("pay")
    refusal = s.refused("C-ON-2", "cancel", by="user")
    assert "customer service" in refusal.reason


def test_C_ON_2_platform_cancels_paid_order_refunding_goods_and_postage(ledger: Ledger) -> None:
    s = Scenario(ledger, "online")
    s.do("pay")
    s.do("cancel", by="platform", reason="user asked customer service")
    assert s.order_status == "cancelled"
    assert s.doc["refunded_total"] == GOODS + POSTAGE
    assert s.last("OrderCancelled").refund_amount == GOODS + POSTAGE  # type: ignore[attr-defined]


def test_C_ON_2_platform_cancels_order_awaiting_payment_without_refund(ledger: Ledger) -> None:
    s = Scenario(ledger, "online")
    s.do("cancel", by="platform")
    assert s.order_status == "cancelled"
    assert s.doc["refunded_total"] == 0


@pytest.mark.parametrize("by", ["user", "platform"])
def test_C_ON_2_shipped_online_order_is_not_cancelled_the_way_back_is_a_return(
    ledger: Ledger, by: str
) -> None:
    s = Scenario(ledger, "online").to_shipped()
    s.refused("C-ON-2", "cancel", by=by)
    assert s.order_status == "shipped"


@pytest.mark.parametrize("stage", ["awaiting_payment", "paid", "shipped", "delivered"])
def test_C_ON_3_merchant_cannot_cancel_online_order_at_any_stage(
    ledger: Ledger, stage: str
) -> None:
    s = Scenario(ledger, "online")
    if stage != "awaiting_payment":
        s.do("pay")
    if stage in ("shipped", "delivered"):
        s.do("ship", carrier="SF", tracking_no="1")
    if stage == "delivered":
        s.do("deliver")
    s.refused("C-ON-3", "cancel", by="merchant")
    assert s.order_status == stage


def test_C_ON_4_payment_exactly_at_the_deadline_is_on_time(ledger: Ledger) -> None:
    s = Scenario(ledger, "online")
    s.do("pay", at=T0 + 24 * HOUR)
    assert s.order_status == "paid"
    assert s.doc["lapses"] == []


def test_C_ON_4_payment_one_second_late_finds_the_order_cancelled_by_the_system(
    ledger: Ledger,
) -> None:
    s = Scenario(ledger, "online")
    s.refused("DEADLINE", "pay", at=T0 + 24 * HOUR + SECOND)
    assert s.order_status == "cancelled"
    auto = s.last("OrderAutoCancelled")
    assert auto.at == T0 + 24 * HOUR  # recorded at the deadline, not when it was noticed
    assert (auto.actor, auto.rule) == ("system", "C-ON-4")  # type: ignore[attr-defined]
    assert s.doc["lapses"] == [
        {"rule": "UNPAID_24H", "case": None, "deadline": (T0 + 24 * HOUR).isoformat()}]
    assert s.doc["violations"] == []  # a user lapse, not a violation


def test_C_ON_4_sweep_cancels_unpaid_order_only_after_the_deadline(ledger: Ledger) -> None:
    s = Scenario(ledger, "online")
    assert ledger.tick(T0 + 24 * HOUR) == 0  # due means deadline < now
    assert s.order_status == "awaiting_payment"
    assert ledger.tick(T0 + 24 * HOUR + SECOND) == 1
    assert s.order_status == "cancelled"
    assert s.last("OrderAutoCancelled").at == T0 + 24 * HOUR


def test_C_ON_4_does_not_apply_to_cod_orders(ledger: Ledger) -> None:
    s = Scenario(ledger, "cod")
    assert ledger.tick(T0 + 30 * DAY) == 0
    assert s.order_status == "pending_confirmation"


# --- C-ANY --------------------------------------------------------------------------------

@pytest.mark.parametrize("payment", ["online", "cod"])
@pytest.mark.parametrize("step", ["pay", "confirm_order", "ship", "deliver", "request_return"])
def test_C_ANY_nothing_happens_to_a_cancelled_order(
    ledger: Ledger, payment: str, step: str
) -> None:
    s = Scenario(ledger, payment)
    s.do("cancel", by="user" if payment == "online" else "merchant")
    fields = {"carrier": "SF", "tracking_no": "1"} if step == "ship" else {}
    code = "FLOW" if (payment, step) in (("online", "confirm_order"), ("cod", "pay")) else "C-ANY"
    s.refused(code, step, **fields)
    assert s.event_names() == ["OrderPlaced", "OrderCancelled"]


@pytest.mark.parametrize("payment,by", [("online", "user"), ("online", "platform"),
                                        ("cod", "merchant"), ("cod", "platform")])
def test_C_ANY_a_delivered_order_cannot_be_cancelled(ledger: Ledger, payment: str,
                                                     by: str) -> None:
    s = Scenario(ledger, payment).to_delivered()
    s.refused("C-ANY", "cancel", by=by)
    assert s.order_status == "delivered"


def test_C_ANY_a_cancelled_order_cannot_be_cancelled_again(ledger: Ledger) -> None:
    s = Scenario(ledger, "online")
    s.do("cancel", by="user")
    s.refused("C-ANY", "cancel", by="platform")
