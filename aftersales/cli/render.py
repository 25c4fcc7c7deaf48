"""The status document and the audit trail as text for a person at a terminal (the data
is `aftersales.application.status`'s; `--json` prints that as it is)."""

from __future__ import annotations

from typing import Any


def render_status(doc: dict[str, Any]) -> str:
    """The status document for a person."""
    lines = [
        f"order {doc['order_id']} ({doc['payment']}, merchant {doc['merchant_id']}, "
        f"user {doc['user_id']}): {doc['order_status']}"
        + (f" by {doc['cancelled_by']}" if doc.get("cancelled_by") else ""),
        f"  goods {doc['goods_amount']} + postage {doc['postage']} {doc['currency']}; "
        f"refunded {doc['refunded_total']}",
    ]
    ret = doc["return"]
    if ret:
        lines.append(
            f"  {ret['kind']} case {ret['case']}: {ret['status']}, amount {ret['amount']}"
            + (f", awaiting {ret['awaiting']}" if ret["awaiting"] else "")
            + (f" until {ret['deadline']}" if ret["deadline"] else "")
        )
        dispute = ret.get("arbitration")
        if dispute:
            lines.append(f"  dispute opened {dispute['opened_at']}: {_dispute(dispute)}")
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


def _dispute(d: dict[str, Any]) -> str:
    if d["status"] == "ruled":
        return (f"ruled for the {d['outcome']} (blame {d['blame']}) by {d['ruled_by']} at "
                f"{d['ruled_at']}")
    if d["evidence_at"]:
        return f"open, evidence in at {d['evidence_at']}, awaiting the platform's ruling"
    return f"open, the merchant's evidence due by {d['evidence_deadline']}"


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
