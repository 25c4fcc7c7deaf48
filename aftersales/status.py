"""The status document and the audit trail of an order (SPEC section 6), as plain data."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from typing import Any

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
        "cases": len(order.cases),
        "next_deadline": None if pending is None else {
            "rule": pending.rule, "case": pending.case, "deadline": iso(pending.at)},
        "last_event_at": iso(order.last_at),
        "version": order.version,
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


def render_status(doc: dict[str, Any]) -> str:
    """The status document for a person."""
    lines = [
        f"order {doc['order_id']} ({doc['payment']}, merchant {doc['merchant_id']}, "
        f"user {doc['user_id']}): {doc['order_status']}",
        f"  goods {doc['goods_amount']} + postage {doc['postage']} {doc['currency']}; "
        f"refunded {doc['refunded_total']}",
    ]
    ret = doc["return"]
    if ret:
        lines.append(
            f"  return case {ret['case']}: {ret['status']}, amount {ret['amount']}"
            + (f", awaiting {ret['awaiting']}" if ret["awaiting"] else "")
            + (f" until {ret['deadline']}" if ret["deadline"] else "")
        )
    elif doc["next_deadline"]:
        nd = doc["next_deadline"]
        lines.append(f"  next deadline: {nd['rule']} at {nd['deadline']}")
    for v in doc["violations"]:
        lines.append(f"  violation {v['rule']} (case {v['case']}) at {v['deadline']}: "
                     f"{v['consequence']}")
    for x in doc["lapses"]:
        case = f" (case {x['case']})" if x["case"] else ""
        lines.append(f"  user lapse {x['rule']}{case} at {x['deadline']}")
    return "\n".join(lines)


def render_history(entries: list[dict[str, Any]]) -> str:
    """The audit trail for a person: one line per event."""
    out = []
    for e in entries:
        why = f"  [{e['rule']}" + (f", deadline {e['deadline']}]" if e["deadline"] else "]")
        detail = ", ".join(f"{k}={v}" for k, v in e["details"].items() if v not in (None, ""))
        out.append(
            f"{e['version']:>3} {e['at']}  {e['event']:<24} by {e['actor']:<8}"
            f" recorded {e['recorded_at']}" + (f"  {detail}" if detail else "")
            + (why if e["rule"] else "")
        )
    return "\n".join(out)
