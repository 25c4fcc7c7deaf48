"""An order's deadlines as they stood, replayed event by event, for its timeline page:
when each was set (or moved), when it was due, and what became of it.

A deadline on which the system's timeout acted is missed, always: the domain records that
act as a `DeadlineMissed` event carrying the deadline's rule, case and instant (the
violation or lapse of the status document is made of it).  The act and what follows it
at the same instant (the platform's payment, refund or the order's cancellation, each
carrying the same rule and deadline) may come in either order, so the fate of a deadline
is read from the acts, not from whichever event happened to clear it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from aftersales.domain import rules
from aftersales.domain.events import CaseEvent, DeadlineMissed, OrderEvent
from aftersales.domain.order import Order
from aftersales.domain.steps import TIMEOUTS

#: What each deadline asks for, by rule (the rules table says what its passing does).
ASKS = {
    rules.C_ON_4: "the user pays the online order",
    rules.R_1: "the merchant answers the return or exchange request",
    rules.R_2: "the user sends the return's tracking number",
    rules.R_3: "the merchant confirms receipt of the returned goods (once extendable, D-1)",
    rules.R_COD_4: "the merchant of a cash-on-delivery order uploads the refund voucher",
    rules.F_1: "the merchant answers the refund request made before shipment",
    rules.F_2: "the merchant answers the refund request made after shipment",
    rules.E_2: "the merchant ships the replacement",
    rules.A_2: "the merchant sends the platform evidence for the arbitration",
}
assert set(ASKS) == set(TIMEOUTS), "every deadline of the rules table says what it asks"


@dataclass
class Span:
    """A deadline as it stood: set (or moved) at `start`, due at `due`, until `end`."""

    rule: str
    case: int | None
    start: datetime
    due: datetime
    end: datetime | None = None  # when it stopped being the pending one (None: still is)
    fate: str = "pending"  # met, missed, moved, pending
    moved_from: datetime | None = None
    by: str = ""  # the event that ended it (for a missed one: the system's act)
    actor: str = ""  # who acted then


def name(rule: str) -> str:
    """A deadline's name: its violation's or lapse's (`RETURN_RESPONSE_48H`)."""
    return TIMEOUTS[rule].missed


def timeouts(events: Sequence[OrderEvent]) -> dict[tuple[str, int | None, datetime],
                                                   DeadlineMissed]:
    """The system's acts at passed deadlines, by the deadline's rule, case and instant."""
    return {(e.rule, e.case if isinstance(e, CaseEvent) else None, e.deadline): e
            for e in events if isinstance(e, DeadlineMissed) and e.deadline is not None}


def deadline_spans(events: Sequence[OrderEvent]) -> tuple[list[Span], list[Order]]:
    """Every pending deadline the order had, as it stood, replayed event by event; and the
    order after each event."""
    acted = timeouts(events)
    spans: list[Span] = []
    states: list[Order] = []
    order: Order | None = None
    current: Span | None = None
    for event in events:
        order = event.mutate(order)
        assert order is not None
        states.append(order)
        pending = order.pending_deadline
        now = None if pending is None else (pending.rule, pending.case, pending.at)
        if current is not None and now == (current.rule, current.case, current.due):
            continue
        if current is not None:
            timeout = acted.get((current.rule, current.case, current.due))
            ender = timeout or event
            current.end, current.by, current.actor = (ender.at, type(ender).__name__,
                                                      ender.actor)
            same = pending is not None and (pending.rule, pending.case) == (
                current.rule, current.case)
            current.fate = "missed" if timeout else "moved" if same else "met"
        moved = current if current is not None and current.fate == "moved" else None
        current = None
        if pending is not None:
            current = Span(pending.rule, pending.case, event.at, pending.at,
                           moved_from=moved.due if moved is not None else None)
            spans.append(current)
    return spans, states
