"""A generated Douyin (抖店) feed (a development tool): one shop's few hundred orders over
several weeks, in the shapes the open platform really pushes (SPEC section 10), with every
tag the ledger reads.

What it writes:
- an order export first: one `place_order` line per sub-order (the ledger's `order_id` is
  the decimal sub-order id), nothing else: a cash-on-delivery order's confirmation is its
  TradePaid (101) with `pay_type` 0;
- then push bodies as the webhook keeps them, `{"received_at": "...", "body": [...]}`, the
  receive time a few seconds after the body's latest delivery (the time of its messages
  that carry none: 209, 212-218).  Messages come in both spellings (`"tag": "200"`,
  `msg_id`, `data` a JSON string; `"tag": 200`, `msgId`, `data` an object), ids as JSON
  numbers or numeric strings, order ids 19 digits (above 2^53).  Some parent orders have
  two sub-orders (both in the order tags' `s_ids`; one shipped first: 108); after-sale tags
  name one `s_id` and their case's `aftersale_id` (a sub-order may have two cases).

The platform's timers do what the rules say most of the time (within the reconciliation
tolerance: 10 minutes for timers, 72 hours for money arriving, which must agree), and
sometimes not.  For the default plan (300 orders, seed 7; `planted(plan)` counts them for
any plan) it plants these discrepancies, by class:
- outcome   3: a ruling for the merchant (216) after the ledger's A-2 timer ruled for
  the user;
- actor     4: a merchant's approval of a refund (201, `op_role` 2) shown hours after
  the 48 h deadline, where the ledger's timer approved;
- amount   11: a refund (206) of another amount;
- deadline  4: a deadline (209) a day early, sent after it passed;
- time     17: the platform's timer approving hours after the deadline (201 `op_role` 4,
  or 202: 10), a case closed (207) hours after the tracking deadline (3), a refund (206)
  arriving more than 72 hours after the ledger's (4).
Deliveries come out of order within the lateness window, 3% twice, 2% later than the
window (never before a later message of their own order).  Seeded: the same plan gives
the same lines.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aftersales.feeds.pushes import ZONE

START = datetime(2026, 3, 1, 9, 0, tzinfo=ZONE)
H, D, M = timedelta(hours=1), timedelta(days=1), timedelta(minutes=1)
SHOP_ID = 4463798
MERCHANT = str(SHOP_ID)
#: Tags that carry no time of their own: they take the body's receive time.
TIMELESS = frozenset({209, 212, 213, 214, 215, 216, 217, 218})
#: An after-sale tag's own time field (Unix seconds); update_time beside it (ISO).
OWN_TIME = {200: "apply_time", 201: "agree_time", 202: "agree_time", 203: "return_time",
            204: "refuse_time", 205: "refuse_time", 206: "success_time",
            207: "close_time", 208: "modify_time"}
#: An order tag's time field (Unix seconds) and order_status.
ORDER_TIME = {100: "create_time", 101: "pay_time", 102: "update_time", 108: "update_time",
              103: "complete_time", 106: "cancel_time"}
ORDER_STATUS = {100: 1, 101: 2, 102: 3, 108: 101, 103: 5, 106: 4}
#: An id field: a JSON number or a numeric string, as each message has it.
ID_FIELDS = ("p_id", "s_id", "shop_id", "aftersale_id")
UNKNOWN_TAG = 999
CLASSES = ("outcome", "actor", "amount", "deadline", "time")


@dataclass(frozen=True)
class FeedPlan:
    orders: int = 300
    seed: int = 7
    days: int = 28
    lateness: timedelta = timedelta(minutes=10)


def _unix(at: datetime) -> int:
    return int(at.timestamp())


@dataclass
class _Push:
    """One message as the platform means it: its business time (for a timeless tag the
    time it is sent), its parent order, and whether its ids are written as strings."""

    at: datetime
    seq: int
    tag: int
    msg_id: str
    data: dict[str, Any]
    parent: int
    ids_as_text: bool

    def payload(self) -> dict[str, Any]:
        out = dict(self.data)
        for name in ID_FIELDS:
            if name in out and self.ids_as_text:
                out[name] = str(out[name])
        if "s_ids" in out:
            out["s_ids"] = [str(x) if self.ids_as_text else x for x in out["s_ids"]]
        return out

    def envelope(self, official: bool) -> dict[str, Any]:
        if official:  # the official spelling: tag a string, data a JSON string
            return {"tag": str(self.tag), "msg_id": self.msg_id,
                    "data": json.dumps(self.payload(), ensure_ascii=False,
                                       separators=(",", ":"))}
        return {"tag": self.tag, "msgId": self.msg_id, "data": self.payload()}


@dataclass
class _Sub:
    s_id: int
    goods: int
    postage: int
    left: int = 0  # the goods not yet refunded (what a case may still ask)

    def __post_init__(self) -> None:
        self.left = self.goods


@dataclass
class _Case:
    id: int
    sub: _Sub
    type: int  # aftersale_type: 0 return, 1 refund after shipment, 2 before, 3 exchange
    amount: int  # the goods amount the ledger holds for the case
    refund_amount: int  # as the platform shows it: goods and postage asked
    post: int
    reason_code: int
    asked: datetime
    status: int = 6


@dataclass
class _Shop:
    plan: FeedPlan
    rng: random.Random = field(init=False)
    exports: list[tuple[datetime, dict[str, Any]]] = field(default_factory=list)
    pushes: list[_Push] = field(default_factory=list)
    planted: Counter[str] = field(default_factory=Counter)
    taken: set[str] = field(default_factory=set)
    ids: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.plan.seed)

    def fresh(self, low: int, span: int) -> int:
        """A new id in [low, low + span)."""
        while (found := low + self.rng.randrange(span)) in self.ids:
            pass
        self.ids.add(found)
        return found

    def once(self, branch: str, p: float) -> bool:
        """Take `branch` with probability p, and surely the first time it is offered (so
        that every branch is in every feed)."""
        take = branch not in self.taken or self.rng.random() < p
        self.taken.add(branch)
        return take

    def run(self) -> None:
        for n in range(self.plan.orders):
            _Parent(self, n).story()


class _Parent:
    """One parent order (p_id) of one or two sub-orders, and everything that happens to
    it, as pushes."""

    def __init__(self, shop: _Shop, n: int) -> None:
        rng = self.rng = shop.rng
        self.shop = shop
        self.p_id = shop.fresh(4_800_000_000_000_000_000, 10**17)
        two = rng.random() < 0.15
        s_ids = [shop.fresh(4_800_000_000_000_000_000, 10**17) for _ in range(2)] if two \
            else [self.p_id]  # a single sub-order has the parent's id
        self.subs = [_Sub(s_id, rng.choice([3900, 6900, 9900, 12900, 19900, 29900]),
                          rng.choice([0, 600, 1000]) if k == 0 else 0)
                     for k, s_id in enumerate(s_ids)]
        self.at = START + timedelta(seconds=rng.randrange(shop.plan.days * 86400 // 2))
        self.cod = rng.random() < 0.2

    # --- writing ---------------------------------------------------------------------

    def _push(self, tag: int, at: datetime, data: dict[str, Any]) -> None:
        shop = self.shop
        shop.pushes.append(_Push(at, len(shop.pushes), tag,
                                 str(shop.fresh(10**18, 9 * 10**18)), data, self.p_id,
                                 self.rng.random() < 0.5))

    def span(self, low: timedelta, high: timedelta) -> timedelta:
        return timedelta(seconds=self.rng.randrange(int(low.total_seconds()),
                                                    int(high.total_seconds())))

    def order_push(self, tag: int, at: datetime, subs: list[_Sub] | None = None,
                   **fields: Any) -> None:
        self._push(tag, at, {
            "p_id": self.p_id, "s_ids": [s.s_id for s in subs or self.subs],
            "shop_id": SHOP_ID, "order_status": ORDER_STATUS[tag], "order_type": 0,
            "biz": 2, ORDER_TIME[tag]: _unix(at), **fields})

    def case_push(self, tag: int, at: datetime, case: _Case, status: int | None = None,
                  **fields: Any) -> None:
        if status is not None:
            case.status = status
        data: dict[str, Any] = {
            "p_id": self.p_id, "s_id": case.sub.s_id, "shop_id": SHOP_ID,
            "aftersale_id": case.id, "aftersale_status": case.status,
            "aftersale_type": case.type, "refund_amount": case.refund_amount,
            "refund_post_amount": case.post, "reason_code": case.reason_code}
        if tag not in TIMELESS:
            if tag in OWN_TIME:
                data[OWN_TIME[tag]] = _unix(at)
            data["update_time"] = at.isoformat()
        data.update(fields)
        self._push(tag, at, data)

    def plant(self, kind: str) -> None:
        self.shop.planted[kind] += 1

    # --- the order -------------------------------------------------------------------

    def story(self) -> None:
        rng, shop, t = self.rng, self.shop, self.at
        for sub in self.subs:
            shop.exports.append((t, {
                "command": "place_order", "order_id": str(sub.s_id), "at": t.isoformat(),
                "payment": "cod" if self.cod else "online", "merchant_id": MERCHANT,
                "user_id": f"BUYER-{rng.randrange(10**6)}", "goods_amount": sub.goods,
                "postage": sub.postage}))
        total = sum(s.goods + s.postage for s in self.subs)
        self.order_push(100, t)
        shipped: datetime | None = None
        if self.cod:
            if shop.once("cod-cancel", 0.04):  # the merchant cancels (C-COD-2)
                if rng.random() < 0.5:
                    t += self.span(10 * M, 10 * H)
                    self.order_push(101, t, pay_type=0, pay_amount=total)
                t += self.span(H, 20 * H)
                self.order_push(106, t, cancel_reason=rng.choice(["", "缺货"]))
                return
            t += self.span(10 * M, 10 * H)  # confirmed: TradePaid with pay_type 0
            self.order_push(101, t, pay_type=0, pay_amount=total)
        else:
            if shop.once("unpaid", 0.07):
                if rng.random() < 0.5:  # the platform's timer, just after the 24 h (C-ON-4)
                    t += D + timedelta(seconds=rng.randrange(1, 300))
                else:  # the user, before
                    t += self.span(10 * M, 20 * H)
                self.order_push(106, t, cancel_reason="")
                return
            t += self.span(M, 2 * H)
            self.order_push(101, t, pay_type=rng.choice([1, 1, 2]), pay_amount=total)
            if len(self.subs) == 1 and shop.once("refund-before-shipment", 0.07):
                shipped = self.refund_before_shipment(t)
                if shipped is None:
                    return
        if shipped is None:
            t += self.span(4 * H, 40 * H)
            if len(self.subs) == 2 and shop.once("partly", 0.5):  # 108, then the rest
                self.order_push(108, t, self.subs[:1], logistics_msg=self.logistics())
                t += self.span(2 * H, 30 * H)
            self.order_push(102, t, logistics_msg=self.logistics())
        else:
            t = shipped
        if self.cod and shop.once("refused-at-door", 0.05):  # C-COD-3
            self.order_push(106, t + self.span(20 * H, 70 * H), cancel_reason="拒收")
            return
        t += self.span(20 * H, 80 * H)
        self.order_push(103, t)
        if shop.once("unknown-tag", 0.02):  # a tag the ledger does not know
            self._push(UNKNOWN_TAG, t + 5 * M, {"p_id": self.p_id, "shop_id": SHOP_ID})
        for sub in self.subs:
            if shop.once("not-ruled", 0.01):  # aftersale_type 4: not one the ledger rules
                case = self.new_case(sub, t + H, 4, sub.goods)
                self.case_push(200, case.asked, case, 6)
            if rng.random() < 0.5:
                self.after_sales(sub, t + self.span(2 * H, 96 * H))

    def logistics(self) -> dict[str, str]:
        company = self.rng.choice(["shunfeng", "yuantong", "zhongtong", "yunda"])
        return {"express_company_id": company,
                "logistics_code": f"{company[:2].upper()}{self.rng.randrange(10**12):012d}"}

    def refund_before_shipment(self, paid: datetime) -> datetime | None:
        """aftersale_type 2 (F-1): approved (the order is then cancelled, 106) or refused by
        shipping; the time of that shipment, or None (the order ends)."""
        sub = self.subs[0]
        case = self.new_case(sub, paid + self.span(H, 12 * H), 2, sub.goods, post=sub.postage)
        self.case_push(200, case.asked, case, 6)
        if not self.shop.once("refused-by-shipping", 0.25):
            self.answer(case)
            return None
        at = case.asked + self.span(H, 40 * H)
        self.order_push(102, at, logistics_msg=self.logistics())
        self.case_push(204, at, case, 27, refuse_reason="已发货")  # the same second
        return at

    # --- after-sales -----------------------------------------------------------------

    def new_case(self, sub: _Sub, at: datetime, kind: int, amount: int,
                 post: int = 0) -> _Case:
        return _Case(self.shop.fresh(7_000_000_000_000_000_000, 10**17), sub, kind, amount,
                     0 if kind == 3 else amount + post, post,
                     self.rng.choice([1, 2, 3, 5, 7, 12]), at)

    def after_sales(self, sub: _Sub, at: datetime) -> None:
        ended = self.request(sub, at, second=False)
        if ended is not None and sub.left > 0 and self.shop.once("second-case", 0.35):
            self.request(sub, ended + self.span(H, 30 * H), second=True)

    def request(self, sub: _Sub, at: datetime, *, second: bool) -> datetime | None:
        rng = self.rng
        roll = rng.random()
        if self.cod:
            kind = 0 if roll < 0.75 or second else 3
        else:
            kind = 0 if roll < 0.45 else 1 if roll < 0.75 or second else 3
        amount = sub.left if kind == 3 or rng.random() < 0.75 else max(100, sub.left // 2)
        case = self.new_case(sub, at, kind, amount)
        self.case_push(200, at, case, 6)
        return self.answer(case)

    def answer(self, case: _Case) -> datetime | None:
        """The merchant's answer, or the user's withdrawal, or the platform's timer; when
        the case ended such that another may follow (None: it may not)."""
        rng, shop = self.rng, self.shop
        due = case.asked + 2 * D
        if case.type in (0, 1) and shop.once("amended", 0.08) and case.amount >= 200:
            case.amount = case.refund_amount = case.amount // 200 * 100  # 208: less asked
            self.case_push(208, case.asked + self.span(5 * M, 15 * M), case)
        if shop.once("deadline-news", 0.15):  # 209: as the rules, moved, or a day off
            roll = rng.random()
            if roll < 0.35:
                self.case_push(209, case.asked + self.span(20 * M, 50 * M), case,
                               status_deadline=_unix(due))
            elif roll < 0.7:  # a day more (a holiday): the ledger's timer moves with it
                due += D
                self.case_push(209, case.asked + self.span(20 * M, 50 * M), case,
                               status_deadline=_unix(due))
            else:  # a day early, and told after it passed
                self.case_push(209, case.asked + self.span(25 * H, 30 * H), case,
                               status_deadline=_unix(due - D))
                self.plant("deadline")
        refund_only = case.type in (1, 2)
        roll = rng.random()
        if case.type != 2 and roll < 0.06:  # the user withdraws before an answer
            at = case.asked + self.span(H, 20 * H)
            self.case_push(207, at, case, 28)
            return at
        if case.type != 2 and roll < 0.2:  # rejected
            at = case.asked + self.span(H, 40 * H)
            self.case_push(205 if case.type in (0, 3) else 204, at, case, 27,
                           refuse_reason=rng.choice(["商品已使用", "超出售后时效"]))
            return self.dispute(case, at, goods=False)
        role = 2
        if roll < 0.42:  # nobody answers: the platform's timer approves
            ours, role = due, 4
            late = case.type != 2 and shop.once("timer-late",
                                                0.6 if refund_only else 0.35)
            if late:  # hours after
                at = due + self.span(2 * H, 8 * H)
                if refund_only and shop.once("merchant-late", 0.7):
                    role = 2  # shown as the merchant's
                    self.plant("actor")
                else:
                    self.plant("time")
            else:  # within the tolerance: agrees
                at = due + timedelta(seconds=rng.randrange(1, 540))
        else:
            at = ours = case.asked + self.span(H, 46 * H)
        if refund_only:
            self.case_push(201, at, case, 12, op_role=role)
            if case.type == 2:  # the order is cancelled beside it
                self.order_push(106, at, cancel_reason="")
            self.refund_news(case, ours, at)
            case.sub.left = max(0, case.sub.left - case.amount)
            return ours
        self.case_push(202, at, case, 7)
        return self.goods_back(case, ours, at, on_time=role == 2)

    def goods_back(self, case: _Case, approved: datetime, shown: datetime, *,
                   on_time: bool, appealed: bool = False) -> datetime | None:
        """After a return's or exchange's approval (the ledger's time, the platform's):
        the goods go back, or not (`appealed`: the case had its one appeal)."""
        rng, shop = self.rng, self.shop
        roll = rng.random()
        if roll < 0.05:  # withdrawn before sending
            at = shown + self.span(H, 48 * H)
            self.case_push(207, at, case, 28)
            return at
        if roll < 0.13 and on_time:  # never sent: closed at the tracking deadline
            closed = approved + 7 * D
            if shop.once("closed-late", 0.3):
                self.case_push(207, closed + self.span(H, 3 * H), case, 28)
                self.plant("time")
            else:
                self.case_push(207, closed + timedelta(seconds=rng.randrange(1, 540)),
                               case, 28)
            return closed
        sent = shown + self.span(4 * H, 100 * H)
        self.case_push(203, sent, case, 11)  # no carrier, no number
        roll = rng.random()
        if roll < 0.1:  # the merchant refuses the goods
            at = sent + self.span(24 * H, 100 * H)
            self.case_push(204, at, case, 29, refuse_reason="商品损坏")
            return None if appealed else self.dispute(case, at, goods=True)
        if case.type == 3:
            self.exchanged(case, sent + self.span(24 * H, 120 * H))
            return None
        if shop.once("receipt-timer", 0.07):  # the platform's timer confirms receipt
            got = sent + 7 * D
            at = got + timedelta(seconds=rng.randrange(1, 540))
            self.case_push(201, at, case, 12, op_role=4)
        else:
            got = at = sent + self.span(24 * H, 120 * H)
            self.case_push(201, at, case, 12, op_role=2)
        return self.refunded_on_receipt(case, got, at)

    def refunded_on_receipt(self, case: _Case, got: datetime, shown: datetime) -> datetime:
        """A return received: the platform refunds (online), or the merchant does (cod:
        206 is its voucher, on time or late)."""
        case.sub.left = max(0, case.sub.left - case.amount)
        if not self.cod:
            self.refund_news(case, got, shown)
            return got
        late = self.shop.once("voucher-late", 0.1)
        at = got + (self.span(50 * H, 70 * H) if late else self.span(H, 40 * H))
        self.case_push(206, at, case, 12)
        return at

    def refund_news(self, case: _Case, ours: datetime, shown: datetime) -> None:
        """206 RefundSuccess of a refund the ledger made at `ours` (the platform's step at
        `shown`): mostly as the ledger, sometimes another amount or much later."""
        shop = self.shop
        if self.rng.random() < 0.25:
            return
        at = shown + self.span(0 * H, 48 * H)
        paid = case.amount + case.post
        if shop.once("amount-differs", 0.1):
            paid += self.rng.choice([-100, 100, 500]) if paid > 500 else 100
            self.plant("amount")
        elif shop.once("refund-late", 0.04):
            at = ours + self.span(80 * H, 100 * H)
            self.plant("time")
        self.case_push(206, at, case, 12, refund_amount=paid)

    def exchanged(self, case: _Case, got: datetime) -> None:
        """211: the goods received and the replacement shipped; a later message with
        aftersale_status 12 (the user confirming, op_role 1): the exchange is done."""
        self.case_push(211, got, case, 13, apply_time=_unix(case.asked))
        self.case_push(201, got + self.span(24 * H, 96 * H), case, 12, op_role=1)

    def dispute(self, case: _Case, rejected: datetime, *, goods: bool) -> datetime | None:
        """A rejection, perhaps appealed (212-216)."""
        rng, shop = self.rng, self.shop
        if not shop.once("appeal", 0.6):
            return None
        arbitrate_id = str(shop.fresh(10**17, 9 * 10**17))
        app = rejected + self.span(2 * H, 100 * H)
        self.case_push(212, app, case, arbitrate_id=arbitrate_id, arbitrate_status=1)
        if shop.once("217", 0.25):
            self.case_push(217, app + 30 * M, case, arbitrate_id=arbitrate_id)
        self.case_push(213, app + H, case, arbitrate_id=arbitrate_id, arbitrate_status=2)
        if shop.once("withdrawn-appeal", 0.15):
            self.case_push(215, app + 2 * H, case, arbitrate_id=arbitrate_id,
                           arbitrate_status=4)
            return None
        refunds = case.type in (1, 2) or (goods and case.type == 0 and not self.cod)
        for_user = 3 if refunds and rng.random() < 0.5 else 1
        if rng.random() < 0.55:  # the merchant's evidence in time; the platform rules
            self.case_push(214, app + self.span(2 * H, 40 * H), case,
                           arbitrate_id=arbitrate_id, arbitrate_status=3)
            ruled = app + self.span(50 * H, 120 * H)
            conclusion = for_user if rng.random() < 0.5 else 2
        elif shop.once("ruled-otherwise", 0.6):  # after the ledger's A-2 timer, the other way
            ruled, conclusion = app + self.span(50 * H, 120 * H), 2
            self.plant("outcome")
        else:  # the platform's timer, as the ledger's A-2
            ruled, conclusion = app + 2 * D + self.span(2 * M, 8 * M), for_user
        self.case_push(216, ruled, case, arbitrate_id=arbitrate_id,
                       arbitrate_status=255 if conclusion == 3 else 3,
                       arbitrate_conclusion=conclusion)
        if shop.once("218", 0.25):
            self.case_push(218, ruled + 10 * M, case, arbitrate_id=arbitrate_id)
        if conclusion == 2:  # final (or the planted discrepancy: the ledger goes on alone)
            return None
        return self.resume(case, ruled, goods)

    def resume(self, case: _Case, ruled: datetime, goods: bool) -> datetime | None:
        """A-4: ruled for the user, the case goes on as if the merchant had agreed."""
        if case.type in (1, 2) or (goods and case.type == 0 and not self.cod):
            case.sub.left = max(0, case.sub.left - case.amount)
            self.refund_news(case, ruled, ruled)  # refunded at the ruling
            return ruled
        if not goods:  # the request approved: the goods go back
            return self.goods_back(case, ruled, ruled, on_time=False, appealed=True)
        at = ruled + self.span(H, 40 * H)  # refused goods count as received
        if case.type == 3:
            self.case_push(211, at, case, 13, apply_time=_unix(case.asked))
            self.case_push(201, at + self.span(24 * H, 96 * H), case, 12, op_role=1)
            return None
        case.sub.left = max(0, case.sub.left - case.amount)
        self.case_push(206, at, case, 12)  # the cod merchant's refund
        return at


def _stories(plan: FeedPlan) -> _Shop:
    shop = _Shop(plan)
    shop.run()
    return shop


def planted(plan: FeedPlan) -> Counter[str]:
    """The discrepancies the feed of `plan` plants, by class (outcome, actor, amount,
    deadline, time): what reconciling it finds."""
    return _stories(plan).planted


def generate(plan: FeedPlan) -> Iterator[str]:
    """The feed's lines, in the order they are delivered: the order export, then the
    received bodies."""
    shop = _stories(plan)
    rng = shop.rng
    for _, line in sorted(shop.exports, key=lambda x: x[0]):
        yield json.dumps(line, ensure_ascii=False, separators=(",", ":"))
    window = plan.lateness.total_seconds()
    # A message may come later than the window only where no later message of its own
    # order comes meanwhile (it would then be a step back in time: TIME).
    following: dict[int, datetime] = {}
    nexts: dict[int, datetime | None] = {}
    for p in sorted(shop.pushes, key=lambda p: (p.at, p.seq), reverse=True):
        nexts[p.seq] = following.get(p.parent)
        following[p.parent] = p.at
    deliveries: list[tuple[datetime, int, _Push]] = []
    for p in shop.pushes:
        roll = rng.random()
        if p.tag in TIMELESS:  # sent when it happens: its time is its receive time
            sent = p.at
            again = sent + timedelta(seconds=rng.randrange(5, 300))
        else:
            after = nexts[p.seq]
            if roll < 0.02 and (after is None or (after - p.at).total_seconds()
                                > window * 4 + 120):
                delay = window * (2 + 2 * rng.random())  # later than the window
            else:
                delay = window * 0.8 * rng.random()
            sent = p.at + timedelta(seconds=int(delay))
            again = p.at + timedelta(seconds=int(window * (0.1 + 0.5 * rng.random())))
        deliveries.append((sent, p.seq, p))
        if roll > 0.97:  # delivered twice
            deliveries.append((again, p.seq, p))
    deliveries.sort(key=lambda x: (x[0], x[1]))
    n = 0
    while n < len(deliveries):
        first, cap = deliveries[n][0], rng.choice([1, 1, 2, 3, 5])
        k = n + 1
        while k < len(deliveries) and k - n < cap and (
                deliveries[k][0] - first).total_seconds() <= 60:
            k += 1
        body = deliveries[n:k]
        received = max(x[0] for x in body) + timedelta(seconds=rng.randrange(1, 6))
        official = rng.random() < 0.5
        yield json.dumps({"received_at": received.isoformat(),
                          "body": [p.envelope(official) for _, _, p in body]},
                         ensure_ascii=False, separators=(",", ":"))
        n = k


def end_of(plan: FeedPlan) -> datetime:
    """When the feed's story ends (for the closing sweep)."""
    return START + timedelta(days=plan.days + 21)
