"""SPEC section 3, refusal codes: each refusal names its code and changes nothing but the
timeouts it revealed."""

from __future__ import annotations

import pytest

from aftersales import CommandRefused, Ledger
from tests.scenario import DAY, GOODS, HOUR, SECOND, T0, Scenario


def test_INPUT_from_python_callers_names_the_field(ledger: Ledger) -> None:
    Scenario(ledger).to_delivered()
    with pytest.raises(CommandRefused) as info:
        ledger.request_return(order_id="D1", at=T0 + 9 * DAY, amount=0)
    assert info.value.code == "INPUT" and "'amount'" in info.value.reason


def test_INPUT_a_timestamp_without_offset_is_refused(ledger: Ledger) -> None:
    with pytest.raises(CommandRefused) as info:
        ledger.pay(order_id="D1", at=T0.replace(tzinfo=None))
    assert info.value.code == "INPUT" and "offset" in info.value.reason


def test_TIME_a_command_before_the_orders_latest_event_is_refused(ledger: Ledger) -> None:
    s = Scenario(ledger)
    s.do("pay", 2 * HOUR)
    s.refused("TIME", "ship", at=T0 + HOUR, carrier="SF", tracking_no="1")
    assert s.order_status == "paid"


def test_TIME_the_same_instant_as_the_latest_event_is_allowed(ledger: Ledger) -> None:
    s = Scenario(ledger)
    s.do("pay", at=T0)
    assert s.order_status == "paid"


def test_UNKNOWN_ORDER(ledger: Ledger) -> None:
    with pytest.raises(CommandRefused) as info:
        ledger.pay(order_id="NOPE", at=T0)
    assert info.value.code == "UNKNOWN-ORDER"


def test_DUPLICATE_ORDER_same_order_id_other_content(ledger: Ledger) -> None:
    Scenario(ledger)
    with pytest.raises(CommandRefused) as info:
        ledger.place_order(order_id="D1", at=T0, payment="cod", merchant_id="M1",
                           user_id="U1", goods_amount=1)
    assert info.value.code == "DUPLICATE-ORDER"


def test_DUPLICATE_ORDER_still_records_the_timeouts_it_revealed(ledger: Ledger) -> None:
    s = Scenario(ledger)
    with pytest.raises(CommandRefused):
        ledger.place_order(order_id="D1", at=T0 + 3 * DAY, payment="online",
                           merchant_id="M1", user_id="U1", goods_amount=1)
    assert s.event_names() == ["OrderPlaced", "OrderAutoCancelled"]


def test_DUPLICATE_ID_still_records_the_timeouts_it_revealed(ledger: Ledger) -> None:
    s = Scenario(ledger)
    ledger.pay(order_id="D1", at=T0 + HOUR, command_id="c1")
    ledger.ship(order_id="D1", at=T0 + 2 * HOUR, carrier="SF", tracking_no="1")
    ledger.deliver(order_id="D1", at=T0 + DAY)
    ledger.request_return(order_id="D1", at=T0 + 2 * DAY)
    with pytest.raises(CommandRefused) as info:
        ledger.approve_return(order_id="D1", at=T0 + 5 * DAY, command_id="c1")
    assert info.value.code == "DUPLICATE-ID"
    assert s.event_names()[-1] == "ReturnAutoApproved"


def test_DUPLICATE_ID_a_known_command_id_with_other_content(ledger: Ledger) -> None:
    s = Scenario(ledger)
    ledger.pay(order_id="D1", at=T0 + HOUR, command_id="cmd-1")
    with pytest.raises(CommandRefused) as info:
        ledger.ship(order_id="D1", at=T0 + 2 * HOUR, carrier="SF", tracking_no="1",
                    command_id="cmd-1")
    assert info.value.code == "DUPLICATE-ID"
    assert s.order_status == "paid"


def test_I8_the_same_command_twice_has_the_effect_of_once(ledger: Ledger) -> None:
    s = Scenario(ledger)
    first = ledger.pay(order_id="D1", at=T0 + HOUR)
    again = ledger.pay(order_id="D1", at=T0 + HOUR)
    assert (first.duplicate, first.events) == (False, 1)
    assert (again.duplicate, again.events) == (True, 0)
    assert s.event_names() == ["OrderPlaced", "PaymentReceived"]


def test_I8_the_same_instant_in_another_offset_is_the_same_command(ledger: Ledger) -> None:
    Scenario(ledger)
    ledger.pay(order_id="D1", at=T0 + HOUR)
    again = ledger.pay(order_id="D1", at=(T0 + HOUR).astimezone(tz=None))
    assert again.duplicate


@pytest.mark.parametrize("payment,step,stage", [
    ("online", "ship", "placed"),            # ship before pay
    ("cod", "ship", "placed"),               # ship before confirmation
    ("online", "deliver", "paid"),           # deliver before ship
    ("online", "request_return", "shipped"),  # a return on an order not delivered
    ("online", "submit_tracking", "requested"),  # tracking before approval
    ("online", "confirm_receipt", "approved"),   # receipt before tracking
    ("online", "approve_return", "delivered"),   # no case
    ("online", "confirm_order", "placed"),   # only cod orders are confirmed
    ("cod", "pay", "placed"),                # cod orders are not paid online
    ("online", "pay", "paid"),               # paid twice
    ("cod", "upload_refund_voucher", "approved"),  # voucher before receipt
])
def test_FLOW_steps_out_of_order(ledger: Ledger, payment: str, step: str, stage: str) -> None:
    s = Scenario(ledger, payment)
    if stage == "paid":
        s.do("pay")
    else:
        {"placed": lambda: None, "shipped": s.to_shipped, "delivered": s.to_delivered,
         "requested": s.to_requested, "approved": s.to_approved}[stage]()
    before = s.event_names()
    fields = {"ship": {"carrier": "SF", "tracking_no": "1"},
              "submit_tracking": {"carrier": "SF", "tracking_no": "1"},
              "upload_refund_voucher": {"voucher_ref": "V", "amount": GOODS},
              "request_return": {"reason": "x"}}.get(step, {})
    s.refused("FLOW", step, **fields)
    assert s.event_names() == before


def test_R_OPEN_a_second_open_case_is_refused(ledger: Ledger) -> None:
    s = Scenario(ledger).to_requested()
    s.refused("R-OPEN", "request_return", reason="again")


def test_R_AMOUNT_more_than_the_refundable_goods_amount(ledger: Ledger) -> None:
    s = Scenario(ledger).to_delivered()
    s.refused("R-AMOUNT", "request_return", amount=GOODS + 1, reason="postage too")
    assert s.doc["return"] is None


def test_DEADLINE_refusal_keeps_the_timeouts_it_revealed(ledger: Ledger) -> None:
    s = Scenario(ledger).to_requested()
    before = len(s.events())
    s.refused("DEADLINE", "approve_return", 48 * HOUR + SECOND)
    assert len(s.events()) == before + 1  # ReturnAutoApproved is a fact, kept
    assert ledger.index.pending_deadlines()[0][1].rule == "R-2"


def test_refused_command_is_not_remembered_and_is_refused_again(ledger: Ledger) -> None:
    Scenario(ledger)
    for _ in range(2):
        with pytest.raises(CommandRefused):
            ledger.deliver(order_id="D1", at=T0 + HOUR)
