"""The commands that read one order from the ledger: `status` (its state, now or as it
stood at a business time) and `history` (its audit trail)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from aftersales.application.clock import wall_clock
from aftersales.application.status import history_entry, status_document
from aftersales.cli.edge import Edge, fail, read
from aftersales.cli.render import render_history, render_status
from aftersales.storage.config import redacted

if TYPE_CHECKING:
    from aftersales.application.ledger import Ledger


def cmd_status(ledger: Ledger, edge: Edge) -> int:
    args = edge.args
    if args.as_of is not None:
        order = read(ledger, edge, lambda: ledger.order_as_of(args.order_id, args.as_of),
                     f"reading order {args.order_id}")
        when = f" at {args.as_of.isoformat()}"
    else:
        order = read(ledger, edge, lambda: ledger.get_order(args.order_id),
                     f"reading order {args.order_id}")
        when = ""
    if order is None:
        return fail(f"order {args.order_id} was not placed{when}", 1)
    doc = status_document(order)
    print(json.dumps(doc, ensure_ascii=False) if args.format == "json"
          else render_status(doc, edge.zone))
    return 0


def cmd_history(ledger: Ledger, edge: Edge) -> int:
    args = edge.args
    events = read(ledger, edge, lambda: list(ledger.order_events(args.order_id)),
                  f"reading order {args.order_id}")
    if not events:
        return fail(f"order {args.order_id} was not placed", 1)
    fmt = args.format
    if fmt == "html":
        from aftersales.cli.pages import timeline_page  # Jinja2: loaded for a page only
        print(timeline_page(events, edge.zone, wall_clock(), redacted(ledger.url)))
    else:
        print(json.dumps([history_entry(e) for e in events], ensure_ascii=False, indent=1)
              if fmt == "json" else render_history(events, edge.zone))
    return 0
