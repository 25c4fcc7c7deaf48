"""Douyin (抖店) push messages (消息推送, SPEC section 10) as ledger commands.

A message becomes the ledger commands its meaning needs (usually one; ExchangeComfirmed
two; an order message one per sub-order it lists in `s_ids`), chosen by its tag, the case
kind and the state the ledger holds for each order at the message's time (its due
timeouts applied): a step still open becomes the command that takes it; a step the ledger
had already taken becomes `reconcile`, which records the platform's account as agreeing
or as a discrepancy; a message that carries too little to decide is reported, with why.
An after-sale message acts on its own case, the one its `aftersale_id` opened: never on
whichever case is latest.  docs/platforms/douyin.md is the table this module implements.

Command ids derive from `douyin:<msg_id>` and the sub-order: a message delivered twice is
applied once.  Amounts are fen; `refund_amount` includes postage (`refund_post_amount`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from aftersales.application import commands as cmd
from aftersales.domain.order import Order
from aftersales.domain.states import OrderStatus, Payment
from aftersales.feeds import douyin_cases as cases
from aftersales.feeds.decision import (
    SOURCE,
    TOLERANCE,
    Context,
    Decision,
    Message,
    Skipped,
    Tolerance,
    unplaced,
)
from aftersales.feeds.pushes import (
    ZONE,
    NotANumber,
    identifier,
    load,
    refuse,
    time_of,
    whole,
)

__all__ = ["SOURCE", "TAGS", "TOLERANCE", "ZONE", "Message", "Skipped", "Tolerance", "decide",
           "message"]

#: The order of messages of the same second: by the step of an order's life they tell
#: (the tag), except TradeCanceled, which a refund before shipment causes and follows,
#: and ArbitrateAudited, whose ruling for the user causes the approval beside it.
RANK = {106: 299, 216: 199}


@dataclass(frozen=True)
class Tag:
    name: str
    time: tuple[str, ...]  # the data fields of the message's own time, in order
    decide: Callable[[Context], Decision]
    orders: bool = False  # an order tag (s_ids), else an after-sale tag (s_id)


def message(n: int, raw: object, received_at: datetime | None) -> Message | Skipped:
    """Message `n` (from 0) of a body read, or ignored (a tag the ledger does not read), or
    `CommandRefused('INPUT', …)` naming the message and field."""
    where = f"message {n + 1}"
    if not isinstance(raw, dict):
        raise refuse(f"{where}: must be an object with tag, msg_id, data")
    tag = whole(raw.get("tag"), f"{where}: field 'tag'")
    spec = TAGS.get(tag)
    if spec is None:
        return Skipped("ignored", f"tag {tag} is not one the ledger reads", tag)
    where = f"{where} (tag {tag} {spec.name})"
    found = raw.get("msg_id", raw.get("msgId"))
    if found is None:
        raise refuse(f"{where}: field 'msg_id': required")
    msg_id = identifier(found, f"{where}: field 'msg_id'")
    data = raw.get("data")
    if isinstance(data, str):
        data = load(data, f"{where}: field 'data'")
    if not isinstance(data, dict):
        raise refuse(f"{where}: field 'data': expected an object")
    at, time_field = None, "received_at"
    for name in (*spec.time, "update_time"):
        if data.get(name) not in (None, "", 0, "0"):
            at, time_field = time_of(data[name], f"{where}: field {name!r}"), name
            break
    if at is None:
        if received_at is None:
            raise refuse(f"{where}: no time: the message carries none "
                         f"({' or '.join(repr(f) for f in (*spec.time, 'update_time'))}) "
                         "and the body no receive time (a received_at line, or "
                         "--received-at)")
        at = received_at
    ids = data.get("s_ids") if spec.orders else None
    if ids is None:
        ids = [] if data.get("s_id") in (None, "") else [data["s_id"]]
    if not isinstance(ids, list):
        raise refuse(f"{where}: field 's_ids': expected a list of sub-order ids")
    order_ids = tuple(dict.fromkeys(identifier(x, f"{where}: field 's_ids'" if spec.orders
                                               else f"{where}: field 's_id'") for x in ids))
    ref = data.get("aftersale_id")
    case_ref = None if ref in (None, "", 0) else identifier(ref, f"{where}: field "
                                                             "'aftersale_id'")
    return Message(tag, msg_id, data, at, order_ids, case_ref, spec.name,
                   _kept(tag, msg_id, raw.get("data"), data, at, where), time_field)


def _kept(tag: int, msg_id: str, given: object, data: dict[str, Any], at: datetime,
          where: str) -> str:
    """The message as read, as JSON text: `data` as the platform's own text where it sent
    text; INPUT where a text of it is no text (a lone surrogate, which no store can hold)."""
    try:
        if isinstance(given, str):  # the platform's text: a lone surrogate in `data` is
            given.encode("utf-8")  # one in it, or an escape of one (`\ud800`)
            text = given if "\\u" not in given else json.dumps(
                data, ensure_ascii=False, default=_jsonable)
        else:
            text = json.dumps(data, ensure_ascii=False, default=_jsonable)
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise refuse(f"{where}: field 'data': holds a lone surrogate (\\ud800-\\udfff), "
                     "which is no text") from None
    # orjson: json.dumps escaping every character beyond ASCII was about 5 % of a feed.
    return orjson.dumps({"tag": tag, "msg_id": msg_id,
                         "data": given if isinstance(given, str) else text,
                         "at": at.isoformat()}).decode()


def _jsonable(value: object) -> object:
    """A number as the body gave it, for JSON again (a fraction, NaN, Infinity)."""
    if isinstance(value, Decimal | NotANumber):
        return float(str(value))
    raise TypeError(f"{type(value).__name__} is not JSON")


def decide(m: Message, orders: Mapping[str, Order | None], tolerance: Tolerance
           ) -> list[tuple[str, Decision]]:
    """For each sub-order of the message: the commands it becomes on the order as the
    ledger holds it at the message's time (None: never placed), or why it becomes none.
    `CommandRefused('INPUT', …)` for a field no rule can read."""
    spec = TAGS[m.tag]
    if not m.order_ids:
        return [("", Skipped("reported", f"{spec.name}: no {'s_ids' if spec.orders else 's_id'}"
                             " (the sub-orders: the ledger's order ids)"))]
    found: list[tuple[str, Decision]] = []
    for order_id in m.order_ids:
        order = orders.get(order_id)
        if order is None:
            found.append((order_id, unplaced(spec.name, order_id)))
            continue
        found.append((order_id, spec.decide(Context(m, order_id, order, tolerance))))
    return found


# --- order tags (100-108) --------------------------------------------------------------

def _trade_create(c: Context) -> Decision:
    return Skipped("ignored", "TradeCreate: the order is placed")


def _trade_paid(c: Context) -> Decision:
    order = c.order
    pay_type = c.number("pay_type")
    if pay_type is None:
        return Skipped("reported", "TradePaid: no pay_type (0 cash on delivery, else "
                       "online)")
    cod = pay_type == 0
    if cod != (order.payment is Payment.COD):
        return Skipped("reported", f"TradePaid: pay_type {pay_type} says "
                       f"{'cod' if cod else 'online'}, the ledger's order is "
                       f"{order.payment.value}")
    if cod:  # the merchant's confirmation of a cash-on-delivery order
        if order.status is OrderStatus.PENDING_CONFIRMATION:
            return [c.command(cmd.ConfirmOrder)]
        return Skipped("ignored", f"TradePaid (cod): the order is {order.status.value} "
                       "already")
    if order.status not in (OrderStatus.AWAITING_PAYMENT, OrderStatus.CANCELLED):
        return Skipped("ignored", f"TradePaid: the order is {order.status.value} already")
    return [c.command(cmd.Pay)]  # on a cancelled order: refused, and said


def _seller_ship(c: Context) -> Decision:
    if c.order.status in (OrderStatus.SHIPPED, OrderStatus.DELIVERED):
        return Skipped("ignored", f"{c.m.name}: the order is {c.order.status.value} already")
    logistics = c.data.get("logistics_msg")
    if isinstance(logistics, list) and len(logistics) == 1:
        logistics = logistics[0]
    if not isinstance(logistics, dict):
        return Skipped("reported", f"{c.m.name}: no logistics_msg (express_company_id, "
                       "logistics_code)")
    carrier, tracking = logistics.get("express_company_id"), logistics.get("logistics_code")
    if carrier in (None, "") or tracking in (None, ""):
        return Skipped("reported", f"{c.m.name}: logistics_msg has no express_company_id "
                       "and logistics_code")
    return [c.command(cmd.Ship,
                      carrier=identifier(carrier, "field 'logistics_msg.express_company_id'"),
                      tracking_no=identifier(tracking, "field 'logistics_msg.logistics_code'"))]


def _trade_success(c: Context) -> Decision:
    if c.order.status is OrderStatus.DELIVERED:
        return Skipped("ignored", "TradeSuccess: the order is delivered already")
    return [c.command(cmd.Deliver)]  # refused unless shipped, and said


def _trade_canceled(c: Context) -> Decision:
    """106: nobody is named; who cancelled follows from the order's state."""
    order = c.order
    if order.status is OrderStatus.CANCELLED:  # the ledger's own (C-ON-4, F-1) or a line
        return c.reconcile("cancelled", None)
    if order.payment is Payment.ONLINE:
        by = "user" if order.status is OrderStatus.AWAITING_PAYMENT else "platform"
    else:
        by = "platform" if order.status is OrderStatus.SHIPPED else "merchant"
    return [c.command(cmd.Cancel, by=by, reason=c.text("cancel_reason",
                                                        default="cancelled on Douyin"))]


def _case_tag(name: str, time: tuple[str, ...], decide_case: cases.CaseDecide) -> Tag:
    return Tag(name, time, cases.on_case(decide_case))


#: Every tag the ledger reads: its name, the data fields of its own time (else
#: update_time, else the receive time), and what it becomes (docs/platforms/douyin.md
#: draws the same table).
TAGS: dict[int, Tag] = {
    100: Tag("TradeCreate", ("create_time",), _trade_create, orders=True),
    101: Tag("TradePaid", ("pay_time",), _trade_paid, orders=True),
    102: Tag("SellerShip", ("update_time",), _seller_ship, orders=True),
    103: Tag("TradeSuccess", ("complete_time",), _trade_success, orders=True),
    106: Tag("TradeCanceled", ("cancel_time",), _trade_canceled, orders=True),
    108: Tag("PartlySellerShip", ("update_time",), _seller_ship, orders=True),
    200: Tag("RefundCreated", ("apply_time",), cases.refund_created),
    201: _case_tag("RefundAgreed", ("agree_time",), cases.agreed),
    202: _case_tag("ReturnApplyAgreed", ("agree_time",), cases.return_agreed),
    203: _case_tag("BuyerReturnGoods", ("return_time",), cases.goods_sent),
    204: _case_tag("RefundRefused", ("refuse_time",), cases.refused(goods=True)),
    205: _case_tag("ReturnApplyRefused", ("refuse_time",), cases.refused(goods=False)),
    206: _case_tag("RefundSuccess", ("success_time",), cases.refund_success),
    207: _case_tag("RefundClosed", ("close_time",), cases.closed),
    208: _case_tag("RefundModified", ("modify_time",), cases.modified),
    209: _case_tag("ExpirationChange", (), cases.deadline_changed),
    211: _case_tag("ExchangeComfirmed", ("update_time",), cases.exchange_confirmed),
    212: _case_tag("ArbitrateApplied", (), cases.appealed),
    213: _case_tag("ArbitrateSubmiting", (), cases.evidence_asked),
    214: _case_tag("ArbitrateSubmited", (), cases.evidence_sent),
    215: _case_tag("ArbitrateCancelled", (), cases.appeal_withdrawn),
    216: _case_tag("ArbitrateAudited", (), cases.audited),
}
