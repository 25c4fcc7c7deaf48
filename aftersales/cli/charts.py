"""The scorecard page's charts, as geometry for SVG: stacked columns (a count per day, an
amount per month) and horizontal bars (the worst merchants).

A chart is two drawings side by side: its axis (labels right-aligned, in px) and its plot,
which takes the rest of its section's width.  The plot is laid out along its width in
percent and along its height in px, so it stretches with the page while its text keeps
its size: no chart is cut off on a narrow screen or leaves a third of a wide one empty.
Below `min_width` px a plot stops shrinking and its section scrolls instead.  Category
labels are chosen (every day, every other day, ...) so that at `min_width`, where they
are closest, none overlaps another or runs off the plot (`aftersales.cli.page_text`
estimates their widths)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from itertools import pairwise
from typing import Any

from aftersales.cli.page_text import text_width

#: Series colours, in order (distinguishable, and readable on white).
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
           "#ff9da7", "#9c755f", "#bab0ac")
#: Labels under a column chart are at least this far apart, in px.
GAP = 8.0


@dataclass
class Bar:
    """A bar: `x` and `w` in percent of the plot's width, `y` and `h` in px."""

    x: float
    y: float
    w: float
    h: float
    fill: str
    title: str
    data: dict[str, Any]


@dataclass
class Label:
    """A label at `x` (percent of the plot's width; px in the axis), `dx` px further."""

    x: float
    y: float
    text: str
    anchor: str = "middle"
    dx: float = 0.0


@dataclass
class Chart:
    """An SVG chart's geometry: its axis labels, bars, labels, grid lines and legend."""

    title: str
    height: int
    name: str = ""
    empty: str = ""
    axis_width: int = 0
    min_width: int = 0
    axis: list[Label] = field(default_factory=list)
    bars: list[Bar] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)
    grid: list[float] = field(default_factory=list)  # the y of each grid line
    legend: list[tuple[str, str]] = field(default_factory=list)


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
                    empty: str, height: int = 260, unit: int = 1, min_width: int = 560
                    ) -> Chart:
    """Vertical columns, one per category (a day, a month), stacked by series; the axis
    counts in `unit`s of the values (100: fen shown as yuan)."""
    chart = Chart(title, height, name=name, empty=empty, min_width=min_width,
                  legend=[(key, colours[key]) for key in series])
    top, bottom = 12, 34
    plot_h = height - top - bottom
    totals = [sum(values[i] for values in series.values()) for i in range(len(categories))]
    if not categories or not any(totals):
        return chart
    ceiling, step = _ceiling(max(totals) / unit, whole=unit == 1)
    whole_steps = step == int(step)
    ceiling, step = ceiling * unit, step * unit
    ticks = []
    tick = 0.0
    while tick <= ceiling + 1e-9:
        shown = tick / unit
        ticks.append((top + plot_h * (1 - tick / ceiling),
                      f"{shown:,.0f}" if whole_steps else f"{shown:,.2f}"))
        tick += step
    chart.axis_width = math.ceil(max(text_width(text) for _, text in ticks)) + 10
    for y, text in ticks:
        chart.grid.append(round(y, 1))
        chart.axis.append(Label(chart.axis_width - 6, y + 4, text, "end"))
    slot = 100 / len(categories)
    w = min(slot * 0.7, 6.0)
    for i, category in enumerate(categories):
        base: float = top + plot_h
        for key, values in series.items():
            if not values[i]:
                continue
            h = plot_h * values[i] / ceiling
            base -= h
            chart.bars.append(Bar((i + 0.5) * slot - w / 2, base, w, h, colours[key],
                                  f"{category} {key}: {values[i]:,}",
                                  {"category": category, "series": key,
                                   "value": values[i]}))
    chart.labels = category_labels(categories, min_width, height - bottom + 18)
    return chart


def category_labels(categories: Sequence[str], min_width: float, y: float) -> list[Label]:
    """Labels under the columns: every category's, or every other, ... (the fewest left
    out) such that at `min_width` px none overlaps the next and none leaves the plot (one
    at an edge is aligned to it)."""
    n = len(categories)
    widths = [text_width(c) for c in categories]
    for every in range(1, n + 1):
        placed = []
        for i in range(0, n, every):
            left = (i + 0.5) / n * min_width - widths[i] / 2
            if left < 0:
                placed.append((i, 0.0, "start", 0.0))
            elif left + widths[i] > min_width:
                placed.append((i, min_width - widths[i], "end", 100.0))
            else:
                placed.append((i, left, "middle", (i + 0.5) * 100 / n))
        if all(a[1] + widths[a[0]] + GAP <= b[1] for a, b in pairwise(placed)):
            return [Label(x, y, categories[i], anchor) for i, _, anchor, x in placed]
    return []  # pragma: no cover - one label always fits


def horizontal_bars(name: str, title: str, items: Sequence[tuple[str, float, str]],
                    colour: str, empty: str, min_width: int = 260) -> Chart:
    """One bar per (label, value, text shown), longest first as given; the text follows
    its bar, inside the plot however narrow it is drawn."""
    row = 22
    chart = Chart(title, 10 + row * max(1, len(items)), name=name, empty=empty,
                  min_width=min_width)
    if not items or not any(value for _, value, _ in items):
        return chart
    chart.axis_width = math.ceil(max(text_width(label) for label, _, _ in items)) + 12
    room = max(text_width(text) for _, _, text in items) + 12
    full = 100 * (min_width - room) / min_width  # the longest bar, in percent
    longest = max(value for _, value, _ in items)
    for i, (label, value, text) in enumerate(items):
        y = 5 + i * row
        w = full * value / longest if longest else 0
        chart.bars.append(Bar(0.0, y + 3, max(w, 0.2), row - 6, colour,
                              f"{label}: {text}", {"category": label, "value": value}))
        chart.axis.append(Label(chart.axis_width - 6, y + row / 2 + 4, label, "end"))
        chart.labels.append(Label(w, y + row / 2 + 4, text, "start", dx=6))
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
