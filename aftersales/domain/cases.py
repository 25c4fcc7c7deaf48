"""The mutable state an order keeps of each of its cases, changed only by its events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from aftersales.domain.states import CaseKind, CaseStatus, Deadline, Flow
from aftersales.domain.steps import TERMINAL_CASE_STATUSES, case_step, deadline_rule


@dataclass
class ReturnCase:
    """One after-sale case of an order (a return, a refund or an exchange), as its events
    left it."""

    number: int
    amount: int
    reason: str
    requested_at: datetime
    flow: Flow = Flow.RETURN
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
    receipt_rejected_at: datetime | None = None
    refunded_at: datetime | None = None
    refunded_by: str | None = None
    voucher_ref: str | None = None
    voucher_at: datetime | None = None
    compensated_at: datetime | None = None
    replacement_carrier: str | None = None
    replacement_tracking_no: str | None = None
    replacement_shipped_at: datetime | None = None
    replacement_delivered_at: datetime | None = None
    converted_to_refund: bool = False
    extended: bool = False  # D-1: the receipt deadline was extended (once)
    deadline_changes: int = 0
    ended_at: datetime | None = None
    paid_to_user: int = 0
    merchant_debt: int = 0

    @property
    def kind(self) -> CaseKind:
        return self.flow.kind

    @property
    def is_open(self) -> bool:
        return self.status not in TERMINAL_CASE_STATUSES

    @property
    def awaiting(self) -> str | None:
        actor = case_step(self.flow, self.status).awaiting
        return None if actor is None else actor.value

    def move_to(self, status: CaseStatus, at: datetime, until: datetime | None = None) -> None:
        """Enter `status` at `at`; `until`: the deadline the step runs (its rule is the
        step's, `aftersales.domain.steps`), or None."""
        self.status = status
        if status in TERMINAL_CASE_STATUSES:
            self.ended_at = at
        self.deadline = None if until is None else Deadline(
            until, deadline_rule(self.flow, status), self.number)

    def move_deadline(self, until: datetime) -> None:
        """The pending deadline, moved to `until` (D-1, D-2)."""
        assert self.deadline is not None
        self.deadline = Deadline(until, self.deadline.rule, self.number)
        self.deadline_changes += 1
