"""Two pages a person looks at, each one self-contained HTML file (inline CSS and SVG: no
script, no font, no request at view time):

- the scorecard (`aftersales report --format html`): the merchant scorecard with its
  totals, violations and lapses per rule per day, the worst merchants, dispute-loss rates
  and the platform's compensation per month;
- an order's timeline (`aftersales history ORDER_ID --format html`): every event on a time
  axis in its actor's lane, every deadline as it stood (moved ones too), the timeouts at
  their instants, and the arbitration.

Templates are Jinja2's (`templates/`), which escapes every value it writes (merchant and
order ids, reasons and notes come from outside).  The charts are SVG drawn from geometry
computed here: a charting library would either need a script at view time or draw text as
paths, and the browser test reads every figure back from the page (`data-*` attributes)
to compare it with the read models.  Values read as `aftersales.cli.human` says.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from aftersales.application.status import history_entry
from aftersales.cli.human import CURRENCY, cell, heading, is_number, local, yuan
from aftersales.cli.render import detail
from aftersales.domain.events import (
    Appealed,
    AppealWithdrawn,
    BlameRecorded,
    DeadlineMissed,
    OrderEvent,
    Ruled,
)
from aftersales.domain.order import Order
from projections.fold import DISCREPANCY_COUNTERS

#: Series colours, in order (distinguishable, and readable on white).
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
           "#ff9da7", "#9c755f", "#bab0ac")
#: The lanes of a timeline, top to bottom.
LANES = ("user", "merchant", "carrier", "platform", "system")

_ENV = Environment(loader=PackageLoader("aftersales.cli", "templates"),
                   autoescape=select_autoescape(("html", "j2")), undefined=StrictUndefined,
                   trim_blocks=True, lstrip_blocks=True)


def _render(template: str, **values: Any) -> str:
    return str(_ENV.get_template(template).render(**values))


# --- charts ----------------------------------------------------------------------------

@dataclass
class Bar:
    x: float
    y: float
    w: float
    h: float
    fill: str
    title: str
    data: dict[str, Any]


@dataclass
class Label:
    x: float
    y: float
    text: str
    anchor: str = "middle"


@dataclass
class Chart:
    """An SVG chart's geometry: bars, axis labels, grid lines and a legend."""

    title: str
    width: int
    height: int
    bars: list[Bar] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)
    grid: list[tuple[float, float, float, float]] = field(default_factory=list)
    legend: list[tuple[str, str]] = field(default_factory=list)
    name: str = ""
    empty: str = ""


def _ceiling(top: float, whole: bool = True) -> tuple[float, float]:
    """A round top for an axis and its step: 7 -> (8, 2); 130 -> (150, 50); `whole`:
    steps of at least 1 (counts), else of at least 0.01 (yuan)."""
    if top <= 0:
        return 1.0, 1.0
    power = 10 ** math.floor(math.log10(top))
    for step in (0.1, 0.2, 0.25, 0.5, 1, 2, 2.5, 5, 10):
        if top / (step * power) <= 5:
            unit = max(step * power, 1.0 if whole else 0.01)
            return math.ceil(top / unit) * unit, unit
    return top, top  # pragma: no cover - the loop always returns


def stacked_columns(name: str, title: str, categories: Sequence[str],
                    series: Mapping[str, Sequence[int]], colours: dict[str, str],
                    empty: str, width: int = 960, height: int = 260, unit: int = 1
                    ) -> Chart:
    """Vertical columns, one per category (a day, a month), stacked by series; the axis
    counts in `unit`s of the values (100: fen shown as yuan)."""
    chart = Chart(title, width, height, name=name, empty=empty,
                  legend=[(key, colours[key]) for key in series])
    left, right, top, bottom = 44, 8, 10, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(values[i] for values in series.values()) for i in range(len(categories))]
    if not categories or not any(totals):
        return chart
    ceiling, step = _ceiling(max(totals) / unit, whole=unit == 1)
    whole_steps = step == int(step)
    ceiling, step = ceiling * unit, step * unit
    tick = 0.0
    while tick <= ceiling + 1e-9:
        y = top + plot_h * (1 - tick / ceiling)
        chart.grid.append((left, y, left + plot_w, y))
        shown = tick / unit
        chart.labels.append(Label(left - 6, y + 4, f"{shown:,.0f}" if whole_steps
                                  else f"{shown:,.2f}", "end"))
        tick += step
    slot = plot_w / len(categories)
    every = max(1, math.ceil(len(categories) / 14))  # at most 14 labels under the axis
    for i, category in enumerate(categories):
        base: float = top + plot_h
        w = min(slot * 0.8, 48.0)
        for key, values in series.items():
            if not values[i]:
                continue
            h = plot_h * values[i] / ceiling
            base -= h
            chart.bars.append(Bar(left + (i + 0.5) * slot - w / 2, base, w, h,
                                  colours[key], f"{category} {key}: {values[i]:,}",
                                  {"category": category, "series": key,
                                   "value": values[i]}))
        if i % every == 0:
            chart.labels.append(Label(left + (i + 0.5) * slot, height - bottom + 16,
                                      category))
    return chart


def horizontal_bars(name: str, title: str, items: Sequence[tuple[str, float, str]],
                    colour: str, empty: str, width: int = 460) -> Chart:
    """One bar per (label, value, text shown), longest first as given."""
    row = 22
    height = 10 + row * max(1, len(items))
    chart = Chart(title, width, height, name=name, empty=empty)
    if not items or not any(value for _, value, _ in items):
        return chart
    left, right = 90, 70
    longest = max(value for _, value, _ in items)
    for i, (label, value, text) in enumerate(items):
        y = 5 + i * row
        w = (width - left - right) * value / longest if longest else 0
        chart.bars.append(Bar(left, y + 3, max(w, 1.0), row - 6, colour,
                              f"{label}: {text}", {"category": label, "value": value}))
        chart.labels.append(Label(left - 6, y + row / 2 + 4, label, "end"))
        chart.labels.append(Label(left + w + 6, y + row / 2 + 4, text, "start"))
    return chart


def colours_for(names: Iterable[str]) -> dict[str, str]:
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def per_rule_per_day(name: str, title: str, rows: Sequence[dict[str, Any]],
                     rules: Sequence[str], empty: str) -> Chart:
    """`per_day` rows as columns per business day (every day between the first and the
    last, none skipped), stacked by rule."""
    if not rows:
        return stacked_columns(name, title, [], {}, {}, empty)
    days = _days(min(r["business_day"] for r in rows), max(r["business_day"] for r in rows))
    found = {(r["business_day"], r["rule"]): int(r["count"]) for r in rows}
    present = [rule for rule in rules if any(r["rule"] == rule for r in rows)]
    series = {rule: [found.get((day, rule), 0) for day in days] for rule in present}
    label = "%m-%d" if len(days) <= 366 else "%Y-%m-%d"  # a longer span repeats days
    return stacked_columns(name, title, [f"{d:{label}}" for d in days], series,
                           colours_for(rules), empty)


# --- the scorecard page ----------------------------------------------------------------

#: Columns the scorecard's table heads as a group: the group's heading, and the column's
#: own under it (the discrepancies by class: `outcome` under "discrepancies by class").
GROUPED = {column: ("discrepancies by class", kind)
           for kind, column in DISCREPANCY_COUNTERS.items()}


def table_head(columns: Sequence[str], currency: str = CURRENCY
               ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The scorecard table's heading rows: the first, where a run of grouped columns has
    its group's heading over them (the others span both rows), and the second, the grouped
    columns' own short headings (empty when no column is grouped: one row)."""
    rows = 2 if any(c in GROUPED for c in columns) else 1
    top: list[dict[str, Any]] = []
    sub: list[dict[str, Any]] = []
    for column in columns:
        group = GROUPED.get(column)
        if group is None:
            top.append({"text": heading(column, currency), "column": column, "span": 1,
                        "rows": rows, "group": None})
            continue
        if top and top[-1]["group"] == group[0]:
            top[-1]["span"] += 1
        else:
            top.append({"text": group[0], "column": None, "span": 1, "rows": 1,
                        "group": group[0]})
        sub.append({"text": group[1], "column": column})
    return top, sub


def scorecard_page(*, rows: list[dict[str, Any]], total: dict[str, Any],
                   columns: Sequence[str], violations: list[dict[str, Any]],
                   lapses: list[dict[str, Any]], months: list[dict[str, Any]],
                   violation_rules: Sequence[str], lapse_rules: Sequence[str],
                   window: str, caption: str, zone: tzinfo, generated: datetime,
                   source: str, currency: str = CURRENCY) -> str:
    """The scorecard page (see the module's docstring)."""
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
        {"compensation": PALETTE[1]}, "No compensation was paid.", width=460,
        unit=100)
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
    table = [[(c, cell(c, r[c], zone), r[c]) for c in columns] for r in rows]
    return _render("scorecard.html.j2",
        window=window, caption=caption, generated=local(generated, zone), source=source,
        tiles=tiles, total=total, head=table_head(columns, currency), columns=columns,
        table=table, totals=[(c, cell(c, total.get(c), zone), total.get(c))
                             for c in columns],
        charts=charts, side=[*side, money], months=months, yuan=yuan, numeric=is_number)


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


# --- the timeline page -----------------------------------------------------------------

@dataclass
class Span:
    """A deadline as it stood: set (or moved) at `start`, due at `due`, until `end`."""

    rule: str
    case: int | None
    start: datetime
    due: datetime
    end: datetime | None = None  # when it stopped being the pending one (None: still is)
    fate: str = "pending"  # met, missed, moved, pending
    moved_from: datetime | None = None
    by: str = ""  # the event that ended it


def deadline_spans(events: Sequence[OrderEvent]) -> tuple[list[Span], list[Order]]:
    """Every pending deadline the order had, as it stood, replayed event by event; and the
    order after each event."""
    spans: list[Span] = []
    states: list[Order] = []
    order: Order | None = None
    current: Span | None = None
    for event in events:
        order = event.mutate(order)
        assert order is not None
        states.append(order)
        pending = order.pending_deadline
        now = None if pending is None else (pending.rule, pending.case, pending.at)
        if current is not None and now == (current.rule, current.case, current.due):
            continue
        if current is not None:
            current.end, current.by = event.at, type(event).__name__
            same = pending is not None and (pending.rule, pending.case) == (
                current.rule, current.case)
            missed = isinstance(event, DeadlineMissed) and event.rule == current.rule
            current.fate = "moved" if same and not missed else "missed" if missed else "met"
        moved = current if current is not None and current.fate == "moved" else None
        current = None
        if pending is not None:
            current = Span(pending.rule, pending.case, event.at, pending.at,
                           moved_from=moved.due if moved is not None else None)
            spans.append(current)
    return spans, states


def timeline_page(events: Sequence[OrderEvent], zone: tzinfo, generated: datetime,
                  source: str) -> str:
    """One order's life on a time axis (see the module's docstring)."""
    entries = [history_entry(e) for e in events]
    spans, states = deadline_spans(events)
    last = states[-1]
    first_at = events[0].at
    end_at = max([e.at for e in events] + [s.due for s in spans])
    span = max((end_at - first_at).total_seconds(), 3600.0)
    start = first_at - timedelta(seconds=span * 0.03)
    finish = end_at + timedelta(seconds=span * 0.05)
    width, left, right = 1100, 90, 20
    plot = width - left - right
    total = (finish - start).total_seconds()

    def x(at: datetime) -> float:
        return round(left + plot * (at - start).total_seconds() / total, 1)

    lane_h, top = 46, 34
    lanes = [(name, top + i * lane_h) for i, name in enumerate(LANES)]
    lane_y = dict(lanes)
    deadline_top = top + len(LANES) * lane_h + 10
    rows: dict[tuple[str, int | None], int] = {}
    for s in spans:
        rows.setdefault((s.rule, s.case), len(rows))
    height = deadline_top + 26 * max(1, len(rows)) + 40
    ticks = [(x(at), label) for at, label in _ticks(start, finish, zone)]
    marks = []
    below: dict[float, tuple[float, bool]] = {}  # per lane: the last label's x and side
    for event, entry in zip(events, entries, strict=True):
        y = lane_y.get(event.actor, lane_y["system"])
        last_x, last_below = below.get(y, (-1e9, False))
        side = not last_below if x(event.at) - last_x < 130 else True  # labels apart
        below[y] = (x(event.at), side)
        marks.append({
            "x": x(event.at), "y": y, "dy": 18 if side else -11,
            "event": entry["event"], "actor": event.actor, "version": entry["version"],
            "at": entry["at"], "local": local(event.at, zone), "rule": entry["rule"],
            "timeout": isinstance(event, DeadlineMissed),
            "title": f"{entry['version']}. {entry['event']} by {event.actor} at "
                     f"{local(event.at, zone)}" + (f" [{entry['rule']}]" if entry["rule"]
                                                   else "")})
    deadlines = [{
        "rule": s.rule, "case": s.case, "fate": s.fate, "due": s.due.isoformat(),
        "due_local": local(s.due, zone), "x1": x(s.start), "x2": x(s.end or finish),
        "xd": x(s.due), "y": deadline_top + 26 * rows[(s.rule, s.case)] + 13,
        "moved_from": local(s.moved_from, zone) if s.moved_from else None,
        "set_local": local(s.start, zone),
        "end_local": local(s.end, zone) if s.end else None, "by": s.by,
    } for s in spans]
    bands = []
    for event in events:
        if isinstance(event, Appealed):
            ended = next((e for e in events if isinstance(e, (Ruled, AppealWithdrawn))
                          and e.case == event.case and e.at >= event.at), None)
            blamed = next((e.blame for e in events if isinstance(e, BlameRecorded)
                           and e.case == event.case), getattr(ended, "blame", None))
            bands.append({"x1": x(event.at), "x2": x(ended.at if ended else finish),
                          "label": "arbitration" + (
                              " (open)" if ended is None else " (withdrawn)"
                              if isinstance(ended, AppealWithdrawn) else ""),
                          "outcome": getattr(ended, "outcome", None),
                          "blame": blamed})
    case = last.latest_case
    currency = last.currency
    return _render("timeline.html.j2",
        order=last, case=case, events=marks, entries=entries, deadlines=deadlines,
        bands=bands, lanes=lanes, ticks=ticks, width=width, height=height, left=left,
        right=right, top=top, lane_h=lane_h, deadline_top=deadline_top,
        generated=local(generated, zone), source=source, yuan=yuan, local=local, zone=zone,
        details=[[(k, detail(event, k, v, zone, currency))
                  for k, v in entry["details"].items() if v not in (None, "")]
                 for event, entry in zip(events, entries, strict=True)])


def _ticks(start: datetime, finish: datetime, zone: tzinfo) -> list[tuple[datetime, str]]:
    """Midnights of the business zone along the axis (every day, or every week when the
    axis is long), with their labels."""
    days = (finish - start).total_seconds() / 86400
    step = 1 if days <= 21 else 7 if days <= 140 else 30
    first = start.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    found = []
    at = first + timedelta(days=1)
    while at < finish:
        found.append((at, f"{at:%m-%d}"))
        at += timedelta(days=step)  # wall-clock arithmetic: midnights, across DST too
    return found
