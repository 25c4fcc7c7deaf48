"""Douyin push bodies in the platform's real shapes (SPEC section 10), for tests.

Both envelope spellings: the official `{"tag": "200", "msg_id": …, "data": "<JSON string>"}`
and `{"tag": 200, "msgId": …, "data": {…}}`.  Order tags carry `p_id` and `s_ids` (a list;
never `s_id`); after-sale tags carry `s_id`, `aftersale_id`, `aftersale_type`,
`refund_amount` (postage included) and `update_time` as an ISO string beside their own
Unix-seconds time; 209 and 212-218 carry no time.  Ids above 2^53 are written as JSON
numbers with their exact digits (Python's json does not round integers).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

T0 = datetime.fromisoformat("2026-03-01T10:00:00+08:00")
HOUR, DAY, MINUTE = timedelta(hours=1), timedelta(days=1), timedelta(minutes=1)
SECOND = timedelta(seconds=1)
SHOP = 95250
#: Sub-order ids above 2^53 (9007199254740992): a float would change their last digits.
BIG = 4835804142146756441
BIG2 = 4835804142146756442
CASE = 7130036489474212096
SPELLINGS = ("official", "camel")


def ts(at: datetime) -> int:
    return int(at.timestamp())


def message(tag: int, msg_id: str, spelling: str = "official", **data: Any) -> dict[str, Any]:
    """One message in one of the two spellings."""
    if spelling == "official":
        return {"tag": str(tag), "msg_id": msg_id, "data": json.dumps(data)}
    return {"tag": tag, "msgId": msg_id, "data": data}


def body(*messages: dict[str, Any], received_at: datetime | None = None) -> bytes:
    """A push body line (received: as the webhook keeps it, with its receive time)."""
    found: Any = list(messages)
    if received_at is not None:
        found = {"received_at": received_at.isoformat(), "body": found}
    return json.dumps(found, ensure_ascii=False).encode()


def place(order_id: object = BIG, payment: str = "online", at: datetime = T0,
          goods: int = 9900, postage: int = 800) -> bytes:
    return json.dumps({"command": "place_order", "order_id": str(order_id),
                       "at": at.isoformat(), "payment": payment, "merchant_id": str(SHOP),
                       "user_id": "B1", "goods_amount": goods, "postage": postage}).encode()


def order_msg(tag: int, msg_id: str, *orders: object, spelling: str = "official",
              **data: Any) -> dict[str, Any]:
    """An order tag (100-108): p_id, s_ids, shop_id and the status fields."""
    ids = list(orders) or [BIG]
    return message(tag, msg_id, spelling, p_id=ids[0], s_ids=ids, shop_id=SHOP,
                   order_status=2, order_type=0, biz=2, **data)


def paid(msg_id: str, *orders: object, at: datetime = T0 + HOUR, pay_type: int = 1,
         spelling: str = "official") -> dict[str, Any]:
    return order_msg(101, msg_id, *orders, spelling=spelling, pay_time=ts(at),
                     pay_type=pay_type, pay_amount=10700)


def shipped(msg_id: str, *orders: object, at: datetime = T0 + 2 * HOUR, tag: int = 102,
            spelling: str = "official", tracking: str = "SF1001") -> dict[str, Any]:
    return order_msg(tag, msg_id, *orders, spelling=spelling, update_time=ts(at),
                     logistics_msg={"express_company_id": "shunfeng",
                                    "logistics_code": tracking})


def completed(msg_id: str, *orders: object, at: datetime = T0 + DAY,
              spelling: str = "official") -> dict[str, Any]:
    return order_msg(103, msg_id, *orders, spelling=spelling, complete_time=ts(at))


def cancelled(msg_id: str, *orders: object, at: datetime, spelling: str = "official"
              ) -> dict[str, Any]:
    return order_msg(106, msg_id, *orders, spelling=spelling, cancel_time=ts(at),
                     cancel_reason="")


#: The own time field of each after-sale tag that has one.
OWN_TIME = {200: "apply_time", 201: "agree_time", 202: "agree_time", 203: "return_time",
            204: "refuse_time", 205: "refuse_time", 206: "success_time", 207: "close_time",
            208: "modify_time", 211: "apply_time"}


def aftersale(tag: int, msg_id: str, at: datetime | None, *, order: object = BIG,
              case: object = CASE, kind: int = 0, status: int = 6,
              spelling: str = "official", **data: Any) -> dict[str, Any]:
    """An after-sale tag (200-218): `at` the message's own time (Unix seconds, with
    update_time as ISO text beside it), or None for the tags that carry no time."""
    times: dict[str, Any] = {}
    if at is not None:
        times = {"update_time": at.isoformat()}
        if tag in OWN_TIME and tag != 211:
            times[OWN_TIME[tag]] = ts(at)
        if tag == 211:
            times["apply_time"] = ts(T0)  # the case's own apply time, not this step's
    return message(tag, msg_id, spelling, p_id=order, s_id=order, shop_id=SHOP,
                   aftersale_id=case, aftersale_type=kind, aftersale_status=status,
                   reason_code=1, **{**times, **data})


def delivered(order: object = BIG, spelling: str = "official") -> list[bytes]:
    """An online order placed (an order export line), paid, shipped and delivered."""
    return [place(order), body(paid(f"{order}01", order, spelling=spelling)),
            body(shipped(f"{order}02", order, spelling=spelling)),
            body(completed(f"{order}03", order, spelling=spelling))]


def requested(kind: int = 0, order: object = BIG, amount: int = 9900, postage: int = 0,
              case: object = CASE, at: datetime = T0 + 2 * DAY, spelling: str = "official"
              ) -> list[bytes]:
    """Delivered, then a case of `kind` asked (refund_amount includes `postage`)."""
    return [*delivered(order, spelling),
            body(aftersale(200, f"{case}00", at, order=order, case=case, kind=kind,
                           refund_amount=amount + postage, refund_post_amount=postage,
                           spelling=spelling))]
