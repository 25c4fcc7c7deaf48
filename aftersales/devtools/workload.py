"""A seeded, realistic command file: the demo's input and the benchmark's (`aftersales gen`).

Both payment methods (about 60% online, 40% cod), unpaid online orders, cancellations by
every allowed actor, returns on about 25% of delivered orders (some partial, some asked
again after a rejection), slow merchants who miss deadlines, users who lapse, and hourly
ticks; all commands interleaved across orders in business-time order.  Every generated
command is legal when it is applied in that order, so a clean ingest refuses nothing.

With `kinds` (the default) the other after-sale kinds of SPEC section 7 come too, in the
proportions real platforms report (refund-only common, exchanges rarer): refunds before
shipment on about 4% of paid online orders, refunds after shipment on about 8% of online
orders in transit and 12% of delivered ones, exchanges on about 4% of delivered orders,
refused returned goods, the merchants' receipt extensions and a few platform deadline
moves (section 9), and appeals to the platform (section 8) of about a third of the
merchants' rejections: slow merchants often send no evidence (the system rules for the
user), the others do, and the platform rules for either side, blaming one or both; a
ruling for the user continues the case.  Without
`kinds` the file is exactly the returns-only workload of earlier versions (the same seed
gives the same lines), which the benchmark compares old and new code on.
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
    #: Refund-only and exchange cases, refused goods and deadline changes too.
    kinds: bool = True
    refund_before_share: float = 0.04  # of paid online orders (F-1)
    refund_after_share: float = 0.08  # of shipped online orders, while in transit (F-2)
    refund_delivered_share: float = 0.12  # of delivered online orders (F-2)
    exchange_share: float = 0.04  # of delivered orders (E-1)
    moved_deadline_share: float = 0.02  # of cases: the platform moves the deadline (D-2)
    appeal_share: float = 0.35  # of the merchants' rejections: the user appeals (A-1)

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
        self.appealed = False  # the current case was appealed (once per case, A-1)

    def say(self, command: str, at: datetime, **fields: Any) -> datetime:
        if command.startswith("request_"):
            self.appealed = False  # a new case
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
            refused = False
            if self.w.kinds and rng.random() < self.w.refund_before_share:
                refused = self.refund_before_shipment(t + self.hours(0.2, 3))
                if not refused:
                    return self.lines  # refunded, the order cancelled
            if not refused and rng.random() < 0.03:
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
        if self.w.kinds and online and rng.random() < self.w.refund_after_share:
            asked = t + self.hours(6, 48)
            answered = self.refund_after_shipment(asked, goods)
            t = self.say("deliver", max(answered, t + self.hours(20, 96)))
            return self.lines
        t = self.say("deliver", t + self.hours(20, 96))
        r = rng.random() if self.w.kinds else 1.0
        if r < self.w.exchange_share:
            self.exchange(t + self.hours(2, 140), goods)
        elif online and r < self.w.exchange_share + self.w.refund_delivered_share:
            self.refund_after_shipment(t + self.hours(2, 140), goods)
        elif rng.random() < self.w.return_share:
            self.returns(t + self.hours(2, 140), goods, online)
        return self.lines

    # --- the other kinds (SPEC sections 7 and 9) -------------------------------------------

    def answer_by(self, asked: datetime) -> datetime:
        """When the merchant's answer is due, perhaps moved later by the platform (D-2)."""
        due = asked + self.p.merchant_response_window
        if self.rng.random() < self.w.moved_deadline_share:
            moved = due + timedelta(days=3)  # moved early: before any answer can come
            self.say("set_deadline", asked + self.hours(0.1, 0.5),
                     until=moved.isoformat(), reason="holiday")
            return moved
        return due

    def receipt(self, tracked: datetime) -> tuple[datetime, datetime | None]:
        """When the receipt is due, perhaps extended once by the merchant (D-1), and the
        earliest the merchant may then confirm (None: no extension)."""
        due = tracked + self.p.receipt_window
        if self.rng.random() < 0.1:
            extended = self.say("extend_deadline", tracked + self.hours(24, 140))
            return due + self.p.receipt_extension, extended
        return due, None

    def appeal(self, rejected: datetime) -> datetime | None:
        """SPEC section 8: perhaps the user appeals the rejection (A-1), the merchant sends
        evidence or not (A-2), and the platform, or the system, rules (A-3); the time of a
        ruling for the user (the case goes on from there, A-4), or None."""
        rng = self.rng
        if not self.w.kinds or self.appealed or rng.random() >= self.w.appeal_share:
            return None
        self.appealed = True
        t = self.say("appeal", rejected + self.hours(1, 150), reason="the merchant was wrong")
        if rng.random() < (0.6 if self.slow else 0.1):
            return t + self.p.evidence_window  # no evidence: ruled for the user then
        count = rng.randrange(1, 5)
        t = self.say("submit_evidence", t + self.hours(0.5, 40),
                     evidence=[f"IMG-{self.order_id}-{k}" for k in range(count)],
                     note="photos of the goods as sent")
        t += self.hours(2, 72)
        if rng.random() < 0.55:
            blame = rng.choices(["merchant", "both", "platform", "creator"], [14, 3, 2, 1])[0]
            self.say("arbitrate", t, outcome="user", blame=blame, note="the user is right")
            return t
        blame = rng.choices(["user", "both"], [9, 1])[0]
        self.say("arbitrate", t, outcome="merchant", blame=blame, note="the rejection stands")
        return None

    def refund_before_shipment(self, t: datetime) -> bool:
        """F-1; True when the merchant refused by shipping (the story goes on)."""
        rng = self.rng
        self.say("request_refund", t, reason="changed my mind")
        due = self.answer_by(t)
        if self.slow and rng.random() < 0.7:
            return False  # the system refunds at the deadline and cancels the order
        if rng.random() < 0.3:
            return True  # the merchant ships: that is the refusal
        self.say("approve_return", min(t + self.hours(0.5, 30), due))
        return False

    def refund_after_shipment(self, t: datetime, goods: int) -> datetime:
        """F-2, asked while the goods travel; when it was settled."""
        rng = self.rng
        partial = rng.random() < 0.4
        fields = {"amount": rng.randrange(goods // 5, goods)} if partial else {}
        self.say("request_refund", t, reason="not received", **fields)
        due = self.answer_by(t)
        if self.slow and rng.random() < 0.7:
            return due  # the system refunds at the deadline
        answered = min(t + self.hours(0.5, 40), due)
        if rng.random() < 0.2:
            self.say("reject_return", answered, reason="in transit, on time")
            self.appeal(answered)  # for the user: the platform refunds at the ruling
        else:
            self.say("approve_return", answered)
        return answered

    def exchange(self, t: datetime, goods: int) -> None:
        """E-1 and E-2: the goods sent back, a replacement shipped (or, late, refunded)."""
        rng = self.rng
        self.say("request_exchange", t, reason="wrong size")
        due = self.answer_by(t)
        if self.slow and rng.random() < 0.6:
            t = due  # the system approves at the deadline
        else:
            t = min(t + self.hours(0.5, 40), due)
            if rng.random() < 0.1:
                self.say("reject_return", t, reason="worn")
                ruled = self.appeal(t)
                if ruled is None:
                    return
                t = ruled  # approved at the ruling
            else:
                self.say("approve_return", t)
        if rng.random() < 0.06:
            return  # the user lapses: R-2 closes it
        t = self.say("submit_tracking", t + self.hours(2, 120), carrier="YTO",
                     tracking_no=f"YT{rng.randrange(10**10):010d}")
        receipt_due, extended = self.receipt(t)
        if self.slow and rng.random() < 0.6:
            t = receipt_due  # the system confirms receipt
        else:
            t = min(max(t + self.hours(20, 150), (extended or t) + self.hours(0.1, 5)),
                    receipt_due)
            if rng.random() < 0.06:
                self.say("reject_receipt", t, reason="damaged")
                ruled = self.appeal(t)
                if ruled is None:
                    return
                t = ruled  # received at the ruling
            else:
                self.say("confirm_receipt", t)
        if self.slow and rng.random() < 0.5:
            return  # no replacement in time: the exchange becomes a refund (E-2)
        t = self.say("ship_replacement", t + self.hours(1, 44), carrier="SF",
                     tracking_no=f"SF{rng.randrange(10**10):010d}")
        self.say("deliver_replacement", t + self.hours(20, 96))

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
                ruled = self.appeal(t)  # (no draw without kinds: the same lines as before)
                if ruled is None:
                    if self.w.kinds and self.lines[-1]["command"] != "reject_return":
                        return  # appealed and lost: final
                    if rng.random() < 0.3:
                        self.returns(t + self.hours(1, 24), goods, online)
                    return
                t = ruled  # approved at the ruling
            else:
                self.say("approve_return", t)
        r = rng.random()
        if r < 0.07:
            return  # the user lapses: R-2 closes the case
        if r < 0.15:
            self.say("withdraw_return", t + self.hours(1, 100))
            return
        t = self.say("submit_tracking", t + self.hours(2, 120), carrier="YTO",
                     tracking_no=f"YT{rng.randrange(10**10):010d}")
        if self.w.kinds:
            receipt_due, extended = self.receipt(t)
            if self.slow and rng.random() < 0.7:
                t = receipt_due  # the system confirms receipt
            else:
                answered = min(max(t + self.hours(20, 150),
                                   (extended or t) + self.hours(0.1, 5)), receipt_due)
                if rng.random() < 0.04:
                    self.say("reject_receipt", answered, reason="not the item sold")
                    ruled = self.appeal(answered)
                    if ruled is None:
                        return
                    t = ruled  # received at the ruling (online: refunded then)
                else:
                    t = self.say("confirm_receipt", answered)
        elif self.slow and rng.random() < 0.7:
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
