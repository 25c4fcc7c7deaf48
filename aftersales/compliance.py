"""A compliance summary read from the event store: violations per rule, the worst merchants.

It streams the notification log a page at a time.  (The projections of issue 3 will serve
the same figures from SQL tables.)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from aftersales.application import Ledger
from aftersales.domain import events as ev
from aftersales.domain.states import (
    COD_REFUND_VOUCHER_48H,
    RECEIPT_CONFIRM_7D,
    RETURN_RESPONSE_48H,
    RETURN_TRACKING_7D,
    UNPAID_24H,
)

PAGE = 1000
VIOLATION_OF: dict[type[ev.OrderEvent], str] = {
    ev.ReturnAutoApproved: RETURN_RESPONSE_48H,
    ev.ReceiptAutoConfirmed: RECEIPT_CONFIRM_7D,
    ev.MerchantPenalized: COD_REFUND_VOUCHER_48H,
}
LAPSE_OF: dict[type[ev.OrderEvent], str] = {
    ev.OrderAutoCancelled: UNPAID_24H,
    ev.ReturnAutoClosed: RETURN_TRACKING_7D,
}


@dataclass
class Summary:
    events: int = 0
    orders: int = 0
    cases: int = 0
    violations: Counter[str] = field(default_factory=Counter)
    lapses: Counter[str] = field(default_factory=Counter)
    cases_by_merchant: Counter[str] = field(default_factory=Counter)
    violations_by_merchant: Counter[str] = field(default_factory=Counter)
    compensation_paid: int = 0
    refunded: int = 0

    def render(self, worst: int = 5) -> str:
        lines = [
            f"{self.events} events for {self.orders} orders, {self.cases} return cases",
            f"refunded to users {self.refunded / 100:,.2f}; of which advance compensation "
            f"{self.compensation_paid / 100:,.2f}",
            "violations (merchant deadlines missed):",
        ]
        for rule in (RETURN_RESPONSE_48H, RECEIPT_CONFIRM_7D, COD_REFUND_VOUCHER_48H):
            lines.append(f"  {rule:<24} {self.violations[rule]:>6}")
        lines.append("user lapses:")
        for rule in (UNPAID_24H, RETURN_TRACKING_7D):
            lines.append(f"  {rule:<24} {self.lapses[rule]:>6}")
        lines.append(f"worst merchants (violations / return cases), top {worst}:")
        for merchant, n in self.violations_by_merchant.most_common(worst):
            lines.append(f"  {merchant:<10} {n:>4} / {self.cases_by_merchant[merchant]}")
        return "\n".join(lines)


def all_events(ledger: Ledger) -> Iterator[ev.OrderEvent]:
    start = 1
    while page := ledger.recorder.select_notifications(start, PAGE):
        for notification in page:
            event = ledger.mapper.to_domain_event(notification)
            assert isinstance(event, ev.OrderEvent)
            yield event
        start = page[-1].id + 1


def summarize(ledger: Ledger) -> Summary:
    s = Summary()
    merchant_of: dict[str, str] = {}
    for event in all_events(ledger):
        s.events += 1
        key = event.originator_id.hex
        if isinstance(event, ev.OrderPlaced):
            s.orders += 1
            merchant_of[key] = event.merchant_id
        elif isinstance(event, ev.ReturnRequested):
            s.cases += 1
            s.cases_by_merchant[merchant_of[key]] += 1
        elif isinstance(event, ev.OrderCancelled):
            s.refunded += event.refund_amount
        elif isinstance(event, ev.PlatformRefunded) or (
            isinstance(event, ev.RefundVoucherUploaded) and not event.settles_debt
        ):
            s.refunded += event.amount
        elif isinstance(event, ev.AdvanceCompensationPaid):
            s.refunded += event.amount
            s.compensation_paid += event.amount
        if (rule := VIOLATION_OF.get(type(event))) is not None:
            s.violations[rule] += 1
            s.violations_by_merchant[merchant_of[key]] += 1
        if (rule := LAPSE_OF.get(type(event))) is not None:
            s.lapses[rule] += 1
    return s
