"""The two pages in a real headless browser (Debian's chromium, driven by Playwright): each
loads with no console error and no request beyond its own file, and the figures it shows
are the read models' (read back from the page's `data-*` attributes and its text); what
comes from outside is shown as text, its control characters as escapes.  A screenshot of
each is saved in the test's temporary folder (CI keeps it as an artefact).  The browser
and the demo's stores are `tests/e2e/conftest.py`'s; the layouts are measured in
`test_scorecard_layout.py` and `test_timeline_layout.py`, the timeline's deadlines
against the status documents in `test_timeline_deadlines.py`."""

from __future__ import annotations

import json
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from aftersales.cli.human import cell, yuan
from projections.database import ReadModels
from projections.queries import (
    SCORECARD,
    compensation_per_month,
    list_lapses,
    list_violations,
    scorecard_with_total,
)
from tests.e2e.browser import Browser
from tests.e2e.test_cli import db, jsonl, run

__all__ = ["db"]  # the store fixture, shared with test_cli

pytestmark = pytest.mark.slow
SHANGHAI = ZoneInfo("Asia/Shanghai")


def _expected(value: Any) -> str:
    return "" if value is None else str(value)


def test_the_scorecard_page_shows_the_read_models_figures(
        tmp_path: Path, db: str, tab: Browser) -> None:
    made = run("demo", "--orders", "400", "--seed", "3", "--db", db, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    out = run("report", "--format", "html", "--db", db, cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.startswith("<!doctype html>"), out.stderr
    page = tmp_path / "scorecard.html"
    page.write_text(out.stdout)
    tab.open(page)
    tab.shot(tmp_path / "scorecard.png")

    with closing(ReadModels(db)) as views:
        rows, total = scorecard_with_total(views)
        found = list_violations(views)
        lapsed = list_lapses(views)
        months = compensation_per_month(views)
    # The table: every merchant's row and the totals, cell for cell, shown and underlying.
    cells = tab.all("#scorecard tr[data-merchant]", """rows => rows.map(r => [
        r.dataset.merchant, [...r.querySelectorAll('td')].map(
            td => [td.dataset.column, td.dataset.value, td.textContent])])""")
    assert [m for m, _ in cells] == [r["merchant_id"] for r in rows] + ["(total)"]
    for (_, shown), row in zip(cells, [*rows, total], strict=True):
        columns = [c for c, _, _ in shown]
        assert sorted(columns) == sorted(SCORECARD) and columns[0] == "merchant_id"
        assert [v for _, v, _ in shown] == [_expected(row[c]) for c in columns]
        assert [t for _, _, t in shown] == [cell(c, row[c], SHANGHAI) for c in columns]
    assert total["violations"] == len(found) > 0
    # ...and against the violations listed one by one (another table, another query).
    per_merchant = Counter(v["merchant_id"] for v in found)
    shown_violations = {m: int(dict((c, v) for c, v, _ in row)["violations"])
                        for m, row in cells[:-1]}
    assert {m: n for m, n in shown_violations.items() if n} == per_merchant
    # The tiles.
    tiles = dict(tab.all("[data-tile]", "ts => ts.map(t => [t.dataset.tile, "
                                       "t.querySelector('.value').textContent])"))
    assert tiles["violations"] == f"{len(found):,}"
    assert tiles["compensation_fen"] == yuan(total["compensation_fen"])
    assert tiles["orders_placed"] == f"{total['orders_placed']:,}" == "400"
    # The charts: violations and lapses per rule per day, the worst merchants, the months.

    def bars(chart: str) -> list[dict[str, str]]:
        return tab.all(f"[data-chart='{chart}'] rect.bar",
                       "bs => bs.map(b => Object.assign({}, b.dataset))")

    def per_rule(rows: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
        return Counter((f"{x['deadline'].astimezone(SHANGHAI):%m-%d}", x["rule"])
                       for x in rows)

    assert Counter({(b["category"], b["series"]): int(b["value"])
                    for b in bars("violations-per-day")}) == per_rule(found)
    assert Counter({(b["category"], b["series"]): int(b["value"])
                    for b in bars("lapses-per-day")}) == per_rule(lapsed)
    worst = [(b["category"], int(b["value"])) for b in bars("worst-merchants")]
    assert worst == [(r["merchant_id"], r["violations"]) for r in rows
                     if r["violations"]][:10]
    assert [(b["category"], int(b["value"])) for b in bars("compensation-per-month")] == [
        (m["month"], m["compensation_fen"]) for m in months]
    assert sum(m["compensation_fen"] for m in months) == total["compensation_fen"]
    lost = {b["category"]: float(b["value"]) for b in bars("dispute-loss")}
    assert lost == {r["merchant_id"]: r["dispute_loss_per_1000_orders"] for r in rows
                    if r["dispute_loss_per_1000_orders"]}


#: An online refund the merchant rejects; the user appeals; the platform moves the
#: evidence deadline (D-2); the merchant sends nothing and the system rules for the user
#: at the moved deadline (A-2), and the platform refunds (A-4).  The user's reason holds
#: markup, which the page must show as text.
DISPUTED = jsonl(
    {"command": "place_order", "order_id": "T1", "at": "2026-03-01T10:00:00+08:00",
     "payment": "online", "merchant_id": "M1", "user_id": "U1", "goods_amount": 9900,
     "postage": 800},
    {"command": "pay", "order_id": "T1", "at": "2026-03-01T10:05:00+08:00"},
    {"command": "ship", "order_id": "T1", "at": "2026-03-01T12:00:00+08:00",
     "carrier": "SF", "tracking_no": "SF1"},
    {"command": "deliver", "order_id": "T1", "at": "2026-03-02T12:00:00+08:00"},
    {"command": "request_refund", "order_id": "T1", "at": "2026-03-03T10:00:00+08:00",
     "amount": 9900, "reason": "broken <b>glass</b>"},
    {"command": "reject_return", "order_id": "T1", "at": "2026-03-03T16:00:00+08:00",
     "reason": "used"},
    {"command": "appeal", "order_id": "T1", "at": "2026-03-04T10:00:00+08:00",
     "reason": "it was not used"},
    {"command": "set_deadline", "order_id": "T1", "at": "2026-03-05T09:00:00+08:00",
     "until": "2026-03-07T10:00:00+08:00", "reason": "public holiday"},
    {"command": "tick", "at": "2026-03-08T00:00:00+08:00"},
)


def test_the_timeline_page_draws_every_event_deadline_timeout_and_the_arbitration(
        tmp_path: Path, db: str, tab: Browser) -> None:
    (tmp_path / "t.jsonl").write_text(DISPUTED)
    assert run("ingest", "t.jsonl", "--db", db, "--allow-future",
               cwd=tmp_path).returncode == 0
    out = run("history", "T1", "--format", "html", "--db", db, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    page = tmp_path / "timeline.html"
    page.write_text(out.stdout)
    tab.open(page)
    tab.shot(tmp_path / "timeline.png")

    events = tab.all("g.event", "gs => gs.map(g => [g.dataset.version, g.dataset.event, "
                                "g.dataset.actor, g.dataset.at, g.dataset.rule || null])")
    assert [tuple(e[1:3]) for e in events] == [
        ("OrderPlaced", "user"), ("PaymentReceived", "user"), ("OrderShipped", "merchant"),
        ("OrderDelivered", "carrier"), ("RefundRequested", "user"),
        ("MerchantRejected", "merchant"), ("Appealed", "user"), ("DeadlineSet", "platform"),
        ("ArbitrationAutoRuled", "system"), ("PlatformRefunded", "platform")]
    assert [int(e[0]) for e in events] == list(range(1, 11))
    timeout = events[8]
    assert (timeout[3], timeout[4]) == ("2026-03-07T10:00:00+08:00", "A-2")  # at its instant
    deadlines = tab.all("g.deadline", "gs => gs.map(g => [g.dataset.rule, g.dataset.fate, "
                                      "g.dataset.due])")
    assert deadlines == [
        ["C-ON-4", "met", "2026-03-02T10:00:00+08:00"],  # paid in time
        ["F-2", "met", "2026-03-05T10:00:00+08:00"],  # answered (rejected) in time
        ["A-2", "moved", "2026-03-06T10:00:00+08:00"],  # the evidence deadline as first set
        ["A-2", "missed", "2026-03-07T10:00:00+08:00"],  # as the platform moved it
    ]
    band = tab.all("rect.arbitration", "bs => bs.map(b => [b.dataset.outcome, "
                                       "b.dataset.blame])")
    assert band == [["user", "merchant"]]
    trail = tab.all("#audit-trail tbody tr", "rs => rs.map(r => r.dataset.event)")
    assert trail == [e[1] for e in events]
    text = tab.page.inner_text("body")
    assert "reason=broken <b>glass</b>" in text  # shown as text, never as markup
    assert tab.page.eval_on_selector_all("main b", "bs => bs.length") == 0
    assert "goods 99.00 CNY + postage 8.00 CNY; refunded 99.00 CNY" in text


def test_a_page_of_an_order_never_placed_is_refused(tmp_path: Path, db: str) -> None:
    (tmp_path / "t.jsonl").write_text(DISPUTED)
    assert run("ingest", "t.jsonl", "--db", db, "--allow-future",
               cwd=tmp_path).returncode == 0
    out = run("history", "NOPE", "--format", "html", "--db", db, cwd=tmp_path)
    assert (out.returncode, out.stdout) == (1, "")
    assert "order NOPE was not placed" in out.stderr


def test_the_money_axis_reads_in_yuan_to_the_fen() -> None:
    from aftersales.cli.pages import stacked_columns
    chart = stacked_columns("m", "t", ["2026-03"], {"x": [250]}, {"x": "#000"}, "none",
                            unit=100)
    axis = [label.text for label in chart.axis]
    assert axis == ["0.00", "0.50", "1.00", "1.50", "2.00", "2.50"]
    counts = stacked_columns("c", "t", ["03-01"], {"x": [7]}, {"x": "#000"}, "none")
    assert [label.text for label in counts.axis] == ["0", "2", "4", "6", "8"]


#: What a reason could hide or fake: a new line that looks like another event of the
#: audit trail, a terminal's colour escape, a right-to-left override, markup.
FORGED = ("wrong\n  2 2026-03-01 FAKE EVENT by platform\x1b[31m red \u202eesrever"
          " <script>document.title='x'</script>")


def test_the_pages_show_what_comes_from_outside_as_text_with_escapes_visible(
        tmp_path: Path, tab: Browser) -> None:
    """Reasons, notes and ids reach the pages from outside: the pages escape them as
    HTML (no element of theirs) and show control and bidirectional characters as escapes
    (`\\n`, `\\x1b`, `\\u202e`), in the text and in the tooltips alike."""
    url = f"sqlite:///{tmp_path / 'f.db'}"
    lines = DISPUTED.replace('"broken <b>glass</b>"', json.dumps(FORGED))
    lines = lines.replace('"it was not used"', json.dumps(FORGED))
    (tmp_path / "f.jsonl").write_text(lines)
    assert run("ingest", "f.jsonl", "--db", url, "--allow-future",
               cwd=tmp_path).returncode == 0
    out = run("history", "T1", "--format", "html", "--db", url, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert not any(c in out.stdout for c in "\x1b\u202e")
    page = tmp_path / "forged.html"
    page.write_text(out.stdout)
    tab.open(page)
    tab.shot(tmp_path / "forged.png")
    assert tab.page.title() == "Order T1 — timeline — aftersales"  # no script ran
    assert tab.page.eval_on_selector_all("script", "s => s.length") == 0
    shown = ("wrong\\n  2 2026-03-01 FAKE EVENT by platform\\x1b[31m red \\u202eesrever"
             " <script>document.title='x'</script>")
    trail = tab.all("#audit-trail tbody tr", "rs => rs.map(r => r.textContent)")
    assert len(trail) == 10  # no line of its own
    assert [i for i, row in enumerate(trail) if shown in row] == [4, 6]  # request, appeal
    assert shown in tab.all("#arbitration p", "ps => ps.map(p => p.textContent)")[0]
    tooltips = tab.all("title", "ts => ts.map(t => t.textContent)")
    assert all("\x1b" not in t and "\n  2" not in t for t in tooltips)
    # The scorecard's ids are identifiers (no markup can reach it), its caption and
    # window the command line's own: the same templates escape them all the same.
    report = run("report", "--format", "html", "--db", url, cwd=tmp_path)
    assert report.returncode == 0 and "<script" not in report.stdout
