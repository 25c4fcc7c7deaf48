"""How one command is decided on an order, and what a decision leaves behind: the
outcome, the refusal of a reused command id, the order's row in the deadline index
(used by the one write path, `aftersales.application.group_commit`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from aftersales.application import commands as cmd
from aftersales.domain import rules
from aftersales.domain.order import Order
from aftersales.domain.policy import Policy
from aftersales.domain.reconciliation import Account
from aftersales.errors import CommandRefused, IntegrityBroken
from aftersales.storage.port import CommandRow, DeadlineRow, RefusalRow


@dataclass(frozen=True)
class Outcome:
    """What one command did."""

    duplicate: bool = False  # its command id was already applied: nothing was done
    events: int = 0  # events recorded, timeouts included
    timeouts: int = 0  # timeouts applied (by a sweep; lazy ones count in `events`)


DUPLICATE = Outcome(duplicate=True)
NOTHING = Outcome()


@lru_cache(maxsize=64)
def applied(events: int) -> Outcome:
    """The outcome of a command that recorded `events` events (outcomes are immutable:
    a batch of thousands shares a few)."""
    return Outcome(events=events)


Handler = Callable[[Order, Any, Policy, str], None]

#: How each order command (other than place_order) is decided by the aggregate.
HANDLERS: dict[type[cmd.OrderCommand], Handler] = {
    cmd.Pay: lambda o, c, p, i: o.pay(c.at, command_id=i, policy=p),
    cmd.ConfirmOrder: lambda o, c, p, i: o.confirm(c.at, command_id=i, policy=p),
    cmd.Ship: lambda o, c, p, i: o.ship(
        c.at, carrier=c.carrier, tracking_no=c.tracking_no, command_id=i, policy=p
    ),
    cmd.Deliver: lambda o, c, p, i: o.deliver(c.at, command_id=i, policy=p),
    cmd.Cancel: lambda o, c, p, i: o.cancel(
        c.at, by=c.by, reason=c.reason, command_id=i, policy=p
    ),
    cmd.RequestReturn: lambda o, c, p, i: o.request_return(
        c.at, amount=c.amount, reason=c.reason, command_id=i, policy=p, case_ref=c.case_ref
    ),
    cmd.ApproveReturn: lambda o, c, p, i: o.approve_return(
        c.at, command_id=i, policy=p
    ),
    cmd.RejectReturn: lambda o, c, p, i: o.reject_return(
        c.at, reason=c.reason, command_id=i, policy=p
    ),
    cmd.WithdrawReturn: lambda o, c, p, i: o.withdraw_return(
        c.at, command_id=i, policy=p
    ),
    cmd.SubmitTracking: lambda o, c, p, i: o.submit_tracking(
        c.at, carrier=c.carrier, tracking_no=c.tracking_no, command_id=i, policy=p
    ),
    cmd.ConfirmReceipt: lambda o, c, p, i: o.confirm_receipt(
        c.at, command_id=i, policy=p
    ),
    cmd.UploadRefundVoucher: lambda o, c, p, i: o.upload_refund_voucher(
        c.at, voucher_ref=c.voucher_ref, amount=c.amount, command_id=i, policy=p
    ),
    cmd.RequestRefund: lambda o, c, p, i: o.request_refund(
        c.at, amount=c.amount, reason=c.reason, command_id=i, policy=p, case_ref=c.case_ref
    ),
    cmd.RequestExchange: lambda o, c, p, i: o.request_exchange(
        c.at, amount=c.amount, reason=c.reason, command_id=i, policy=p, case_ref=c.case_ref
    ),
    cmd.AmendRequest: lambda o, c, p, i: o.amend_request(
        c.at, amount=c.amount, reason=c.reason, command_id=i, policy=p
    ),
    cmd.RejectReceipt: lambda o, c, p, i: o.reject_receipt(
        c.at, reason=c.reason, command_id=i, policy=p
    ),
    cmd.ShipReplacement: lambda o, c, p, i: o.ship_replacement(
        c.at, carrier=c.carrier, tracking_no=c.tracking_no, command_id=i, policy=p
    ),
    cmd.DeliverReplacement: lambda o, c, p, i: o.deliver_replacement(
        c.at, command_id=i, policy=p
    ),
    cmd.ExtendDeadline: lambda o, c, p, i: o.extend_deadline(
        c.at, command_id=i, policy=p
    ),
    cmd.SetDeadline: lambda o, c, p, i: o.set_deadline(
        c.at, until=c.until, reason=c.reason, command_id=i, policy=p
    ),
    cmd.Appeal: lambda o, c, p, i: o.appeal(
        c.at, reason=c.reason, command_id=i, policy=p
    ),
    cmd.SubmitEvidence: lambda o, c, p, i: o.submit_evidence(
        c.at, evidence=c.evidence, note=c.note, command_id=i, policy=p
    ),
    cmd.Reconcile: lambda o, c, p, i: o.reconcile(
        c.at, source=c.source, ref=c.ref, account=Account(
            c.fact, c.step_at, c.by, c.amount, c.deadline, c.outcome),
        command_id=i, policy=p, case=c.case, tolerance=c.tolerance
    ),
    cmd.Arbitrate: lambda o, c, p, i: o.arbitrate(
        c.at, outcome=c.outcome, blame=c.blame, note=c.note, command_id=i,
        policy=p
    ),
    cmd.WithdrawAppeal: lambda o, c, p, i: o.withdraw_appeal(
        c.at, reason=c.reason, command_id=i, policy=p
    ),
    cmd.RecordBlame: lambda o, c, p, i: o.record_blame(
        c.at, blame=c.blame, case=c.case, command_id=i, policy=p
    ),
}


def decide(order: Order | None, command: cmd.OrderCommand, policy: Policy,
           command_id: str) -> Order:
    """Decide one order command on the order (None: never placed); return the order.  Its
    events carry `command_id`: the command's own, or the one derived from its content
    (`identity()`), which is what makes the line idempotent.

    Raises `CommandRefused`; the order passed in then keeps the timeouts the command's
    business time revealed, for the caller to record."""
    if isinstance(command, cmd.PlaceOrder):
        if order is not None:
            order.apply_due_timeouts(command.at, policy)
            raise CommandRefused(
                rules.DUPLICATE_ORDER, f"order {command.order_id} was already placed")
        return Order.place(
            order_id=command.order_id, at=command.at, payment=command.payment,
            merchant_id=command.merchant_id, user_id=command.user_id,
            goods_amount=command.goods_amount, postage=command.postage,
            currency=command.currency, command_id=command_id, policy=policy)
    if order is None:
        raise CommandRefused(rules.UNKNOWN_ORDER, f"order {command.order_id} was never placed")
    HANDLERS[type(command)](order, command, policy, command_id)
    return order


def duplicate_id(command_id: str) -> CommandRefused:
    return CommandRefused(
        rules.DUPLICATE_ID, f"command id {command_id!r} was already applied with other content")


#: Refusals not remembered: they depend on what is outside the order's state (the wall
#: clock, the integrity of the store, another command's id, an order not placed yet: it
#: may be placed later, from another file) and may go another way later.
UNREMEMBERED = frozenset({rules.FUTURE, rules.INTEGRITY, rules.DUPLICATE_ID,
                          rules.UNKNOWN_ORDER})


def remembered_refusal(command: cmd.OrderCommand, command_id: str, code: str, reason: str
                       ) -> CommandRefused:
    """A remembered refusal, given again (SPEC section 6): its rule and reason as they
    were decided, saying that they are remembered, since the order may have moved on so
    that the reason no longer holds, and how to have the command decided anew."""
    if command.command_id is None:
        which = "this line (its command_id derived from its content)"
        anew = "give the line a command_id of its own"
    else:
        which, anew = f"command_id {command_id}", "send it with a new command_id"
    return CommandRefused(code, f"{reason} (remembered: {which} was refused so when first "
                          "decided, and a command is decided once; to have it decided on "
                          f"the order as it is now, {anew})")


def refusal_row(row: CommandRow, order: Order | None, refused: CommandRefused) -> RefusalRow:
    """How a refusal decided on this order (None: never placed), its revealed timeouts
    included, is remembered."""
    return RefusalRow(row.command_id, row.digest, row.originator_id,
                      0 if order is None else order.version, refused.code, refused.reason)


def refusal_of(broken: IntegrityBroken) -> CommandRefused:
    """The refusal of a command for an order whose history is broken (SPEC section 11)."""
    return CommandRefused(rules.INTEGRITY, broken.describe())


def deadline_row(order: Order) -> DeadlineRow | None:
    """The deadline index row of an order's pending deadline."""
    due = order.pending_deadline
    return None if due is None else DeadlineRow(order.order_id, due.at, due.rule, due.case)
