"""The status document and the audit trail as text for a person at a terminal (the data
is `aftersales.application.status`'s; `--json` prints that as it is): money in yuan,
times in the business zone (`aftersales.cli.human`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, tzinfo
from typing import Any

from aftersales.application.status import history_entry
from aftersales.cli.human import CURRENCY, MONEY_FIELDS, local, yuan
from aftersales.domain.events import OrderEvent


def render_status(doc: dict[str, Any], zone: tzinfo) -> str:
    """The status document for a person."""
    money = doc["currency"]
    lines = [
        f"order {doc['order_id']} ({doc['payment']}, merchant {doc['merchant_id']}, "
        f"user {doc['user_id']}): {doc['order_status']}"
        + (f" by {doc['cancelled_by']}" if doc.get("cancelled_by") else ""),
        f"  goods {yuan(doc['goods_amount'], money)} + postage "
        f"{yuan(doc['postage'], money)}; refunded {yuan(doc['refunded_total'], money)}",
    ]
    ret = doc["return"]
    if ret:
        lines.append(
            f"  {ret['kind']} case {ret['case']}"
            + (f" (platform ref {ret['case_ref']})" if ret.get("case_ref") else "")
            + f": {ret['status']}, amount "
            f"{yuan(ret['amount'], money)}"
            + (f", awaiting {ret['awaiting']}" if ret["awaiting"] else "")
            + (f" until {local(ret['deadline'], zone)}" if ret["deadline"] else "")
        )
        dispute = ret.get("arbitration")
        if dispute:
            lines.append(f"  dispute opened {local(dispute['opened_at'], zone)}: "
                         f"{_dispute(dispute, zone)}")
    elif doc["next_deadline"]:
        nd = doc["next_deadline"]
        lines.append(f"  next deadline: {nd['rule']} at {local(nd['deadline'], zone)}")
    for v in doc["violations"]:
        lines.append(f"  violation {v['rule']} (case {v['case']}) at "
                     f"{local(v['deadline'], zone)}: {v['consequence']}")
    for x in doc["lapses"]:
        case = f" (case {x['case']})" if x["case"] else ""
        lines.append(f"  user lapse {x['rule']}{case} at {local(x['deadline'], zone)}")
    return "\n".join(lines)


def _dispute(d: dict[str, Any], zone: tzinfo) -> str:
    if d["status"] == "withdrawn":
        return "withdrawn by the user: the rejection stands"
    if d["status"] == "ruled":
        return (f"ruled for the {d['outcome']} (blame {d['blame']}) by {d['ruled_by']} at "
                f"{local(d['ruled_at'], zone)}")
    if d["evidence_at"]:
        return (f"open, evidence in at {local(d['evidence_at'], zone)}, awaiting the "
                "platform's ruling")
    return f"open, the merchant's evidence due by {local(d['evidence_deadline'], zone)}"


def render_history(events: Sequence[OrderEvent], zone: tzinfo) -> str:
    """The audit trail for a person: one line per event."""
    out = []
    currency = getattr(events[0], "currency", CURRENCY) if events else CURRENCY
    for event in events:
        e = history_entry(event)
        why = (f"  [{e['rule']}" + (f", deadline {local(e['deadline'], zone)}]"
                                    if e["deadline"] else "]"))
        shown = ", ".join(f"{k}={detail(event, k, v, zone, currency)}"
                           for k, v in e["details"].items() if v not in (None, ""))
        out.append(
            f"{e['version']:>3} {local(e['at'], zone)}  {e['event']:<24} by "
            f"{e['actor']:<8} recorded {local(e['recorded_at'], zone)}"
            + (f"  {shown}" if shown else "") + (why if e["rule"] else "")
        )
    return "\n".join(out)


def detail(event: OrderEvent, name: str, value: Any, zone: tzinfo, currency: str) -> str:
    """A field of an event, as a person reads it (its value as `history_entry` has it)."""
    if name in MONEY_FIELDS and isinstance(value, int):
        return yuan(value, currency)
    if isinstance(getattr(event, name, None), datetime):
        return local(value, zone)
    return str(value)
