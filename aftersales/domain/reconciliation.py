"""Reconciliation (SPEC section 10): a platform's account of a step the ledger had already
taken, held against the ledger's own record of it.

The platform's feed says what happened to a case (approved, rejected, received, refunded,
closed, ruled) or what its deadline is, or that the order was cancelled; when the ledger
has taken that step itself (its timers acted, or the step was recorded from another
source), the account is compared with the ledger, field by field, and every way it
differs is named:

    outcome    the platform's step is another one than the ledger's (approved against
               rejected, ruled for the other party), or the ledger has not taken it (an
               order the ledger has not cancelled)
    actor      the platform names another actor (a merchant approval where the ledger's
               system approved at the deadline: the platform shows the step after the
               rules' deadline)
    time       the same step at another instant: more than the tolerance apart (in whole
               seconds: the platform's times are whole Unix seconds; tolerance 0 compares
               to the second)
    amount     another amount refunded
    deadline   the platform's deadline for the case differs from the rules' by more than
               the tolerance (with no `set_deadline` recorded that moved it), or the
               ledger has none pending

No difference: the account agrees.  Pure: no clock, no storage.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from aftersales.domain.cases import ReturnCase
from aftersales.domain.states import CaseStatus

#: The facts a platform's account may state about a case.
CASE_FACTS = ("approved", "rejected", "received", "refunded", "closed", "ruled", "deadline")
#: The facts it may state about the order itself (no case needed).
ORDER_FACTS = ("cancelled",)
#: Every fact a platform's account may state.
FACTS = CASE_FACTS + ORDER_FACTS
#: The ways an account may differ, most serious first.
KINDS = ("outcome", "actor", "amount", "deadline", "time")

_CLOSED = {CaseStatus.CLOSED, CaseStatus.WITHDRAWN}


@dataclass(frozen=True)
class Account:
    """What the platform says: a fact about a case, with what it knows of it."""

    fact: str
    step_at: datetime | None = None
    by: str | None = None
    amount: int | None = None
    deadline: datetime | None = None
    outcome: str | None = None


@dataclass(frozen=True)
class Difference:
    kind: str
    ledger: str
    platform: str


def _second(at: datetime | None) -> int | None:
    return None if at is None else int(at.timestamp() // 1)


def _within(a: datetime | None, b: datetime | None, tolerance: int) -> bool:
    """Whether two instants agree: both absent, or at most `tolerance` whole seconds
    apart."""
    x, y = _second(a), _second(b)
    if x is None or y is None:
        return x == y
    return abs(x - y) <= tolerance


def _when(at: datetime | None) -> str:
    return "-" if at is None else at.isoformat()


def _step(name: str, by: str | None, at: datetime | None) -> str:
    return f"{name}{f' by {by}' if by else ''} at {_when(at)}"


def compare(case: ReturnCase, account: Account, tolerance: int = 0) -> list[Difference]:
    """Every way `account` differs from the ledger's record of `case`, most serious
    first (empty: it agrees); times and deadlines within `tolerance` seconds agree."""
    found: list[Difference] = []
    fact = account.fact
    said = _step(fact, account.by, account.step_at)

    def step(name: str | None, by: str | None, at: datetime | None) -> None:
        ours = "not taken" if name is None else _step(name, by, at)
        if name != fact:
            found.append(Difference("outcome", ours, said))
            return
        if account.by is not None and by is not None and account.by != by:
            found.append(Difference("actor", ours, said))
        if account.step_at is not None and not _within(account.step_at, at, tolerance):
            found.append(Difference("time", ours, said))

    if fact in ("approved", "rejected"):
        decision = None
        if case.decided_at is not None:
            decision = ("rejected" if case.rejected_at is not None
                        and case.rejected_at == case.decided_at else "approved")
        ruling = case.arbitration
        if decision == "rejected" and ruling is not None and ruling.outcome == "user" and (
                ruling.ruled_at is not None):  # the ruling approved it
            decision = "approved"
            step(decision, ruling.ruled_by, ruling.ruled_at)
            return sorted(found, key=lambda d: KINDS.index(d.kind))
        step(decision, case.decided_by, case.decided_at)
    elif fact == "received":
        step("received" if case.received_at else None, case.received_by, case.received_at)
    elif fact == "refunded":
        paid_at = case.refunded_at or case.compensated_at
        step("refunded" if case.paid_to_user else None, case.refunded_by, paid_at)
        if account.amount is not None and case.paid_to_user and \
                account.amount != case.paid_to_user:
            found.insert(0, Difference("amount", f"{case.paid_to_user} fen",
                                       f"{account.amount} fen"))
    elif fact == "closed":
        step("closed" if case.status in _CLOSED else None, None, case.ended_at)
    elif fact == "ruled":
        ruling = case.arbitration
        if ruling is None or ruling.outcome is None:
            found.append(Difference("outcome", "not ruled", f"ruled for the "
                                    f"{account.outcome or '?'}"))
        else:
            if account.outcome is not None and account.outcome != ruling.outcome:
                found.append(Difference("outcome", f"ruled for the {ruling.outcome}",
                                        f"ruled for the {account.outcome}"))
            if account.step_at is not None and \
                    not _within(account.step_at, ruling.ruled_at, tolerance):
                found.append(Difference("time", f"ruled at {_when(ruling.ruled_at)}",
                                        f"ruled at {_when(account.step_at)}"))
    elif fact == "deadline":
        ours = case.deadline.at if case.deadline is not None and case.is_open else None
        if not _within(ours, account.deadline, tolerance):
            found.append(Difference("deadline", f"deadline {_when(ours)}",
                                    f"deadline {_when(account.deadline)}"))
    else:  # pragma: no cover - the command's model admits only FACTS
        raise ValueError(f"unknown fact {fact!r}")
    return sorted(found, key=lambda d: KINDS.index(d.kind))


def compare_order(cancelled_by: str | None, cancelled_at: datetime | None,
                  account: Account, tolerance: int = 0) -> list[Difference]:
    """Every way `account` of the order's cancellation (the fact `cancelled`) differs
    from the ledger's (who cancelled, when; None: not cancelled), most serious first."""
    if account.fact != "cancelled":  # pragma: no cover - the caller sends ORDER_FACTS
        raise ValueError(f"unknown order fact {account.fact!r}")
    said = _step("cancelled", account.by, account.step_at)
    if cancelled_at is None:
        return [Difference("outcome", "not cancelled", said)]
    ours = _step("cancelled", cancelled_by, cancelled_at)
    found: list[Difference] = []
    if account.by is not None and cancelled_by is not None and account.by != cancelled_by:
        found.append(Difference("actor", ours, said))
    if account.step_at is not None and not _within(account.step_at, cancelled_at,
                                                   tolerance):
        found.append(Difference("time", ours, said))
    return found
