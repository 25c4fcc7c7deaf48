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
from aftersales.cli.parser import LAPSE_RULES, VIOLATION_RULES
from aftersales.cli.projecting import broken_in_read_models, open_views, project
from aftersales.cli.tables import EXCEL_CSV, emit, render
from aftersales.storage.config import redacted
from projections.database import ReadModels
from projections.queries import (
    DISCREPANCY_COLUMNS,
    DISPUTE_COLUMNS,
    LAPSE_COLUMNS,
    SCORECARD,
    business_days,
    list_discrepancies,
    list_disputes,
    list_lapses,
    list_violations,
    scorecard_table,
)
from projections.reports import Scorecard

T = TypeVar("T")

VIOLATION_COLUMNS = ("deadline", "rule", "merchant_id", "order_id", "case_no",
                     "consequence", "penalty")


def _listing(ledger: Ledger, edge: Edge, ask: Callable[[ReadModels], list[dict[str, Any]]],
             what: str, columns: Sequence[str]) -> int:
    """A query command: the read models brought up to date, asked, printed in the
    chosen format; exit 4 if they hold orders with a broken history."""
    fmt = output_format(edge)
    project(ledger, edge, closing_line=False)
    rows = read(ledger, edge, lambda: _query(ledger, edge, ask), f"reading the {what}")
    emit(render(rows, fmt, columns, edge.zone), fmt)
    return broken_in_read_models(ledger, edge)


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
            print(textwrap.fill(f"{_window(a.since, a.until, edge)}.  {card.note}", 88)
                  + "\n")
        table = a.format == "table"
        fmt = output_format(edge)
        emit(render(card.rows, fmt, scorecard_table(card.total) if table else SCORECARD,
                    edge.zone, currency=card.currency, total=card.total if table else None),
             fmt)
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
        currency=card.currency)


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
