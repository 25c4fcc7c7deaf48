"""The after-sale rules as one table: each step an order or a case waits in, who is awaited
there, the deadline the step runs, and what the system does when that deadline passes.

The deadlines (`TIMEOUTS`, by rule):

    rule     Policy window             at the timeout: event (consequence) -> what it counts
    C-ON-4   payment_window            OrderAutoCancelled (cancelled) -> lapse UNPAID_24H
    R-1      merchant_response_window  ReturnAutoApproved (auto_approved)
                                       -> violation RETURN_RESPONSE_48H [auto_approved]
    R-2      tracking_window           ReturnAutoClosed (closed) -> lapse RETURN_TRACKING_7D
    R-3      receipt_window            ReceiptAutoConfirmed (auto_confirmed)
             (+ receipt_extension,     -> violation RECEIPT_CONFIRM_7D
              once, D-1)                  [receipts_auto_confirmed]
    R-COD-4  voucher_window            MerchantPenalized (advance_compensated), after
                                       AdvanceCompensationPaid
                                       -> violation COD_REFUND_VOUCHER_48H, penalty
                                          [vouchers_late]
    F-1      merchant_response_window  RefundAutoApproved (auto_refunded), then the refund
                                       and the order's cancellation
                                       -> violation REFUND_RESPONSE_48H [refunds_auto_approved]
    F-2      merchant_response_window  RefundAutoApproved (auto_refunded), then the refund
                                       -> violation REFUND_RESPONSE_48H [refunds_auto_approved]
    E-2      reship_window             ExchangeConvertedToRefund (converted_to_refund), then
                                       the platform pays -> violation EXCHANGE_RESHIP_48H,
                                       penalty for cod [reships_late]
    A-2      evidence_window           ArbitrationAutoRuled (ruled_for_user: for the user,
                                       blame merchant), then what A-4 continues
                                       -> violation ARBITRATION_EVIDENCE_48H [evidence_missed]

(In square brackets: the `merchant_compliance` counter the violation adds to.)

The steps (`ORDER_STEPS` by order status; `CASE_STEPS` by flow, then case status):

    order awaiting_payment: user, C-ON-4;  pending_confirmation, paid, stocking: merchant;
    shipped: carrier;  delivered, cancelled: nobody
    return (退货退款)   requested: merchant, R-1  approved: user, R-2  in_transit: merchant,
                       R-3  received (cod): merchant, R-COD-4
    refund before shipment (F-1)   requested: merchant, F-1
    refund after shipment (F-2)    requested: merchant, F-2
    exchange (换货, E-1)  requested: merchant, R-1  approved: user, R-2  in_transit: merchant,
                       R-3  received: merchant, E-2  replacement_shipped: carrier
    every flow but F-1's   arbitrating (appealed, A-1): merchant, A-2 (the evidence);
                           with the evidence in: platform (A-3), no deadline
    every flow's ended statuses (rejected, refunded, ...): nobody awaited
    (a rejected case reopens once, as arbitrating, if the user appeals in time: A-1)

Who reads it: the aggregate (`Order.pending_deadline` names the rule of the step's deadline,
`Order._time_out` triggers the row's event, a deadline is computed from the row's window,
and `DeadlineMissed` events record the row's violation or lapse); the status document and
the read models (`awaiting`, the rule of `next_deadline` and of the deadline index, through
the aggregate); the read models' violation and lapse rows, their compliance counters and
the scorecard's violation total (`projections.fold`, `.schema`, `.queries`).
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
    ARBITRATION_EVIDENCE_48H,
    COD_REFUND_VOUCHER_48H,
    EXCHANGE_RESHIP_48H,
    RECEIPT_CONFIRM_7D,
    REFUND_RESPONSE_48H,
    RETURN_RESPONSE_48H,
    RETURN_TRACKING_7D,
    UNPAID_24H,
    Actor,
    CaseStatus,
    Flow,
    OrderStatus,
    Payment,
)

_NONE: Final[frozenset[Payment]] = frozenset()
_COD: Final = frozenset({Payment.COD})


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
    #: The payment methods for which the violation penalises the merchant.
    penalised: frozenset[Payment] = _NONE
    #: The `merchant_compliance` column a violation adds to.
    counter: str | None = None
    #: The `Policy` duration one extension adds (D-1), if the deadline may be extended.
    extension: str | None = None

    @property
    def is_violation(self) -> bool:
        return self.party is Actor.MERCHANT

    def penalty(self, payment: str) -> bool:
        """Whether the violation penalises the merchant of an order paid so."""
        return payment in self.penalised

    def due(self, start: datetime, policy: Policy) -> datetime:
        """The deadline of a step that starts at `start`."""
        window: timedelta = getattr(policy, self.window)
        return start + window

    def extended(self, deadline: datetime, policy: Policy) -> datetime:
        """The deadline moved by one extension."""
        assert self.extension is not None, self.rule
        extension: timedelta = getattr(policy, self.extension)
        return deadline + extension


@dataclass(frozen=True)
class Step:
    """A status an order or a case waits in."""

    #: Who must act next (`awaiting`), or None.
    awaiting: Actor | None
    #: The deadline the step runs, if any.
    timeout: Timeout | None = None
    #: A case status that never changes again.
    ends: bool = False


_RESPONSE: Final = "merchant_response_window"

#: Every deadline of the rules, by rule ID.
TIMEOUTS: Final = {t.rule: t for t in (
    Timeout(rules.C_ON_4, "payment_window", "OrderAutoCancelled", "cancelled", UNPAID_24H,
            Actor.USER),
    Timeout(rules.R_1, _RESPONSE, "ReturnAutoApproved", "auto_approved",
            RETURN_RESPONSE_48H, Actor.MERCHANT, counter="auto_approved"),
    Timeout(rules.R_2, "tracking_window", "ReturnAutoClosed", "closed", RETURN_TRACKING_7D,
            Actor.USER),
    Timeout(rules.R_3, "receipt_window", "ReceiptAutoConfirmed", "auto_confirmed",
            RECEIPT_CONFIRM_7D, Actor.MERCHANT, counter="receipts_auto_confirmed",
            extension="receipt_extension"),
    Timeout(rules.R_COD_4, "voucher_window", "MerchantPenalized", "advance_compensated",
            COD_REFUND_VOUCHER_48H, Actor.MERCHANT, penalised=_COD, counter="vouchers_late"),
    Timeout(rules.F_1, _RESPONSE, "RefundAutoApproved", "auto_refunded", REFUND_RESPONSE_48H,
            Actor.MERCHANT, counter="refunds_auto_approved"),
    Timeout(rules.F_2, _RESPONSE, "RefundAutoApproved", "auto_refunded", REFUND_RESPONSE_48H,
            Actor.MERCHANT, counter="refunds_auto_approved"),
    Timeout(rules.E_2, "reship_window", "ExchangeConvertedToRefund", "converted_to_refund",
            EXCHANGE_RESHIP_48H, Actor.MERCHANT, penalised=_COD, counter="reships_late"),
    Timeout(rules.A_2, "evidence_window", "ArbitrationAutoRuled", "ruled_for_user",
            ARBITRATION_EVIDENCE_48H, Actor.MERCHANT, counter="evidence_missed"),
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


def _ended(*statuses: CaseStatus) -> dict[CaseStatus, Step]:
    return dict.fromkeys(statuses, _ENDED)


#: An appealed case (A-1) awaiting the merchant's evidence (A-2).
_APPEALED: Final = {CaseStatus.ARBITRATING: Step(Actor.MERCHANT, TIMEOUTS[rules.A_2])}
#: The step of an arbitrating case whose evidence is in: the platform rules (A-3).
EVIDENCE_IN: Final = Step(Actor.PLATFORM)

_SENT_BACK: Final = {  # the goods go back (a return, an exchange)
    CaseStatus.REQUESTED: Step(Actor.MERCHANT, TIMEOUTS[rules.R_1]),
    CaseStatus.APPROVED: Step(Actor.USER, TIMEOUTS[rules.R_2]),
    CaseStatus.IN_TRANSIT: Step(Actor.MERCHANT, TIMEOUTS[rules.R_3]),
}

#: The steps of each flow a case may take.
CASE_STEPS: Final[dict[Flow, dict[CaseStatus, Step]]] = {
    Flow.RETURN: {
        **_SENT_BACK,
        CaseStatus.RECEIVED: Step(Actor.MERCHANT, TIMEOUTS[rules.R_COD_4]),
        **_APPEALED,
        **_ended(CaseStatus.REJECTED, CaseStatus.REFUNDED, CaseStatus.COMPENSATED,
                 CaseStatus.CLOSED, CaseStatus.WITHDRAWN),
    },
    Flow.REFUND_BEFORE_SHIPMENT: {
        CaseStatus.REQUESTED: Step(Actor.MERCHANT, TIMEOUTS[rules.F_1]),
        **_ended(CaseStatus.REJECTED, CaseStatus.REFUNDED, CaseStatus.WITHDRAWN),
    },
    Flow.REFUND_AFTER_SHIPMENT: {
        CaseStatus.REQUESTED: Step(Actor.MERCHANT, TIMEOUTS[rules.F_2]),
        **_APPEALED,
        **_ended(CaseStatus.REJECTED, CaseStatus.REFUNDED, CaseStatus.WITHDRAWN),
    },
    Flow.EXCHANGE: {
        **_SENT_BACK,
        CaseStatus.RECEIVED: Step(Actor.MERCHANT, TIMEOUTS[rules.E_2]),
        CaseStatus.REPLACEMENT_SHIPPED: Step(Actor.CARRIER),
        **_APPEALED,
        **_ended(CaseStatus.REJECTED, CaseStatus.EXCHANGED, CaseStatus.REFUNDED,
                 CaseStatus.COMPENSATED, CaseStatus.CLOSED, CaseStatus.WITHDRAWN),
    },
}


def _by_status(field: str) -> dict[str, object]:
    """What every flow agrees a status has (who is awaited, whether it ends the case)."""
    found: dict[str, object] = {}
    for steps in CASE_STEPS.values():
        for status, step in steps.items():
            value = getattr(step, field)
            if found.setdefault(status.value, value) != value:
                raise TypeError(f"the flows disagree on the {field} of {status.value}")
    return found


_CASE_AWAITING: Final = {status: None if actor is None else str(actor)
                         for status, actor in _by_status("awaiting").items()}
_ORDER_AWAITING: Final = {status.value: None if step.awaiting is None else step.awaiting.value
                          for status, step in ORDER_STEPS.items()}

#: The case statuses that never change (terminal), in every flow.
TERMINAL_CASE_STATUSES: Final = frozenset(
    CaseStatus(s) for s, ends in _by_status("ends").items() if ends)

#: The rule whose deadline an order runs in each status (plain strings: the read models
#: look them up for every event).
ORDER_DEADLINE_RULE: Final = {status.value: step.timeout.rule for status, step
                              in ORDER_STEPS.items() if step.timeout is not None}
#: The rule whose deadline a case runs, by flow and status (plain strings).
CASE_DEADLINE_RULE: Final = {(flow.value, status.value): step.timeout.rule
                             for flow, steps in CASE_STEPS.items()
                             for status, step in steps.items() if step.timeout is not None}
#: The rules whose deadline belongs to a case (the others belong to the order).
CASE_DEADLINE_RULES: Final = frozenset(CASE_DEADLINE_RULE.values())

#: The violations and the lapses of the rules table, by name, in the table's order.
VIOLATION_RULES: Final = tuple(dict.fromkeys(t.missed for t in TIMEOUTS.values()
                                             if t.is_violation))
LAPSE_RULES: Final = tuple(dict.fromkeys(t.missed for t in TIMEOUTS.values()
                                         if not t.is_violation))

#: The `merchant_compliance` counters of the violations, in the table's order.
VIOLATION_COUNTERS: Final = tuple(dict.fromkeys(
    t.counter for t in TIMEOUTS.values() if t.is_violation and t.counter is not None))


def appeal_closes(rejected_at: datetime, policy: Policy) -> datetime:
    """A-1: the last instant the user may appeal a rejection made at `rejected_at` (no
    row above: nothing is recorded when the window passes)."""
    window: timedelta = policy.appeal_window
    return rejected_at + window


def case_step(flow: Flow, status: CaseStatus, evidence_in: bool = False) -> Step:
    """The step of a case of `flow` in `status` (`evidence_in`: an arbitrating case's
    evidence was submitted)."""
    if evidence_in and status is CaseStatus.ARBITRATING:
        return EVIDENCE_IN
    try:
        return CASE_STEPS[flow][status]
    except KeyError:
        raise ValueError(f"a {flow.value} case is never {status.value}") from None


def deadline_rule(flow: str, status: str) -> str:
    """The rule whose deadline a case of `flow` in `status` runs."""
    try:
        return CASE_DEADLINE_RULE[(flow, status)]
    except KeyError:
        raise ValueError(f"a {flow} case in {status} runs no deadline") from None


def awaiting(order_status: str, case_status: str | None,
             evidence_in: bool = False) -> str | None:
    """Who must act next on an order whose latest case (if any) is in `case_status`
    (`evidence_in`: an arbitrating case's evidence was submitted; plain strings: the read
    models call it for every event)."""
    if case_status is not None and case_status not in _ENDED_STATUSES:
        if evidence_in and case_status == _ARBITRATING:
            return _EVIDENCE_IN_AWAITING
        return _CASE_AWAITING[case_status]
    return _ORDER_AWAITING[order_status]


_ENDED_STATUSES: Final = frozenset(s.value for s in TERMINAL_CASE_STATUSES)
_ARBITRATING: Final = CaseStatus.ARBITRATING.value
_EVIDENCE_IN_AWAITING: Final = Actor.PLATFORM.value
