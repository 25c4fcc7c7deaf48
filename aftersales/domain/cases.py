"""The mutable state an order keeps of each of its cases, changed only by its events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from aftersales.domain.states import CaseStatus, Deadline
from aftersales.domain.steps import CASE_STEPS, TERMINAL_CASE_STATUSES, deadline_rule


@dataclass
class ReturnCase:
    """One return case (退货退款) of an order, as its events left it."""

    number: int
    amount: int
    reason: str
    requested_at: datetime
    status: CaseStatus = CaseStatus.REQUESTED
    deadline: Deadline | None = None
    decided_at: datetime | None = None
    decided_by: str | None = None
    reject_reason: str | None = None
    carrier: str | None = None
    tracking_no: str | None = None
    tracking_at: datetime | None = None
    received_at: datetime | None = None
    received_by: str | None = None
    refunded_at: datetime | None = None
    refunded_by: str | None = None
    voucher_ref: str | None = None
    voucher_at: datetime | None = None
    compensated_at: datetime | None = None
    ended_at: datetime | None = None
    paid_to_user: int = 0
    merchant_debt: int = 0

    @property
    def is_open(self) -> bool:
        return self.status not in TERMINAL_CASE_STATUSES

    @property
    def awaiting(self) -> str | None:
        actor = CASE_STEPS[self.status].awaiting
        return None if actor is None else actor.value

    def move_to(self, status: CaseStatus, at: datetime, until: datetime | None = None) -> None:
        """Enter `status` at `at`; `until`: the deadline the step runs (its rule is the
        step's, `aftersales.domain.steps`), or None."""
        self.status = status
        if status in TERMINAL_CASE_STATUSES:
            self.ended_at = at
        self.deadline = None if until is None else Deadline(until, deadline_rule(status),
                                                            self.number)
