"""The status document and the audit trail of an order (SPEC section 6), as plain data."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from typing import Any

from aftersales.domain.cases import Arbitration
from aftersales.domain.events import OrderEvent
from aftersales.domain.order import Order

_BASE_FIELDS = {"originator_id", "originator_version", "timestamp", "originator_topic"}


def iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def status_document(order: Order) -> dict[str, Any]:
    """The contract's status document; extra fields follow the contract's."""
    case = order.latest_case
    pending = order.pending_deadline
    return {
        "order_id": order.order_id,
        "payment": order.payment.value,
        "merchant_id": order.merchant_id,
        "user_id": order.user_id,
        "order_status": order.status.value,
        "return": None if case is None else {
            "case": case.number,
            "status": case.status.value,
            "deadline": iso(case.deadline.at) if case.is_open and case.deadline else None,
            "awaiting": case.awaiting,
            "amount": case.amount,
            "kind": case.kind.value,
            "case_ref": case.ref,
            "carrier": case.carrier,
            "tracking_no": case.tracking_no,
            "replacement_carrier": case.replacement_carrier,
            "replacement_tracking_no": case.replacement_tracking_no,
            "arbitration": _arbitration(case.arbitration),
        },
        "refunded_total": order.refunded_total,
        "violations": [
            {"rule": v.rule, "case": v.case, "deadline": iso(v.deadline),
             "consequence": v.consequence, "penalty": v.penalty}
            for v in order.violations
        ],
        "lapses": [
            {"rule": x.rule, "case": x.case, "deadline": iso(x.deadline)} for x in order.lapses
        ],
        "goods_amount": order.goods_amount,
        "postage": order.postage,
        "currency": order.currency,
        "cancelled_by": order.cancelled_by,
        "cases": len(order.cases),
        "next_deadline": None if pending is None else {
            "rule": pending.rule, "case": pending.case, "deadline": iso(pending.at)},
        "last_event_at": iso(order.last_at),
        "version": order.version,
    }


def _arbitration(dispute: Arbitration | None) -> dict[str, Any] | None:
    """The case's dispute (SPEC section 8), or None if it was never appealed."""
    if dispute is None:
        return None
    return {
        "status": dispute.status,
        "outcome": dispute.outcome,
        "blame": dispute.blame,
        "evidence_deadline": iso(dispute.evidence_deadline),
        "opened_at": iso(dispute.opened_at),
        "evidence": list(dispute.evidence),
        "evidence_at": iso(dispute.evidence_at),
        "ruled_at": iso(dispute.ruled_at),
        "ruled_by": dispute.ruled_by,
    }


def history_entry(event: OrderEvent) -> dict[str, Any]:
    """One event of the audit trail: what, who, business time, recorded time, and why."""
    details = {
        f.name: _plain(getattr(event, f.name))
        for f in fields(event)
        if f.name not in _BASE_FIELDS | {"at", "actor", "command_id"}
    }
    return {
        "version": event.originator_version,
        "event": type(event).__name__,
        "actor": event.actor,
        "at": iso(event.at),
        "recorded_at": iso(event.timestamp),
        "command_id": event.command_id,
        "rule": details.pop("rule", None),
        "deadline": details.pop("deadline", None),
        "details": details,
    }


def _plain(value: Any) -> Any:
    return iso(value) if isinstance(value, datetime) else value
