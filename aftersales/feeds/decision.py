"""What a platform message is and what deciding it gives: the message as read (its tag,
id, data, business time and the ledger orders it names), the decision for one order (the
commands it becomes, or why none), and the context a tag's rule decides in: the order as
the ledger holds it at the message's time, and the tolerance of reconciliation.

Command ids derive from `douyin:<msg_id>` and the sub-order: a message delivered twice is
applied once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aftersales.application import commands as cmd
from aftersales.domain.cases import ReturnCase
from aftersales.domain.order import Order
from aftersales.feeds.pushes import refuse, whole

SOURCE = "douyin"
MAX_REASON = 500


@dataclass(frozen=True)
class Tolerance:
    """How far the platform's time of a step may lie from the ledger's and still agree."""

    timers: timedelta = timedelta(minutes=10)
    refunds: timedelta = timedelta(hours=72)  # 206 RefundSuccess: money arriving


#: The defaults (--tolerance, --refund-tolerance).
TOLERANCE = Tolerance()


@dataclass(frozen=True)
class Message:
    """One push message: its tag, id and data, the business time it carries (or its
    receive time, for a message that carries none), and the ledger orders it is about."""

    tag: int
    msg_id: str
    data: dict[str, Any]
    at: datetime
    order_ids: tuple[str, ...] = ()
    case_ref: str | None = None
    name: str = ""  # the tag's name (TradePaid, RefundCreated, ...)
    #: The message as read, with its time, as JSON text: kept with a reported
    #: message's outcome, for `feed retry`.
    kept: str = field(default="", compare=False)
    #: The field its time was read from (`pay_time`, `update_time`, ...; `received_at`:
    #: it carries none, and took the body's receive time): what a refusal names.
    time_field: str = field(default="received_at", compare=False)

    @property
    def key(self) -> str:
        """The message's key in the store: its outcome is recorded under it, once."""
        return f"{SOURCE}:{self.msg_id}"

    def command_id(self, order_id: str, step: int = 1) -> str:
        """The id of the message's `step`th command for one sub-order."""
        text = f"{SOURCE}:{self.msg_id}:{order_id}" + (f":{step}" if step > 1 else "")
        if len(text) <= cmd.MAX_ID:
            return text
        return f"{SOURCE}:h:{hashlib.sha256(text.encode()).hexdigest()[:40]}"


@dataclass(frozen=True)
class Skipped:
    """A message (for one sub-order) that becomes no command: `ignored` (nothing for the
    ledger to do: the step is recorded already, or it is not one the ledger rules) or
    `reported` (it carries too little to decide: not guessed)."""

    status: str
    reason: str
    tag: int = 0


Decision = list[cmd.OrderCommand] | Skipped


@dataclass
class Context:
    m: Message
    order_id: str
    order: Order
    tolerance: Tolerance
    steps: int = 0

    @property
    def data(self) -> dict[str, Any]:
        return self.m.data

    def command(self, model: type[cmd.OrderCommand], **fields: Any) -> cmd.OrderCommand:
        self.steps += 1
        return cmd.build(model, {"order_id": self.order_id, "at": self.m.at,
                                 "command_id": self.m.command_id(self.order_id, self.steps),
                                 **fields})

    def reconcile(self, fact: str, case: ReturnCase | None, *, money: bool = False,
                  after: datetime | None = None, **fields: Any) -> list[cmd.OrderCommand]:
        """The platform's account of a step the ledger had taken: recorded at the
        message's time, or at the order's latest event if that is later (a late account
        is recorded when it arrives, not refused `TIME`), or just after `after` (a
        deadline whose timeout the ledger takes first), the step's own time beside it."""
        at = max(self.m.at, self.order.last_at)
        if after is not None and at <= after:
            at = after + timedelta(microseconds=1)
        tolerance = self.tolerance.refunds if money else self.tolerance.timers
        self.steps += 1
        return [cmd.build(cmd.Reconcile, {
            "order_id": self.order_id, "at": at,
            "command_id": self.m.command_id(self.order_id, self.steps), "source": SOURCE,
            "ref": self.m.msg_id, "fact": fact, "step_at": self.m.at,
            "case": None if case is None else case.number,
            "tolerance": int(tolerance.total_seconds()),
            **{k: v for k, v in fields.items() if v is not None}})]

    def text(self, *names: str, default: str = "") -> str:
        for name in names:
            value = self.data.get(name)
            if value not in (None, ""):
                return str(value)[:MAX_REASON]
        return default

    def number(self, name: str, default: int | None = None) -> int | None:
        value = self.data.get(name)
        if value in (None, ""):
            return default
        return whole(value, f"field {name!r}")

    def fen(self, name: str) -> int | None:
        amount = self.number(name)
        if amount is not None and amount < 0:
            raise refuse(f"field {name!r}: fen must not be negative, got {amount}")
        return amount


def unplaced(name: str, order_id: str) -> Skipped:
    return Skipped("reported", f"{name}: order {order_id} is not in the ledger: place it "
                   "first, from an order export or a place_order line (the push carries "
                   "no amounts); then `aftersales feed retry`")
