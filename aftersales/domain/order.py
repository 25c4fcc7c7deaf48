"""The Order aggregate: every rule of SPEC sections 2, 3, 7, 8 and 9.

Each command method first applies the timeouts that fell due before its business time
(`apply_due_timeouts`, cascading), then refuses a command that goes back in time, then runs
all of its checks, and only then triggers events: a refused command leaves behind nothing
but the timeouts it revealed.  Each rule ID is decided in exactly one method here.

Deadlines follow the rules table (`aftersales.domain.steps`): a step's deadline is its
row's window from the step's start, the pending deadline is the rule of the step the order
or its open case is in, and at a timeout the system takes the step the awaited party did
not (`_ACTS`, one per row), triggering the row's event.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from typing import Any, Final
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate

from aftersales.domain import events as ev
from aftersales.domain import rules
from aftersales.domain.cases import ReturnCase
from aftersales.domain.policy import Policy
from aftersales.domain.reconciliation import ORDER_FACTS, Account, compare, compare_order
from aftersales.domain.states import (
    KNOWN_BLAMES,
    UNPAID_24H,
    Actor,
    Blame,
    CaseKind,
    CaseStatus,
    Deadline,
    Flow,
    Lapse,
    OrderStatus,
    Outcome,
    Payment,
    Violation,
)
from aftersales.domain.steps import CASE_STEPS, ORDER_STEPS, TIMEOUTS, appeal_closes
from aftersales.errors import CommandRefused

ORDER_NAMESPACE = UUID("6f1c1d2e-58a4-4c36-9d8e-5a1f0c7b2e41")

#: The reason of F-1's refusal by shipping.
SHIPPED_REASON = "shipped"

CANCELLERS = ("user", "merchant", "platform")
#: A-2: how many evidence references the merchant may submit (checked with the input:
#: `aftersales.application.commands.SubmitEvidence`).
EVIDENCE_REFERENCES = range(1, 5)


@lru_cache(maxsize=16_384)
def order_uuid(order_id: str) -> UUID:
    """The aggregate id of a platform order number (deterministic)."""
    return uuid5(ORDER_NAMESPACE, order_id)


class Order(Aggregate):
    order_id: str
    payment: Payment
    merchant_id: str
    user_id: str
    goods_amount: int
    postage: int
    currency: str
    placed_at: datetime
    last_at: datetime
    status: OrderStatus
    payment_deadline: datetime | None
    paid_at: datetime | None
    delivered_at: datetime | None
    cancelled_by: str | None
    cancelled_at: datetime | None
    cases: list[ReturnCase]
    violations: list[Violation]
    lapses: list[Lapse]
    refunded_total: int
    returned_goods: int

    def __init__(self) -> None:
        """State is set by `OrderPlaced.evolve`."""

    # --- placing -----------------------------------------------------------------------

    @classmethod
    def place(
        cls,
        *,
        order_id: str,
        at: datetime,
        payment: str,
        merchant_id: str,
        user_id: str,
        goods_amount: int,
        postage: int,
        currency: str,
        command_id: str | None,
        policy: Policy,
    ) -> Order:
        check_positive("goods_amount", goods_amount)
        if postage < 0:
            raise CommandRefused(rules.INPUT, "field 'postage': must not be negative")
        kind = Payment(payment)
        return cls._create(
            ev.OrderPlaced,
            id=order_uuid(order_id),
            at=at,
            actor=Actor.USER.value,
            command_id=command_id,
            order_id=order_id,
            payment=kind.value,
            merchant_id=merchant_id,
            user_id=user_id,
            goods_amount=goods_amount,
            postage=postage,
            currency=currency,
            payment_deadline=(TIMEOUTS[rules.C_ON_4].due(at, policy)
                              if kind is Payment.ONLINE else None),
        )

    # --- deadlines ---------------------------------------------------------------------

    @property
    def latest_case(self) -> ReturnCase | None:
        return self.cases[-1] if self.cases else None

    @property
    def open_case(self) -> ReturnCase | None:
        case = self.latest_case
        return case if case is not None and case.is_open else None

    def case_by_ref(self, ref: str) -> ReturnCase | None:
        """The case the platform knows by `ref` (its after-sale id), if any."""
        return next((c for c in self.cases if c.ref is not None and c.ref == ref), None)

    @property
    def pending_deadline(self) -> Deadline | None:
        """The order's one pending deadline, if any (at most one is ever pending)."""
        timeout = ORDER_STEPS[self.status].timeout
        if timeout is not None and self.payment_deadline is not None:
            return Deadline(self.payment_deadline, timeout.rule, None)
        case = self.open_case
        return case.deadline if case is not None else None

    def apply_due_timeouts(self, now: datetime, policy: Policy) -> int:
        """Apply, in order, every timeout whose deadline is before `now`; return how many."""
        fired = 0
        while (due := self.pending_deadline) is not None and due.at < now:
            self._time_out(due, policy)
            fired += 1
        return fired

    def _time_out(self, due: Deadline, policy: Policy) -> None:
        """At a passed deadline the system takes the step its rule's row names."""
        system: dict[str, Any] = {"at": due.at, "actor": Actor.SYSTEM.value,
                                  "command_id": None, "rule": due.rule, "deadline": due.at}
        case = None
        if due.case is not None:
            case = self.open_case
            assert case is not None and due.case == case.number
            system["case"] = case.number
        _ACTS[due.rule](self, case, system, policy)

    def _auto_cancel(self, case: ReturnCase | None, system: dict[str, Any],
                     policy: Policy) -> None:
        """C-ON-4: the unpaid online order is cancelled."""
        self.trigger_event(ev.TIMEOUT_EVENTS[rules.C_ON_4], **system)

    def _auto_approve(self, case: ReturnCase | None, system: dict[str, Any],
                      policy: Policy) -> None:
        """R-1: the unanswered request is approved; the tracking deadline starts."""
        self.trigger_event(ev.TIMEOUT_EVENTS[rules.R_1], **system,
                           tracking_deadline=TIMEOUTS[rules.R_2].due(system["at"], policy))

    def _auto_close(self, case: ReturnCase | None, system: dict[str, Any],
                    policy: Policy) -> None:
        """R-2: the case without a return tracking closes."""
        self.trigger_event(ev.TIMEOUT_EVENTS[rules.R_2], **system)

    def _auto_receive(self, case: ReturnCase | None, system: dict[str, Any],
                      policy: Policy) -> None:
        """R-3: receipt is confirmed, with what follows a receipt."""
        assert case is not None
        at = system["at"]
        self.trigger_event(ev.TIMEOUT_EVENTS[rules.R_3], **system,
                           **self._receipt_deadlines(case, at, policy))
        self._refund_online_on_receipt(case, at)

    def _auto_refund(self, case: ReturnCase | None, system: dict[str, Any],
                     policy: Policy) -> None:
        """F-1, F-2: the unanswered refund is agreed to, and the platform refunds."""
        assert case is not None
        self.trigger_event(ev.TIMEOUT_EVENTS[system["rule"]], **system)
        self._refund_only(case, system["at"], system["deadline"])

    def _convert_to_refund(self, case: ReturnCase | None, system: dict[str, Any],
                           policy: Policy) -> None:
        """E-2: no replacement in time: the exchange turns into a refund, which the
        platform pays at once (a cod merchant owes it)."""
        assert case is not None
        cod = self.payment is Payment.COD
        self.trigger_event(ev.TIMEOUT_EVENTS[rules.E_2], **system, amount=case.amount,
                           debt=case.amount if cod else 0)
        pays = {**system, "actor": Actor.PLATFORM.value, "amount": case.amount}
        self.trigger_event(ev.AdvanceCompensationPaid if cod else ev.PlatformRefunded, **pays)

    def _compensate(self, case: ReturnCase | None, system: dict[str, Any],
                    policy: Policy) -> None:
        """R-COD-4: the platform pays the user in advance; the merchant is penalised."""
        assert case is not None
        self.trigger_event(ev.AdvanceCompensationPaid,
                           **{**system, "actor": Actor.PLATFORM.value}, amount=case.amount)
        self.trigger_event(ev.TIMEOUT_EVENTS[rules.R_COD_4], **system, debt=case.amount)

    def _rule_for_user(self, case: ReturnCase | None, system: dict[str, Any],
                       policy: Policy) -> None:
        """A-2: no evidence in time: the system rules for the user, blaming the merchant,
        and the case continues (A-4)."""
        event = ev.TIMEOUT_EVENTS[rules.A_2]
        assert case is not None and issubclass(event, ev.Ruled)
        self._rule(event, case, system, Outcome.USER, Blame.MERCHANT, "", policy)

    # --- common checks -----------------------------------------------------------------

    def _begin(self, at: datetime, policy: Policy) -> None:
        """Apply due timeouts first (they are kept even if the command is refused)."""
        self.apply_due_timeouts(at, policy)
        if at < self.last_at:
            raise CommandRefused(
                rules.TIME,
                f"business time {at.isoformat()} is before the order's latest event "
                f"at {self.last_at.isoformat()}",
            )

    def _check_not_cancelled(self, doing: str) -> None:
        """C-ANY: nothing is paid, shipped, delivered or returned after cancellation, and
        a cancelled or delivered order cannot be cancelled."""
        if self.status is OrderStatus.CANCELLED:
            raise CommandRefused(rules.C_ANY, f"the order was cancelled; it cannot be {doing}")
        if doing == "cancelled" and self.status is OrderStatus.DELIVERED:
            raise CommandRefused(rules.C_ANY, "a delivered order cannot be cancelled")

    def _check_status(self, wanted: OrderStatus, step: str) -> None:
        if self.status is not wanted:
            raise CommandRefused(
                rules.FLOW, f"{step} needs order status {wanted.value}, not {self.status.value}"
            )

    def _emit(self, event: type[ev.OrderEvent], at: datetime, actor: Actor,
              command_id: str | None, **fields: Any) -> None:
        self.trigger_event(event, at=at, actor=actor.value, command_id=command_id, **fields)

    # --- order life cycle --------------------------------------------------------------

    def pay(self, at: datetime, *, command_id: str | None, policy: Policy) -> None:
        self._begin(at, policy)
        if self.payment is Payment.COD:
            raise CommandRefused(rules.FLOW, "a cash-on-delivery order is paid on delivery")
        if self.status is OrderStatus.CANCELLED and self.cancelled_by == Actor.SYSTEM:
            raise CommandRefused(
                rules.DEADLINE,
                f"C-ON-4: the order was not paid by {self._lapse_deadline(UNPAID_24H)} "
                "and the system cancelled it",
            )
        self._check_not_cancelled("paid")
        self._check_status(OrderStatus.AWAITING_PAYMENT, "pay")
        self._emit(ev.PaymentReceived, at, Actor.USER, command_id)

    def confirm(self, at: datetime, *, command_id: str | None, policy: Policy) -> None:
        self._begin(at, policy)
        if self.payment is Payment.ONLINE:
            raise CommandRefused(rules.FLOW, "only a cash-on-delivery order is confirmed")
        self._check_not_cancelled("confirmed")
        self._check_status(OrderStatus.PENDING_CONFIRMATION, "confirm_order")
        self._emit(ev.OrderConfirmed, at, Actor.MERCHANT, command_id)

    def ship(self, at: datetime, *, carrier: str, tracking_no: str,
             command_id: str | None, policy: Policy) -> None:
        self._begin(at, policy)
        self._check_not_cancelled("shipped")
        ready = OrderStatus.PAID if self.payment is Payment.ONLINE else OrderStatus.STOCKING
        self._check_status(ready, "ship")
        self._emit(ev.OrderShipped, at, Actor.MERCHANT, command_id,
                   carrier=carrier, tracking_no=tracking_no)
        if (case := self.open_case) is not None and case.flow is Flow.REFUND_BEFORE_SHIPMENT:
            # F-1: shipping is the merchant's refusal of a refund asked before shipment.
            self._emit(ev.MerchantRejected, at, Actor.MERCHANT, command_id,
                       case=case.number, reason=SHIPPED_REASON)

    def deliver(self, at: datetime, *, command_id: str | None, policy: Policy) -> None:
        self._begin(at, policy)
        self._check_not_cancelled("delivered")
        self._check_status(OrderStatus.SHIPPED, "deliver")
        self._emit(ev.OrderDelivered, at, Actor.CARRIER, command_id)

    def cancel(self, at: datetime, *, by: str, reason: str,
               command_id: str | None, policy: Policy) -> None:
        self._begin(at, policy)
        if by not in CANCELLERS:
            raise CommandRefused(rules.INPUT,
                                 f"field 'by': must be one of {', '.join(CANCELLERS)}")
        if self.payment is Payment.COD:
            self._check_cod_cancel(by)
        else:
            self._check_online_cancel(by)
        refund = self.goods_amount + self.postage if self.status is OrderStatus.PAID else 0
        self._emit(ev.OrderCancelled, at, Actor(by), command_id,
                   reason=reason, refund_amount=refund)

    def _check_cod_cancel(self, by: str) -> None:
        if by == Actor.USER:
            raise CommandRefused(
                rules.C_COD_1, "the user cannot cancel a cash-on-delivery order at any stage")
        self._check_not_cancelled("cancelled")
        shipped = self.status is OrderStatus.SHIPPED
        if by == Actor.MERCHANT and shipped:
            raise CommandRefused(
                rules.C_COD_3, "the merchant cannot cancel a shipped cash-on-delivery order; "
                "the user asks platform customer service")
        if by == Actor.PLATFORM and not shipped:
            raise CommandRefused(
                rules.C_COD_3, "before shipping the merchant, not the platform, cancels a "
                "cash-on-delivery order (C-COD-2)")
        # C-COD-2: the merchant cancels while pending_confirmation or stocking.

    def _check_online_cancel(self, by: str) -> None:
        if by == Actor.MERCHANT:
            raise CommandRefused(
                rules.C_ON_3, "the merchant cannot cancel an online order at any stage")
        self._check_not_cancelled("cancelled")
        if self.status is OrderStatus.SHIPPED:
            raise CommandRefused(
                rules.C_ON_2, "a shipped online order is not cancelled; the way back is a return")
        if by == Actor.USER and self.status is OrderStatus.PAID:
            raise CommandRefused(
                rules.C_ON_2, "after payment the user cancels through platform customer service")
        if (case := self.open_case) is not None:  # F-1 (interpretation): answered first
            raise CommandRefused(
                rules.FLOW, f"refund case {case.number} is open: the merchant answers it "
                "(or ships) before the order is cancelled")
        # C-ON-1: the user cancels while awaiting_payment; C-ON-2: the platform cancels
        # while awaiting_payment or paid, refunding goods and postage in full.

    # --- cases: asking -----------------------------------------------------------------

    def refundable(self, policy: Policy, kind: CaseKind = CaseKind.RETURN) -> int:
        """What a case of `kind` may still refund: the goods not yet refunded, and postage
        too for a return if the policy says so (postage comes back otherwise only by
        C-ON-2 and F-1)."""
        postage = policy.refund_postage_on_return and kind is CaseKind.RETURN
        return self.goods_amount + (self.postage if postage else 0) - self.returned_goods

    def _check_can_open(self, at: datetime, policy: Policy, step: str,
                        after_delivery: bool = True) -> None:
        """R-OPEN, and the policy's window for asking after delivery."""
        if (case := self.open_case) is not None:
            raise CommandRefused(
                rules.R_OPEN, f"case {case.number} is still open ({case.status.value})")
        if after_delivery and policy.return_window is not None and self.delivered_at:
            closes = self.delivered_at + policy.return_window
            if at > closes:
                raise CommandRefused(
                    rules.DEADLINE, f"{step}: the window for after-sales closed at "
                    f"{closes.isoformat()} (policy)")

    def _case_amount(self, amount: int | None, policy: Policy, kind: CaseKind) -> int:
        """R-AMOUNT: `amount`, or by default the refundable goods amount left."""
        left = self.refundable(policy, kind)
        if amount is not None:
            check_positive("amount", amount)
        if left <= 0:
            raise CommandRefused(rules.R_AMOUNT, "nothing refundable is left on this order")
        if amount is not None and amount > left:
            raise CommandRefused(
                rules.R_AMOUNT, f"amount {amount} is more than the refundable {left}")
        return amount if amount is not None else left

    def _check_ref(self, case_ref: str | None, step: str) -> None:
        """FLOW: the platform's id of the case asked for names another case already."""
        if case_ref is not None and (named := self.case_by_ref(case_ref)) is not None:
            raise CommandRefused(
                rules.FLOW, f"{step}: case_ref {case_ref} names case {named.number} of "
                f"order {self.order_id} already ({named.status.value})")

    def request_return(self, at: datetime, *, amount: int | None, reason: str,
                       command_id: str | None, policy: Policy,
                       case_ref: str | None = None) -> None:
        self._send_back(ev.ReturnRequested, CaseKind.RETURN, "returned", at, amount, reason,
                        command_id, policy, case_ref)

    def _send_back(self, event: type[ev.CaseRequested], kind: CaseKind, doing: str,
                   at: datetime, amount: int | None, reason: str, command_id: str | None,
                   policy: Policy, case_ref: str | None) -> None:
        """A case whose goods go back (a return, an exchange: R-1 runs its answer)."""
        self._begin(at, policy)
        step = f"request_{kind.value}"
        self._check_ref(case_ref, step)
        self._check_not_cancelled(doing)
        self._check_status(OrderStatus.DELIVERED, step)
        self._check_can_open(at, policy, step)
        self._emit(event, at, Actor.USER, command_id, case=len(self.cases) + 1,
                   amount=self._case_amount(amount, policy, kind), reason=reason,
                   response_deadline=TIMEOUTS[rules.R_1].due(at, policy), case_ref=case_ref)

    def request_refund(self, at: datetime, *, amount: int | None, reason: str,
                       command_id: str | None, policy: Policy,
                       case_ref: str | None = None) -> None:
        """F-1 (a paid order, before shipment: goods and postage), F-2 (shipped or
        delivered: `amount` of the goods, kept); F-3: online orders only."""
        self._begin(at, policy)
        self._check_ref(case_ref, "request_refund")
        if self.payment is Payment.COD:
            raise CommandRefused(
                rules.FLOW, "F-3: refund-only is for online orders; a cash-on-delivery "
                "order is returned (request_return)")
        self._check_not_cancelled("refunded")
        before = self.status is OrderStatus.PAID
        if not before and self.status not in (OrderStatus.SHIPPED, OrderStatus.DELIVERED):
            raise CommandRefused(
                rules.FLOW, f"request_refund needs order status paid, shipped or delivered, "
                f"not {self.status.value}")
        self._check_can_open(at, policy, "request_refund", after_delivery=not before)
        if before:  # F-1: the whole order back
            whole = self.goods_amount + self.postage
            if amount is not None and amount != whole:
                check_positive("amount", amount)
                raise CommandRefused(
                    rules.R_AMOUNT, f"F-1: a refund before shipment is for the whole order "
                    f"({whole}: goods and postage), not {amount}")
            granted = whole
        else:
            granted = self._case_amount(amount, policy, CaseKind.REFUND)
        rule = rules.F_1 if before else rules.F_2
        self._emit(ev.RefundRequested, at, Actor.USER, command_id, case=len(self.cases) + 1,
                   amount=granted, reason=reason, before_shipment=before,
                   response_deadline=TIMEOUTS[rule].due(at, policy), case_ref=case_ref)

    def request_exchange(self, at: datetime, *, amount: int | None, reason: str,
                         command_id: str | None, policy: Policy,
                         case_ref: str | None = None) -> None:
        """E-1: a delivered order's goods worth `amount` are sent back for others."""
        self._send_back(ev.ExchangeRequested, CaseKind.EXCHANGE, "exchanged", at, amount,
                        reason, command_id, policy, case_ref)

    def amend_request(self, at: datetime, *, amount: int, reason: str,
                      command_id: str | None, policy: Policy) -> None:
        """The user amends the open request while it awaits the merchant's answer: a new
        amount, checked as the request's (R-AMOUNT); a refund before shipment (F-1) is
        for the whole order and is not amended (FLOW).  The answer deadline stays."""
        self._begin(at, policy)
        case = self._case_for("amend_request")
        self._check_case(case, CaseStatus.REQUESTED, "amend_request", False)
        if case.flow is Flow.REFUND_BEFORE_SHIPMENT:
            raise CommandRefused(
                rules.FLOW, f"amend_request: case {case.number} is a refund before shipment "
                "(F-1): its amount is the whole order (goods and postage), not amended")
        granted = self._case_amount(amount, policy, case.kind)
        self._emit(ev.RequestAmended, at, Actor.USER, command_id, case=case.number,
                   old_amount=case.amount, new_amount=granted, reason=reason)

    # --- cases: the merchant's answer ----------------------------------------------------

    def _case_for(self, step: str) -> ReturnCase:
        case = self.latest_case
        if case is None:
            raise CommandRefused(rules.FLOW, f"{step}: the order has no after-sale case")
        return case

    def _check_case(self, case: ReturnCase, wanted: CaseStatus, step: str,
                    timed_out: bool) -> None:
        """FLOW, or DEADLINE where the system already took this step at the deadline of
        the step `wanted`."""
        if case.status is wanted:
            return
        step_of = CASE_STEPS[case.flow].get(wanted)
        timeout = None if step_of is None else step_of.timeout
        if timed_out and timeout is not None:
            raise CommandRefused(
                rules.DEADLINE, f"{step}: the {timeout.rule} deadline of case {case.number} "
                "passed and the system acted")
        raise CommandRefused(
            rules.FLOW, f"{step} needs case {case.number} {wanted.value}, not {case.status.value}")

    def _check_merchant_answer(self, step: str) -> ReturnCase:
        case = self._case_for(step)
        self._check_case(case, CaseStatus.REQUESTED, step, case.decided_by == Actor.SYSTEM)
        return case

    def approve_return(self, at: datetime, *, command_id: str | None,
                       policy: Policy) -> None:
        """R-1 (a return, an exchange: E-1), F-1 and F-2 (a refund, refunded at once)."""
        self._begin(at, policy)
        case = self._check_merchant_answer("approve_return")
        if case.kind is CaseKind.REFUND:
            self._emit(ev.RefundApproved, at, Actor.MERCHANT, command_id, case=case.number)
            self._refund_only(case, at)
            return
        self._emit(ev.MerchantApproved, at, Actor.MERCHANT, command_id, case=case.number,
                   tracking_deadline=TIMEOUTS[rules.R_2].due(at, policy))

    def _refund_only(self, case: ReturnCase, at: datetime,
                     deadline: datetime | None = None) -> None:
        """F-1, F-2: the platform refunds the agreed refund at once; before shipment the
        order is then cancelled.  (`deadline`: the one that passed, when the system agreed.)"""
        before = case.flow is Flow.REFUND_BEFORE_SHIPMENT
        rule = rules.F_1 if before else rules.F_2
        cause = {"at": at, "actor": Actor.PLATFORM.value, "command_id": None, "rule": rule,
                 "deadline": deadline}
        self.trigger_event(ev.PlatformRefunded, **cause, case=case.number, amount=case.amount)
        if before:
            self.trigger_event(ev.OrderCancelledByRefund, **cause)

    def reject_return(self, at: datetime, *, reason: str, command_id: str | None,
                      policy: Policy) -> None:
        self._begin(at, policy)
        case = self._check_merchant_answer("reject_return")
        if case.flow is Flow.REFUND_BEFORE_SHIPMENT:
            raise CommandRefused(
                rules.FLOW, "F-1: before shipment the merchant refuses a refund only by "
                "shipping the order")
        if not reason.strip():
            raise CommandRefused(rules.INPUT, "field 'reason': a rejection needs a reason (R-1)")
        self._emit(ev.MerchantRejected, at, Actor.MERCHANT, command_id,
                   case=case.number, reason=reason)

    def withdraw_return(self, at: datetime, *, command_id: str | None,
                        policy: Policy) -> None:
        self._begin(at, policy)
        case = self._case_for("withdraw_return")
        if case.status in (CaseStatus.IN_TRANSIT, CaseStatus.RECEIVED,
                           CaseStatus.REPLACEMENT_SHIPPED):
            raise CommandRefused(
                rules.R_5, "a case is withdrawn only before the return tracking is submitted")
        if not policy.user_may_withdraw and case.is_open:
            raise CommandRefused(rules.R_5, "this platform's policy does not allow withdrawal")
        if case.status not in (CaseStatus.REQUESTED, CaseStatus.APPROVED):
            self._check_case(case, CaseStatus.APPROVED, "withdraw_return",
                             case.status is CaseStatus.CLOSED)
        self._emit(ev.ReturnWithdrawn, at, Actor.USER, command_id, case=case.number)

    # --- cases: the goods going back -------------------------------------------------------

    def submit_tracking(self, at: datetime, *, carrier: str | None, tracking_no: str | None,
                        command_id: str | None, policy: Policy) -> None:
        """R-2: the approved user sends the goods back (the carrier and tracking number
        may be unknown: a platform's push may carry neither)."""
        self._begin(at, policy)
        case = self._case_for("submit_tracking")
        self._check_case(case, CaseStatus.APPROVED, "submit_tracking",
                         case.status is CaseStatus.CLOSED)
        self._emit(ev.TrackingSubmitted, at, Actor.USER, command_id, case=case.number,
                   carrier=carrier, tracking_no=tracking_no,
                   receipt_deadline=TIMEOUTS[rules.R_3].due(at, policy))

    def _check_in_transit(self, step: str) -> ReturnCase:
        case = self._case_for(step)
        # DEADLINE if R-3's timeout received the goods (not the system's ruling on goods
        # the merchant had refused, A-2 then A-4).
        by_timeout = case.received_by == Actor.SYSTEM and case.receipt_rejected_at is None
        self._check_case(case, CaseStatus.IN_TRANSIT, step, by_timeout)
        return case

    def confirm_receipt(self, at: datetime, *, command_id: str | None,
                        policy: Policy) -> None:
        self._begin(at, policy)
        case = self._check_in_transit("confirm_receipt")
        self._emit(ev.ReceiptConfirmed, at, Actor.MERCHANT, command_id, case=case.number,
                   **self._receipt_deadlines(case, at, policy))
        self._refund_online_on_receipt(case, at)

    def reject_receipt(self, at: datetime, *, reason: str, command_id: str | None,
                       policy: Policy) -> None:
        """R-6: the merchant refuses the returned goods, in time, with a reason."""
        self._begin(at, policy)
        case = self._check_in_transit("reject_receipt")
        if not reason.strip():
            raise CommandRefused(
                rules.INPUT, "field 'reason': refusing the goods needs a reason (R-6)")
        self._emit(ev.ReceiptRejected, at, Actor.MERCHANT, command_id, case=case.number,
                   reason=reason)

    def _receipt_deadlines(self, case: ReturnCase, received: datetime,
                           policy: Policy) -> dict[str, datetime | None]:
        """The deadline a receipt starts: a cod return's voucher (R-COD-4), an exchange's
        replacement (E-2)."""
        voucher = reship = None
        if case.flow is Flow.EXCHANGE:
            reship = TIMEOUTS[rules.E_2].due(received, policy)
        elif self.payment is Payment.COD:
            voucher = TIMEOUTS[rules.R_COD_4].due(received, policy)
        return {"voucher_deadline": voucher, "reship_deadline": reship}

    def _refund_online_on_receipt(self, case: ReturnCase, at: datetime) -> None:
        """R-ON-4: on receipt of an online return the platform refunds `amount` at once."""
        if self.payment is Payment.ONLINE and case.flow is Flow.RETURN:
            self.trigger_event(ev.PlatformRefunded, at=at, actor=Actor.PLATFORM.value,
                               command_id=None, rule=rules.R_ON_4, deadline=None,
                               case=case.number, amount=case.amount)

    def upload_refund_voucher(self, at: datetime, *, voucher_ref: str, amount: int,
                              command_id: str | None, policy: Policy) -> None:
        """R-COD-4: the cod merchant refunds `amount` exactly and uploads the voucher."""
        self._begin(at, policy)
        check_positive("amount", amount)
        if self.payment is Payment.ONLINE:
            raise CommandRefused(rules.FLOW, "online returns are refunded by the platform")
        case = self._case_for("upload_refund_voucher")
        if case.status is not CaseStatus.RECEIVED or case.flow is not Flow.RETURN:
            # a late voucher for an older case? (an exchange never takes a voucher)
            case = next((c for c in reversed(self.cases) if c.merchant_debt > 0), case)
        late = case.status is CaseStatus.COMPENSATED and case.merchant_debt > 0
        if not late:
            if case.flow is Flow.EXCHANGE and case.status is CaseStatus.RECEIVED:
                raise CommandRefused(
                    rules.FLOW, f"case {case.number} is an exchange: the merchant ships the "
                    "replacement (ship_replacement)")
            self._check_case(case, CaseStatus.RECEIVED, "upload_refund_voucher", False)
        if amount != case.amount:
            raise CommandRefused(
                rules.R_AMOUNT, f"the voucher is for {amount}; case {case.number} is for "
                f"{case.amount}")
        self._emit(ev.RefundVoucherUploaded, at, Actor.MERCHANT, command_id,
                   case=case.number, voucher_ref=voucher_ref, amount=amount,
                   settles_debt=late)

    # --- cases: the replacement (E-2) ------------------------------------------------------

    def _exchange_for(self, step: str) -> ReturnCase:
        case = self._case_for(step)
        if case.flow is not Flow.EXCHANGE:
            raise CommandRefused(
                rules.FLOW, f"{step}: case {case.number} is a {case.kind.value}, not an "
                "exchange")
        return case

    def ship_replacement(self, at: datetime, *, carrier: str | None,
                         tracking_no: str | None, command_id: str | None,
                         policy: Policy) -> None:
        """E-2: the merchant ships the replacement within the reship window of receipt
        (the carrier and tracking number may be unknown)."""
        self._begin(at, policy)
        case = self._exchange_for("ship_replacement")
        self._check_case(case, CaseStatus.RECEIVED, "ship_replacement",
                         case.converted_to_refund)
        self._emit(ev.ReplacementShipped, at, Actor.MERCHANT, command_id, case=case.number,
                   carrier=carrier, tracking_no=tracking_no)

    def deliver_replacement(self, at: datetime, *, command_id: str | None,
                            policy: Policy) -> None:
        """E-2: the carrier delivers the replacement; the exchange is done."""
        self._begin(at, policy)
        case = self._exchange_for("deliver_replacement")
        self._check_case(case, CaseStatus.REPLACEMENT_SHIPPED, "deliver_replacement", False)
        self._emit(ev.ReplacementDelivered, at, Actor.CARRIER, command_id, case=case.number)

    # --- platform intervention (SPEC section 8) ----------------------------------------

    def appeal(self, at: datetime, *, reason: str, command_id: str | None,
               policy: Policy) -> None:
        """A-1: the user asks the platform to intervene in the merchant's rejection of the
        latest case, once, within the appeal window of the rejection."""
        self._begin(at, policy)
        case = self._case_for("appeal")
        if case.arbitration is not None:
            raise CommandRefused(
                rules.A_1, f"case {case.number} was appealed already (one appeal per case)")
        self._check_case(case, CaseStatus.REJECTED, "appeal", False)
        if case.flow is Flow.REFUND_BEFORE_SHIPMENT:
            raise CommandRefused(
                rules.A_1, f"case {case.number} was refused by shipping the order (F-1): "
                "that is not a rejection the platform arbitrates")
        assert case.rejected_at is not None
        closes = appeal_closes(case.rejected_at, policy)
        if at > closes:
            raise CommandRefused(
                rules.DEADLINE, f"A-1: the appeal window of case {case.number} closed at "
                f"{closes.isoformat()}")
        if not reason.strip():
            raise CommandRefused(rules.INPUT, "field 'reason': an appeal needs a reason (A-1)")
        self._emit(ev.Appealed, at, Actor.USER, command_id, case=case.number, reason=reason,
                   evidence_deadline=TIMEOUTS[rules.A_2].due(at, policy))

    def _check_arbitrating(self, step: str) -> ReturnCase:
        case = self._case_for(step)
        ruled_by = None if case.arbitration is None else case.arbitration.ruled_by
        self._check_case(case, CaseStatus.ARBITRATING, step, ruled_by == Actor.SYSTEM)
        return case

    def submit_evidence(self, at: datetime, *, evidence: list[str], note: str,
                        command_id: str | None, policy: Policy) -> None:
        """A-2: the merchant's evidence for the dispute, once, by the evidence deadline (the
        command's model takes 1 to 4 references, `EVIDENCE_REFERENCES`)."""
        self._begin(at, policy)
        case = self._check_arbitrating("submit_evidence")
        assert case.arbitration is not None
        if case.arbitration.evidence_at is not None:
            raise CommandRefused(
                rules.A_2, f"the evidence of case {case.number} was submitted already (once)")
        self._emit(ev.EvidenceSubmitted, at, Actor.MERCHANT, command_id, case=case.number,
                   evidence=list(evidence), note=note)

    def arbitrate(self, at: datetime, *, outcome: str, blame: str, note: str,
                  command_id: str | None, policy: Policy) -> None:
        """A-3: the platform rules the dispute, for the user or the merchant, with blame."""
        self._begin(at, policy)
        for field, given, values in (("outcome", outcome, tuple(Outcome)),
                                     ("blame", blame, tuple(Blame))):
            if given not in values:
                raise CommandRefused(rules.INPUT, f"field '{field}': must be one of "
                                     f"{', '.join(values)}")
        case = self._check_arbitrating("arbitrate")
        made = {"at": at, "actor": Actor.PLATFORM.value, "command_id": command_id}
        self._rule(ev.ArbitrationRuled, case, made, Outcome(outcome), Blame(blame), note,
                   policy)

    def withdraw_appeal(self, at: datetime, *, reason: str, command_id: str | None,
                        policy: Policy) -> None:
        """The user withdraws the appeal of the latest case while it is `arbitrating` (not
        ruled): the case is `rejected` again, finally (one appeal per case, A-1)."""
        self._begin(at, policy)
        case = self._case_for("withdraw_appeal")
        self._check_case(case, CaseStatus.ARBITRATING, "withdraw_appeal", False)
        self._emit(ev.AppealWithdrawn, at, Actor.USER, command_id, case=case.number,
                   reason=reason)

    def record_blame(self, at: datetime, *, blame: str, case: int | None,
                     command_id: str | None, policy: Policy) -> None:
        """The platform gives, once, the blame of a ruling recorded with blame `unknown`:
        of case number `case`, or by default of the latest ruled case whose blame is
        unknown."""
        self._begin(at, policy)
        if blame not in KNOWN_BLAMES:
            raise CommandRefused(rules.INPUT, f"field 'blame': must be one of "
                                 f"{', '.join(KNOWN_BLAMES)}")
        if case is None:
            found = next((c for c in reversed(self.cases) if _blame_unknown(c)), None)
            if found is None:
                raise CommandRefused(
                    rules.FLOW, f"record_blame: order {self.order_id} has no ruling whose "
                    "blame is unknown")
        else:
            found = self._numbered(case, "record_blame")
            if not _blame_unknown(found):
                dispute = found.arbitration
                why = ("was never ruled" if dispute is None or dispute.ruled_at is None
                       else f"was ruled with blame {dispute.blame}")
                raise CommandRefused(
                    rules.FLOW, f"record_blame: case {case} {why}; the blame is recorded "
                    "once, for a ruling whose blame is unknown")
        assert found.arbitration is not None and found.arbitration.ruled_at is not None
        self._emit(ev.BlameRecorded, at, Actor.PLATFORM, command_id, case=found.number,
                   blame=blame, ruled_at=found.arbitration.ruled_at)

    def _numbered(self, number: int, step: str) -> ReturnCase:
        """The order's case `number` (FLOW: no such case)."""
        if not 1 <= number <= len(self.cases):
            raise CommandRefused(
                rules.FLOW, f"{step}: order {self.order_id} has no case {number} "
                f"({len(self.cases)} case{'s' if len(self.cases) != 1 else ''})")
        return self.cases[number - 1]

    def _rule(self, event: type[ev.Ruled], case: ReturnCase, made: dict[str, Any],
              outcome: Outcome, blame: Blame, note: str, policy: Policy) -> None:
        """A ruling, and A-4: for the user the case continues as if the merchant had
        agreed at the ruling's time (a rejected request is approved; refused goods count
        as received); for the merchant it is rejected, finally."""
        at = made["at"]
        assert case.arbitration is not None
        resumes, deadline = CaseStatus.REJECTED, None
        if outcome is Outcome.USER:
            goods_refused = case.receipt_rejected_at is not None
            if case.kind is CaseKind.REFUND or (goods_refused and case.flow is Flow.RETURN
                                                and self.payment is Payment.ONLINE):
                resumes = CaseStatus.REFUNDED
            elif not goods_refused:
                resumes, deadline = CaseStatus.APPROVED, TIMEOUTS[rules.R_2].due(at, policy)
            else:
                resumes = CaseStatus.RECEIVED
                deadline = self._receipt_deadlines(case, at, policy)[
                    "reship_deadline" if case.flow is Flow.EXCHANGE else "voucher_deadline"]
        self.trigger_event(event, **{**made, "case": case.number}, outcome=outcome.value,
                           blame=blame.value, note=note,
                           evidence=list(case.arbitration.evidence), resumes=resumes.value,
                           next_deadline=deadline)
        if resumes is CaseStatus.REFUNDED:
            self.trigger_event(ev.PlatformRefunded, at=at, actor=Actor.PLATFORM.value,
                               command_id=None, rule=rules.A_4, deadline=made.get("deadline"),
                               case=case.number, amount=case.amount)

    # --- deadline changes (SPEC section 9) ---------------------------------------------

    def extend_deadline(self, at: datetime, *, command_id: str | None,
                        policy: Policy) -> None:
        """D-1: the merchant extends the receipt deadline of a return or exchange, once,
        while the goods are in transit and the deadline has not passed."""
        self._begin(at, policy)
        case = self._check_in_transit("extend_deadline")
        if case.extended:
            raise CommandRefused(
                rules.D_1, f"the receipt deadline of case {case.number} was extended already "
                "(once per case)")
        due = case.deadline
        assert due is not None and due.rule == rules.R_3
        self._emit(ev.DeadlineExtended, at, Actor.MERCHANT, command_id, case=case.number,
                   deadline_rule=due.rule, old_deadline=due.at,
                   new_deadline=TIMEOUTS[due.rule].extended(due.at, policy))

    def set_deadline(self, at: datetime, *, until: datetime, reason: str,
                     command_id: str | None, policy: Policy) -> None:
        """D-2: the platform moves the pending deadline (of the open case, or the payment
        deadline) to `until`, later than `at`."""
        self._begin(at, policy)
        due = self.pending_deadline
        if due is None:
            raise CommandRefused(
                rules.FLOW, f"set_deadline: order {self.order_id} has no pending deadline")
        if until <= at:
            raise CommandRefused(
                rules.D_2, f"the new deadline {until.isoformat()} is not later than the "
                f"command's time {at.isoformat()}")
        self._emit(ev.DeadlineSet, at, Actor.PLATFORM, command_id, case=due.case,
                   deadline_rule=due.rule, old_deadline=due.at, new_deadline=until,
                   reason=reason)

    # --- platform feeds (SPEC section 10) ----------------------------------------------

    def reconcile(self, at: datetime, *, source: str, ref: str, account: Account,
                  command_id: str | None, policy: Policy, case: int | None = None,
                  tolerance: int = 0) -> None:
        """A platform's account of a step the ledger had already taken, recorded as
        agreeing or, with both versions, as differing: of case number `case` (default:
        the latest case), or of the order itself (the fact `cancelled`).  A time or
        deadline within `tolerance` seconds of the ledger's agrees."""
        self._begin(at, policy)
        if tolerance < 0:
            raise CommandRefused(rules.INPUT, "field 'tolerance': must not be negative")
        number: int | None = None
        if account.fact in ORDER_FACTS:
            if case is not None:
                raise CommandRefused(
                    rules.INPUT, f"field 'case': the fact '{account.fact}' is about the "
                    "order, not a case")
            found = compare_order(self.cancelled_by, self.cancelled_at, account, tolerance)
        else:
            held = self.latest_case if case is None else self._numbered(case, "reconcile")
            if held is None:
                raise CommandRefused(
                    rules.FLOW, f"reconcile: order {self.order_id} has no case to hold the "
                    f"platform's '{account.fact}' against")
            number = held.number
            found = compare(held, account, tolerance)
        common = {"case": number, "source": source, "ref": ref, "fact": account.fact,
                  "step_at": account.step_at, "tolerance": tolerance}
        if not found:
            self._emit(ev.PlatformAgreed, at, Actor.PLATFORM, command_id, **common)
            return
        first = found[0]
        self._emit(ev.PlatformDiffered, at, Actor.PLATFORM, command_id, **common,
                   kind=first.kind, kinds=[d.kind for d in found], ledger=first.ledger,
                   platform=first.platform)

    def _lapse_deadline(self, rule: str) -> str:
        return next(x.deadline.isoformat() for x in self.lapses if x.rule == rule)


Act = Callable[[Order, ReturnCase | None, dict[str, Any], Policy], None]

#: What the system does at each deadline of the rules table, by rule.
_ACTS: Final[dict[str, Act]] = {
    rules.C_ON_4: Order._auto_cancel,
    rules.R_1: Order._auto_approve,
    rules.R_2: Order._auto_close,
    rules.R_3: Order._auto_receive,
    rules.R_COD_4: Order._compensate,
    rules.F_1: Order._auto_refund,
    rules.F_2: Order._auto_refund,
    rules.E_2: Order._convert_to_refund,
    rules.A_2: Order._rule_for_user,
}
if _ACTS.keys() != TIMEOUTS.keys():  # pragma: no cover - a row without its act
    raise TypeError(f"no act for {sorted(TIMEOUTS.keys() - _ACTS.keys())}")


def _blame_unknown(case: ReturnCase) -> bool:
    """Whether the case's dispute was ruled with blame `unknown`."""
    dispute = case.arbitration
    return dispute is not None and dispute.ruled_at is not None and (
        dispute.blame == Blame.UNKNOWN)


def check_positive(field: str, amount: int) -> None:
    if amount <= 0:
        raise CommandRefused(rules.INPUT, f"field '{field}': must be greater than zero")
