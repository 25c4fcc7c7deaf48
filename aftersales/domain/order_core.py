"""The Order aggregate's state, and what every one of its commands does first.

The aggregate is `aftersales.domain.order.Order`; its methods are grouped by the part of
the rules they decide: this core (the state, the pending deadline, the timeouts that fell
due, the checks every command makes), the order's own life cycle and the timeouts' acts
(`order.py`), its after-sale cases (`order_cases.py`), and the platform's part:
intervention, deadline changes and feeds (`order_platform.py`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate

from aftersales.domain import rules
from aftersales.domain.cases import ReturnCase
from aftersales.domain.policy import Policy
from aftersales.domain.states import (
    Actor,
    Deadline,
    Lapse,
    OrderStatus,
    Payment,
    Violation,
)
from aftersales.domain.steps import ORDER_STEPS
from aftersales.errors import CommandRefused


class OrderCore(Aggregate):
    """The state of an order, its pending deadline and the common steps of its commands."""
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
        self._act(due.rule, case, system, policy)

    def _act(self, rule: str, case: ReturnCase | None, system: dict[str, Any],
             policy: Policy) -> None:
        """Take the step the row of `rule` names at its deadline (`Order`: `_ACTS`)."""
        raise NotImplementedError

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

    def _emit(self, event: type[Aggregate.Event], at: datetime, actor: Actor,
              command_id: str | None, **fields: Any) -> None:
        self.trigger_event(event, at=at, actor=actor.value, command_id=command_id, **fields)


def check_positive(field: str, amount: int) -> None:
    if amount <= 0:
        raise CommandRefused(rules.INPUT, f"field '{field}': must be greater than zero")
