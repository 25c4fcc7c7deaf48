"""The questions the read models answer: `violations`, `lapses`, `discrepancies` and
`disputes` (rows as a table, JSON or CSV), and `report`, the merchant scorecard (or its
page)."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from aftersales.application.clock import wall_clock
from aftersales.application.ledger import Ledger
from aftersales.cli.edge import Edge, read
from aftersales.cli.human import CURRENCY
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
    SCORECARD_CAPTION,
    business_days,
    compensation_per_month,
    currencies,
    list_discrepancies,
    list_disputes,
    list_lapses,
    list_violations,
    per_day,
    scorecard_table,
    scorecard_with_total,
)

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


@dataclass
class Scorecard:
    """What the scorecard shows, read at once: its rows and totals, the currency of its
    money, and (for the page) the charts' figures."""

    rows: list[dict[str, Any]]
    total: dict[str, Any]
    currency: str
    #: violations and lapses per day and rule, compensation per month (for the page)
    charts: tuple[list[dict[str, Any]], ...] = ()

    @property
    def note(self) -> str:
        return f"{SCORECARD_CAPTION}  Money in {self.currency}; response times in hours."

    @classmethod
    def read(cls, views: ReadModels, since: datetime | None, until: datetime | None,
             charts: bool) -> Scorecard:
        rows, total = scorecard_with_total(views, since, until)
        found = currencies(views)
        if len(found) > 1:
            print(f"aftersales: warning: the orders are in several currencies "
                  f"({', '.join(found)}): the money columns sum fen of them all; split them "
                  "by order_status.currency in SQL (docs/reporting.md)", file=sys.stderr)
        card = cls(rows, total, "+".join(found) or CURRENCY)
        if charts:
            card.charts = (per_day(views, "violations", since, until),
                           per_day(views, "lapses", since, until),
                           compensation_per_month(views, since, until))
        return card


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
