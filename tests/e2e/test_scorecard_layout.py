"""The scorecard page reads (issue 26, item 6): its charts fill their sections at 800 and
1280 px and are cut off at neither; every column of the table can be scrolled into view
in its frame; the headings are words, each naming its column; the days it covers are
stated; its time of writing has no microseconds.  Measured in headless chromium;
screenshots in each test's temporary folder."""

from __future__ import annotations

import re
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from aftersales.cli.pages import scorecard_page
from aftersales.domain.steps import LAPSE_RULES, VIOLATION_RULES
from projections.database import ReadModels
from projections.queries import SCORECARD, list_lapses, list_violations, recorded_days
from projections.reports import Scorecard
from tests.e2e.browser import WIDTHS, Browser, measure, overflowing
from tests.e2e.test_cli import run

pytestmark = pytest.mark.slow
SHANGHAI = ZoneInfo("Asia/Shanghai")
GENERATED = re.compile(r"Generated \d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d\d:\d\d from ")


def report_page(tmp_path: Path, url: str, tab: Browser, *options: str) -> Path:
    out = run("report", "--format", "html", "--db", url, *options, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    page = tmp_path / "scorecard.html"
    page.write_text(out.stdout)
    tab.open(page)
    return page


#: Each chart as drawn: its section's inner width, its axis and plot, its bars and labels.
CHARTS = """[...document.querySelectorAll('section.chart')].filter(s => s.querySelector('svg'))
  .map(s => {
    const cs = getComputedStyle(s), r = s.getBoundingClientRect();
    const body = s.querySelector('.chart-body');
    const axis = s.querySelector('svg.axis').getBoundingClientRect();
    const plot = s.querySelector('svg.plot').getBoundingClientRect();
    const box = e => { const b = e.getBoundingClientRect();
                       return {text: e.textContent, left: b.left, right: b.right,
                               top: b.top, bottom: b.bottom}; };
    const bars = [...s.querySelectorAll('rect.bar')].map(box);
    const labels = [...s.querySelectorAll('svg.plot text')].map(box);
    const ticks = [...s.querySelectorAll('svg.axis text')].map(box);
    return {name: s.dataset.chart, scrolls: body.scrollWidth > body.clientWidth + 1,
            inner: r.width - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight)
                   - parseFloat(cs.borderLeftWidth) - parseFloat(cs.borderRightWidth),
            right: r.right - parseFloat(cs.paddingRight) - parseFloat(cs.borderRightWidth),
            axis: axis.width, plot: {left: plot.left, right: plot.right, width: plot.width},
            bars: bars.map(b => [b.left - plot.left, b.right - plot.left]),
            overlaps: overlapping(labels, labels).concat(overlapping(ticks, ticks)),
            outside: outside(labels, plot).concat(outside(ticks, axis))};
  })"""


def test_the_charts_fill_their_sections_at_800_and_1280_px(
        demo_store: str, tab: Browser, tmp_path: Path) -> None:
    """The charts were 960 px wide: cut off at 800 px, a third empty at 1280.  Now each
    plot takes its section's width beside its axis, needs no scrolling, keeps its labels
    inside and apart, and its bars span it (the days' columns from one end to the other,
    the longest of the merchants' bars most of it)."""
    report_page(tmp_path, demo_store, tab)
    for width in WIDTHS:
        tab.width(width)
        tab.shot(tmp_path / f"scorecard-{width}.png")
        charts = measure(tab, CHARTS)
        assert {c["name"] for c in charts} == {
            "violations-per-day", "lapses-per-day", "worst-merchants", "dispute-loss",
            "compensation-per-month"}
        for c in charts:
            plot = c["plot"]
            assert not c["scrolls"], (width, c["name"])
            assert plot["right"] <= c["right"] + 0.5, (width, c["name"])  # not cut off
            assert plot["width"] + c["axis"] >= c["inner"] - 1, (width, c["name"])  # filled
            assert c["overlaps"] == [] and c["outside"] == [], (width, c["name"])
            left = min(a for a, _ in c["bars"])
            right = max(b for _, b in c["bars"])
            assert left >= -0.5 and right <= plot["width"] + 0.5
            if c["name"].endswith("per-day"):
                assert left < plot["width"] * 0.05 and right > plot["width"] * 0.95
            if c["name"] in ("worst-merchants", "dispute-loss"):
                assert right > plot["width"] * 0.6
        assert overflowing(tab) == {"page": 0, "tables": [], "cells": [], "sections": []}


def test_every_column_of_the_scorecard_can_be_scrolled_into_view(
        demo_store: str, tab: Browser, tmp_path: Path) -> None:
    """8 of 23 columns were visible: now the table scrolls inside its own frame (the page
    does not), and each column's heading, scrolled into view there, is wholly inside the
    frame and not covered (the merchant's column stays in view beside it)."""
    report_page(tmp_path, demo_store, tab)
    for width in WIDTHS:
        tab.width(width)
        found = measure(tab, """(() => {
          const frame = document.querySelector('#scorecard .frame');
          const f = frame.getBoundingClientRect();
          return [...frame.querySelectorAll('th[data-column]')].map(th => {
            th.scrollIntoView({block: 'nearest', inline: 'nearest'});
            const r = th.getBoundingClientRect(), g = frame.getBoundingClientRect();
            const top = document.elementFromPoint((r.left + r.right) / 2,
                                                  (r.top + r.bottom) / 2);
            const merchant = frame.querySelector('tbody td').getBoundingClientRect();
            return [th.dataset.column, r.left >= g.left - 0.5 && r.right <= g.right + 0.5,
                    th.contains(top), merchant.left >= g.left - 0.5];
          });
        })()""")
        assert sorted(c for c, *_ in found) == sorted(SCORECARD)
        assert [c for c, inside, shown, merchant in found
                if not (inside and shown and merchant)] == [], width
        tab.shot(tmp_path / f"scrolled-{width}.png")
        assert overflowing(tab)["page"] == 0


def test_the_headings_are_words_each_naming_its_column(
        demo_store: str, tab: Browser, tmp_path: Path) -> None:
    report_page(tmp_path, demo_store, tab)
    heads = tab.all("#scorecard th[data-column]", "hs => hs.map(h => [h.dataset.column, "
                    "h.textContent, h.title])")
    assert sorted(c for c, _, _ in heads) == sorted(SCORECARD)
    for column, text, title in heads:
        assert "_" not in text and text.strip(), column  # words, not the column's name
        assert title.startswith(f"{column}:") or title == column
    assert [t for c, t, _ in heads if c == "compensation_fen"] == ["amount (CNY)"]
    groups = tab.all("#scorecard th.group", "hs => hs.map(h => h.textContent)")
    assert "discrepancies by class" in groups and "disputes" in groups
    # The key under the table gives every column's name in SQL and what it counts.
    key = tab.all("#key dd code", "cs => cs.map(c => c.textContent)")
    assert sorted(key) == sorted(SCORECARD)


def test_the_page_states_the_days_it_covers_and_when_it_was_written(
        demo_store: str, tab: Browser, tmp_path: Path) -> None:
    report_page(tmp_path, demo_store, tab)
    header = tab.page.inner_text("header")
    assert "every business day recorded" in header
    with closing(ReadModels(demo_store)) as views:
        days = sorted(x["deadline"].astimezone(SHANGHAI).date()
                      for x in [*list_violations(views), *list_lapses(views)])
        first, last = recorded_days(views)
        card = Scorecard.read(views, None, None, charts=True)
    # The days the table counts (`recorded_days`), as `report --format html` states them.
    assert (first, last) == (days[0].replace(day=1), datetime(2026, 4, 11).date())
    shown = tab.all("header p.range", "ps => ps.map(p => [p.dataset.first, "
                    "p.dataset.last, p.textContent])")
    assert shown == [[f"{first}", f"{last}", f"Business days counted: {first} to {last} "
                      f"({(last - first).days + 1} days)"]]
    footer = tab.page.inner_text("footer")
    assert GENERATED.match(footer) and not re.search(r"\d\d:\d\d:\d\d\.\d", footer)
    # A window: its days, from the command line's options.
    report_page(tmp_path, demo_store, tab, "--since", "2026-03-10T12:00:00+08:00",
                "--until", "2026-03-20T00:00:00+08:00")
    assert "the business days from 2026-03-10 to 2026-03-19" in tab.page.inner_text("header")
    # Without the days the table counts, the page states those its charts span.
    found, lapsed, months = card.charts
    page = tmp_path / "days.html"
    page.write_text(scorecard_page(
        rows=card.rows, total=card.total, columns=SCORECARD, violations=found,
        lapses=lapsed, months=months, violation_rules=VIOLATION_RULES,
        lapse_rules=LAPSE_RULES, window="Scorecard of every business day recorded",
        caption=card.note, zone=SHANGHAI, generated=datetime.now(UTC), source="demo"))
    tab.open(page)
    assert tab.all("header p.range", "ps => ps.map(p => p.textContent)") == [
        f"Violations and lapses recorded: {days[0]} to {days[-1]} "
        f"({(days[-1] - days[0]).days + 1} days)"]


def test_the_timeline_page_too_is_written_to_the_second(
        demo_store: str, tab: Browser, tmp_path: Path) -> None:
    out = run("history", "D7-0000834", "--format", "html", "--db", demo_store, cwd=tmp_path)
    page = tmp_path / "t.html"
    page.write_text(out.stdout)
    tab.open(page)
    footer = tab.page.inner_text("footer")
    assert GENERATED.match(footer) and not re.search(r"\d\d:\d\d:\d\d\.\d", footer)
