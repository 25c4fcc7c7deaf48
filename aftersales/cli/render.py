"""The status document and the audit trail as text for a person at a terminal (the data
is `aftersales.application.status`'s; `--json` prints that as it is): money in yuan,
times in the business zone, control characters escaped, lines fitted to the terminal
(`aftersales.cli.human`, `aftersales.cli.fitting`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, tzinfo
from typing import Any

from aftersales.application.status import history_entry
from aftersales.cli.fitting import words, wrap
from aftersales.cli.human import (
    ACCOUNT_FIELDS,
    CURRENCY,
    MONEY_FIELDS,
    local,
    output_width,
    printable,
    readable,
    yuan,
)
from aftersales.domain.events import OrderEvent

#: Where a status line wrapped to the terminal goes on (under the text of its first line).
STATUS_INDENT = 4
#: Where an event wrapped to the terminal goes on: under its name, so that no part of its
#: details can pass for an event's line (those start with the version and the time).
HISTORY_INDENT = 31


def render_status(doc: dict[str, Any], zone: tzinfo, width: int | None = None) -> str:
    """The status document for a person, each line fitted to `width` (None: the
    terminal's, `output_width()`; 0: no limit)."""
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
    limit = output_width() if width is None else width
    return "\n".join(part for line in map(printable, lines) for part in wrap(
        words(line.lstrip(" "), " " * (len(line) - len(line.lstrip(" ")))), limit,
        STATUS_INDENT))


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


def render_history(events: Sequence[OrderEvent], zone: tzinfo,
                   width: int | None = None) -> str:
    """The audit trail for a person: one line per event (wrapped to `width`, None: the
    terminal's, 0: no limit; what goes on is indented under the event's name)."""
    out: list[str] = []
    currency = getattr(events[0], "currency", CURRENCY) if events else CURRENCY
    limit = output_width() if width is None else width
    for event in events:
        e = history_entry(event)
        shown = [f"{k}={detail(event, k, v, zone, currency)}"
                 for k, v in e["details"].items() if v not in (None, "")]
        line = [("", f"{e['version']:>3} {local(e['at'], zone)}  {e['event']:<24} by "
                     f"{e['actor']:<8}"),
                (" ", f"recorded {local(e['recorded_at'], zone)}")]
        room = (limit or 0) - HISTORY_INDENT
        for i, text in enumerate(shown):
            text += "," if i < len(shown) - 1 else ""
            sep = "  " if i == 0 else " "
            line += words(text, sep) if len(text) > room > 0 else [(sep, text)]
        if e["rule"]:
            line.append(("  ", f"[{e['rule']}" + (
                f", deadline {local(e['deadline'], zone)}]" if e["deadline"] else "]")))
        out += wrap(line, limit, HISTORY_INDENT)
    return "\n".join(out)


def detail(event: OrderEvent, name: str, value: Any, zone: tzinfo, currency: str) -> str:
    """A field of an event, as a person reads it (its value as `history_entry` has it),
    on one line: its control characters escaped (`printable`)."""
    if name in MONEY_FIELDS and isinstance(value, int):
        return yuan(value, currency)
    if isinstance(getattr(event, name, None), datetime):
        return local(value, zone)
    if name in ACCOUNT_FIELDS and isinstance(value, str):
        return printable(readable(value, zone, currency))
    return printable(str(value))
