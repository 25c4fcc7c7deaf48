"""The order's domain events: immutable, named in the past tense, each carrying the business
time `at` and the `actor`.  Each event's `apply` is the only place that changes order state.

System events (timeouts) also carry the `rule` and the `deadline` that caused them; so do the
consequences that follow them at the same instant (a refund, a compensation, a penalty).
The event that records a missed deadline is a `DeadlineMissed`: the violation or lapse it
counts is its rule's row of the rules table (`aftersales.domain.steps.TIMEOUTS`).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from eventsourcing.domain import Aggregate

from aftersales.domain.cases import ReturnCase
from aftersales.domain.states import CaseStatus, Lapse, OrderStatus, Payment, Violation
from aftersales.domain.steps import FIRST_STATUS, TIMEOUTS

if TYPE_CHECKING:
    from aftersales.domain.order import Order


class OrderEvent(Aggregate.Event):
    """Base of every order event."""

    at: datetime
    actor: str
    command_id: str | None

    def apply(self, aggregate: Order) -> None:
        aggregate.last_at = self.at
        self.evolve(aggregate)

    def evolve(self, order: Order) -> None:
        """Change the order's state; overridden by each event."""


class CaseEvent(OrderEvent):
    """An event about one return case, named by its number."""

    case: int

    def the_case(self, order: Order) -> ReturnCase:
        return order.cases[self.case - 1]


class SystemEvent(OrderEvent):
    """An event the rules caused: the rule and the deadline (or `None`) behind it."""

    rule: str
    deadline: datetime | None


class DeadlineMissed(SystemEvent):
    """A timeout that counts a miss: the violation (a merchant's deadline) or the lapse (a
    user's) that its rule's row of the rules table names."""

    def apply(self, aggregate: Order) -> None:
        super().apply(aggregate)
        timeout = TIMEOUTS[self.rule]
        case = self.case if isinstance(self, CaseEvent) else None
        assert self.deadline is not None
        if timeout.is_violation:
            assert case is not None
            aggregate.violations.append(Violation(timeout.missed, case, self.deadline,
                                                  timeout.consequence, timeout.penalty))
        else:
            aggregate.lapses.append(Lapse(timeout.missed, case, self.deadline))


# --- Orders -------------------------------------------------------------------------------


class OrderPlaced(OrderEvent, Aggregate.Created):
    order_id: str
    payment: str
    merchant_id: str
    user_id: str
    goods_amount: int
    postage: int
    currency: str
    payment_deadline: datetime | None

    def evolve(self, order: Order) -> None:
        order.order_id = self.order_id
        order.payment = Payment(self.payment)
        order.merchant_id = self.merchant_id
        order.user_id = self.user_id
        order.goods_amount = self.goods_amount
        order.postage = self.postage
        order.currency = self.currency
        order.placed_at = self.at
        order.payment_deadline = self.payment_deadline
        order.status = FIRST_STATUS[order.payment]
        order.cases = []
        order.violations = []
        order.lapses = []
        order.refunded_total = 0
        order.returned_goods = 0
        order.cancelled_by = None
        order.delivered_at = None
        order.paid_at = None


class PaymentReceived(OrderEvent):
    def evolve(self, order: Order) -> None:
        order.status = OrderStatus.PAID
        order.paid_at = self.at
        order.payment_deadline = None


class OrderConfirmed(OrderEvent):
    def evolve(self, order: Order) -> None:
        order.status = OrderStatus.STOCKING


class OrderShipped(OrderEvent):
    carrier: str
    tracking_no: str

    def evolve(self, order: Order) -> None:
        order.status = OrderStatus.SHIPPED


class OrderDelivered(OrderEvent):
    def evolve(self, order: Order) -> None:
        order.status = OrderStatus.DELIVERED
        order.delivered_at = self.at


class OrderCancelled(OrderEvent):
    reason: str
    refund_amount: int

    def evolve(self, order: Order) -> None:
        order.status = OrderStatus.CANCELLED
        order.cancelled_by = self.actor
        order.payment_deadline = None
        order.refunded_total += self.refund_amount


class OrderAutoCancelled(DeadlineMissed):
    def evolve(self, order: Order) -> None:
        order.status = OrderStatus.CANCELLED
        order.cancelled_by = self.actor
        order.payment_deadline = None


# --- Returns ------------------------------------------------------------------------------


class ReturnRequested(CaseEvent):
    amount: int
    reason: str
    response_deadline: datetime

    def evolve(self, order: Order) -> None:
        case = ReturnCase(
            number=self.case, amount=self.amount, reason=self.reason, requested_at=self.at
        )
        case.move_to(CaseStatus.REQUESTED, self.at, self.response_deadline)
        order.cases.append(case)


class MerchantApproved(CaseEvent):
    tracking_deadline: datetime

    def evolve(self, order: Order) -> None:
        approve(self.the_case(order), self.at, self.actor, self.tracking_deadline)


class ReturnAutoApproved(CaseEvent, DeadlineMissed):
    tracking_deadline: datetime

    def evolve(self, order: Order) -> None:
        approve(self.the_case(order), self.at, self.actor, self.tracking_deadline)


def approve(case: ReturnCase, at: datetime, by: str, tracking_deadline: datetime) -> None:
    case.decided_at = at
    case.decided_by = by
    case.move_to(CaseStatus.APPROVED, at, tracking_deadline)


class MerchantRejected(CaseEvent):
    reason: str

    def evolve(self, order: Order) -> None:
        case = self.the_case(order)
        case.decided_at = self.at
        case.decided_by = self.actor
        case.reject_reason = self.reason
        case.move_to(CaseStatus.REJECTED, self.at)


class ReturnWithdrawn(CaseEvent):
    def evolve(self, order: Order) -> None:
        self.the_case(order).move_to(CaseStatus.WITHDRAWN, self.at)


class TrackingSubmitted(CaseEvent):
    carrier: str
    tracking_no: str
    receipt_deadline: datetime

    def evolve(self, order: Order) -> None:
        case = self.the_case(order)
        case.carrier = self.carrier
        case.tracking_no = self.tracking_no
        case.tracking_at = self.at
        case.move_to(CaseStatus.IN_TRANSIT, self.at, self.receipt_deadline)


class ReturnAutoClosed(CaseEvent, DeadlineMissed):
    def evolve(self, order: Order) -> None:
        self.the_case(order).move_to(CaseStatus.CLOSED, self.at)


class ReceiptConfirmed(CaseEvent):
    voucher_deadline: datetime | None

    def evolve(self, order: Order) -> None:
        receive(self.the_case(order), self.at, self.actor, self.voucher_deadline)


class ReceiptAutoConfirmed(CaseEvent, DeadlineMissed):
    voucher_deadline: datetime | None

    def evolve(self, order: Order) -> None:
        receive(self.the_case(order), self.at, self.actor, self.voucher_deadline)


def receive(
    case: ReturnCase, at: datetime, by: str, voucher_deadline: datetime | None
) -> None:
    case.received_at = at
    case.received_by = by
    case.move_to(CaseStatus.RECEIVED, at, voucher_deadline)


class PlatformRefunded(CaseEvent, SystemEvent):
    amount: int

    def evolve(self, order: Order) -> None:
        case = self.the_case(order)
        refund_user(order, case, self.amount)
        case.refunded_at = self.at
        case.refunded_by = self.actor
        case.move_to(CaseStatus.REFUNDED, self.at)


class RefundVoucherUploaded(CaseEvent):
    voucher_ref: str
    amount: int
    settles_debt: bool

    def evolve(self, order: Order) -> None:
        case = self.the_case(order)
        case.voucher_ref = self.voucher_ref
        case.voucher_at = self.at
        if self.settles_debt:
            case.merchant_debt = 0
            return
        refund_user(order, case, self.amount)
        case.refunded_at = self.at
        case.refunded_by = self.actor
        case.move_to(CaseStatus.REFUNDED, self.at)


class AdvanceCompensationPaid(CaseEvent, SystemEvent):
    amount: int

    def evolve(self, order: Order) -> None:
        case = self.the_case(order)
        refund_user(order, case, self.amount)
        case.compensated_at = self.at
        case.move_to(CaseStatus.COMPENSATED, self.at)


class MerchantPenalized(CaseEvent, DeadlineMissed):
    debt: int

    def evolve(self, order: Order) -> None:
        self.the_case(order).merchant_debt = self.debt


def refund_user(order: Order, case: ReturnCase, amount: int) -> None:
    case.paid_to_user += amount
    order.refunded_total += amount
    order.returned_goods += amount


def _timeout_events() -> dict[str, type[DeadlineMissed]]:
    """The event of each row of the rules table, by rule (checked at import)."""
    found = {}
    for rule, timeout in TIMEOUTS.items():
        event = globals().get(timeout.event)
        if not (isinstance(event, type) and issubclass(event, DeadlineMissed)):
            raise TypeError(f"{rule}: {timeout.event} is not a DeadlineMissed event")
        found[rule] = event
    return found


#: The event that records each rule's missed deadline.
TIMEOUT_EVENTS = _timeout_events()
