"""The after-sale rules as one table: each step an order or a case waits in, who is awaited
there, the deadline the step runs, and what the system does when that deadline passes.

    step (status)               awaiting  deadline: rule, Policy window
                                          at the timeout: event (consequence) -> what it counts
    order awaiting_payment      user      C-ON-4   payment_window
                                          OrderAutoCancelled (cancelled) -> lapse UNPAID_24H
    order pending_confirmation  merchant
    order paid, stocking        merchant
    order shipped               carrier
    case requested              merchant  R-1      merchant_response_window
                                          ReturnAutoApproved (auto_approved)
                                          -> violation RETURN_RESPONSE_48H [auto_approved]
    case approved               user      R-2      tracking_window
                                          ReturnAutoClosed (closed) -> lapse RETURN_TRACKING_7D
    case in_transit             merchant  R-3      receipt_window
                                          ReceiptAutoConfirmed (auto_confirmed)
                                          -> violation RECEIPT_CONFIRM_7D [receipts_auto_confirmed]
    case received (cod)         merchant  R-COD-4  voucher_window
                                          MerchantPenalized (advance_compensated), after
                                          AdvanceCompensationPaid
                                          -> violation COD_REFUND_VOUCHER_48H (penalty)
                                             [vouchers_late]
    case rejected, refunded, compensated, closed, withdrawn: ended, nobody awaited

(In square brackets: the `merchant_compliance` counter the violation adds to.)

Who reads it: the aggregate (`Order.pending_deadline` names the rule of the step's deadline,
`Order._time_out` triggers the row's event, a deadline is computed from the row's window,
and `DeadlineMissed` events record the row's violation or lapse); the status document and
the read models (`awaiting`, the rule of `next_deadline` and of the deadline index, through
the aggregate); the read models' violation and lapse rows, their compliance counters and
the scorecard's violation total (`aftersales.readmodels.fold`, `.schema`, `.queries`).
A deadline's instant is computed once, when the step that starts it is decided, and is kept
in that event (`tracking_deadline`, …), so a change of policy never rewrites history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from aftersales.domain import rules
from aftersales.domain.policy import Policy
from aftersales.domain.states import (
    COD_REFUND_VOUCHER_48H,
    RECEIPT_CONFIRM_7D,
    RETURN_RESPONSE_48H,
    RETURN_TRACKING_7D,
    UNPAID_24H,
    Actor,
    CaseStatus,
    OrderStatus,
    Payment,
)


@dataclass(frozen=True)
class Timeout:
    """A deadline of the rules and what its passing does."""

    #: The rule that sets the deadline (`aftersales.domain.rules`).
    rule: str
    #: The `Policy` duration the deadline is, counted from the step's start.
    window: str
    #: The event (of `aftersales.domain.events`, a `DeadlineMissed`) that records the miss.
    event: str
    #: What the system did at the deadline (a violation's `consequence`).
    consequence: str
    #: The violation (a merchant's deadline) or lapse (a user's) it counts.
    missed: str
    #: Whose deadline it is: the merchant's count as violations, the user's as lapses.
    party: Actor
    #: A violation that penalises the merchant.
    penalty: bool = False
    #: The `merchant_compliance` column a violation adds to.
    counter: str | None = None

    @property
    def is_violation(self) -> bool:
        return self.party is Actor.MERCHANT

    def due(self, start: datetime, policy: Policy) -> datetime:
        """The deadline of a step that starts at `start`."""
        window: timedelta = getattr(policy, self.window)
        return start + window


@dataclass(frozen=True)
class Step:
    """A status an order or a case waits in."""

    #: Who must act next (`awaiting`), or None.
    awaiting: Actor | None
    #: The deadline the step runs, if any.
    timeout: Timeout | None = None
    #: A case status that never changes again.
    ends: bool = False


#: Every deadline of the rules, by rule ID.
TIMEOUTS: Final = {t.rule: t for t in (
    Timeout(rules.C_ON_4, "payment_window", "OrderAutoCancelled", "cancelled", UNPAID_24H,
            Actor.USER),
    Timeout(rules.R_1, "merchant_response_window", "ReturnAutoApproved", "auto_approved",
            RETURN_RESPONSE_48H, Actor.MERCHANT, counter="auto_approved"),
    Timeout(rules.R_2, "tracking_window", "ReturnAutoClosed", "closed", RETURN_TRACKING_7D,
            Actor.USER),
    Timeout(rules.R_3, "receipt_window", "ReceiptAutoConfirmed", "auto_confirmed",
            RECEIPT_CONFIRM_7D, Actor.MERCHANT, counter="receipts_auto_confirmed"),
    Timeout(rules.R_COD_4, "voucher_window", "MerchantPenalized", "advance_compensated",
            COD_REFUND_VOUCHER_48H, Actor.MERCHANT, penalty=True, counter="vouchers_late"),
)}

_ENDED: Final = Step(None, ends=True)

#: The status an order is placed in, by payment method.
FIRST_STATUS: Final = {Payment.ONLINE: OrderStatus.AWAITING_PAYMENT,
                       Payment.COD: OrderStatus.PENDING_CONFIRMATION}

#: The steps of an order's own life cycle (while it has no open case).
ORDER_STEPS: Final = {
    OrderStatus.AWAITING_PAYMENT: Step(Actor.USER, TIMEOUTS[rules.C_ON_4]),
    OrderStatus.PENDING_CONFIRMATION: Step(Actor.MERCHANT),
    OrderStatus.PAID: Step(Actor.MERCHANT),
    OrderStatus.STOCKING: Step(Actor.MERCHANT),
    OrderStatus.SHIPPED: Step(Actor.CARRIER),
    OrderStatus.DELIVERED: Step(None),
    OrderStatus.CANCELLED: Step(None),
}

#: The steps of a return case (退货退款, SPEC section 3).
CASE_STEPS: Final = {
    CaseStatus.REQUESTED: Step(Actor.MERCHANT, TIMEOUTS[rules.R_1]),
    CaseStatus.APPROVED: Step(Actor.USER, TIMEOUTS[rules.R_2]),
    CaseStatus.IN_TRANSIT: Step(Actor.MERCHANT, TIMEOUTS[rules.R_3]),
    CaseStatus.RECEIVED: Step(Actor.MERCHANT, TIMEOUTS[rules.R_COD_4]),
    CaseStatus.REJECTED: _ENDED,
    CaseStatus.REFUNDED: _ENDED,
    CaseStatus.COMPENSATED: _ENDED,
    CaseStatus.CLOSED: _ENDED,
    CaseStatus.WITHDRAWN: _ENDED,
}

#: The case statuses that never change (terminal).
TERMINAL_CASE_STATUSES: Final = frozenset(s for s, step in CASE_STEPS.items() if step.ends)

#: The rule whose deadline an order, or a case, runs in each status (plain strings: the
#: read models look them up for every event).
ORDER_DEADLINE_RULE: Final = {status.value: step.timeout.rule for status, step
                              in ORDER_STEPS.items() if step.timeout is not None}
CASE_DEADLINE_RULE: Final = {status.value: step.timeout.rule for status, step
                             in CASE_STEPS.items() if step.timeout is not None}
#: The rules whose deadline belongs to a case (the others belong to the order).
CASE_DEADLINE_RULES: Final = frozenset(CASE_DEADLINE_RULE.values())

#: The `merchant_compliance` counters of the violations, in the table's order.
VIOLATION_COUNTERS: Final = tuple(
    t.counter for t in TIMEOUTS.values() if t.is_violation and t.counter is not None)


def deadline_rule(status: str) -> str:
    """The rule whose deadline a case in `status` runs."""
    try:
        return CASE_DEADLINE_RULE[status]
    except KeyError:
        raise ValueError(f"a {status} case runs no deadline") from None


_CASE_AWAITING: Final = {status.value: None if step.awaiting is None else step.awaiting.value
                         for status, step in CASE_STEPS.items() if not step.ends}
_ORDER_AWAITING: Final = {status.value: None if step.awaiting is None else step.awaiting.value
                          for status, step in ORDER_STEPS.items()}


def awaiting(order_status: str, case_status: str | None) -> str | None:
    """Who must act next on an order whose latest case (if any) is in `case_status`
    (plain strings: the read models call it for every event)."""
    if case_status is not None and case_status in _CASE_AWAITING:
        return _CASE_AWAITING[case_status]
    return _ORDER_AWAITING[order_status]
