"""The scorecard page (`aftersales report --format html`): the business days it counts,
tiles of the totals, violations and lapses per rule per day, the worst merchants,
dispute-loss rates, the platform's compensation per month, and the scorecard table.

The table has every column of `report`, grouped under headings and headed in words; each
heading keeps the column's name (`title`, and the key under the table) so that a reader
who knows the SQL can find it.  It scrolls inside its own frame, the merchant's column
and the totals row staying in view."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, datetime, tzinfo
from typing import Any

from aftersales.cli.charts import (
    PALETTE,
    horizontal_bars,
    per_rule_per_day,
    stacked_columns,
)
from aftersales.cli.human import CURRENCY, cell, heading, is_number, yuan
from aftersales.cli.page_text import text_width
from aftersales.cli.templating import generated_at, render
from projections.fold import DISCREPANCY_COUNTERS

#: The scorecard table's groups of columns, in the page's order: each column's heading in
#: words and what it counts (the key under the table; docs/reporting.md has the same).
GROUPS: tuple[tuple[str, tuple[tuple[str, str, str], ...]], ...] = (
    ("", (("merchant_id", "merchant", "the merchant's id (the totals row: (total))"),)),
    ("violations: merchant deadlines missed", (
        ("violations", "all", "every violation, of every rule below"),
        ("auto_approved", "request not answered",
         "RETURN_RESPONSE_48H: return and exchange requests the system approved at 48 h"),
        ("receipts_auto_confirmed", "receipt not confirmed",
         "RECEIPT_CONFIRM_7D: returned goods whose receipt the system confirmed"),
        ("vouchers_late", "voucher late",
         "COD_REFUND_VOUCHER_48H: cash-on-delivery refund vouchers not uploaded in 48 h"),
        ("refunds_auto_approved", "refund not answered",
         "REFUND_RESPONSE_48H: refund-only requests the system granted at 48 h"),
        ("reships_late", "replacement late",
         "EXCHANGE_RESHIP_48H: exchanges whose replacement was not shipped in 48 h"),
        ("evidence_missed", "evidence missed",
         "ARBITRATION_EVIDENCE_48H: disputes whose evidence was not sent in 48 h"))),
    ("orders and cases", (
        ("orders_placed", "orders placed", "orders placed with the merchant"),
        ("cases_opened", "cases opened", "after-sale cases asked for, of every kind"),
        ("refund_cases_opened", "refund-only", "of those, refund-only cases"),
        ("exchange_cases_opened", "exchanges", "of those, exchanges"),
        ("answered_on_time", "answered in time",
         "requests the merchant approved or rejected in time"),
        ("median_response_hours", "median answer (hours)",
         "the median time from a request to its decision (the merchant's or the "
         "system's), of the cases decided in the window"),
        ("receipts_rejected", "returns refused",
         "returned goods the merchant refused (R-6)"),
        ("deadlines_extended", "receipt deadlines extended",
         "receipt deadlines the merchant extended (D-1)"))),
    ("advance compensation", (
        ("compensations_paid", "paid", "advance compensations the platform paid"),
        ("compensation_fen", "amount", "their total"))),
    ("disputes", (
        ("disputes_opened", "opened", "appeals of the merchant's rejections (A-1)"),
        ("disputes_lost", "lost", "rulings blaming the merchant (or both)"),
        ("disputes_won", "won", "rulings for the merchant, with another blame"),
        ("disputes_unknown_blame", "blame unknown",
         "rulings whose blame is not recorded yet: neither lost nor won"),
        ("dispute_loss_per_1000_orders", "lost per 1,000 orders",
         "disputes lost per 1,000 orders placed, over the window"))),
    ("platform's accounts", (
        ("platform_agreed", "agreeing", "a platform feed's accounts agreeing with the "
         "ledger"),
        ("discrepancies", "differing", "its accounts differing from the ledger"))),
    ("discrepancies by class", tuple(
        (column, kind, f"differing accounts whose most serious difference is the {kind}")
        for kind, column in DISCREPANCY_COUNTERS.items())),
)
_KNOWN = {column: (group, words, meaning) for group, columns in GROUPS
          for column, words, meaning in columns}


def page_columns(columns: Sequence[str]) -> list[str]:
    """The columns in the page's order: by group, then any other at the end."""
    known = [c for _, group in GROUPS for c, _, _ in group if c in columns]
    return known + [c for c in columns if c not in _KNOWN]


def table_head(columns: Sequence[str], currency: str = CURRENCY
               ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The table's two heading rows, the columns in the page's order (`page_columns`):
    the groups (a column of no group spans both rows), and under them each column's
    heading in words; `title` says the column's name (and what it counts), `column`
    names it for the page's markup."""
    top: list[dict[str, Any]] = []
    sub: list[dict[str, Any]] = []
    for column in page_columns(columns):
        group, words, meaning = _KNOWN.get(column, ("", heading(column, currency), ""))
        if column.endswith("_fen"):
            words = f"{words} ({currency})"
        title = f"{column}: {meaning}" if meaning else column
        if not group:
            top.append({"text": words, "column": column, "span": 1, "rows": 2,
                        "group": None, "title": title})
            continue
        if top and top[-1]["group"] == group:
            top[-1]["span"] += 1
        else:
            top.append({"text": group, "column": None, "span": 1, "rows": 1,
                        "group": group, "title": group})
        sub.append({"text": words, "column": column, "title": title})
    return top, sub


def column_key(columns: Sequence[str], currency: str = CURRENCY
               ) -> list[tuple[str, str, str, str]]:
    """Each column's group, heading and name, and what it counts: the key under the table."""
    found = []
    for column in columns:
        group, words, meaning = _KNOWN.get(column, ("", heading(column, currency), ""))
        found.append((group, f"{words} ({currency})" if column.endswith("_fen") else words,
                      column, meaning))
    return found


def scorecard_page(*, rows: list[dict[str, Any]], total: dict[str, Any],
                   columns: Sequence[str], violations: list[dict[str, Any]],
                   lapses: list[dict[str, Any]], months: list[dict[str, Any]],
                   violation_rules: Sequence[str], lapse_rules: Sequence[str],
                   window: str, caption: str, zone: tzinfo, generated: datetime,
                   source: str, currency: str = CURRENCY,
                   days: tuple[date | None, date | None] | None = None) -> str:
    """The scorecard page (see the module's docstring).  `days`: the first and the last
    business day the table counts (`projections.queries.recorded_days`); without them
    the page states the days its charts span."""
    worst = [r for r in rows if r["violations"]][:10]
    rated = sorted((r for r in rows if r["dispute_loss_per_1000_orders"]),
                   key=lambda r: (-r["dispute_loss_per_1000_orders"], r["merchant_id"]))[:10]
    charts = [
        per_rule_per_day("violations-per-day", "Violations per day, by rule", violations,
                         violation_rules, "No violation in this window."),
        per_rule_per_day("lapses-per-day", "User lapses per day, by rule", lapses,
                         lapse_rules, "No user lapse in this window."),
    ]
    side = [
        horizontal_bars("worst-merchants", "Worst merchants (violations)",
                        [(r["merchant_id"], r["violations"], f"{r['violations']:,}")
                         for r in worst], PALETTE[2], "No merchant has a violation."),
        horizontal_bars("dispute-loss", "Lost disputes per 1,000 orders",
                        [(r["merchant_id"], r["dispute_loss_per_1000_orders"],
                          f"{r['dispute_loss_per_1000_orders']:.2f}") for r in rated],
                        PALETTE[6], "No dispute was lost."),
    ]
    months = _every_month(months)
    money = stacked_columns(
        "compensation-per-month", f"Advance compensation per month ({currency})",
        [m["month"] for m in months],
        {"compensation": [m["compensation_fen"] for m in months]},
        {"compensation": PALETTE[1]}, "No compensation was paid.", unit=100,
        min_width=240)
    paid = [m for m in months if m["compensation_fen"]]
    for bar, month in zip(money.bars, paid, strict=True):
        bar.title = f"{month['month']}: {yuan(month['compensation_fen'], currency)} " \
                    f"({month['compensations_paid']:,} paid)"
    tiles = [
        ("orders_placed", "Orders placed", f"{total['orders_placed']:,}"),
        ("cases_opened", "Cases opened", f"{total['cases_opened']:,}"),
        ("violations", "Violations", f"{total['violations']:,}"),
        ("compensation_fen", "Advance compensation",
         yuan(total["compensation_fen"], currency)),
        ("disputes_lost", "Disputes lost", f"{total['disputes_lost']:,}"),
        ("dispute_loss_per_1000_orders", "Lost per 1,000 orders",
         cell("", total["dispute_loss_per_1000_orders"], zone)),
    ]
    shown = page_columns(columns)
    table = [[(c, cell(c, r[c], zone), r[c]) for c in shown] for r in rows]
    return render("scorecard.html.j2",
        window=window, span=_span(days, violations, lapses), caption=caption,
        generated=generated_at(generated, zone), source=source,
        tiles=tiles, total=total, head=table_head(shown, currency), columns=shown,
        key=column_key(shown, currency), table=table, sticky=_sticky(rows, total),
        totals=[(c, cell(c, total.get(c), zone), total.get(c)) for c in shown],
        charts=charts, side=[*side, money], months=months, yuan=yuan, numeric=is_number)


def _sticky(rows: list[dict[str, Any]], total: dict[str, Any]) -> int:
    """How wide the merchant's column is drawn (px, at most): what it covers of the
    table scrolled under it, which scrolling a column into view leaves free."""
    ids = [str(r["merchant_id"]) for r in [*rows, total]] + ["merchant"]
    return math.ceil(max(text_width(i, 13) for i in ids) * 1.1) + 20


def _span(days: tuple[date | None, date | None] | None, violations: list[dict[str, Any]],
          lapses: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The days the page covers, in words: those the table counts when known, else those
    the charts of violations and lapses span; None if nothing was recorded."""
    if days is not None:
        first, last = days
        what = "Business days counted"
    else:
        found = [r["business_day"] for r in [*violations, *lapses]]
        first, last = (min(found), max(found)) if found else (None, None)
        what = "Violations and lapses recorded"
    if first is None or last is None:
        return None
    count = (last - first).days + 1
    return {"text": f"{what}: {first:%Y-%m-%d} to {last:%Y-%m-%d} "
                    f"({count:,} day{'s' if count != 1 else ''})",
            "first": f"{first:%Y-%m-%d}", "last": f"{last:%Y-%m-%d}"}


def _every_month(months: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The months between the first and the last, those with nothing paid included."""
    if not months:
        return months
    found = {m["month"]: m for m in months}
    year, month = map(int, months[0]["month"].split("-"))
    out = []
    while True:
        key = f"{year:04d}-{month:02d}"
        out.append(found.get(key, {"month": key, "compensations_paid": 0,
                                   "compensation_fen": 0}))
        if key == months[-1]["month"]:
            return out
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
