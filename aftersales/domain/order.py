"""The Order aggregate: every rule of SPEC sections 2, 3, 7, 8 and 9.

Each command method first applies the timeouts that fell due before its business time
(`apply_due_timeouts`, cascading), then refuses a command that goes back in time, then runs
all of its checks, and only then triggers events: a refused command leaves behind nothing
but the timeouts it revealed.  Each rule ID is decided in exactly one method of the
aggregate: here (placing, the order's life cycle, the timeouts' acts), in its core
(`order_core.py`: the state and the steps every command takes first), its cases
(`order_cases.py`) or the platform's steps (`order_platform.py`).

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

from aftersales.domain import events as ev
from aftersales.domain import rules
from aftersales.domain.cases import ReturnCase
from aftersales.domain.order_core import OrderCore, check_positive
from aftersales.domain.order_platform import PlatformSteps
from aftersales.domain.policy import Policy
from aftersales.domain.states import (
    UNPAID_24H,
    Actor,
    Blame,
    Flow,
    OrderStatus,
    Outcome,
    Payment,
)
from aftersales.domain.steps import TIMEOUTS
from aftersales.errors import CommandRefused

ORDER_NAMESPACE = UUID("6f1c1d2e-58a4-4c36-9d8e-5a1f0c7b2e41")

#: The reason of F-1's refusal by shipping.
SHIPPED_REASON = "shipped"

CANCELLERS = ("user", "merchant", "platform")


@lru_cache(maxsize=16_384)
def order_uuid(order_id: str) -> UUID:
    """The aggregate id of a platform order number (deterministic)."""
    return uuid5(ORDER_NAMESPACE, order_id)


class Order(PlatformSteps, OrderCore):
    """An order and its after-sale cases, rebuilt from its events.  Its parts: the state
    and common steps (`OrderCore`), the cases (`CaseSteps`), the platform's steps
    (`PlatformSteps`); here, placing, the order's own life cycle and the timeouts'
    acts."""

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

    # --- timeouts: what the system does at each deadline --------------------------------

    def _act(self, rule: str, case: ReturnCase | None, system: dict[str, Any],
             policy: Policy) -> None:
        _ACTS[rule](self, case, system, policy)

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
