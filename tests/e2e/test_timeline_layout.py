"""The timeline page reads (issue 26, item 6): deadlines named by their rule with the rule
ID beside and a key to them; no label over another and none cut off; the audit trail
whole at 800 and 1280 px; the arbitration's outcome and blame on the page itself.
Measured in headless chromium; screenshots in each test's temporary folder."""

from __future__ import annotations

from collections import Counter
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from aftersales.application.ledger import Ledger
from aftersales.application.status import status_document
from aftersales.cli.pages import timeline_page
from aftersales.domain.events import Appealed, DeadlineChanged
from aftersales.domain.steps import TIMEOUTS
from tests.e2e.browser import WIDTHS, Browser, measure, overflowing
from tests.e2e.test_cli import jsonl, run
from tests.e2e.test_pages import DISPUTED
from tests.e2e.test_timeline_deadlines import orders

pytestmark = pytest.mark.slow
SHANGHAI = ZoneInfo("Asia/Shanghai")
#: The labels of a timeline's drawing, and its marks.
LABELS = "boxes('#timeline svg text')"
MARKS = "boxes('#timeline svg .mark')"


def history_page(tmp_path: Path, url: str, order_id: str, tab: Browser) -> Path:
    out = run("history", order_id, "--format", "html", "--db", url, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    page = tmp_path / f"{order_id}.html"
    page.write_text(out.stdout)
    tab.open(page)
    return page


def crowded(url: str) -> dict[str, str]:
    """The demo's orders hardest to lay out, with their pages: the busiest, those whose
    events crowd one lane, every one with an arbitration or a moved deadline."""
    now = datetime.now(UTC)
    found: dict[str, Any] = {}
    with closing(Ledger(url, create_tables=False)) as ledger:
        every = {order_id: list(ledger.order_events(order_id)) for order_id in orders(url)}
    for order_id, events in every.items():
        lanes = Counter(e.actor for e in events)
        hours = (events[-1].at - events[0].at).total_seconds() / 3600 or 1
        found[order_id] = (len(events), max(lanes.values()) / hours,
                           any(isinstance(e, Appealed | DeadlineChanged) for e in events))
    chosen = {"D7-0002680"}
    chosen |= set(sorted(found, key=lambda o: -found[o][0])[:25])
    chosen |= set(sorted(found, key=lambda o: -found[o][1])[:25])
    chosen |= {o for o, (_, _, special) in found.items() if special}
    return {o: timeline_page(every[o], SHANGHAI, now, "demo") for o in sorted(chosen)}


def test_no_label_of_a_timeline_covers_another_or_leaves_the_drawing(
        demo_store: str, tab: Browser, tmp_path: Path) -> None:
    """D7-0002680's `DeadlineExtended` was drawn over `ReplacementShipped`; here every
    label of the demo's most crowded timelines (and of every one with an arbitration or a
    moved deadline) is measured as drawn: none overlaps another label or a mark, none
    leaves the drawing (the dates on top included), and the drawing fits a 1280 px
    screen."""
    history_page(tmp_path, demo_store, "D7-0002680", tab)
    tab.shot(tmp_path / "D7-0002680.png")
    events = tab.all("g.event", "gs => gs.map(g => g.dataset.event)")
    assert {"DeadlineExtended", "ReplacementShipped", "ReceiptConfirmed"} <= set(events)
    pages = crowded(demo_store)
    assert len(pages) > 80
    problems = {}
    for order_id, html in pages.items():
        tab.page.set_content(html)
        found = measure(tab, f"""(() => {{
          const svg = document.querySelector('#timeline svg').getBoundingClientRect();
          const labels = {LABELS}, marks = {MARKS};
          return {{labels: overlapping(labels, labels), marks: overlapping(labels, marks),
                   outside: outside(labels, svg), dates: boxes('#timeline svg text.date')
                   .length, wide: svg.right > window.innerWidth}};
        }})()""")
        assert found["dates"] > 0, order_id
        if found["labels"] or found["marks"] or found["outside"] or found["wide"]:
            problems[order_id] = found
    assert problems == {}


def test_deadlines_are_named_by_their_rule_with_the_id_beside_and_a_key(
        demo_store: str, tab: Browser, tmp_path: Path) -> None:
    history_page(tmp_path, demo_store, "D7-0002680", tab)
    names = [f"{TIMEOUTS[r].missed} ({r})" for r in ("R-1", "R-2", "R-3", "E-2")]
    rows = tab.all("#timeline svg text.name", "ts => ts.map(t => t.textContent)")
    assert rows == ["user", "merchant", "carrier", "platform", "system", *names]
    table = tab.all("#deadlines tbody tr", "rs => rs.map(r => r.cells[0].textContent)")
    r1, r2, r3, e2 = names  # R-1 moved by the platform, R-3 extended by the merchant
    assert [" ".join(t.split()) for t in table] == [r1, r1, r2, r3, r3, e2]
    # The key: every rule drawn, what it asks and what its passing does; every mark.
    key = tab.all("#rules dt", "ds => ds.map(d => [d.textContent, "
                               "d.nextElementSibling.textContent])")
    assert [k for k, _ in key] == names
    for (_, text), rule in zip(key, ("R-1", "R-2", "R-3", "E-2"), strict=True):
        assert TIMEOUTS[rule].event in text and "missed:" in text
    fates = tab.all("#key li[data-fate]", "ls => ls.map(l => l.dataset.fate)")
    assert fates == ["met", "missed", "moved", "pending"]
    visible = tab.page.inner_text("#key")
    assert "the system acting at a passed deadline" in visible
    assert "the platform's arbitration" in visible


def long_reasons(tmp_path: Path) -> str:
    """An order whose reasons are one long word and long Chinese text."""
    url = f"sqlite:///{tmp_path / 'long.db'}"
    word = "x" * 300
    (tmp_path / "long.jsonl").write_text(jsonl(
        {"command": "place_order", "order_id": "L1", "at": "2026-03-01T10:00:00+08:00",
         "payment": "online", "merchant_id": "M1", "user_id": "U1", "goods_amount": 9900,
         "postage": 800},
        {"command": "pay", "order_id": "L1", "at": "2026-03-01T10:05:00+08:00"},
        {"command": "ship", "order_id": "L1", "at": "2026-03-01T12:00:00+08:00",
         "carrier": "SF", "tracking_no": "SF1"},
        {"command": "deliver", "order_id": "L1", "at": "2026-03-02T12:00:00+08:00"},
        {"command": "request_refund", "order_id": "L1", "at": "2026-03-03T10:00:00+08:00",
         "amount": 9900, "reason": word},
        {"command": "reject_return", "order_id": "L1", "at": "2026-03-03T16:00:00+08:00",
         "reason": "商品已经使用过\uff0c不符合退款条件\u3002" * 12},
        {"command": "appeal", "order_id": "L1", "at": "2026-03-04T10:00:00+08:00",
         "reason": word}))
    assert run("ingest", "long.jsonl", "--db", url, "--allow-future",
               cwd=tmp_path).returncode == 0
    return url


def test_the_audit_trail_and_every_table_fit_the_page_at_800_and_1280_px(
        demo_store: str, tab: Browser, tmp_path: Path) -> None:
    """The audit trail's details were cut off on the right: now no cell's content is wider
    than its cell, no table wider than its section, and the page never scrolls sideways
    (the drawing scrolls in its own frame when the window is narrower than it)."""
    long = long_reasons(tmp_path)
    with closing(Ledger(demo_store, create_tables=False)) as ledger:
        busiest = max(orders(demo_store), key=lambda o: len(list(ledger.order_events(o))))
    for url, order_id in ((demo_store, "D7-0002680"), (demo_store, busiest), (long, "L1")):
        history_page(tmp_path, url, order_id, tab)
        for width in WIDTHS:
            tab.width(width)
            tab.shot(tmp_path / f"{order_id}-{width}.png")
            assert overflowing(tab) == {"page": 0, "tables": [], "cells": [],
                                        "sections": []}, (order_id, width)
            details = measure(tab, """boxes('#audit-trail td.details')""")
            trail = measure(tab, """boxes('#audit-trail table')""")[0]
            assert all(d["right"] <= trail["right"] + 0.5 for d in details)
    text = tab.page.inner_text("#audit-trail")
    assert "x" * 300 in text.replace("\n", "")  # all of it, wrapped


def test_the_arbitrations_outcome_and_blame_are_on_the_page_not_only_in_a_tooltip(
        tmp_path: Path, tab: Browser, demo_store: str) -> None:
    url = f"sqlite:///{tmp_path / 't.db'}"
    (tmp_path / "t.jsonl").write_text(DISPUTED)
    assert run("ingest", "t.jsonl", "--db", url, "--allow-future",
               cwd=tmp_path).returncode == 0
    history_page(tmp_path, url, "T1", tab)
    tab.shot(tmp_path / "arbitration.png")
    said = tab.page.inner_text("#arbitration")
    assert "for the user" in said and "blame merchant" in said
    assert "ruled 2026-03-07 10:00:00+08:00 by system" in said
    strip = tab.all("#timeline svg text.arbitration", "ts => ts.map(t => [t.textContent, "
                    "t.getBoundingClientRect().width])")
    assert [t for t, _ in strip] == ["arbitration of case 1: ruled for the user, blame "
                                     "merchant"]
    assert strip[0][1] > 100  # drawn, not a tooltip
    # Every arbitration of the demo, as its order's status document has it.
    now = datetime.now(UTC)
    checked = 0
    with closing(Ledger(demo_store, create_tables=False)) as ledger:
        for order_id in orders(demo_store):
            events = list(ledger.order_events(order_id))
            if not any(isinstance(e, Appealed) for e in events):
                continue
            doc = status_document(ledger.get_order(order_id))["return"]["arbitration"]
            tab.page.set_content(timeline_page(events, SHANGHAI, now, "demo"))
            shown = tab.all("#arbitration p.dispute", """ps => ps.map(p => [p.dataset.status,
                p.dataset.outcome, p.dataset.blame, p.innerText])""")[-1]
            assert shown[:3] == [doc["status"], doc["outcome"] or "", doc["blame"] or ""]
            if doc["status"] == "ruled":
                assert f"for the {doc['outcome']}, blame {doc['blame']}" in shown[3]
            checked += 1
    assert checked > 20
