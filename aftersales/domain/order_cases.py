"""The Order aggregate's after-sale cases (SPEC sections 3 and 7): a case asked for,
the merchant's answer, the goods going back, the refund or voucher, the replacement.
Each rule ID is decided in one method here or in the aggregate's other parts
(`aftersales.domain.order_core`)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from aftersales.domain import events as ev
from aftersales.domain import rules
from aftersales.domain.cases import ReturnCase
from aftersales.domain.order_core import OrderCore, check_positive
from aftersales.domain.policy import Policy
from aftersales.domain.states import (
    Actor,
    CaseKind,
    CaseStatus,
    Flow,
    OrderStatus,
    Payment,
)
from aftersales.domain.steps import CASE_STEPS, TIMEOUTS
from aftersales.errors import CommandRefused

if TYPE_CHECKING:  # a part of `Order` (not an aggregate of its own): typed against its core
    _Base = OrderCore
else:
    _Base = object


class CaseSteps(_Base):
    """The steps of an order's after-sale cases (a part of `Order`)."""

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
