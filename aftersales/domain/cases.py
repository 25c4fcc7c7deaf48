"""The mutable state an order keeps of each of its cases, changed only by its events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from aftersales.domain import rules
from aftersales.domain.states import CaseKind, CaseStatus, Deadline, Flow
from aftersales.domain.steps import TERMINAL_CASE_STATUSES, Step, case_step, deadline_rule


@dataclass
class ReturnCase:
    """One after-sale case of an order (a return, a refund or an exchange), as its events
    left it."""

    number: int
    amount: int
    reason: str
    requested_at: datetime
    flow: Flow = Flow.RETURN
    ref: str | None = None  # the platform's own id of the case (its after-sale id), if given
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
    rejected_at: datetime | None = None  # the merchant's rejection (R-1, F-2, R-6)
    arbitration: Arbitration | None = None  # the appeal, if any
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
    def step(self) -> Step:
        """The case's step of the rules table (`aftersales.domain.steps`)."""
        evidence_in = self.arbitration is not None and self.arbitration.evidence_at is not None
        return case_step(self.flow, self.status, evidence_in)

    @property
    def awaiting(self) -> str | None:
        actor = self.step.awaiting
        return None if actor is None else actor.value

    def move_to(self, status: CaseStatus, at: datetime, until: datetime | None = None) -> None:
        """Enter `status` at `at`; `until`: the deadline the step runs (its rule is the
        step's, `aftersales.domain.steps`), or None.  Only an appeal leaves an ended
        status (A-1): the case has not ended then."""
        self.status = status
        self.ended_at = at if status in TERMINAL_CASE_STATUSES else None
        self.deadline = None if until is None else Deadline(
            until, deadline_rule(self.flow, status), self.number)

    def move_deadline(self, until: datetime) -> None:
        """The pending deadline, moved to `until` (D-1, D-2)."""
        assert self.deadline is not None
        if self.deadline.rule == rules.A_2 and self.arbitration is not None:
            self.arbitration.evidence_deadline = until
        self.deadline = Deadline(until, self.deadline.rule, self.number)
        self.deadline_changes += 1


@dataclass
class Arbitration:
    """A case's dispute before the platform (SPEC section 8): the appeal, the merchant's
    evidence, and the ruling."""

    opened_at: datetime
    reason: str
    evidence_deadline: datetime
    evidence: tuple[str, ...] = ()
    evidence_note: str = ""
    evidence_at: datetime | None = None
    ruled_at: datetime | None = None
    ruled_by: str | None = None
    outcome: str | None = None
    blame: str | None = None
    note: str = ""
    withdrawn_at: datetime | None = None  # the user withdrew the appeal (before a ruling)

    @property
    def is_open(self) -> bool:
        return self.ruled_at is None and self.withdrawn_at is None

    @property
    def status(self) -> str:
        """`open`, `ruled` or `withdrawn` (the user withdrew the appeal)."""
        if self.withdrawn_at is not None:
            return "withdrawn"
        return "open" if self.ruled_at is None else "ruled"
