"""SPEC section 10: Douyin push messages in their real shapes as ledger commands, tag by
tag, in both envelope spellings, on every store: order tags by `s_ids`, nested logistics,
cash-on-delivery confirmation by TradePaid, ISO and Unix times, timeless messages at their
receive time, postage inside refund_amount, the platform's timers reconciled against the
ledger's own, each case by its aftersale_id, arbitration without blame."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from aftersales import Ledger, status_document
from aftersales.feeds.douyin import TAGS
from aftersales.feeds.run import FeedReport, ingest_feed
from tests.douyin_bodies import (
    BIG,
    BIG2,
    CASE,
    DAY,
    HOUR,
    MINUTE,
    SECOND,
    SPELLINGS,
    T0,
    aftersale,
    body,
    cancelled,
    completed,
    delivered,
    message,
    order_msg,
    paid,
    place,
    requested,
    shipped,
    ts,
)


def feed(ledger: Ledger, *lines: bytes, received_at: datetime | None = None,
         **options: Any) -> tuple[FeedReport, list[str]]:
    said: list[str] = []
    report = ingest_feed(ledger, list(lines), on_refused=said.append,
                         received_at=received_at, **options)
    return report, said


def events(ledger: Ledger, order: object = BIG) -> list[str]:
    return [type(e).__name__ for e in ledger.order_events(str(order))]


def status(ledger: Ledger, order: object = BIG) -> dict[str, Any]:
    found = ledger.get_order(str(order))
    assert found is not None
    return status_document(found)


# --- 1. order tags by s_ids ------------------------------------------------------------

def test_the_minimal_trade_paid_of_the_issue_pays_its_order(ledger: Ledger) -> None:
    line = (b'[{"tag":101,"msgId":"m1","data":{"p_id":4835804142146756441,'
            b'"s_ids":[4835804142146756441],"shop_id":95250,"order_status":2,'
            b'"order_type":0,"biz":2,"pay_time":1794002561,"pay_type":1,"pay_amount":10700}}]')
    _report, said = feed(ledger, place(at=datetime.fromisoformat("2026-11-06T10:00:00+08:00")),
                        line)
    assert said == [] and events(ledger) == ["OrderPlaced", "PaymentReceived"]
    pay = list(ledger.order_events(str(BIG)))[1]
    assert pay.at.timestamp() == 1794002561 and pay.command_id == f"douyin:m1:{BIG}"


@pytest.mark.parametrize("spelling", SPELLINGS)
@pytest.mark.parametrize("as_text", [False, True])
def test_an_order_message_applies_to_every_sub_order_it_lists(
        ledger: Ledger, spelling: str, as_text: bool) -> None:
    ids: list[object] = [str(BIG), str(BIG2)] if as_text else [BIG, BIG2]
    report, said = feed(ledger, place(BIG), place(BIG2),
                        body(paid("9001", *ids, spelling=spelling)),
                        body(shipped("9002", *ids, spelling=spelling)))
    assert said == []
    for order in (BIG, BIG2):  # exactly these ids: never rounded through a float
        assert events(ledger, order) == ["OrderPlaced", "PaymentReceived", "OrderShipped"]
    assert report.applied == 2 + 2  # the two placings, the two messages


def test_an_order_message_without_s_ids_is_reported(ledger: Ledger) -> None:
    msg = message(101, "9", p_id=BIG, shop_id=1, pay_time=ts(T0 + HOUR), pay_type=1)
    report, said = feed(ledger, place(), body(msg))
    assert report.reported == 1 and "no s_ids" in said[0]


# --- 2. SellerShip's nested logistics; 108 ships the sub-orders it lists ---------------

@pytest.mark.parametrize("spelling", SPELLINGS)
def test_seller_ship_reads_the_carrier_and_number_nested_in_logistics_msg(
        ledger: Ledger, spelling: str) -> None:
    _report, said = feed(ledger, *delivered(spelling=spelling)[:3])
    assert said == []
    ship = list(ledger.order_events(str(BIG)))[-1]
    assert (ship.carrier, ship.tracking_no) == ("shunfeng", "SF1001")
    assert ship.at == T0 + 2 * HOUR  # update_time


def test_partly_seller_ship_ships_only_the_sub_orders_it_lists(ledger: Ledger) -> None:
    feed(ledger, place(BIG), place(BIG2), body(paid("1", BIG, BIG2)),
         body(shipped("2", BIG, tag=108)))
    assert status(ledger, BIG)["order_status"] == "shipped"
    assert status(ledger, BIG2)["order_status"] == "paid"


def test_a_refund_asked_before_shipment_is_refused_by_the_shipment_not_auto_refunded(
        ledger: Ledger) -> None:
    _report, said = feed(
        ledger, place(), body(paid("1")),
        body(aftersale(200, "2", T0 + 90 * MINUTE, kind=2, refund_amount=10700,
                       refund_post_amount=800)),
        body(shipped("3", at=T0 + 2 * HOUR)))
    assert said == []
    doc = status(ledger)
    assert doc["order_status"] == "shipped" and doc["return"]["status"] == "rejected"
    assert doc["violations"] == []


# --- 3. cod confirmation --------------------------------------------------------------

@pytest.mark.parametrize("spelling", SPELLINGS)
def test_trade_paid_with_pay_type_0_is_the_cod_merchants_confirmation(
        ledger: Ledger, spelling: str) -> None:
    _report, said = feed(ledger, place(payment="cod"),
                        body(paid("1", pay_type=0, spelling=spelling)),
                        body(shipped("2", spelling=spelling)))
    assert said == [] and events(ledger) == ["OrderPlaced", "OrderConfirmed", "OrderShipped"]
    assert list(ledger.order_events(str(BIG)))[1].at == T0 + HOUR  # pay_time


def test_a_pay_type_contradicting_the_order_is_reported(ledger: Ledger) -> None:
    report, said = feed(ledger, place(), body(paid("1", pay_type=0)))
    assert report.reported == 1 and "pay_type 0 says cod" in said[0]


# --- 4. times: ISO and Unix; 208 by modify_time ------------------------------------------

@pytest.mark.parametrize("field,value", [
    ("apply_time", ts(T0 + 2 * DAY)), ("apply_time", str(ts(T0 + 2 * DAY))),
    ("update_time", (T0 + 2 * DAY).isoformat()), ("update_time", ts(T0 + 2 * DAY)),
    ("apply_time", (T0 + 2 * DAY).astimezone().isoformat())])
def test_a_time_is_read_in_either_form_in_either_field(
        ledger: Ledger, field: str, value: object) -> None:
    msg = message(200, "7", p_id=BIG, s_id=BIG, aftersale_id=CASE, aftersale_type=0,
                  refund_amount=9900, **{field: value})
    _, said = feed(ledger, *delivered(), body(msg))
    assert said == [] and list(ledger.order_events(str(BIG)))[-1].at == T0 + 2 * DAY


def test_the_own_time_comes_before_update_time(ledger: Ledger) -> None:
    feed(ledger, *requested(), body(aftersale(208, "8", T0 + 2 * DAY + HOUR,
                                              refund_amount=5000,
                                              update_time=(T0 + 3 * DAY).isoformat())))
    amended = list(ledger.order_events(str(BIG)))[-1]
    assert type(amended).__name__ == "RequestAmended" and amended.at == T0 + 2 * DAY + HOUR


# --- 5. timeless messages take the receive time ----------------------------------------

def test_a_timeless_message_takes_the_receive_time_of_its_body(ledger: Ledger) -> None:
    received = T0 + 2 * DAY + HOUR
    _report, said = feed(ledger, *requested(),
                        body(aftersale(209, "9", None, status_deadline=ts(T0 + 5 * DAY)),
                             received_at=received))
    assert said == []
    moved = list(ledger.order_events(str(BIG)))[-1]
    assert type(moved).__name__ == "DeadlineSet" and moved.at == received


def test_a_bare_body_takes_received_at_and_without_it_refuses_only_its_timeless_messages(
        ledger: Ledger) -> None:
    bare = body(aftersale(209, "9", None, status_deadline=ts(T0 + 5 * DAY)),
                aftersale(202, "10", T0 + 2 * DAY + HOUR))
    _report, said = feed(ledger, *requested(), bare)
    assert said == ["line 6: INPUT: message 1 (tag 209 ExpirationChange): no time: the "
                    "message carries none ('update_time') and the body no receive time (a "
                    "received_at line, or --received-at)"]
    assert events(ledger)[-1] == "MerchantApproved"  # its neighbour applied
    other = Ledger("memory:")
    _, said = feed(other, *requested(), bare, received_at=T0 + 2 * DAY + 30 * MINUTE)
    assert said == [] and events(other)[-2:] == ["DeadlineSet", "MerchantApproved"]


# --- 6. refund_amount includes postage; an exchange asks 0 -------------------------------

def test_the_amount_asked_is_refund_amount_less_its_postage(ledger: Ledger) -> None:
    feed(ledger, *requested(kind=1, amount=5000, postage=800))
    assert status(ledger)["return"]["amount"] == 5000


def test_an_exchange_with_refund_amount_0_asks_the_refundable_goods(ledger: Ledger) -> None:
    _report, said = feed(ledger, *requested(kind=3, amount=0))
    assert said == [] and events(ledger)[-1] == "ExchangeRequested"
    assert status(ledger)["return"]["amount"] == 9900


# --- 7. op_role: the platform's timer is reconciled, never the merchant's act -----------

def test_a_system_approval_at_the_deadline_is_the_ledgers_timeout_and_agrees(
        ledger: Ledger) -> None:
    deadline = T0 + 2 * DAY + 48 * HOUR
    _report, said = feed(ledger, *requested(kind=1, amount=5000),
                        body(aftersale(201, "11", deadline + 40 * SECOND, kind=1, op_role=4)))
    assert said == []
    assert events(ledger)[-3:] == ["RefundAutoApproved", "PlatformRefunded",
                                   "PlatformAgreed"]
    assert [v["rule"] for v in status(ledger)["violations"]] == ["REFUND_RESPONSE_48H"]


def test_a_system_approval_stamped_just_before_the_deadline_still_is_the_timeout(
        ledger: Ledger) -> None:
    deadline = T0 + 2 * DAY + 48 * HOUR
    feed(ledger, *requested(kind=1, amount=5000),
         body(aftersale(201, "11", deadline - 30 * SECOND, kind=1, op_role=4)))
    assert events(ledger)[-3:] == ["RefundAutoApproved", "PlatformRefunded",
                                   "PlatformAgreed"]


def test_a_merchant_approval_is_the_merchants_act(ledger: Ledger) -> None:
    feed(ledger, *requested(kind=1, amount=5000),
         body(aftersale(201, "11", T0 + 2 * DAY + HOUR, kind=1, op_role=2)))
    assert events(ledger)[-2:] == ["RefundApproved", "PlatformRefunded"]
    assert status(ledger)["violations"] == []


def test_an_agreement_without_op_role_is_reported_not_guessed(ledger: Ledger) -> None:
    report, said = feed(ledger, *requested(kind=1, amount=5000),
                        body(aftersale(201, "11", T0 + 2 * DAY + HOUR, kind=1)))
    assert report.reported == 1 and "op_role None" in said[0]


# --- 8. BuyerReturnGoods has no carrier and no number ------------------------------------

@pytest.mark.parametrize("spelling", SPELLINGS)
def test_goods_sent_back_without_carrier_or_number(ledger: Ledger, spelling: str) -> None:
    _report, said = feed(ledger, *requested(spelling=spelling),
                        body(aftersale(202, "12", T0 + 2 * DAY + HOUR, spelling=spelling)),
                        body(aftersale(203, "13", T0 + 3 * DAY, spelling=spelling)))
    assert said == [] and events(ledger)[-1] == "TrackingSubmitted"
    case = status(ledger)["return"]
    assert case["status"] == "in_transit"
    assert case.get("carrier") is None and case.get("tracking_no") is None


# --- 9. ExchangeComfirmed: receipt, then the replacement shipped -------------------------

def test_an_exchange_confirmed_is_two_steps_and_success_ends_it(ledger: Ledger) -> None:
    _report, said = feed(
        ledger, *requested(kind=3, amount=0),
        body(aftersale(202, "14", T0 + 2 * DAY + HOUR, kind=3)),
        body(aftersale(203, "15", T0 + 3 * DAY, kind=3)),
        body(aftersale(211, "16", T0 + 4 * DAY, kind=3)),
        body(aftersale(207, "17", T0 + 6 * DAY, kind=3, status=12)))
    assert said == []
    assert events(ledger)[-3:] == ["ReceiptConfirmed", "ReplacementShipped",
                                   "ReplacementDelivered"]
    trail = list(ledger.order_events(str(BIG)))
    assert trail[-3].at == trail[-2].at == T0 + 4 * DAY  # update_time, not apply_time
    assert status(ledger)["return"]["status"] == "exchanged"


# --- 10. rulings without blame; a withdrawn appeal -------------------------------------

def _rejected(ledger: Ledger) -> None:
    feed(ledger, *requested(kind=1, amount=5000),
         body(aftersale(204, "18", T0 + 2 * DAY + HOUR, kind=1, refuse_reason="used")))


@pytest.mark.parametrize("conclusion,outcome", [(1, "user"), (2, "merchant"), (3, "user")])
def test_a_ruling_by_arbitrate_conclusion_has_unknown_blame(
        ledger: Ledger, conclusion: int, outcome: str) -> None:
    _rejected(ledger)
    received = T0 + 3 * DAY
    _, said = feed(ledger,
                   body(aftersale(212, "19", None, kind=1, arbitrate_id="AR1"),
                        received_at=received),
                   body(aftersale(214, "20", None, kind=1, arbitrate_id="AR1"),
                        received_at=received + HOUR),
                   body(aftersale(216, "21", None, kind=1, arbitrate_id="AR1",
                                  arbitrate_conclusion=conclusion, arbitrate_status=255),
                        received_at=received + 2 * HOUR))
    assert said == []
    ruling = status(ledger)["return"]["arbitration"]
    assert (ruling["outcome"], ruling["blame"]) == (outcome, "unknown")


def test_arbitrate_cancelled_withdraws_the_appeal(ledger: Ledger) -> None:
    _rejected(ledger)
    received = T0 + 3 * DAY
    _, said = feed(ledger, body(aftersale(212, "19", None, kind=1), received_at=received),
                   body(aftersale(215, "22", None, kind=1), received_at=received + HOUR))
    assert said == [] and events(ledger)[-1] == "AppealWithdrawn"
    doc = status(ledger)["return"]
    assert doc["status"] == "rejected" and doc["deadline"] is None


# --- 11. aftersale_id is the case ------------------------------------------------------

def test_a_late_message_lands_on_its_own_case_not_the_latest(ledger: Ledger) -> None:
    second = CASE + 1
    _report, said = feed(
        ledger, *requested(kind=1, amount=3000),
        body(aftersale(201, "23", T0 + 2 * DAY + HOUR, kind=1, op_role=2)),
        body(aftersale(200, "24", T0 + 3 * DAY, case=second, kind=1, refund_amount=2000)),
        # the platform's account of the first case's refund, arriving after the second
        body(aftersale(206, "25", T0 + 3 * DAY + HOUR, kind=1, refund_amount=3000)))
    assert said == []
    last = list(ledger.order_events(str(BIG)))[-1]
    assert type(last).__name__ == "PlatformAgreed" and last.case == 1
    assert status(ledger)["return"]["status"] == "requested"  # the second, untouched


def test_a_message_of_a_case_the_ledger_never_opened_is_reported(ledger: Ledger) -> None:
    report, said = feed(ledger, *delivered(),
                        body(aftersale(202, "26", T0 + 2 * DAY, case=CASE + 9)))
    assert report.reported == 1 and f"no after-sale case {CASE + 9}" in said[0]


# --- 12. RefundModified amends the open request ----------------------------------------

def test_refund_modified_amends_the_amount_asked(ledger: Ledger) -> None:
    _report, said = feed(ledger, *requested(kind=1, amount=5000, postage=800),
                        body(aftersale(208, "27", T0 + 2 * DAY + HOUR, kind=1,
                                       refund_amount=3800, refund_post_amount=800)))
    assert said == [] and status(ledger)["return"]["amount"] == 3000


def test_an_amendment_above_the_refundable_amount_is_refused(ledger: Ledger) -> None:
    report, _said = feed(ledger, *requested(kind=1, amount=5000),
                        body(aftersale(208, "27", T0 + 2 * DAY + HOUR, kind=1,
                                       refund_amount=99000)))
    assert report.refused == {"R-AMOUNT": 1}


# --- 13. TradeCanceled: who cancelled follows from the state -----------------------------

@pytest.mark.parametrize("payment,lines,when,by,last", [
    ("online", [], T0 + HOUR, "user", "OrderCancelled"),
    ("online", ["paid"], T0 + 2 * HOUR, "platform", "OrderCancelled"),
    ("online", [], T0 + 24 * HOUR + 30 * SECOND, "system", "PlatformAgreed"),  # C-ON-4
    ("cod", [], T0 + HOUR, "merchant", "OrderCancelled"),
    ("cod", ["confirmed"], T0 + 2 * HOUR, "merchant", "OrderCancelled"),
    ("cod", ["confirmed", "shipped"], T0 + 3 * HOUR, "platform", "OrderCancelled"),
])
def test_trade_canceled_names_who_cancelled_from_the_orders_state(
        ledger: Ledger, payment: str, lines: list[str], when: datetime, by: str,
        last: str) -> None:
    steps = {"paid": body(paid("1")), "confirmed": body(paid("1", pay_type=0)),
             "shipped": body(shipped("2"))}
    _report, said = feed(ledger, place(payment=payment), *[steps[x] for x in lines],
                        body(cancelled("3", at=when)))
    assert said == [] and events(ledger)[-1] == last
    order = ledger.get_order(str(BIG))
    assert order is not None and order.cancelled_by == by


# --- 14. tolerance --------------------------------------------------------------------

@pytest.mark.parametrize("late,kind", [(40, None), (3 * 3600, None), (73 * 3600, "time")])
def test_a_refund_arriving_within_the_refunds_tolerance_agrees(
        ledger: Ledger, late: int, kind: str | None) -> None:
    approved = T0 + 2 * DAY + HOUR
    feed(ledger, *requested(kind=1, amount=5000),
         body(aftersale(201, "28", approved, kind=1, op_role=2)),
         body(aftersale(206, "29", approved + late * SECOND, kind=1,
                        refund_amount=5000)))
    last = list(ledger.order_events(str(BIG)))[-1]
    assert type(last).__name__ == ("PlatformAgreed" if kind is None else "PlatformDiffered")


def test_a_timer_beyond_the_tolerance_is_a_time_discrepancy_and_the_option_widens_it(
        ledger: Ledger) -> None:
    deadline = T0 + 2 * DAY + 48 * HOUR
    late = body(aftersale(202, "30", deadline + 20 * MINUTE))
    feed(ledger, *requested(), late)
    last = list(ledger.order_events(str(BIG)))[-1]
    assert type(last).__name__ == "PlatformDiffered" and last.kind == "time"
    wide = Ledger("memory:")
    from aftersales.feeds.douyin import Tolerance
    feed(wide, *requested(), late, tolerance=Tolerance(timers=30 * MINUTE))
    assert type(list(wide.order_events(str(BIG)))[-1]).__name__ == "PlatformAgreed"


# --- 15. ExpirationChange moves the ledger's timer ------------------------------------

def test_expiration_change_moves_the_ledgers_own_timer(ledger: Ledger) -> None:
    moved_to = T0 + 6 * DAY
    feed(ledger, *requested(kind=1, amount=5000),
         body(aftersale(209, "31", None, kind=1, status_deadline=ts(moved_to)),
              received_at=T0 + 2 * DAY + HOUR))
    ledger.tick(T0 + 5 * DAY)  # past the rules' 48 h, before the platform's new deadline
    assert status(ledger)["return"]["status"] == "requested"
    assert status(ledger)["violations"] == []
    ledger.tick(moved_to + MINUTE)
    assert status(ledger)["return"]["status"] == "refunded"


def test_an_expiration_change_of_a_passed_deadline_is_a_discrepancy(ledger: Ledger) -> None:
    feed(ledger, *requested(kind=1, amount=5000),
         body(aftersale(209, "31", None, kind=1, status_deadline=ts(T0 + 6 * DAY)),
              received_at=T0 + 5 * DAY))
    last = list(ledger.order_events(str(BIG)))[-1]
    assert type(last).__name__ == "PlatformDiffered" and last.kind == "deadline"


# --- the tags ------------------------------------------------------------------------

def test_every_tag_of_the_spec_is_in_the_table() -> None:
    assert set(TAGS) == {100, 101, 102, 103, 106, 108, 200, 201, 202, 203, 204, 205, 206,
                         207, 208, 209, 211, 212, 213, 214, 215, 216}


@pytest.mark.parametrize("tag", [217, 218, 224, 225, 226, 227, 10001])
def test_tags_the_ledger_does_not_rule_are_counted_and_ignored(ledger: Ledger, tag: int
                                                                ) -> None:
    report, said = feed(ledger, place(), body(order_msg(tag, "x"), paid("y")))
    assert said == [] and report.ignored == 1 and report.by_tag[str(tag)] == 1
    assert events(ledger) == ["OrderPlaced", "PaymentReceived"]


def test_an_aftersale_type_the_ledger_does_not_rule_is_ignored(ledger: Ledger) -> None:
    report, said = feed(ledger, *delivered(),
                        body(aftersale(200, "32", T0 + 2 * DAY, kind=5, refund_amount=100)))
    assert said == [] and report.ignored == 1 and events(ledger)[-1] == "OrderDelivered"


def test_trade_success_records_the_delivery(ledger: Ledger) -> None:
    _, said = feed(ledger, *delivered())
    assert said == [] and list(ledger.order_events(str(BIG)))[-1].at == T0 + DAY


def test_a_cod_refund_success_is_the_merchants_voucher(ledger: Ledger) -> None:
    lines = [place(payment="cod"), body(paid("1", pay_type=0)), body(shipped("2")),
             body(completed("3")),
             body(aftersale(200, "4", T0 + 2 * DAY, refund_amount=9900)),
             body(aftersale(202, "5", T0 + 2 * DAY + HOUR)),
             body(aftersale(203, "6", T0 + 3 * DAY)),
             body(aftersale(201, "7", T0 + 4 * DAY, op_role=2)),
             body(aftersale(206, "8", T0 + 4 * DAY + HOUR, refund_amount=9900))]
    _, said = feed(ledger, *lines)
    assert said == [] and events(ledger)[-1] == "RefundVoucherUploaded"
    assert list(ledger.order_events(str(BIG)))[-1].voucher_ref == f"douyin-{CASE}"


def test_messages_read_as_json_numbers_keep_every_digit() -> None:
    line = body(paid("1", BIG, spelling="camel"))
    assert str(BIG).encode() in line and json.loads(line)[0]["data"]["s_ids"] == [BIG]


# --- what a review found: each a wrong answer before ------------------------------------

def test_a_dispute_step_of_a_case_that_is_not_the_latest_is_reported(ledger: Ledger) -> None:
    second = CASE + 1
    report, said = feed(
        ledger, *requested(kind=1, amount=3000),
        body(aftersale(204, "33", T0 + 2 * DAY + HOUR, kind=1, refuse_reason="used")),
        body(aftersale(200, "34", T0 + 3 * DAY, case=second, kind=1, refund_amount=2000)),
        body(aftersale(204, "35", T0 + 3 * DAY + HOUR, case=second, kind=1,
                       refuse_reason="used")),
        body(aftersale(212, "36", None, kind=1), received_at=T0 + 4 * DAY))  # the first's
    assert report.reported == 1 and "is not the order's latest (case 2)" in said[0]
    assert events(ledger)[-1] == "MerchantRejected"  # nothing recorded on case 2
    assert status(ledger)["return"]["status"] == "rejected"


def test_an_expiration_change_after_the_ledgers_timer_took_the_step_moves_nothing(
        ledger: Ledger) -> None:
    """The platform extends the answer deadline, but the 209 arrives after the ledger's
    R-1 timer approved: the now pending tracking deadline (R-2) must not be moved."""
    feed(ledger, *requested(),
         body(aftersale(209, "37", None, status_deadline=ts(T0 + 5 * DAY)),
              received_at=T0 + 4 * DAY + 5 * MINUTE))
    last = list(ledger.order_events(str(BIG)))[-1]
    assert type(last).__name__ == "PlatformDiffered" and last.kind == "deadline"
    case = status(ledger)["return"]
    assert case["status"] == "approved"
    assert datetime.fromisoformat(case["deadline"]) == T0 + 4 * DAY + 7 * DAY  # R-2's own


def test_a_return_without_refund_amount_is_reported_not_guessed(ledger: Ledger) -> None:
    msg = aftersale(200, "38", T0 + 2 * DAY)  # no refund_amount
    report, said = feed(ledger, *delivered(), body(msg))
    assert report.reported == 1 and "no refund_amount" in said[0]
    assert status(ledger)["return"] is None


def test_a_field_refused_while_deciding_is_recorded_and_not_decided_again(
        ledger: Ledger) -> None:
    bad = body(aftersale(203, "39", T0 + 3 * DAY, logistics_code="a b"))
    lines = [*requested(), body(aftersale(202, "40", T0 + 2 * DAY + HOUR)), bad]
    report, said = feed(ledger, *lines)
    assert report.refused == {"INPUT": 1} and "field tracking" in said[0]
    assert ledger.message_outcomes(["douyin:39"])["douyin:39"].code == "INPUT"
    ledger.tick(T0 + 12 * DAY)  # the case closes for want of the goods
    before = events(ledger)
    again, told = feed(ledger, *lines)
    assert events(ledger) == before and told == [] and again.duplicates == 7


def test_a_received_at_out_of_range_is_refused_not_a_traceback(ledger: Ledger) -> None:
    report, said = feed(ledger, b'{"received_at":"9999-12-31T23:59:59-23:59","body":[]}',
                        b'{"received_at":"0001-01-01T00:00:00+14:00","body":[]}')
    assert report.refused == {"INPUT": 2}
    assert all("not a date between 2000 and 2100" in x for x in said)


def test_a_message_that_would_be_recorded_in_the_future_is_not_decided(
        store_url: str) -> None:
    from aftersales.application.clock import guard_for
    from aftersales.settings import Settings
    ledger = Ledger(store_url, guard=guard_for(Settings()))  # the command line's guard
    try:
        future = body(paid("2099", at=datetime.fromisoformat("2099-01-01T00:00:00+08:00")))
        report, said = feed(ledger, place(), future)
        assert report.refused == {"FUTURE": 1} and ": FUTURE: " in said[0]
        assert ledger.message_outcomes(["douyin:2099"]) == {}  # decided afresh next time
    finally:
        ledger.close()


# --- the table, tag by tag: what each message becomes in each state, in each spelling ---

def _at(state: str, kind: int = 0) -> Any:
    """The order with its case of `kind` in `state`, as the ledger holds it."""
    ledger = Ledger("memory:")
    approve = body(aftersale(202, "a", T0 + 2 * DAY + HOUR, kind=kind))
    sent = body(aftersale(203, "t", T0 + 3 * DAY, kind=kind))
    refuse = body(aftersale(205 if kind in (0, 3) else 204, "r", T0 + 2 * DAY + HOUR,
                            kind=kind, refuse_reason="x"))
    steps = {"requested": [], "approved": [approve], "in_transit": [approve, sent],
             "rejected": [refuse],
             "arbitrating": [refuse, body(aftersale(212, "p", None, kind=kind),
                                          received_at=T0 + 2 * DAY + 2 * HOUR)]}
    feed(ledger, *requested(kind, amount=0 if kind == 3 else 9900), *steps[state])
    return ledger.get_order(str(BIG))


@pytest.mark.parametrize("spelling", SPELLINGS)
@pytest.mark.parametrize("tag,state,kind,becomes", [
    (201, "requested", 1, "approve_return"), (201, "in_transit", 0, "confirm_receipt"),
    (201, "in_transit", 3, "confirm_receipt"), (201, "approved", 0, "reconcile received"),
    (201, "rejected", 1, "reconcile approved"),
    (202, "requested", 0, "approve_return"), (202, "requested", 3, "approve_return"),
    (202, "approved", 0, "reconcile approved"),
    (203, "approved", 0, "submit_tracking"), (203, "approved", 3, "submit_tracking"),
    (203, "in_transit", 0, "ignored"),
    (204, "requested", 1, "reject_return"), (204, "in_transit", 0, "reject_receipt"),
    (204, "rejected", 1, "reconcile rejected"),
    (205, "requested", 0, "reject_return"), (205, "in_transit", 0, "reconcile rejected"),
    (206, "requested", 1, "reconcile refunded"),
    (207, "requested", 0, "withdraw_return"), (207, "approved", 0, "withdraw_return"),
    (207, "in_transit", 0, "reconcile closed"),
    (208, "requested", 0, "amend_request"), (208, "in_transit", 0, "amend_request"),
    (209, "requested", 0, "set_deadline"), (209, "in_transit", 3, "set_deadline"),
    (209, "rejected", 0, "reconcile deadline"),
    (211, "in_transit", 3, "confirm_receipt ship_replacement"),
    (211, "requested", 3, "reconcile received"), (211, "requested", 0, "reported"),
    (212, "rejected", 1, "appeal"), (212, "rejected", 0, "appeal"),
    (212, "arbitrating", 0, "ignored"),
    (213, "arbitrating", 0, "ignored"), (214, "arbitrating", 0, "submit_evidence"),
    (214, "rejected", 0, "ignored"), (215, "arbitrating", 1, "withdraw_appeal"),
    (215, "rejected", 0, "ignored"), (216, "arbitrating", 1, "arbitrate"),
    (216, "rejected", 1, "reconcile ruled"),
])
def test_each_tag_becomes_the_command_of_the_cases_kind_and_state(
        tag: int, state: str, kind: int, becomes: str, spelling: str) -> None:
    from aftersales.feeds.douyin import TOLERANCE, decide
    from aftersales.feeds.douyin import message as read_message
    order = _at(state, kind)
    when = T0 + 4 * DAY  # within every deadline the states above run
    data: dict[str, Any] = {"refund_amount": 5000, "status_deadline": ts(T0 + 9 * DAY),
                            "refuse_reason": "x", "op_role": 2, "arbitrate_conclusion": 1}
    raw = aftersale(tag, "m", None if tag in (209, 212, 213, 214, 215, 216) else when,
                    kind=kind, spelling=spelling, **data)
    m = read_message(0, json.loads(json.dumps(raw)), when)
    assert m.tag == tag  # type: ignore[union-attr]
    order.apply_due_timeouts(when, Ledger("memory:").policy)
    [(_, decision)] = decide(m, {str(BIG): order}, TOLERANCE)  # type: ignore[arg-type]
    if isinstance(decision, list):
        names = [c.command + (f" {c.fact}" if c.command == "reconcile" else "")
                 for c in decision]
        assert " ".join(names) == becomes
    else:
        assert decision.status == becomes
