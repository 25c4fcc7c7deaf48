"""How each event changes the read-model rows: pure, no SQL.

A `Batch` holds the rows a batch of events touches (loaded by the runner), and collects
the new violation and lapse rows and the compliance counters.  Deadlines, amounts and
actors are copied from the events; no rule is decided here: the rule of a pending
deadline, who is awaited, and the violation or lapse row (and compliance counter) of a
missed deadline are the rules table's (`aftersales.domain.steps`).  Every row the read
models hold is built here, for the live runner and the rebuild alike.

Recorded events are folded only once they are checked against the chained record
(`fold_recorded`): each must be the next version of its order, with the digest that
follows the order's last folded one (`order_status.history_digest`).  An event that fails,
or cannot be read, is not folded: the order is recorded in `integrity_breaks` and none of
its later events are folded either, so reporting goes on for every other order and an
analyst sees which orders it cannot vouch for.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification

from aftersales.domain import events as ev
from aftersales.domain import rules
from aftersales.domain.reconciliation import KINDS as DISCREPANCY_KINDS
from aftersales.domain.states import CaseKind, Payment, dispute_result
from aftersales.domain.steps import (
    CASE_DEADLINE_RULE,
    CASE_DEADLINE_RULES,
    FIRST_STATUS,
    ORDER_DEADLINE_RULE,
    TERMINAL_CASE_STATUSES,
    TIMEOUTS,
    VIOLATION_COUNTERS,
    awaiting,
)
from aftersales.storage.chain import ZERO, digest, id_bytes
from aftersales.storage.port import ChainedNotification
from aftersales.storage.reading import AS_RECORDED, Positions

Row = dict[str, Any]
_ENDED = frozenset(s.value for s in TERMINAL_CASE_STATUSES)
#: The `merchant_compliance` counter of each class of discrepancy (SPEC section 10:
#: `outcome`, `actor`, `amount`, `deadline`, `time`, most serious first).  A differing
#: account counts once, under its most serious way (`PlatformDiffered.kind`), so these add
#: up to `discrepancies`.
DISCREPANCY_COUNTERS = {kind: f"discrepancies_{kind}" for kind in DISCREPANCY_KINDS}
#: The `merchant_compliance` counters: cases and answers, one per violation of the rules
#: table, the compensations, disputes, and the platform's accounts (discrepancies by
#: class).
COUNTERS = ("cases_opened", "answered_on_time", *VIOLATION_COUNTERS, "compensations_paid",
            "compensation_fen", "refund_cases_opened", "exchange_cases_opened",
            "receipts_rejected", "deadlines_extended", "orders_placed", "disputes_opened",
            "disputes_lost", "disputes_won", "disputes_unknown_blame", "platform_agreed",
            "discrepancies", *DISCREPANCY_COUNTERS.values())


@dataclass
class Batch:
    tz: tzinfo
    orders: dict[str, Row] = field(default_factory=dict)  # by order_uuid (hex)
    cases: dict[tuple[str, int], Row] = field(default_factory=dict)  # (order_uuid, case)
    disputes: dict[tuple[str, int], Row] = field(default_factory=dict)  # as `cases`
    new_orders: set[str] = field(default_factory=set)
    new_cases: set[tuple[str, int]] = field(default_factory=set)
    new_disputes: set[tuple[str, int]] = field(default_factory=set)
    violations: list[Row] = field(default_factory=list)
    lapses: list[Row] = field(default_factory=list)
    deadline_changes: list[Row] = field(default_factory=list)
    discrepancies: list[Row] = field(default_factory=list)
    compliance: dict[tuple[str, date], Counter[str]] = field(default_factory=dict)
    medians: set[tuple[str, date]] = field(default_factory=set)
    breaks: dict[str, Row] = field(default_factory=dict)  # new, by order_uuid
    frozen: set[str] = field(default_factory=set)  # order_uuids with a broken history
    #: Orders a walk of the log found broken (order_uuid: first version, why): folded
    #: only up to that version.
    limits: Mapping[str, tuple[int, str]] = field(default_factory=dict)
    #: How the ledger's log positions are numbered in the rows (a partition's apart from
    #: the other partitions': `aftersales.storage.partition_map.Positions`).
    positions: Positions = AS_RECORDED

    #: The first and the last business day the batch's events fall on, or any day its
    #: rows hold (the span `business_calendar` must cover).
    first_day: date | None = None
    last_day: date | None = None

    def day(self, at: datetime) -> date:
        """The business day of an instant (and the batch's span grows to it)."""
        found = at.astimezone(self.tz).date()
        if self.first_day is None or found < self.first_day:
            self.first_day = found
        if self.last_day is None or found > self.last_day:
            self.last_day = found
        return found

    def count(self, merchant: str, at: datetime, counter: str, n: int = 1) -> None:
        self.compliance.setdefault((merchant, self.day(at)), Counter())[counter] += n


Decode = Callable[[Notification], ev.OrderEvent]


def median_seconds(times: Iterable[int]) -> float | None:
    """A merchant's median response time over these cases (None: no case decided); the
    live projection, the rebuild and the scorecard all compute it here."""
    found = list(times)
    return float(statistics.median(found)) if found else None


def decoding(to_domain_event: Callable[[Notification], object]) -> Decode:
    """A `Decode` from a mapper's `to_domain_event` (refusing what is not an order event)."""
    def decode(notification: Notification) -> ev.OrderEvent:
        event = to_domain_event(notification)
        if not isinstance(event, ev.OrderEvent):
            raise TypeError(f"{notification.topic} is not an order event")
        return event
    return decode


def fold_recorded(batch: Batch, notification: Notification, decode: Decode) -> None:
    """Check a recorded event against its order's chain, then fold it (or record the
    break and freeze the order)."""
    oid = notification.originator_id
    assert isinstance(oid, UUID)
    key = oid.hex
    if key in batch.frozen:
        return
    limit = batch.limits.get(key)
    if limit is not None and notification.originator_version >= limit[0]:
        broken(batch, key, notification, *limit)
        return
    checked = _follows(batch.orders.get(key), oid, notification)
    if isinstance(checked, bytes):
        try:
            event = decode(notification)
            if not isinstance(event, ev.OrderPlaced) and key not in batch.orders:
                raise TypeError("the first event is not OrderPlaced")
            fold(batch, event, batch.positions.of(notification.id))
            batch.orders[key]["history_digest"] = checked.hex()
            return
        except Exception as e:  # whatever decoding raises: the event is unreadable
            checked = (notification.originator_version,
                       f"the event cannot be read ({type(e).__name__}: {e})")
    broken(batch, key, notification, *checked)


def _follows(order: Row | None, oid: UUID, n: Notification) -> bytes | tuple[int, str]:
    """The event's digest if it follows the order's last folded event; else where and
    why it does not."""
    version, previous = ((order["version"], bytes.fromhex(order["history_digest"]))
                         if order is not None else (0, ZERO))
    if n.originator_version != version + 1:
        return version + 1, (f"event {version + 1} is missing" if n.originator_version
                             > version + 1 else f"event {n.originator_version} comes again")
    stored = n.digest if isinstance(n, ChainedNotification) else None
    if stored is None:
        return n.originator_version, "the event has no digest (written before the chain)"
    found = digest(previous, id_bytes(oid), n.originator_version, n.topic, n.state)
    if stored != found:
        return n.originator_version, ("the event does not match its digest: it was "
                                      "altered, or an event before it was removed, "
                                      "inserted or reordered")
    return found


def broken(batch: Batch, key: str, notification: Notification | None, version: int,
           reason: str) -> None:
    """Record that the order's history breaks at `version` and freeze it: its rows keep
    what the events before the break made, and it has no pending deadline."""
    order = batch.orders.get(key)
    batch.frozen.add(key)
    batch.breaks[key] = {
        "order_uuid": key, "order_id": order["order_id"] if order else None,
        "merchant_id": order["merchant_id"] if order else None, "version": version,
        "position": (batch.positions.of(notification.id) if notification is not None
                     else None), "reason": reason,
    }
    if order is not None:
        order.update(history_broken=True, awaiting=None, next_deadline=None,
                     next_deadline_rule=None)


def fold(batch: Batch, event: ev.OrderEvent, position: int) -> None:
    """Apply one event (at notification `position`) to the batch's rows."""
    key = event.originator_id.hex
    batch.day(event.at)  # the calendar covers every day an event falls on
    if isinstance(event, ev.OrderPlaced):
        batch.orders[key] = placed_row(batch, event, key)
        batch.new_orders.add(key)
        batch.count(event.merchant_id, event.at, "orders_placed")
    order = batch.orders[key]
    order.update(last_event_at=event.at, last_position=position,
                 version=event.originator_version)
    if isinstance(event, ev.PlatformReported):
        _reported(batch, order, event, position)
    elif isinstance(event, ev.CaseEvent):
        _fold_case(batch, order, event, position)
    elif isinstance(event, ev.DeadlineChanged):
        _deadline_changed(batch, order, event, position)
    else:
        handler = ORDER_HANDLERS.get(type(event))
        if handler is not None:
            handler(batch, order, event, position)
    if isinstance(event, ev.DeadlineMissed):
        _missed(batch, order, event, position)
    order["awaiting"] = awaiting(order["order_status"], order["case_status"],
                                 order["case_status"] == "arbitrating" and _evidence_in(
                                     batch, order))


def _evidence_in(batch: Batch, o: Row) -> bool:
    """Whether the evidence of the order's arbitrating case is in (the platform rules)."""
    dispute = batch.disputes[(o["order_uuid"], o["latest_case"])]
    return dispute["evidence_at"] is not None


def placed_row(batch: Batch, e: ev.OrderPlaced, key: str) -> Row:
    status = FIRST_STATUS[Payment(e.payment)].value
    return {
        "order_id": e.order_id, "order_uuid": key, "payment": e.payment,
        "merchant_id": e.merchant_id, "user_id": e.user_id, "order_status": status,
        "goods_amount_fen": e.goods_amount, "postage_fen": e.postage,
        "currency": e.currency, "placed_at": e.at, "placed_business_day": batch.day(e.at),
        "delivered_at": None,
        "cancelled_by": None, "latest_case": None, "case_status": None, "case_kind": None,
        "awaiting": None, "next_deadline": e.payment_deadline,
        "next_deadline_rule": ORDER_DEADLINE_RULE[status] if e.payment_deadline else None,
        "next_deadline_original": None, "refunded_total_fen": 0, "violations": 0, "lapses": 0,
        "history_digest": ZERO.hex(), "history_broken": False,
    }


def _deadline(order: Row, at: datetime | None, rule: str | None) -> None:
    """A new pending deadline (or none) for the order."""
    order["next_deadline"], order["next_deadline_rule"] = (at, rule) if at else (None, None)
    order["next_deadline_original"] = None


def _status(status: str, **extra: str) -> Callable[..., None]:
    def handler(batch: Batch, o: Row, e: Any, position: int) -> None:
        o["order_status"] = status
        if o["case_status"] is None or o["case_status"] in _ENDED:  # else the case's runs
            _deadline(o, None, None)
        for column, attribute in extra.items():
            o[column] = getattr(e, attribute)
    return handler


def _cancelled(batch: Batch, o: Row, e: Any, position: int) -> None:
    o.update(order_status="cancelled", cancelled_by=e.actor)
    _deadline(o, None, None)
    if isinstance(e, ev.OrderCancelled):
        o["refunded_total_fen"] += e.refund_amount


ORDER_HANDLERS: dict[type[ev.OrderEvent], Callable[..., None]] = {
    ev.PaymentReceived: _status("paid"),
    ev.OrderConfirmed: _status("stocking"),
    ev.OrderShipped: _status("shipped"),
    ev.OrderDelivered: _status("delivered", delivered_at="at"),
    ev.OrderCancelled: _cancelled,
    ev.OrderAutoCancelled: _cancelled,
    ev.OrderCancelledByRefund: _cancelled,
}


def _missed(batch: Batch, o: Row, e: ev.DeadlineMissed, position: int) -> None:
    """The violation or lapse row of a missed deadline, and the compliance counter a
    violation adds to: its rule's row of the rules table."""
    timeout = TIMEOUTS[e.rule]
    case = e.case if isinstance(e, ev.CaseEvent) else None
    assert e.deadline is not None
    common = {"position": position, "order_id": o["order_id"],
              "merchant_id": o["merchant_id"], "case_no": case,
              "kind": None if case is None else batch.cases[(o["order_uuid"], case)]["kind"],
              "rule": timeout.missed, "deadline": e.deadline,
              "business_day": batch.day(e.deadline)}
    if timeout.is_violation:
        o["violations"] += 1
        batch.violations.append({**common, "consequence": timeout.consequence,
                                 "penalty": timeout.penalty(o["payment"])})
        if timeout.counter is not None:
            batch.count(o["merchant_id"], e.at, timeout.counter)
    else:
        o["lapses"] += 1
        batch.lapses.append({**common, "user_id": o["user_id"]})


def _deadline_changed(batch: Batch, o: Row, e: ev.DeadlineChanged, position: int) -> None:
    """D-1, D-2: the pending deadline moved (the original kept beside it), the case's
    count of changes, and one row of `deadline_changes`."""
    if o["next_deadline_original"] is None:
        o["next_deadline_original"] = o["next_deadline"]
    o["next_deadline"] = e.new_deadline
    shift = int((e.new_deadline - e.old_deadline).total_seconds())
    kind = None
    if e.case is not None:
        c = batch.cases[(o["order_uuid"], e.case)]
        kind = c["kind"]
        by = set(filter(None, (c["deadline_changed_by"] or "").split(","))) | {e.actor}
        c.update(deadline_changes=c["deadline_changes"] + 1, last_position=position,
                 deadline_changed_by=",".join(sorted(by)),
                 deadline_shift_seconds=c["deadline_shift_seconds"] + shift)
        if e.deadline_rule == rules.A_2:
            batch.disputes[(o["order_uuid"], e.case)].update(
                evidence_deadline=e.new_deadline, last_position=position)
    extended = isinstance(e, ev.DeadlineExtended)
    if extended:
        batch.count(o["merchant_id"], e.at, "deadlines_extended")
    batch.deadline_changes.append({
        "position": position, "order_id": o["order_id"], "merchant_id": o["merchant_id"],
        "case_no": e.case, "kind": kind, "change": rules.D_1 if extended else rules.D_2,
        "changed_by": e.actor, "deadline_rule": e.deadline_rule,
        "old_deadline": e.old_deadline, "new_deadline": e.new_deadline,
        "shift_seconds": shift, "reason": getattr(e, "reason", ""), "changed_at": e.at,
        "business_day": batch.day(e.at)})


def _reported(batch: Batch, o: Row, e: ev.PlatformReported, position: int) -> None:
    """A platform's account of a step the ledger had taken: counted as agreeing, or one
    row of `discrepancies` with both versions, counted in all and under its class, the
    most serious way it differs (SPEC section 10)."""
    if isinstance(e, ev.PlatformAgreed):
        batch.count(o["merchant_id"], e.at, "platform_agreed")
        return
    assert isinstance(e, ev.PlatformDiffered)
    batch.count(o["merchant_id"], e.at, "discrepancies")
    batch.count(o["merchant_id"], e.at, DISCREPANCY_COUNTERS[e.kind])
    kind = None if e.case is None else batch.cases[(o["order_uuid"], e.case)]["kind"]
    batch.discrepancies.append({
        "position": position, "order_id": o["order_id"], "merchant_id": o["merchant_id"],
        "case_no": e.case, "kind": kind,
        "source": e.source, "ref": e.ref, "fact": e.fact, "discrepancy": e.kind,
        "kinds": ",".join(e.kinds), "ledger": e.ledger, "platform": e.platform,
        "step_at": e.step_at, "tolerance_seconds": e.tolerance, "reported_at": e.at,
        "business_day": batch.day(e.at)})


def pending_rows(orders: Iterable[Row]) -> list[Row]:
    """The pending-deadline rows of these order rows."""
    return [{"order_id": o["order_id"], "merchant_id": o["merchant_id"],
             "case_no": (o["latest_case"] if o["next_deadline_rule"] in CASE_DEADLINE_RULES
                         else None),
             "rule": o["next_deadline_rule"], "deadline": o["next_deadline"],
             "original_deadline": o["next_deadline_original"],
             "awaiting": o["awaiting"]} for o in orders if o["next_deadline"] is not None]


def compliance_row(merchant: str, day: date, counts: Mapping[str, int]) -> Row:
    """A merchant's counters of one business day (those not in `counts` are 0)."""
    return {"merchant_id": merchant, "business_day": day, **dict.fromkeys(COUNTERS, 0),
            **counts}


WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def calendar_row(day: date) -> Row:
    """The `business_calendar` row of a business day: its year, quarter, month, ISO week
    (weeks from Monday; `iso_year` is the week's year, which differs from `year` in the
    days around New Year) and weekday."""
    iso = day.isocalendar()
    return {
        "business_day": day, "year": day.year, "quarter": (day.month - 1) // 3 + 1,
        "month": day.month, "year_month": f"{day:%Y-%m}",
        "month_start_business_day": day.replace(day=1), "day_of_month": day.day,
        "iso_year": iso.year, "iso_week": iso.week,
        "iso_year_week": f"{iso.year:04d}-W{iso.week:02d}",
        "week_start_business_day": date.fromordinal(day.toordinal() - iso.weekday + 1),
        "iso_weekday": iso.weekday, "weekday_name": WEEKDAYS[iso.weekday - 1],
        "is_weekend": iso.weekday >= 6,
    }


_OPENED: dict[type[ev.CaseEvent], tuple[CaseKind, str | None]] = {
    ev.ReturnRequested: (CaseKind.RETURN, None),
           ev.RefundRequested: (CaseKind.REFUND, "refund_cases_opened"),
           ev.ExchangeRequested: (CaseKind.EXCHANGE, "exchange_cases_opened")}


def _new_case(batch: Batch, o: Row, e: Any, kind: CaseKind) -> Row:
    return {
        "order_id": o["order_id"], "case_no": e.case, "order_uuid": o["order_uuid"],
        "merchant_id": o["merchant_id"], "user_id": o["user_id"], "payment": o["payment"],
        "kind": kind.value, "case_ref": e.case_ref,
        "before_shipment": getattr(e, "before_shipment", False),
        "amount_fen": e.amount, "amended_at": None, "reason": e.reason,
        "status": "requested", "requested_at": e.at,
        "requested_business_day": batch.day(e.at), "decided_at": None,
        "decided_business_day": None, "decided_by": None, "decision": None, "reject_reason": None,
        "response_seconds": None, "tracking_at": None, "carrier": None, "tracking_no": None,
        "received_at": None, "received_by": None, "refunded_at": None, "refunded_by": None,
        "compensated_at": None, "voucher_ref": None, "voucher_at": None,
        "receipt_rejected_at": None, "replacement_carrier": None,
        "replacement_tracking_no": None, "replacement_shipped_at": None,
        "replacement_delivered_at": None, "converted_to_refund": False,
        "deadline_changes": 0, "deadline_changed_by": None, "deadline_shift_seconds": 0,
        "voucher_late": None, "ended_at": None, "paid_to_user_fen": 0, "merchant_debt_fen": 0,
        "rejected_at": None, "appealed_at": None, "arbitration": None, "outcome": None,
        "blame": None,
    }


def _new_dispute(batch: Batch, c: Row, e: ev.Appealed, position: int) -> Row:
    return {
        "order_id": c["order_id"], "case_no": c["case_no"], "order_uuid": c["order_uuid"],
        "merchant_id": c["merchant_id"], "user_id": c["user_id"], "payment": c["payment"],
        "kind": c["kind"], "rejected": "goods" if c["receipt_rejected_at"] else "request",
        "rejected_at": c["rejected_at"], "reject_reason": c["reject_reason"],
        "appeal_reason": e.reason, "opened_at": e.at,
        "opened_business_day": batch.day(e.at),
        "evidence_deadline": e.evidence_deadline, "evidence_at": None, "evidence_count": 0,
        "evidence": None, "evidence_note": None, "status": "open", "withdrawn_at": None,
        "ruled_at": None,
        "ruled_business_day": None, "ruled_by": None, "outcome": None, "blame": None,
        "ruling_note": None, "lost": None, "hours_to_ruling": None, "resumed_as": None,
        "last_position": position,
    }


def _flow(c: Row) -> str:
    """The case's flow through the rules table (`aftersales.domain.states.Flow`)."""
    kind: str = c["kind"]
    if kind != "refund":
        return kind
    return "refund_before_shipment" if c["before_shipment"] else "refund_after_shipment"


_DECISIONS = (ev.MerchantApproved, ev.ReturnAutoApproved, ev.MerchantRejected,
              ev.RefundApproved, ev.RefundAutoApproved)


def _fold_case(batch: Batch, o: Row, e: ev.CaseEvent, position: int) -> None:
    ckey = (o["order_uuid"], e.case)
    opened = _OPENED.get(type(e))
    if opened is not None:
        kind, counter = opened
        batch.cases[ckey] = _new_case(batch, o, e, kind)
        batch.new_cases.add(ckey)
        batch.count(o["merchant_id"], e.at, "cases_opened")
        if counter is not None:
            batch.count(o["merchant_id"], e.at, counter)
    c = batch.cases[ckey]
    c["last_position"] = position
    merchant = o["merchant_id"]

    def move(status: str, deadline: datetime | None = None) -> None:
        c["status"] = status
        c["ended_at"] = e.at if status in _ENDED else None
        _deadline(o, deadline, CASE_DEADLINE_RULE[(_flow(c), status)] if deadline else None)

    def pay_user(amount: int) -> None:
        c["paid_to_user_fen"] += amount
        o["refunded_total_fen"] += amount

    if opened is not None:
        move("requested", e.response_deadline)  # type: ignore[attr-defined]
    elif isinstance(e, _DECISIONS):
        c.update(decided_at=e.at, decided_business_day=batch.day(e.at), decided_by=e.actor,
                 response_seconds=int((e.at - c["requested_at"]).total_seconds()))
        batch.medians.add((merchant, batch.day(e.at)))
        if isinstance(e, ev.MerchantRejected):
            c.update(decision="rejected", reject_reason=e.reason, rejected_at=e.at)
            move("rejected")
        else:
            c["decision"] = "approved"
            if isinstance(e, (ev.MerchantApproved, ev.ReturnAutoApproved)):
                move("approved", e.tracking_deadline)
        if not isinstance(e, ev.DeadlineMissed):
            batch.count(merchant, e.at, "answered_on_time")
    elif isinstance(e, ev.RequestAmended):
        c.update(amount_fen=e.new_amount, amended_at=e.at)
        if e.reason:
            c["reason"] = e.reason
    elif isinstance(e, ev.ReturnWithdrawn):
        move("withdrawn")
    elif isinstance(e, ev.TrackingSubmitted):
        c.update(tracking_at=e.at, carrier=e.carrier, tracking_no=e.tracking_no)
        move("in_transit", e.receipt_deadline)
    elif isinstance(e, ev.ReturnAutoClosed):
        move("closed")
    elif isinstance(e, ev.Received):
        c.update(received_at=e.at, received_by=e.actor)
        move("received", e.voucher_deadline or e.reship_deadline)
    elif isinstance(e, ev.ReceiptRejected):
        c.update(receipt_rejected_at=e.at, reject_reason=e.reason, rejected_at=e.at)
        batch.count(merchant, e.at, "receipts_rejected")
        move("rejected")
    elif isinstance(e, ev.PlatformRefunded):
        c.update(refunded_at=e.at, refunded_by=e.actor)
        pay_user(e.amount)
        move("refunded")
    elif isinstance(e, ev.RefundVoucherUploaded):
        c.update(voucher_ref=e.voucher_ref, voucher_at=e.at, voucher_late=e.settles_debt)
        if e.settles_debt:
            c["merchant_debt_fen"] = 0
        else:
            c.update(refunded_at=e.at, refunded_by=e.actor)
            pay_user(e.amount)
            move("refunded")
    elif isinstance(e, ev.AdvanceCompensationPaid):
        c["compensated_at"] = e.at
        pay_user(e.amount)
        move("compensated")
        batch.count(merchant, e.at, "compensations_paid")
        batch.count(merchant, e.at, "compensation_fen", e.amount)
    elif isinstance(e, ev.MerchantPenalized):
        c["merchant_debt_fen"] = e.debt
    elif isinstance(e, ev.ReplacementShipped):
        c.update(replacement_carrier=e.carrier, replacement_tracking_no=e.tracking_no,
                 replacement_shipped_at=e.at)
        move("replacement_shipped")
    elif isinstance(e, ev.ReplacementDelivered):
        c["replacement_delivered_at"] = e.at
        move("exchanged")
    elif isinstance(e, ev.ExchangeConvertedToRefund):
        c.update(converted_to_refund=True, merchant_debt_fen=e.debt)
    elif isinstance(e, (ev.Appealed, ev.EvidenceSubmitted, ev.Ruled, ev.AppealWithdrawn,
                        ev.BlameRecorded)):
        _dispute(batch, o, c, e, position, move)
    if o["latest_case"] is None or e.case >= o["latest_case"]:
        o["latest_case"], o["case_status"], o["case_kind"] = e.case, c["status"], c["kind"]


#: The `merchant_compliance` counter of each way a ruling counts for the merchant
#: (`dispute_result`).
_RESULT_COUNTERS = {"lost": "disputes_lost", "won": "disputes_won",
                    "unknown": "disputes_unknown_blame"}


def _dispute(batch: Batch, o: Row, c: Row, e: ev.CaseEvent, position: int,
             move: Callable[..., None]) -> None:
    """SPEC section 8: the appeal opens the case's `disputes` row; the evidence and the
    ruling fill it; a ruling resumes the case where the event says (A-4), and counts as
    the merchant's lost dispute if it blames the merchant (or both), as won if it is for
    the merchant without that blame, or apart while its blame is unknown; the blame
    recorded later moves it from unknown to lost or won, on the ruling's business day.  A
    withdrawn appeal leaves the case rejected and counts as neither."""
    ckey = (o["order_uuid"], e.case)
    merchant = o["merchant_id"]
    if isinstance(e, ev.Appealed):
        batch.disputes[ckey] = _new_dispute(batch, c, e, position)
        batch.new_disputes.add(ckey)
        c.update(appealed_at=e.at, arbitration="open")
        batch.count(merchant, e.at, "disputes_opened")
        move("arbitrating", e.evidence_deadline)
        return
    d = batch.disputes[ckey]
    d["last_position"] = position
    if isinstance(e, ev.EvidenceSubmitted):
        d.update(evidence_at=e.at, evidence_count=len(e.evidence),
                 evidence=json.dumps(e.evidence, ensure_ascii=False), evidence_note=e.note)
        move("arbitrating")
        return
    if isinstance(e, ev.AppealWithdrawn):
        d.update(status="withdrawn", withdrawn_at=e.at)
        c["arbitration"] = "withdrawn"
        move("rejected")
        return
    if isinstance(e, ev.BlameRecorded):
        result = dispute_result(d["outcome"], e.blame)
        d.update(blame=e.blame, lost=result == "lost")
        c["blame"] = e.blame
        batch.count(merchant, e.ruled_at, _RESULT_COUNTERS["unknown"], -1)
        if result is not None:
            batch.count(merchant, e.ruled_at, _RESULT_COUNTERS[result])
        return
    assert isinstance(e, ev.Ruled)
    result = dispute_result(e.outcome, e.blame)
    hours = (e.at - d["opened_at"]).total_seconds() / 3600
    d.update(status="ruled", ruled_at=e.at, ruled_business_day=batch.day(e.at),
             ruled_by=e.actor,
             outcome=e.outcome, blame=e.blame, ruling_note=e.note,
             lost=None if result == "unknown" else result == "lost",
             hours_to_ruling=hours, resumed_as=e.resumes)
    c.update(arbitration="ruled", outcome=e.outcome, blame=e.blame)
    if result is not None:
        batch.count(merchant, e.at, _RESULT_COUNTERS[result])
    if e.resumes == "received" or (e.resumes == "refunded" and c["receipt_rejected_at"]):
        c.update(received_at=e.at, received_by=e.actor)  # the refused goods count as received
    if e.resumes != "refunded":  # else the platform's refund follows
        move(e.resumes, e.next_deadline)
    else:
        _deadline(o, None, None)
