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

from aftersales.domain.cases import Arbitration, ReturnCase
from aftersales.domain.states import CaseStatus, Flow, Lapse, OrderStatus, Payment, Violation
from aftersales.domain.steps import FIRST_STATUS, TIMEOUTS

if TYPE_CHECKING:
    from aftersales.domain.order_core import OrderCore


class OrderEvent(Aggregate.Event):
    """Base of every order event."""

    at: datetime
    actor: str
    command_id: str | None

    def apply(self, aggregate: OrderCore) -> None:
        aggregate.last_at = self.at
        self.evolve(aggregate)

    def evolve(self, order: OrderCore) -> None:
        """Change the order's state; overridden by each event."""


class CaseEvent(OrderEvent):
    """An event about one return case, named by its number."""

    case: int

    def the_case(self, order: OrderCore) -> ReturnCase:
        return order.cases[self.case - 1]


class SystemEvent(OrderEvent):
    """An event the rules caused: the rule and the deadline (or `None`) behind it."""

    rule: str
    deadline: datetime | None


class DeadlineMissed(SystemEvent):
    """A timeout that counts a miss: the violation (a merchant's deadline) or the lapse (a
    user's) that its rule's row of the rules table names."""

    def apply(self, aggregate: OrderCore) -> None:
        super().apply(aggregate)
        timeout = TIMEOUTS[self.rule]
        case = self.case if isinstance(self, CaseEvent) else None
        assert self.deadline is not None
        if timeout.is_violation:
            assert case is not None
            aggregate.violations.append(Violation(
                timeout.missed, case, self.deadline, timeout.consequence,
                timeout.penalty(aggregate.payment)))
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

    def evolve(self, order: OrderCore) -> None:
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
        order.cancelled_at = None
        order.delivered_at = None
        order.paid_at = None


class PaymentReceived(OrderEvent):
    def evolve(self, order: OrderCore) -> None:
        order.status = OrderStatus.PAID
        order.paid_at = self.at
        order.payment_deadline = None


class OrderConfirmed(OrderEvent):
    def evolve(self, order: OrderCore) -> None:
        order.status = OrderStatus.STOCKING


class OrderShipped(OrderEvent):
    carrier: str
    tracking_no: str

    def evolve(self, order: OrderCore) -> None:
        order.status = OrderStatus.SHIPPED


class OrderDelivered(OrderEvent):
    def evolve(self, order: OrderCore) -> None:
        order.status = OrderStatus.DELIVERED
        order.delivered_at = self.at


class OrderCancelled(OrderEvent):
    reason: str
    refund_amount: int

    def evolve(self, order: OrderCore) -> None:
        cancel(order, self)
        order.refunded_total += self.refund_amount


class OrderAutoCancelled(DeadlineMissed):
    def evolve(self, order: OrderCore) -> None:
        cancel(order, self)


def cancel(order: OrderCore, e: OrderEvent) -> None:
    order.status = OrderStatus.CANCELLED
    order.cancelled_by = e.actor
    order.cancelled_at = e.at
    order.payment_deadline = None


# --- Returns ------------------------------------------------------------------------------


class CaseRequested(CaseEvent):
    """A request that opens a case (a return, a refund, an exchange), with the platform's
    own id of the case if it gave one (`case_ref`).  Version 2 added `case_ref` (events of
    version 1 have none)."""

    class_version = 2
    amount: int
    reason: str
    response_deadline: datetime
    case_ref: str | None

    @staticmethod
    def upcast_v1_v2(state: dict[str, object]) -> None:
        state["case_ref"] = None


class ReturnRequested(CaseRequested):
    def evolve(self, order: OrderCore) -> None:
        open_case(order, self, Flow.RETURN)


class MerchantApproved(CaseEvent):
    tracking_deadline: datetime

    def evolve(self, order: OrderCore) -> None:
        approve(self.the_case(order), self.at, self.actor, self.tracking_deadline)


class ReturnAutoApproved(CaseEvent, DeadlineMissed):
    tracking_deadline: datetime

    def evolve(self, order: OrderCore) -> None:
        approve(self.the_case(order), self.at, self.actor, self.tracking_deadline)


def approve(case: ReturnCase, at: datetime, by: str, tracking_deadline: datetime) -> None:
    decide(case, at, by)
    case.move_to(CaseStatus.APPROVED, at, tracking_deadline)


class MerchantRejected(CaseEvent):
    reason: str

    def evolve(self, order: OrderCore) -> None:
        case = self.the_case(order)
        decide(case, self.at, self.actor)
        case.reject_reason = self.reason
        case.rejected_at = self.at
        case.move_to(CaseStatus.REJECTED, self.at)


class ReturnWithdrawn(CaseEvent):
    def evolve(self, order: OrderCore) -> None:
        self.the_case(order).move_to(CaseStatus.WITHDRAWN, self.at)


class TrackingSubmitted(CaseEvent):
    """The user sent the goods back; the carrier and tracking number may be unknown (a
    platform's push may carry neither)."""

    carrier: str | None
    tracking_no: str | None
    receipt_deadline: datetime

    def evolve(self, order: OrderCore) -> None:
        case = self.the_case(order)
        case.carrier = self.carrier
        case.tracking_no = self.tracking_no
        case.tracking_at = self.at
        case.move_to(CaseStatus.IN_TRANSIT, self.at, self.receipt_deadline)


class ReturnAutoClosed(CaseEvent, DeadlineMissed):
    def evolve(self, order: OrderCore) -> None:
        self.the_case(order).move_to(CaseStatus.CLOSED, self.at)


class Received(CaseEvent):
    """The returned goods were received: the deadline that starts then is a cod return's
    refund voucher (R-COD-4) or an exchange's replacement (E-2).  Version 2 added
    `reship_deadline` (events of version 1 have none)."""

    class_version = 2
    voucher_deadline: datetime | None
    reship_deadline: datetime | None

    @staticmethod
    def upcast_v1_v2(state: dict[str, object]) -> None:
        state["reship_deadline"] = None

    def evolve(self, order: OrderCore) -> None:
        case = self.the_case(order)
        case.received_at = self.at
        case.received_by = self.actor
        case.move_to(CaseStatus.RECEIVED, self.at, self.voucher_deadline or self.reship_deadline)


class ReceiptConfirmed(Received):
    pass


class ReceiptAutoConfirmed(Received, DeadlineMissed):
    pass


class ReceiptRejected(CaseEvent):
    """R-6: the merchant refused the returned goods."""

    reason: str

    def evolve(self, order: OrderCore) -> None:
        case = self.the_case(order)
        case.receipt_rejected_at = self.at
        case.reject_reason = self.reason
        case.rejected_at = self.at
        case.move_to(CaseStatus.REJECTED, self.at)


class PlatformRefunded(CaseEvent, SystemEvent):
    amount: int

    def evolve(self, order: OrderCore) -> None:
        case = self.the_case(order)
        refund_user(order, case, self.amount)
        case.refunded_at = self.at
        case.refunded_by = self.actor
        case.move_to(CaseStatus.REFUNDED, self.at)


class RefundVoucherUploaded(CaseEvent):
    voucher_ref: str
    amount: int
    settles_debt: bool

    def evolve(self, order: OrderCore) -> None:
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

    def evolve(self, order: OrderCore) -> None:
        case = self.the_case(order)
        refund_user(order, case, self.amount)
        case.compensated_at = self.at
        case.move_to(CaseStatus.COMPENSATED, self.at)


class MerchantPenalized(CaseEvent, DeadlineMissed):
    debt: int

    def evolve(self, order: OrderCore) -> None:
        self.the_case(order).merchant_debt = self.debt


# --- Refunds only (SPEC section 7) --------------------------------------------------------


class RefundRequested(CaseRequested):
    """F-1 (before shipment: `amount` is goods and postage) or F-2 (after shipment)."""

    before_shipment: bool

    def evolve(self, order: OrderCore) -> None:
        flow = Flow.REFUND_BEFORE_SHIPMENT if self.before_shipment else Flow.REFUND_AFTER_SHIPMENT
        open_case(order, self, flow)


class RefundApproved(CaseEvent):
    """The merchant agreed to a refund; the platform refunds at once."""

    def evolve(self, order: OrderCore) -> None:
        decide(self.the_case(order), self.at, self.actor)


class RefundAutoApproved(CaseEvent, DeadlineMissed):
    """F-1, F-2: the merchant did not answer; the system agreed to the refund."""

    def evolve(self, order: OrderCore) -> None:
        decide(self.the_case(order), self.at, self.actor)


class OrderCancelledByRefund(SystemEvent):
    """F-1: the order refunded in full before shipment is cancelled."""

    def evolve(self, order: OrderCore) -> None:
        cancel(order, self)


# --- Exchanges (SPEC section 7) -----------------------------------------------------------


class ExchangeRequested(CaseRequested):
    def evolve(self, order: OrderCore) -> None:
        open_case(order, self, Flow.EXCHANGE)


class RequestAmended(CaseEvent):
    """The user amended the open request before the merchant's answer: its amount (and
    its reason, if one is given: "" keeps the old one).  The answer deadline stays."""

    old_amount: int
    new_amount: int
    reason: str

    def evolve(self, order: OrderCore) -> None:
        case = self.the_case(order)
        case.amount = self.new_amount
        if self.reason:
            case.reason = self.reason


class ReplacementShipped(CaseEvent):
    """The merchant shipped the replacement; the carrier and tracking number may be
    unknown (a platform's push may carry neither)."""

    carrier: str | None
    tracking_no: str | None

    def evolve(self, order: OrderCore) -> None:
        case = self.the_case(order)
        case.replacement_carrier = self.carrier
        case.replacement_tracking_no = self.tracking_no
        case.replacement_shipped_at = self.at
        case.move_to(CaseStatus.REPLACEMENT_SHIPPED, self.at)


class ReplacementDelivered(CaseEvent):
    def evolve(self, order: OrderCore) -> None:
        case = self.the_case(order)
        case.replacement_delivered_at = self.at
        case.move_to(CaseStatus.EXCHANGED, self.at)


class ExchangeConvertedToRefund(CaseEvent, DeadlineMissed):
    """E-2: no replacement shipped in time; the platform pays `amount` (next event), and
    a cod merchant owes it (`debt`)."""

    amount: int
    debt: int

    def evolve(self, order: OrderCore) -> None:
        case = self.the_case(order)
        case.converted_to_refund = True
        case.merchant_debt = self.debt


# --- Platform intervention (SPEC section 8) -----------------------------------------------


class Appealed(CaseEvent):
    """A-1: the user asked the platform to intervene in the merchant's rejection; the
    merchant's evidence is due by `evidence_deadline` (A-2)."""

    reason: str
    evidence_deadline: datetime

    def evolve(self, order: OrderCore) -> None:
        case = self.the_case(order)
        case.arbitration = Arbitration(self.at, self.reason, self.evidence_deadline)
        case.move_to(CaseStatus.ARBITRATING, self.at, self.evidence_deadline)


class EvidenceSubmitted(CaseEvent):
    """A-2: the merchant's evidence (1-4 references) and note; the platform rules next."""

    evidence: list[str]
    note: str

    def evolve(self, order: OrderCore) -> None:
        case = self.the_case(order)
        dispute = case.arbitration
        assert dispute is not None
        dispute.evidence, dispute.evidence_note = tuple(self.evidence), self.note
        dispute.evidence_at = self.at
        case.move_to(CaseStatus.ARBITRATING, self.at)


class Ruled(CaseEvent):
    """A ruling (A-3), with the evidence it was made on, and where the case resumes (A-4):
    `rejected` (for the merchant: final), `approved` or `received` (the step's deadline
    is `next_deadline`), or `refunded` (the platform's refund follows at once)."""

    outcome: str
    blame: str
    note: str
    evidence: list[str]
    resumes: str
    next_deadline: datetime | None

    def evolve(self, order: OrderCore) -> None:
        case = self.the_case(order)
        dispute = case.arbitration
        assert dispute is not None
        dispute.ruled_at, dispute.ruled_by = self.at, self.actor
        dispute.outcome, dispute.blame, dispute.note = self.outcome, self.blame, self.note
        resumes = CaseStatus(self.resumes)
        if resumes is CaseStatus.RECEIVED or (resumes is CaseStatus.REFUNDED
                                              and case.receipt_rejected_at is not None):
            case.received_at, case.received_by = self.at, self.actor  # refused goods
        if resumes is CaseStatus.REFUNDED:
            case.deadline = None  # PlatformRefunded follows
        else:
            case.move_to(resumes, self.at, self.next_deadline)


class ArbitrationRuled(Ruled):
    """A-3: the platform ruled."""


class ArbitrationAutoRuled(Ruled, DeadlineMissed):
    """A-2: no evidence in time; the system ruled for the user, blaming the merchant."""


class AppealWithdrawn(CaseEvent):
    """The user withdrew the appeal before a ruling: the case is `rejected` again, finally
    (one appeal per case, A-1), and the evidence deadline no longer runs."""

    reason: str

    def evolve(self, order: OrderCore) -> None:
        case = self.the_case(order)
        dispute = case.arbitration
        assert dispute is not None
        dispute.withdrawn_at = self.at
        case.move_to(CaseStatus.REJECTED, self.at)


class BlameRecorded(CaseEvent):
    """The blame of a ruling recorded with blame `unknown` (from a platform's push), given
    once by the platform; `ruled_at` is the ruling's time (the dispute is counted on the
    ruling's day)."""

    blame: str
    ruled_at: datetime

    def evolve(self, order: OrderCore) -> None:
        dispute = self.the_case(order).arbitration
        assert dispute is not None
        dispute.blame = self.blame


# --- Deadline changes (SPEC section 9) ----------------------------------------------------


class DeadlineChanged(OrderEvent):
    """A pending deadline moved: of a case (`case`), or the order's payment deadline."""

    case: int | None
    deadline_rule: str
    old_deadline: datetime
    new_deadline: datetime

    def evolve(self, order: OrderCore) -> None:
        if self.case is None:
            order.payment_deadline = self.new_deadline
            return
        case = order.cases[self.case - 1]
        case.move_deadline(self.new_deadline)


class DeadlineExtended(DeadlineChanged):
    """D-1: the merchant extended the receipt deadline (once)."""

    def evolve(self, order: OrderCore) -> None:
        super().evolve(order)
        assert self.case is not None
        order.cases[self.case - 1].extended = True


class DeadlineSet(DeadlineChanged):
    """D-2: the platform set a pending deadline to a given instant."""

    reason: str


# --- Platform feeds (SPEC section 10) -----------------------------------------------------


class PlatformReported(OrderEvent):
    """A platform's account of a step that the ledger had already taken
    (`aftersales.domain.reconciliation`): of a case (`case`), or of the order itself
    (`case` None: its cancellation); the platform (`source`), its message (`ref`), the fact
    it states, the instant it gives the step, and the tolerance in seconds within which a
    time or deadline agreed.  Version 2 added `tolerance` (events of version 1 were
    compared to the second: 0)."""

    class_version = 2
    case: int | None
    source: str
    ref: str
    fact: str
    step_at: datetime | None
    tolerance: int

    @staticmethod
    def upcast_v1_v2(state: dict[str, object]) -> None:
        state["tolerance"] = 0


class PlatformAgreed(PlatformReported):
    """The account agrees with the ledger."""


class PlatformDiffered(PlatformReported):
    """The account differs from the ledger: how (`kind`, the most serious of `kinds`), and
    both versions."""

    kind: str
    kinds: list[str]
    ledger: str
    platform: str


def open_case(order: OrderCore, e: CaseRequested, flow: Flow) -> None:
    case = ReturnCase(number=e.case, amount=e.amount, reason=e.reason, requested_at=e.at,
                      flow=flow, ref=e.case_ref)
    case.move_to(CaseStatus.REQUESTED, e.at, e.response_deadline)
    order.cases.append(case)


def decide(case: ReturnCase, at: datetime, by: str) -> None:
    case.decided_at = at
    case.decided_by = by


def refund_user(order: OrderCore, case: ReturnCase, amount: int) -> None:
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
