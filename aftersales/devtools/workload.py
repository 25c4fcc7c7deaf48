"""A seeded, realistic command file: the demo's input and the benchmark's (`aftersales gen`).

Both payment methods (about 60% online, 40% cod), unpaid online orders, cancellations by
every allowed actor, returns on about 25% of delivered orders (some partial, some asked
again after a rejection), slow merchants who miss deadlines, users who lapse, and hourly
ticks; all commands interleaved across orders in business-time order.  Every generated
command is legal when it is applied in that order, so a clean ingest refuses nothing.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from aftersales.domain.policy import DEFAULT_POLICY, Policy

SHANGHAI = timezone(timedelta(hours=8))
START = datetime(2026, 3, 1, tzinfo=SHANGHAI)

Line = dict[str, Any]


@dataclass(frozen=True)
class Workload:
    orders: int = 3000
    seed: int = 7
    days: int = 42
    online_share: float = 0.6
    return_share: float = 0.25
    slow_merchant_share: float = 0.15
    tick_every: timedelta = timedelta(hours=1)
    start: datetime = START
    policy: Policy = DEFAULT_POLICY

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=self.days)


def generate(w: Workload) -> Iterator[Line]:
    """The workload's commands in business-time order (ticks included)."""
    rng = random.Random(w.seed)
    merchants = [f"M{i:04d}" for i in range(max(5, w.orders // 40))]
    slow = set(rng.sample(merchants, max(1, int(len(merchants) * w.slow_merchant_share))))
    heap: list[tuple[datetime, int, Line]] = []
    seq = 0
    place_until = w.days - 12 if w.days > 20 else max(1, w.days // 2)
    for n in range(w.orders):
        merchant = rng.choice(merchants)
        placed = w.start + timedelta(seconds=rng.randrange(place_until * 86400))
        story = _Story(rng, w, f"D{w.seed}-{n:07d}", merchant, merchant in slow)
        for line in story.tell(placed):
            heap.append((line_at(line), seq, line))
            seq += 1
    heapq.heapify(heap)
    tick = w.start + w.tick_every
    while heap:
        at, _, line = heapq.heappop(heap)
        if at > w.end:
            break  # the rest of the stories happen after the simulated period
        while tick <= at:
            yield {"command": "tick", "at": tick.isoformat()}
            tick += w.tick_every
        yield line
    while tick <= w.end:
        yield {"command": "tick", "at": tick.isoformat()}
        tick += w.tick_every


def line_at(line: Line) -> datetime:
    return datetime.fromisoformat(line["at"])


class _Story:
    """One order's life, told as the commands its parties send."""

    def __init__(self, rng: random.Random, w: Workload, order_id: str, merchant: str,
                 slow: bool) -> None:
        self.rng, self.w, self.p = rng, w, w.policy
        self.order_id, self.merchant, self.slow = order_id, merchant, slow
        self.lines: list[Line] = []

    def say(self, command: str, at: datetime, **fields: Any) -> datetime:
        self.lines.append({"command": command, "order_id": self.order_id,
                           "at": at.isoformat(), **fields})
        return at

    def hours(self, low: float, high: float) -> timedelta:
        return timedelta(seconds=self.rng.randrange(int(low * 3600), int(high * 3600)))

    def tell(self, placed: datetime) -> list[Line]:
        rng = self.rng
        online = rng.random() < self.w.online_share
        goods = rng.choice([1990, 4900, 9900, 12800, 25900, 59900, 129900])
        postage = rng.choice([0, 0, 600, 800, 1200])
        self.say("place_order", placed, payment="online" if online else "cod",
                 merchant_id=self.merchant, user_id=f"U{rng.randrange(10 * self.w.orders):07d}",
                 goods_amount=goods, postage=postage)
        t = placed
        if online:
            r = rng.random()
            if r < 0.07:
                return self.lines  # never paid: C-ON-4 cancels it
            if r < 0.10:
                self.say("cancel", t + self.hours(0.1, 20), by="user", reason="changed mind")
                return self.lines
            t = self.say("pay", t + self.hours(0.01, 3))
            if rng.random() < 0.03:
                self.say("cancel", t + self.hours(0.5, 20), by="platform",
                         reason="user asked customer service")
                return self.lines
        else:
            if rng.random() < 0.04:
                self.say("cancel", t + self.hours(0.2, 10), by="merchant", reason="out of stock")
                return self.lines
            t = self.say("confirm_order", t + self.hours(0.5, 8))
        t = self.say("ship", t + self.hours(4, 48), carrier="SF",
                     tracking_no=f"SF{rng.randrange(10**10):010d}")
        if not online and rng.random() < 0.02:
            self.say("cancel", t + self.hours(2, 30), by="platform", reason="user refused goods")
            return self.lines
        t = self.say("deliver", t + self.hours(20, 96))
        if rng.random() < self.w.return_share:
            self.returns(t + self.hours(2, 140), goods, online)
        return self.lines

    def returns(self, t: datetime, goods: int, online: bool) -> None:
        rng, p = self.rng, self.p
        partial = rng.random() < 0.2
        amount = rng.randrange(goods // 5, goods) if partial else None
        fields = {"amount": amount} if amount else {}
        t = self.say("request_return", t, reason="not as described", **fields)
        if self.slow and rng.random() < 0.7:
            t = t + p.merchant_response_window  # the system approves at the deadline
        else:
            t = t + self.hours(0.5, 40)
            if rng.random() < 0.15:
                self.say("reject_return", t, reason="used goods")
                if rng.random() < 0.3:
                    self.returns(t + self.hours(1, 24), goods, online)
                return
            self.say("approve_return", t)
        r = rng.random()
        if r < 0.07:
            return  # the user lapses: R-2 closes the case
        if r < 0.15:
            self.say("withdraw_return", t + self.hours(1, 100))
            return
        t = self.say("submit_tracking", t + self.hours(2, 120), carrier="YTO",
                     tracking_no=f"YT{rng.randrange(10**10):010d}")
        if self.slow and rng.random() < 0.7:
            t = t + p.receipt_window  # the system confirms receipt
        else:
            t = self.say("confirm_receipt", t + self.hours(20, 150))
        if online:
            return
        due = t + p.voucher_window
        refund = amount if amount else goods
        if self.slow and rng.random() < 0.7:
            if rng.random() < 0.5:  # late voucher: settles the merchant's debt
                self.say("upload_refund_voucher", due + self.hours(24, 200),
                         voucher_ref=f"V-{self.order_id}", amount=refund)
            return
        self.say("upload_refund_voucher", t + self.hours(1, 40),
                 voucher_ref=f"V-{self.order_id}", amount=refund)
