"""The questions the read models answer: `violations`, `lapses`, `discrepancies` and
`disputes` (rows as a table, JSON or CSV), and `report`, the merchant scorecard (or its
page)."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Sequence
from contextlib import closing
from datetime import datetime, timedelta
from typing import Any, TypeVar

from aftersales.application.clock import wall_clock
from aftersales.application.ledger import Ledger
from aftersales.cli.edge import Edge, read
from aftersales.cli.human import CURRENCY, output_width
from aftersales.cli.projecting import broken_in_read_models, open_views, project
from aftersales.cli.tables import EXCEL_CSV, emit, render
from aftersales.domain.steps import LAPSE_RULES, VIOLATION_RULES
from aftersales.storage.config import redacted
from projections.database import ReadModels
from projections.queries import (
    DISCREPANCY_COLUMNS,
    DISPUTE_COLUMNS,
    LAPSE_COLUMNS,
    SCORECARD,
    business_days,
    currencies,
    list_discrepancies,
    list_disputes,
    list_lapses,
    list_violations,
    scorecard_table,
)
from projections.reports import Scorecard

T = TypeVar("T")

#: The widest a paragraph of text is printed (narrower on a narrower terminal).
PARAGRAPH = 88

VIOLATION_COLUMNS = ("deadline", "rule", "merchant_id", "order_id", "case_no",
                     "consequence", "penalty")
#: The columns a table narrower than all of them keeps first (`aftersales.cli.fitting`):
#: which order, what happened, then when; the others follow while they fit.
KEEP = {
    "violations": ("order_id", "rule", "deadline", "merchant_id", "consequence"),
    "lapses": ("order_id", "rule", "deadline", "user_id", "merchant_id"),
    "disputes": ("order_id", "merchant_id", "status", "outcome", "blame", "lost",
                 "opened_at", "kind", "case_no", "ruled_by", "hours_to_ruling"),
    "discrepancies": ("order_id", "discrepancy", "ledger", "platform", "reported_at",
                      "merchant_id", "case_no", "fact"),
    "scorecard": ("merchant_id", "orders_placed", "cases_opened", "violations",
                  "compensation_fen", "disputes_lost", "dispute_loss_per_1000_orders",
                  "median_response_hours", "answered_on_time", "auto_approved",
                  "receipts_auto_confirmed", "refunds_auto_approved", "reships_late",
                  "vouchers_late", "evidence_missed", "discrepancies"),
}


def _listing(ledger: Ledger, edge: Edge, ask: Callable[[ReadModels], list[dict[str, Any]]],
             what: str, columns: Sequence[str]) -> int:
    """A query command: the read models brought up to date, asked, printed in the
    chosen format; exit 4 if they hold orders with a broken history."""
    fmt = output_format(edge)
    project(ledger, edge, closing_line=False)
    rows, money = read(ledger, edge, lambda: _query(ledger, edge, lambda views: (
        ask(views), _currency(views) if what == "discrepancies" else CURRENCY)),
        f"reading the {what}")
    emit(render(rows, fmt, columns, edge.zone, currency=money, keep=KEEP[what]), fmt)
    return broken_in_read_models(ledger, edge)


def _currency(views: ReadModels) -> str:
    """The currency a discrepancy's amounts are read in: the orders' one, or none named
    when they are in several."""
    found = currencies(views)
    return found[0] if len(found) == 1 else ""


def output_format(edge: Edge) -> str:
    """The format asked for: `--format csv --excel` is the spreadsheet's CSV."""
    return EXCEL_CSV if edge.args.excel else str(edge.args.format)


def cmd_violations(ledger: Ledger, edge: Edge) -> int:
    a = edge.args
    return _listing(ledger, edge, lambda views: list_violations(
        views, a.merchant, a.rule, a.since, a.until), "violations", VIOLATION_COLUMNS)


def cmd_lapses(ledger: Ledger, edge: Edge) -> int:
    a = edge.args
    return _listing(ledger, edge, lambda views: list_lapses(
        views, a.merchant, a.rule, a.since, a.until, a.user), "lapses", LAPSE_COLUMNS)


def cmd_discrepancies(ledger: Ledger, edge: Edge) -> int:
    a = edge.args
    return _listing(ledger, edge, lambda views: list_discrepancies(
        views, a.merchant, a.kind, a.since, a.until), "discrepancies", DISCREPANCY_COLUMNS)


def cmd_disputes(ledger: Ledger, edge: Edge) -> int:
    a = edge.args
    return _listing(ledger, edge, lambda views: list_disputes(
        views, a.merchant, a.since, a.until, a.status, a.outcome, a.blame,
        True if a.lost else None), "disputes", DISPUTE_COLUMNS)


def cmd_report(ledger: Ledger, edge: Edge) -> int:
    a = edge.args
    project(ledger, edge, closing_line=False)
    card = read(ledger, edge, lambda: _query(ledger, edge, lambda views: Scorecard.read(
        views, a.since, a.until, charts=a.format == "html")), "reading the scorecard")
    warn_currencies(card)
    if a.format == "html":
        print(scorecard_html(ledger, edge, card, a.since, a.until))
    else:
        if a.format == "table":
            print(textwrap.fill(f"{_window(a.since, a.until, edge)}.  {card.note}",
                                min(PARAGRAPH, output_width() or PARAGRAPH)) + "\n")
        table = a.format == "table"
        fmt = output_format(edge)
        emit(render(card.rows, fmt, scorecard_table(card.total) if table else SCORECARD,
                    edge.zone, currency=card.currency, total=card.total if table else None,
                    keep=KEEP["scorecard"], every="--format html, csv or json"), fmt)
    return broken_in_read_models(ledger, edge)


def warn_currencies(card: Scorecard) -> None:
    if len(card.currencies) > 1:
        print(f"aftersales: warning: the orders are in several currencies "
              f"({', '.join(card.currencies)}): the money columns sum fen of them all; split "
              "them by order_status.currency in SQL (docs/reporting.md)", file=sys.stderr)


def scorecard_html(ledger: Ledger, edge: Edge, card: Scorecard,
                   since: datetime | None = None, until: datetime | None = None) -> str:
    from aftersales.cli.pages import scorecard_page  # Jinja2: loaded for a page only
    found, lapsed, months = card.charts or ([], [], [])
    return scorecard_page(
        rows=card.rows, total=card.total, columns=SCORECARD, violations=found,
        lapses=lapsed, months=months, violation_rules=VIOLATION_RULES,
        lapse_rules=LAPSE_RULES, window=_window(since, until, edge), caption=card.note,
        zone=edge.zone, generated=wall_clock(), source=redacted(ledger.url),
        currency=card.currency, days=card.days)


def _window(since: datetime | None, until: datetime | None, edge: Edge) -> str:
    """Which business days a report covers, in words."""
    first, end = business_days(edge.zone, since, until)
    days = ("every business day recorded" if first is None and end is None else
            f"the business days from {first or 'the first recorded'} to "
            f"{end - timedelta(days=1) if end else 'the last recorded'}")
    return f"Scorecard of {days} ({edge.tz_name})"


def _query(ledger: Ledger, edge: Edge, ask: Callable[[ReadModels], T]) -> T:
    with closing(open_views(ledger, edge)) as views:
        return ask(views)
