"""SPEC section 10: Douyin push messages as ledger commands (docs/platforms/douyin.md, tag
by tag), idempotent by msg_id, in business-time order within the lateness window, and the
platform's account of steps the ledger had taken reconciled: agreeing, or a discrepancy
of each kind with both versions."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aftersales import Ledger, status_document
from aftersales.application import commands as cmd
from aftersales.application.clock import guard_for
from aftersales.errors import CommandRefused
from aftersales.feeds.douyin import TAGS, Message, Skipped, decide, parse_body, unix
from aftersales.feeds.run import ingest_feed
from aftersales.settings import Settings

T0 = datetime.fromisoformat("2026-03-01T10:00:00+08:00")
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
SHOP = "SHOP1"


def ts(at: datetime) -> int:
    return int(at.timestamp())


def push(tag: int, msg_id: str, **data: Any) -> bytes:
    """One push body of one message, `data` as the JSON string the platform sends."""
    return json.dumps([{"tag": tag, "msg_id": msg_id, "data": json.dumps(data)}]).encode()


def place(order_id: str = "S1", payment: str = "online", at: datetime = T0) -> bytes:
    return json.dumps({"command": "place_order", "order_id": order_id,
                       "at": at.isoformat(), "payment": payment, "merchant_id": SHOP,
                       "user_id": "B1", "goods_amount": 9900, "postage": 800}).encode()


def feed(ledger: Ledger, *lines: bytes, lateness: timedelta = timedelta(minutes=10)
         ) -> tuple[Any, list[str]]:
    said: list[str] = []
    report = ingest_feed(ledger, list(lines), lateness=lateness, on_refused=said.append)
    return report, said


#: An online order paid, shipped and delivered through the feed.
def delivered(order_id: str = "S1") -> list[bytes]:
    return [place(order_id),
            push(101, f"{order_id}-pay", s_id=order_id, pay_type=1, pay_amount=10700,
                 pay_time=ts(T0 + HOUR)),
            push(102, f"{order_id}-ship", s_id=order_id, logistics_company="SF",
                 logistics_code="SF1", ship_time=ts(T0 + 2 * HOUR)),
            push(103, f"{order_id}-done", s_id=order_id, complete_time=ts(T0 + DAY))]


def requested(kind: int, order_id: str = "S1", amount: int = 9900) -> list[bytes]:
    return [*delivered(order_id),
            push(200, f"{order_id}-ask", s_id=order_id, aftersale_id="A1",
                 aftersale_type=kind, refund_amount=amount, reason="size",
                 apply_time=ts(T0 + 2 * DAY))]


def events(ledger: Ledger, order_id: str = "S1") -> list[str]:
    return [type(e).__name__ for e in ledger.order_events(order_id)]


def message(tag: int, **data: Any) -> Message:
    [m] = parse_body(push(tag, "x", s_id="S1", update_time=ts(T0 + 3 * DAY), **data).decode())
    return m


# --- reading the push bodies -----------------------------------------------------------

def test_a_body_is_an_array_of_messages_with_data_as_a_string_or_an_object() -> None:
    line = json.dumps([
        {"tag": 101, "msg_id": "a", "data": json.dumps({"s_id": "S1", "pay_time": 1772330400})},
        {"tag": "102", "msgId": 7, "data": {"s_id": "S1", "update_time": 1772334000}}])
    first, second = parse_body(line)
    assert (first.tag, first.msg_id, first.order_id) == (101, "a", "S1")
    assert first.at == unix(1772330400, "t") and first.at.utcoffset() == 8 * HOUR
    assert (second.tag, second.msg_id, second.command_id) == (102, "7", "douyin:7")


@pytest.mark.parametrize("line,said", [
    ("[{", "not JSON"),
    ('[{"msg_id": "a", "data": {}}]', "message 1: field 'tag': expected a whole number"),
    ('[{"tag": 201.9, "msg_id": "a", "data": {}}]', "field 'tag': expected a whole number"),
    ('[{"tag": 1e999, "msg_id": "a", "data": {}}]', "field 'tag': expected a whole number"),
    ('[{"tag": 101, "msg_id": "a", "data": {"s_id": "S1", "pay_time": 1e999}}]',
     "expected Unix seconds, got 'inf'"),
    ('[{"tag": 101, "data": {}}]', "message 1: field 'msg_id': required"),
    ('[{"tag": 101, "msg_id": "a", "data": "{"}]', "message 1: field 'data': not JSON"),
    ('[{"tag": 101, "msg_id": "a", "data": {"s_id": "S1"}}]',
     "message 1 (tag 101): no time: expected 'pay_time' or 'update_time'"),
    ('[{"tag": 101, "msg_id": "a", "data": {"s_id": "S1", "pay_time": "soon"}}]',
     "expected Unix seconds, got 'soon'"),
    ('"a"', "a push body is a JSON array of messages"),
])
def test_a_bad_body_is_refused_input_naming_the_message_and_field(line: str,
                                                                  said: str) -> None:
    with pytest.raises(CommandRefused) as refused:
        parse_body(line)
    assert refused.value.code == "INPUT" and said in refused.value.reason


def test_a_bad_line_is_refused_with_its_number_and_the_rest_goes_on(ledger: Ledger) -> None:
    report, said = feed(ledger, *delivered()[:2], b"[{", *delivered()[2:])
    assert said == ["line 3: INPUT: not JSON: Expecting property name enclosed in double "
                    "quotes at column 3"]
    assert events(ledger) == ["OrderPlaced", "PaymentReceived", "OrderShipped",
                              "OrderDelivered"]
    assert report.refused == {"INPUT": 1}


# --- order tags ------------------------------------------------------------------------

def test_order_tags_place_pay_ship_and_deliver_from_a_place_order_line(
        ledger: Ledger) -> None:
    report, said = feed(ledger, *delivered())
    assert said == [] and report.applied == 4 and report.commands == 1
    doc = status_document(ledger.get_order("S1"))  # type: ignore[arg-type]
    assert doc["order_status"] == "delivered"
    trail = list(ledger.order_events("S1"))
    assert trail[1].command_id == "douyin:S1-pay" and trail[2].carrier == "SF"


def test_a_trade_create_without_amounts_is_reported_not_guessed(ledger: Ledger) -> None:
    report, said = feed(ledger, push(100, "c1", s_id="S9", create_time=ts(T0)),
                        push(101, "p1", s_id="S9", pay_type=1, pay_time=ts(T0 + HOUR)))
    assert report.reported == 2 and report.applied == 0
    assert said[0] == ("line 1 (msg c1, tag 100 TradeCreate): REPORTED: TradeCreate: order S9 "
                       "is not in the ledger: place it first, from an order export or a "
                       "place_order line (the push carries no amounts)")
    assert ledger.get_order("S9") is None


def test_a_trade_create_of_a_placed_order_and_a_cod_payment_are_ignored(
        ledger: Ledger) -> None:
    report, said = feed(ledger, place("S1", "cod"), push(100, "c1", s_id="S1",
                                                          create_time=ts(T0)),
                        push(101, "p1", s_id="S1", pay_type=0, pay_time=ts(T0 + HOUR)))
    assert (report.ignored, said) == (2, [])


def test_a_pay_type_contradicting_the_order_is_reported(ledger: Ledger) -> None:
    report, said = feed(ledger, place("S1", "online"),
                        push(101, "p1", s_id="S1", pay_type=0, pay_time=ts(T0 + HOUR)))
    assert report.reported == 1 and "pay_type 0 says cod" in said[0]


def test_a_shipment_without_tracking_is_reported(ledger: Ledger) -> None:
    report, said = feed(ledger, *delivered()[:2],
                        push(102, "s1", s_id="S1", ship_time=ts(T0 + 2 * HOUR)))
    assert report.reported == 1 and "no carrier and tracking number" in said[0]


def test_trade_canceled_cancels_or_agrees_with_the_ledgers_own_cancellation(
        ledger: Ledger) -> None:
    report, _ = feed(ledger, place("S1"), place("S2"),
                     push(106, "x1", s_id="S1", cancel_reason="changed my mind",
                          cancel_by="user", cancel_time=ts(T0 + HOUR)),
                     # S2 unpaid past 24 h: the ledger's C-ON-4 cancelled it first
                     push(106, "x2", s_id="S2", cancel_time=ts(T0 + 2 * DAY)))
    assert events(ledger, "S1")[-1] == "OrderCancelled"
    assert ledger.get_order("S1").cancelled_by == "user"  # type: ignore[union-attr]
    assert (report.applied, report.ignored) == (3, 1)  # 2 placed, S1 cancelled; x2 ignored


# --- after-sale tags -------------------------------------------------------------------

@pytest.mark.parametrize("kind,event,amount", [
    (0, "ReturnRequested", 9900), (1, "RefundRequested", 5000),
    (3, "ExchangeRequested", 9900)])
def test_refund_created_opens_the_case_of_its_aftersale_type(
        ledger: Ledger, kind: int, event: str, amount: int) -> None:
    feed(ledger, *requested(kind, amount=amount))
    assert events(ledger)[-1] == event
    case = ledger.get_order("S1").latest_case  # type: ignore[union-attr]
    assert case is not None and case.amount == amount


def test_refund_created_before_shipment_is_a_refund_of_goods_and_postage(
        ledger: Ledger) -> None:
    feed(ledger, *delivered()[:2],
         push(200, "r", s_id="S1", aftersale_type=2, apply_time=ts(T0 + 2 * HOUR)))
    case = ledger.get_order("S1").latest_case  # type: ignore[union-attr]
    assert case is not None and case.kind.value == "refund" and case.amount == 10700


def test_an_unknown_aftersale_type_is_reported(ledger: Ledger) -> None:
    report, said = feed(ledger, *delivered(), push(200, "r", s_id="S1", aftersale_type=9,
                                                   apply_time=ts(T0 + 2 * DAY)))
    assert report.reported == 1 and "aftersale_type 9" in said[0]


def test_a_return_through_its_tags_approved_tracked_received_and_refunded(
        ledger: Ledger) -> None:
    report, said = feed(
        ledger, *requested(0),
        push(202, "ok", s_id="S1", agree_time=ts(T0 + 2 * DAY + HOUR)),
        push(203, "back", s_id="S1", logistics_company="YTO", logistics_code="YT9",
             return_time=ts(T0 + 3 * DAY)),
        push(201, "got", s_id="S1", agree_time=ts(T0 + 4 * DAY)),
        # the platform refunded at the receipt, as the ledger did (R-ON-4): agreeing
        push(206, "paid", s_id="S1", refund_amount=9900, success_time=ts(T0 + 4 * DAY)))
    assert said == []
    assert events(ledger)[4:] == ["ReturnRequested", "MerchantApproved",
                                  "TrackingSubmitted", "ReceiptConfirmed",
                                  "PlatformRefunded", "PlatformAgreed"]
    assert report.reconciled == 1


def test_refused_tags_reject_a_request_or_the_returned_goods(ledger: Ledger) -> None:
    feed(ledger, *requested(1), push(204, "no", s_id="S1", refuse_reason="used",
                                     refuse_time=ts(T0 + 2 * DAY + HOUR)))
    assert events(ledger)[-1] == "MerchantRejected"
    feed(ledger, *requested(0, "S2"),
         push(202, "ok2", s_id="S2", agree_time=ts(T0 + 2 * DAY + HOUR)),
         push(203, "back2", s_id="S2", logistics_company="YTO", logistics_code="YT2",
              return_time=ts(T0 + 3 * DAY)),
         push(204, "no2", s_id="S2", refuse_reason="damaged", refuse_time=ts(T0 + 4 * DAY)))
    assert events(ledger, "S2")[-1] == "ReceiptRejected"


def test_a_cod_refund_success_is_the_merchants_voucher(ledger: Ledger) -> None:
    lines = [place("K1", "cod"), json.dumps({
        "command": "confirm_order", "order_id": "K1",
        "at": (T0 + HOUR).isoformat()}).encode(),
        push(102, "k-ship", s_id="K1", logistics_company="SF", logistics_code="SF7",
             ship_time=ts(T0 + 2 * HOUR)),
        push(103, "k-done", s_id="K1", complete_time=ts(T0 + DAY)),
        push(200, "k-ask", s_id="K1", aftersale_type=0, refund_amount=9900, reason="size",
             apply_time=ts(T0 + 2 * DAY)),
        push(202, "k-ok", s_id="K1", agree_time=ts(T0 + 2 * DAY + HOUR)),
        push(203, "k-back", s_id="K1", logistics_company="YTO", logistics_code="YT3",
             return_time=ts(T0 + 3 * DAY)),
        push(201, "k-got", s_id="K1", agree_time=ts(T0 + 4 * DAY)),
        push(206, "k-paid", s_id="K1", aftersale_id="A7", refund_amount=9900,
             success_time=ts(T0 + 4 * DAY + HOUR))]
    _, said = feed(ledger, *lines)
    assert said == [] and events(ledger, "K1")[-1] == "RefundVoucherUploaded"
    assert list(ledger.order_events("K1"))[-1].voucher_ref == "douyin-A7"


def test_refund_closed_withdraws_an_open_request(ledger: Ledger) -> None:
    feed(ledger, *requested(0), push(207, "bye", s_id="S1", close_time=ts(T0 + 2 * DAY + HOUR)))
    assert events(ledger)[-1] == "ReturnWithdrawn"


def test_the_arbitration_tags_appeal_send_evidence_and_rule(ledger: Ledger) -> None:
    report, said = feed(
        ledger, *requested(1), push(204, "no", s_id="S1", refuse_reason="used",
                                    refuse_time=ts(T0 + 2 * DAY + HOUR)),
        push(212, "arb", s_id="S1", arbitrate_id="R1", update_time=ts(T0 + 3 * DAY)),
        push(213, "ask", s_id="S1", arbitrate_id="R1", update_time=ts(T0 + 3 * DAY + HOUR)),
        push(214, "sent", s_id="S1", arbitrate_id="R1", update_time=ts(T0 + 4 * DAY)),
        push(216, "ruled", s_id="S1", arbitrate_id="R1", arbitrate_status=2,
             arbitrate_blame="merchant", arbitrate_conclusion="not used",
             update_time=ts(T0 + 4 * DAY + HOUR)))
    assert said == [] and report.ignored == 1  # 213: the ledger's A-2 deadline waits
    assert events(ledger)[-4:] == ["Appealed", "EvidenceSubmitted", "ArbitrationRuled",
                                   "PlatformRefunded"]


@pytest.mark.parametrize("data,said", [
    ({"arbitrate_status": 1}, "arbitrate_status 1 is not a ruling"),
    ({"arbitrate_status": 2}, "no blame"),
])
def test_a_ruling_without_its_outcome_or_blame_is_reported(
        ledger: Ledger, data: dict[str, Any], said: str) -> None:
    report, told = feed(
        ledger, *requested(1), push(204, "no", s_id="S1", refuse_reason="used",
                                    refuse_time=ts(T0 + 2 * DAY + HOUR)),
        push(212, "arb", s_id="S1", update_time=ts(T0 + 3 * DAY)),
        push(216, "ruled", s_id="S1", update_time=ts(T0 + 3 * DAY + HOUR), **data))
    assert report.reported == 1 and said in told[0]


@pytest.mark.parametrize("tag,said", [
    (208, "RefundModified: the ledger keeps the request"),
    (215, "ArbitrateCancelled: the ledger has no withdrawal of an appeal")])
def test_tags_without_a_ledger_step_become_no_command(tag: int, said: str) -> None:
    decision = decide(message(tag), _any_order())
    assert isinstance(decision, Skipped) and said in decision.reason


def test_a_tag_the_ledger_does_not_read_is_ignored_and_its_neighbours_stand(
        ledger: Ledger) -> None:
    body = json.dumps([
        {"tag": 10001, "msg_id": "other", "data": {"shop_id": SHOP}},
        {"tag": 101, "msg_id": "bad", "data": {"s_id": "S1", "pay_time": "soon"}},
        {"tag": 101, "msg_id": "pay", "data": {"s_id": "S1", "pay_type": 1,
                                               "pay_time": ts(T0 + HOUR)}}]).encode()
    report, said = feed(ledger, place(), body)
    assert events(ledger) == ["OrderPlaced", "PaymentReceived"]
    assert report.ignored == 1 and said == [
        "line 2: INPUT: message 2: field 'time': expected Unix seconds, got 'soon'"]


def test_one_message_object_on_a_line_is_a_body_of_one(ledger: Ledger) -> None:
    one = json.dumps({"tag": 101, "msg_id": "pay", "data": json.dumps(
        {"s_id": "S1", "pay_type": 1, "pay_time": ts(T0 + HOUR)})}).encode()
    _, said = feed(ledger, place(), one)
    assert said == [] and events(ledger) == ["OrderPlaced", "PaymentReceived"]


def test_a_field_no_rule_can_read_is_refused_not_a_traceback(ledger: Ledger) -> None:
    _, said = feed(ledger, *requested(0), push(209, "x", s_id="S1", status_deadline=1e999,
                                               update_time=ts(T0 + 2 * DAY + HOUR)),
                   push(206, "y", s_id="S1", refund_amount="lots",
                        success_time=ts(T0 + 2 * DAY + HOUR)))
    assert [x.split(": ")[1] for x in said] == ["INPUT", "INPUT"]


def test_a_message_from_the_future_is_refused_and_does_not_hold_the_window(
        store_url: str) -> None:
    ledger = Ledger(store_url, guard=guard_for(Settings()))  # the command line's guard
    try:
        lines = delivered()
        future = push(103, "2099", s_id="S9", complete_time=4070908800)  # 2099
        report, said = feed(ledger, lines[0], future, lines[1], lines[3], lines[2],
                            lateness=2 * DAY)
        assert said[0].startswith("line 2 (msg 2099, tag 103): FUTURE: ")
        assert report.late == 0
        assert events(ledger)[-2:] == ["OrderShipped", "OrderDelivered"]
    finally:
        ledger.close()


def test_a_refund_type_contradicting_the_shipment_is_reported(ledger: Ledger) -> None:
    report, said = feed(ledger, *delivered(), push(
        200, "r", s_id="S1", aftersale_type=2, apply_time=ts(T0 + 2 * DAY)))
    assert report.reported == 1 and "is a refund before shipment, and the ledger's order " \
        "is delivered" in said[0]


def test_a_late_cod_refund_is_the_voucher_that_settles_the_merchants_debt(
        ledger: Ledger) -> None:
    lines = [place("K1", "cod"), json.dumps({
        "command": "confirm_order", "order_id": "K1", "at": (T0 + HOUR).isoformat()}).encode(),
        push(102, "k1", s_id="K1", company_code="SF", logistics_code="S",
             ship_time=ts(T0 + 2 * HOUR)),
        push(103, "k2", s_id="K1", complete_time=ts(T0 + DAY)),
        push(200, "k3", s_id="K1", aftersale_type=0, refund_amount=9900, reason="size",
             apply_time=ts(T0 + 2 * DAY)),
        push(202, "k4", s_id="K1", agree_time=ts(T0 + 2 * DAY + HOUR)),
        push(203, "k5", s_id="K1", company_code="YTO", logistics_code="Y",
             return_time=ts(T0 + 3 * DAY)),
        push(201, "k6", s_id="K1", agree_time=ts(T0 + 4 * DAY)),
        # the voucher three days after the receipt: the platform compensated at 48 h
        push(206, "k7", s_id="K1", aftersale_id="A9", refund_amount=9900,
             success_time=ts(T0 + 7 * DAY))]
    _, said = feed(ledger, *lines)
    assert said == []
    assert events(ledger, "K1")[-3:] == ["AdvanceCompensationPaid", "MerchantPenalized",
                                          "RefundVoucherUploaded"]
    case = ledger.get_order("K1").latest_case  # type: ignore[union-attr]
    assert case is not None and case.merchant_debt == 0


def test_an_approval_the_platforms_ruling_made_agrees(ledger: Ledger) -> None:
    feed(ledger, *requested(0), push(205, "no", s_id="S1", refuse_reason="used",
                                     refuse_time=ts(T0 + 2 * DAY + HOUR)),
         push(212, "arb", s_id="S1", update_time=ts(T0 + 3 * DAY)),
         push(216, "ruled", s_id="S1", arbitrate_status=2, arbitrate_blame="merchant",
              update_time=ts(T0 + 4 * DAY)),
         push(202, "ok", s_id="S1", agree_time=ts(T0 + 4 * DAY)))
    assert events(ledger)[-1] == "PlatformAgreed"


def test_a_refund_before_shipment_and_its_cancellation_in_one_second(ledger: Ledger) -> None:
    at = ts(T0 + 3 * HOUR)
    _, said = feed(ledger, *delivered()[:2],
                   push(200, "r", s_id="S1", aftersale_type=2, apply_time=ts(T0 + 2 * HOUR)),
                   push(106, "c", s_id="S1", cancel_time=at),
                   push(206, "p", s_id="S1", refund_amount=10700, success_time=at),
                   push(201, "a", s_id="S1", agree_time=at))
    assert said == [] and events(ledger)[-4:] == [
        "RefundApproved", "PlatformRefunded", "OrderCancelledByRefund",
        "PlatformAgreed"]  # the refund as the ledger made it; the cancellation ignored


def _any_order() -> Any:
    ledger = Ledger("memory:")
    feed(ledger, *requested(0))
    return ledger.get_order("S1")


def test_every_tag_of_the_spec_is_in_the_table() -> None:
    assert sorted(TAGS) == [100, 101, 102, 103, 106, *range(200, 210), *range(211, 217)]


# --- reconciliation --------------------------------------------------------------------

def _differed(ledger: Ledger, order_id: str = "S1") -> Any:
    last = list(ledger.order_events(order_id))[-1]
    assert type(last).__name__ == "PlatformDiffered", type(last).__name__
    return last


def test_a_merchant_approval_shown_after_the_deadline_is_a_time_discrepancy(
        ledger: Ledger) -> None:
    feed(ledger, *requested(0),
         push(202, "late", s_id="S1", agree_time=ts(T0 + 4 * DAY + HOUR)))
    d = _differed(ledger)
    assert (d.kind, d.fact, d.ref) == ("time", "approved", "late")
    assert d.ledger == "approved by system at 2026-03-05T10:00:00+08:00"
    assert d.platform == "approved at 2026-03-05T11:00:00+08:00"


def test_an_account_of_a_step_recorded_already_at_the_same_second_agrees(
        ledger: Ledger) -> None:
    approved = json.dumps({"command": "approve_return", "order_id": "S1",
                           "at": (T0 + 2 * DAY + HOUR).isoformat()}).encode()
    report, _ = feed(ledger, *requested(0), approved,
                     push(202, "ok", s_id="S1", agree_time=ts(T0 + 2 * DAY + HOUR)))
    assert events(ledger)[-2:] == ["MerchantApproved", "PlatformAgreed"]
    assert report.reconciled == 1


def test_an_answer_at_the_deadline_itself_is_the_merchants_on_time(ledger: Ledger) -> None:
    feed(ledger, *requested(0), push(202, "ok", s_id="S1", agree_time=ts(T0 + 4 * DAY)))
    assert events(ledger)[-1] == "MerchantApproved"  # the deadline counts as on time


def test_a_platform_deadline_the_rules_do_not_give_is_a_deadline_discrepancy(
        ledger: Ledger) -> None:
    feed(ledger, *requested(0), push(209, "exp", s_id="S1",
                                     status_deadline=ts(T0 + 5 * DAY),
                                     update_time=ts(T0 + 2 * DAY + HOUR)))
    d = _differed(ledger)
    assert d.kind == "deadline"
    assert (d.ledger, d.platform) == ("deadline 2026-03-05T10:00:00+08:00",
                                      "deadline 2026-03-06T10:00:00+08:00")


def test_a_platform_deadline_moved_by_set_deadline_agrees(ledger: Ledger) -> None:
    moved = json.dumps({"command": "set_deadline", "order_id": "S1",
                        "at": (T0 + 2 * DAY + HOUR).isoformat(),
                        "until": (T0 + 5 * DAY).isoformat(), "reason": "holiday"}).encode()
    feed(ledger, *requested(0), moved,
         push(209, "exp", s_id="S1", status_deadline=ts(T0 + 5 * DAY),
              update_time=ts(T0 + 2 * DAY + 2 * HOUR)))
    assert events(ledger)[-2:] == ["DeadlineSet", "PlatformAgreed"]


def test_a_refund_of_another_amount_is_an_amount_discrepancy(ledger: Ledger) -> None:
    feed(ledger, *requested(1, amount=5000),
         push(201, "ok", s_id="S1", agree_time=ts(T0 + 2 * DAY + HOUR)),
         push(206, "paid", s_id="S1", refund_amount=6000,
              success_time=ts(T0 + 2 * DAY + HOUR)))
    d = _differed(ledger)
    assert (d.kind, d.ledger, d.platform) == ("amount", "5000 fen", "6000 fen")


def test_an_approval_where_the_ledger_has_a_rejection_is_an_outcome_discrepancy(
        ledger: Ledger) -> None:
    feed(ledger, *requested(1), push(204, "no", s_id="S1", refuse_reason="used",
                                     refuse_time=ts(T0 + 2 * DAY + HOUR)),
         push(201, "yes", s_id="S1", agree_time=ts(T0 + 2 * DAY + 2 * HOUR)))
    d = _differed(ledger)
    assert (d.kind, d.ledger) == ("outcome", "rejected by merchant at "
                                  "2026-03-03T11:00:00+08:00")


def test_a_ruling_for_the_other_party_is_an_outcome_discrepancy(ledger: Ledger) -> None:
    feed(ledger, *requested(1), push(204, "no", s_id="S1", refuse_reason="used",
                                     refuse_time=ts(T0 + 2 * DAY + HOUR)),
         push(212, "arb", s_id="S1", update_time=ts(T0 + 3 * DAY)),
         # no evidence: the system rules for the user at the A-2 deadline; the platform
         # says it ruled for the merchant
         push(216, "ruled", s_id="S1", arbitrate_status=3, update_time=ts(T0 + 6 * DAY)))
    d = _differed(ledger)
    assert (d.kind, d.fact) == ("outcome", "ruled")
    assert "ArbitrationAutoRuled" in events(ledger)


def test_reconcile_names_every_difference_most_serious_first(ledger: Ledger) -> None:
    feed(ledger, *requested(0))
    ledger.execute(cmd.build(cmd.Reconcile, {
        "order_id": "S1", "at": T0 + 4 * DAY + 2 * HOUR, "source": "douyin", "ref": "m",
        "fact": "approved", "by": "merchant", "step_at": T0 + 4 * DAY + HOUR}))
    d = _differed(ledger)
    assert d.kinds == ["actor", "time"] and d.kind == "actor"


def test_reconcile_of_an_order_without_a_case_is_refused_flow(ledger: Ledger) -> None:
    feed(ledger, place())
    with pytest.raises(CommandRefused) as refused:
        ledger.execute(cmd.build(cmd.Reconcile, {
            "order_id": "S1", "at": T0 + HOUR, "source": "douyin", "ref": "m",
            "fact": "approved"}))
    assert refused.value.code == "FLOW"


# --- idempotency and order -------------------------------------------------------------

def test_a_message_delivered_twice_is_applied_once(ledger: Ledger) -> None:
    lines = requested(0)
    first, _ = feed(ledger, *lines, lines[-1])
    assert first.duplicates == 1
    again, said = feed(ledger, *lines)  # the whole feed again, after its orders moved on
    assert said == [] and again.applied == 0 and again.duplicates == len(lines)
    assert events(ledger).count("ReturnRequested") == 1


def test_messages_out_of_order_within_the_window_are_applied_in_business_time_order(
        ledger: Ledger) -> None:
    lines = delivered()
    report, said = feed(ledger, lines[0], lines[3], lines[2], lines[1],
                        lateness=2 * DAY)
    assert said == [] and report.late == 0
    assert events(ledger) == ["OrderPlaced", "PaymentReceived", "OrderShipped",
                              "OrderDelivered"]


def test_a_message_later_than_the_window_is_applied_when_it_comes_and_said(
        ledger: Ledger) -> None:
    late = push(106, "late", s_id="S1", cancel_reason="x", cancel_time=ts(T0 + 3 * HOUR))
    report, said = feed(ledger, *requested(0), late, lateness=timedelta(0))
    assert report.late == 1
    assert said == ["line 6 (msg late, tag 106 TradeCanceled): TIME: business time "
                    "2026-03-01T13:00:00+08:00 is before the order's latest event at "
                    "2026-03-03T10:00:00+08:00"]


def test_within_a_wider_window_the_same_message_is_put_in_its_place(ledger: Ledger) -> None:
    late = push(106, "late", s_id="S1", cancel_reason="x", cancel_by="user",
                cancel_time=ts(T0 + timedelta(minutes=30)))  # before the payment: the user cancels
    report, said = feed(ledger, *delivered(), late, lateness=2 * DAY)
    assert report.late == 0 and events(ledger) == ["OrderPlaced", "OrderCancelled"]
    # put in its place, the cancellation comes first: the payment, the shipment and the
    # delivery after it are refused, each saying why
    assert [x.split(": ")[1] for x in said] == ["C-ANY", "C-ANY", "C-ANY"]


#: A valid feed of three orders, every line with its business time.
FEED = [*requested(0, "S1"), push(202, "S1-ok", s_id="S1", agree_time=ts(T0 + 2 * DAY + HOUR)),
        *requested(1, "S2", 5000), push(204, "S2-no", s_id="S2", refuse_reason="used",
                                        refuse_time=ts(T0 + 2 * DAY + 2 * HOUR)),
        *delivered("S3"), push(209, "S1-exp", s_id="S1", status_deadline=ts(T0 + 9 * DAY),
                               update_time=ts(T0 + 2 * DAY + 3 * HOUR))]


def _time_of(line: bytes) -> datetime:
    body = json.loads(line)
    if isinstance(body, dict):
        return datetime.fromisoformat(body["at"])
    [m] = parse_body(line.decode())
    return m.at


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.permutations(range(len(FEED))))
def test_a_feed_shuffled_within_the_window_gives_the_same_ledger(order: list[int]) -> None:
    span = max(map(_time_of, FEED)) - min(map(_time_of, FEED))
    straight, shuffled = Ledger("memory:"), Ledger("memory:")
    feed(straight, *FEED, lateness=span)
    report, said = feed(shuffled, *[FEED[i] for i in order], lateness=span)
    assert said == [] and report.late == 0
    for order_id in ("S1", "S2", "S3"):
        assert events(shuffled, order_id) == events(straight, order_id)
        assert status_document(shuffled.get_order(order_id)) == status_document(  # type: ignore[arg-type]
            straight.get_order(order_id))  # type: ignore[arg-type]


# --- the table, tag by tag: what each message becomes in each state --------------------

def _at(state: str, kind: int = 0) -> Any:
    """The order S1 with its latest case of `kind` in `state`, as the ledger holds it."""
    ledger = Ledger("memory:")
    steps = {
        "requested": [],
        "approved": [push(202, "a", s_id="S1", agree_time=ts(T0 + 2 * DAY + HOUR))],
        "in_transit": [push(202, "a", s_id="S1", agree_time=ts(T0 + 2 * DAY + HOUR)),
                       push(203, "t", s_id="S1", logistics_company="YTO",
                            logistics_code="Y", return_time=ts(T0 + 3 * DAY))],
        "rejected": [push(205 if kind in (0, 3) else 204, "r", s_id="S1", refuse_reason="x",
                          refuse_time=ts(T0 + 2 * DAY + HOUR))],
    }
    feed(ledger, *requested(kind), *steps[state])
    return ledger.get_order("S1")


@pytest.mark.parametrize("tag,state,kind,becomes", [
    (201, "requested", 0, "approve_return"), (201, "requested", 1, "approve_return"),
    (201, "in_transit", 0, "confirm_receipt"), (201, "in_transit", 3, "confirm_receipt"),
    (201, "approved", 0, "reconcile approved"), (201, "rejected", 1, "reconcile approved"),
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
    (208, "requested", 0, "ignored"),
    (209, "requested", 0, "reconcile deadline"), (209, "in_transit", 3, "reconcile deadline"),
    (211, "in_transit", 3, "confirm_receipt"), (211, "requested", 3, "reconcile received"),
    (212, "rejected", 1, "appeal"), (212, "rejected", 0, "appeal"),
    (213, "rejected", 0, "ignored"), (214, "rejected", 0, "ignored"),
    (215, "rejected", 0, "reported"), (216, "rejected", 1, "reconcile ruled"),
])
def test_each_tag_becomes_the_command_of_the_cases_kind_and_state(
        tag: int, state: str, kind: int, becomes: str) -> None:
    data: dict[str, Any] = {"refund_amount": 9900, "status_deadline": ts(T0 + 9 * DAY),
                            "refuse_reason": "x", "logistics_company": "YTO",
                            "logistics_code": "Y2", "arbitrate_status": 2,
                            "arbitrate_blame": "merchant"}
    decision = decide(message(tag, **data), _at(state, kind))
    if isinstance(decision, Skipped):
        assert decision.status == becomes
    else:
        name = decision.command + (f" {decision.fact}" if isinstance(decision, cmd.Reconcile)
                                   else "")
        assert name == becomes
