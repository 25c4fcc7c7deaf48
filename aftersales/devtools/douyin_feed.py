"""A generated Douyin feed (a development tool): a few hundred orders of one shop over
several weeks, as the platform would push them, with every tag the ledger reads.

The orders themselves come as an order export (`place_order` lines, and `confirm_order`
for cash on delivery, which has no tag); everything else is push bodies.  The platform's
own timers do what the rules say most of the time, and sometimes not: an approval shown
hours after the 48 h deadline, a deadline a day off, a refund of another amount, a ruling
the other way.  Deliveries come out of order within the window, some twice, a few later
than the window.  Seeded: the same seed gives the same lines.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aftersales.feeds.douyin import ZONE

START = datetime(2026, 3, 1, 9, 0, tzinfo=ZONE)
H, D = timedelta(hours=1), timedelta(days=1)
SHOP = "SHOP-7F3"


@dataclass(frozen=True)
class FeedPlan:
    orders: int = 300
    seed: int = 7
    days: int = 28
    lateness: timedelta = timedelta(minutes=10)


def _ts(at: datetime) -> int:
    return int(at.timestamp())


class _Order:
    def __init__(self, plan: FeedPlan, rng: random.Random, n: int,
                 told: set[int]) -> None:
        self.rng, self.id = rng, f"{6900000000 + n}"
        self.told = told  # the tags the feed has so far (the first dispute is withdrawn)
        self.at = START + timedelta(seconds=rng.randrange(plan.days * 86400 * 2 // 3))
        self.cod = rng.random() < 0.2
        self.goods = rng.choice([3900, 6900, 9900, 12900, 19900, 29900])
        self.out: list[tuple[datetime, Any]] = []
        self.seq = 0

    def line(self, at: datetime, command: dict[str, Any]) -> None:
        self.out.append((at, {"order_id": self.id, "at": at.isoformat(), **command}))

    def push(self, tag: int, at: datetime, **data: Any) -> None:
        self.seq += 1
        self.told.add(tag)
        self.out.append((at, {"tag": tag, "msg_id": f"{self.id}-{tag}-{self.seq}",
                              "data": json.dumps({"p_id": self.id, "s_id": self.id,
                                                  "shop_id": SHOP, "update_time": _ts(at),
                                                  **data})}))

    def story(self) -> None:
        rng, t = self.rng, self.at
        self.line(t, {"command": "place_order", "payment": "cod" if self.cod else "online",
                      "merchant_id": SHOP, "user_id": f"BUYER-{rng.randrange(10**6)}",
                      "goods_amount": self.goods, "postage": rng.choice([0, 600, 1000])})
        self.push(100, t, create_time=_ts(t))
        if self.cod:
            self.push(101, t, pay_type=0, pay_time=_ts(t))
            t += timedelta(minutes=rng.randrange(10, 600))
            self.line(t, {"command": "confirm_order"})
        elif rng.random() < 0.08:  # never paid: the platform cancels at 24 h, as the rules
            self.push(106, t + D + timedelta(seconds=rng.choice([0, 0, 3600])),
                      cancel_reason="unpaid", cancel_time=_ts(t + D))
            return
        else:
            t += timedelta(minutes=rng.randrange(1, 120))
            self.push(101, t, pay_type=1, pay_amount=self.goods, pay_time=_ts(t))
            if rng.random() < 0.04:  # a refund before shipment
                t += timedelta(hours=rng.randrange(1, 12))
                self.push(200, t, aftersale_id=f"AS{self.id}", aftersale_type=2,
                          reason="changed my mind", apply_time=_ts(t))
                self.answer(t, kind=2)
                return
        t += timedelta(hours=rng.randrange(4, 40))
        self.push(102, t, logistics_company="SF", logistics_code=f"SF{self.id}",
                  ship_time=_ts(t))
        t += timedelta(hours=rng.randrange(20, 80))
        self.push(103, t, complete_time=_ts(t))
        if rng.random() < 0.45:
            t += timedelta(hours=rng.randrange(2, 96))
            kind = 1 if self.cod is False and rng.random() < 0.3 else (
                3 if rng.random() < 0.2 else 0)
            amount = self.goods if rng.random() < 0.8 else self.goods // 2
            self.push(200, t, aftersale_id=f"AS{self.id}", aftersale_type=kind,
                      refund_amount=amount, reason="size", apply_time=_ts(t))
            if rng.random() < 0.1:
                self.push(208, t + H, refund_amount=amount)
            self.answer(t, kind, amount)

    def answer(self, asked: datetime, kind: int, amount: int | None = None) -> None:
        rng = self.rng
        due = asked + 2 * D
        roll = rng.random()
        if rng.random() < 0.15:  # the platform states the deadline: right, or a day off
            self.push(209, asked + H, status_deadline=_ts(due + (D if rng.random() < 0.3
                                                                 else timedelta(0))))
        if roll < 0.15 and kind != 2:  # rejected (before shipment only by shipping: F-1)
            at = asked + timedelta(hours=rng.randrange(1, 40))
            self.push(205 if kind in (0, 3) else 204, at, refuse_reason="used",
                      refuse_time=_ts(at))
            if rng.random() < 0.4:
                self.arbitrate(at)
            return
        if roll < 0.3:  # nobody answers: the platform's timer approves, at the deadline or
            at = due + (timedelta(hours=rng.randrange(1, 9)) if rng.random() < 0.4  # late
                        else timedelta(0))
        else:
            at = asked + timedelta(hours=rng.randrange(1, 46))
        self.push(202 if kind in (0, 3) else 201, at, agree_time=_ts(at))
        if kind in (1, 2):  # refunded by the platform at once
            if rng.random() < 0.5:
                paid = amount if amount is not None and rng.random() < 0.9 else (
                    (amount or self.goods) + 100)
                self.push(206, at, refund_amount=paid, success_time=_ts(at))
            return
        if rng.random() < 0.1:  # the user never sends the goods back: closed at 7 days
            self.push(207, at + 7 * D + timedelta(seconds=rng.choice([0, 7200])),
                      close_time=_ts(at + 7 * D))
            return
        sent = at + timedelta(hours=rng.randrange(4, 100))
        self.push(203, sent, logistics_company="YTO", logistics_code=f"YT{self.id}",
                  return_time=_ts(sent))
        got = sent + timedelta(hours=rng.randrange(24, 120))
        if kind == 3:
            self.push(211, got)
            return
        self.push(201, got, agree_time=_ts(got))
        if self.cod:
            paid_at = got + timedelta(hours=rng.randrange(1, 30))
            self.push(206, paid_at, aftersale_id=f"AS{self.id}", refund_amount=amount,
                      success_time=_ts(paid_at))
        elif rng.random() < 0.6:
            self.push(206, got, refund_amount=amount if rng.random() < 0.92 else
                      (amount or 0) - 500, success_time=_ts(got))

    def arbitrate(self, rejected: datetime) -> None:
        rng = self.rng
        at = rejected + timedelta(hours=rng.randrange(2, 100))
        self.push(212, at, arbitrate_id=f"ARB{self.id}", arbitrate_status=1)
        self.push(213, at + H, arbitrate_id=f"ARB{self.id}", arbitrate_status=4)
        if 215 not in self.told or rng.random() < 0.05:  # the user withdraws it
            self.push(215, at + 2 * H, arbitrate_id=f"ARB{self.id}")
            return
        sent = rng.random() < 0.6
        if sent:
            self.push(214, at + timedelta(hours=rng.randrange(2, 40)),
                      arbitrate_id=f"ARB{self.id}")
        ruled = at + timedelta(hours=rng.randrange(50, 120))
        for_user = rng.random() < (0.5 if sent else 0.9)
        self.push(216, ruled, arbitrate_id=f"ARB{self.id}",
                  arbitrate_status=2 if for_user else 3,
                  arbitrate_blame="merchant" if for_user else "user",
                  arbitrate_conclusion="ruled on the evidence")


def generate(plan: FeedPlan) -> Iterator[str]:
    """The feed's lines, in the order they are delivered."""
    rng = random.Random(plan.seed)
    timed: list[tuple[datetime, int, Any]] = []
    told: set[int] = set()
    for n in range(plan.orders):
        order = _Order(plan, rng, n, told)
        order.story()
        timed += [(at, len(timed) + k, item) for k, (at, item) in enumerate(order.out)]
    window = plan.lateness.total_seconds()
    deliveries = []
    for at, k, item in timed:
        if "tag" not in item:  # the order export comes first, as it would be loaded first
            deliveries.append((START - D, k, item))
            continue
        roll = rng.random()
        delay = (window * (1.5 + rng.random()) if roll < 0.02 else
                 window * 0.8 * rng.random())
        deliveries.append((at + timedelta(seconds=delay), k, item))
        if roll > 0.97:  # delivered twice
            deliveries.append((at + timedelta(seconds=window * 0.5 * rng.random()), k, item))
    deliveries.sort(key=lambda x: (x[0], x[1]))
    batch: list[Any] = []
    for _, _, item in deliveries:
        if "tag" not in item:
            yield json.dumps(item, separators=(",", ":"))
            continue
        batch.append(item)
        if len(batch) >= rng.choice([1, 1, 1, 2, 3]):
            yield json.dumps(batch, ensure_ascii=False, separators=(",", ":"))
            batch = []
    if batch:
        yield json.dumps(batch, ensure_ascii=False, separators=(",", ":"))


def end_of(plan: FeedPlan) -> datetime:
    """When the feed's story ends (for the closing sweep)."""
    return START + timedelta(days=plan.days + 14)
