"""The after-sale rules as one table (`aftersales.domain.steps`): every deadline, who is
awaited, what a timeout does and what it counts are read from it, by the aggregate, the
status document and the read models alike; nothing else spells them."""

from __future__ import annotations

import ast
import re
from dataclasses import fields, replace
from datetime import timedelta
from pathlib import Path

import pytest

import aftersales
from aftersales import Ledger, Policy
from aftersales.domain import events as ev
from aftersales.domain import rules, states
from aftersales.domain.states import Actor, CaseStatus, Flow, OrderStatus
from aftersales.domain.steps import (
    CASE_STEPS,
    ORDER_STEPS,
    TERMINAL_CASE_STATUSES,
    TIMEOUTS,
    VIOLATION_COUNTERS,
    awaiting,
)
from projections.schema import merchant_compliance, metadata
from tests.scenario import DAY, HOUR, SECOND, Scenario

PACKAGE = Path(aftersales.__file__).parent
ROOT = PACKAGE.parent
TABLE = PACKAGE / "domain" / "steps.py"
WINDOWS = [f.name for f in fields(Policy) if isinstance(f.default, timedelta)]


def test_every_status_has_a_step_and_every_deadline_a_row() -> None:
    assert set(ORDER_STEPS) == set(OrderStatus)
    assert set(CASE_STEPS) == set(Flow)
    assert {s for steps in CASE_STEPS.values() for s in steps} == set(CaseStatus)
    steps = [*ORDER_STEPS.values(), *(s for f in CASE_STEPS.values() for s in f.values())]
    started = {s.timeout.rule for s in steps if s.timeout is not None}
    assert started == set(TIMEOUTS), "each deadline is run by a step"
    assert all(r in rules.RULE_IDS for r in TIMEOUTS)
    for flow_steps in CASE_STEPS.values():
        assert CaseStatus.REQUESTED in flow_steps
        ended = {s for s, step in flow_steps.items() if step.ends}
        assert ended <= TERMINAL_CASE_STATUSES
        assert all(step.awaiting is None and step.timeout is None
                   for step in flow_steps.values() if step.ends)


def test_each_row_names_a_policy_window_and_a_deadline_missed_event() -> None:
    for rule, timeout in TIMEOUTS.items():
        assert timeout.window in WINDOWS, rule
        assert issubclass(getattr(ev, timeout.event), ev.DeadlineMissed), rule
        assert ev.TIMEOUT_EVENTS[rule] is getattr(ev, timeout.event)
        assert timeout.missed in vars(states).values(), rule
    missed_events = {c for c in vars(ev).values()
                     if isinstance(c, type) and issubclass(c, ev.DeadlineMissed)
                     and c is not ev.DeadlineMissed}
    assert missed_events == set(ev.TIMEOUT_EVENTS.values()), "a miss without its row"


def test_violations_are_the_merchants_and_each_adds_to_a_compliance_column() -> None:
    for timeout in TIMEOUTS.values():
        assert timeout.party in (Actor.MERCHANT, Actor.USER)
        assert (timeout.counter is not None) == timeout.is_violation, timeout.rule
        assert timeout.is_violation or not timeout.penalised
    assert set(VIOLATION_COUNTERS) <= set(merchant_compliance.c.keys())


def test_awaiting_of_the_read_models_is_the_table_s() -> None:
    for flow_steps in CASE_STEPS.values():
        for case_status, step in flow_steps.items():
            want = None if step.awaiting is None else step.awaiting.value
            if not step.ends:
                assert awaiting("delivered", case_status.value) == want
    assert awaiting("shipped", None) == "carrier"
    assert awaiting("delivered", "refunded") is None
    assert awaiting("paid", "closed") == "merchant"


@pytest.mark.parametrize("rule", sorted(TIMEOUTS))
def test_a_deadline_is_its_row_s_window_from_the_step_s_start(rule: str) -> None:
    """Each window stretched by a different amount shows up, exactly, in the deadline of
    that rule alone (so no path computes a deadline but through the table)."""
    timeout = TIMEOUTS[rule]
    policy = replace(Policy(), **{timeout.window: getattr(Policy(), timeout.window)
                                  + timedelta(minutes=7)})
    ledger = Ledger("memory:", policy=policy)
    s = Scenario(ledger, "cod" if rule == rules.R_COD_4 else "online")
    reach = {rules.C_ON_4: lambda: s, rules.R_1: s.to_requested, rules.R_2: s.to_approved,
             rules.R_3: s.to_in_transit, rules.R_COD_4: s.to_received,
             rules.F_1: s.to_refund_before_shipment, rules.F_2: s.to_refund_after_shipment,
             rules.E_2: s.to_exchange_received, rules.A_2: s.to_appealed}
    reach[rule]()
    order = ledger.get_order(s.order_id)
    assert order is not None and order.pending_deadline is not None
    assert order.pending_deadline.rule == rule
    assert order.pending_deadline.at - order.last_at == (
        getattr(Policy(), timeout.window) + timedelta(minutes=7))
    ledger.close()


def test_the_event_of_a_timeout_and_what_it_counts_come_from_its_row(ledger: Ledger) -> None:
    s = Scenario(ledger, "cod").to_requested()
    s.tick(48 * HOUR + SECOND)
    s.tick(7 * DAY + SECOND)
    kinds = s.event_names()
    assert kinds[-2:] == [TIMEOUTS[rules.R_1].event, TIMEOUTS[rules.R_2].event]
    assert [(v["rule"], v["consequence"]) for v in s.doc["violations"]] == [
        (TIMEOUTS[rules.R_1].missed, TIMEOUTS[rules.R_1].consequence)]
    assert [x["rule"] for x in s.doc["lapses"]] == [TIMEOUTS[rules.R_2].missed]


def _product_sources() -> dict[Path, str]:
    return {p: p.read_text() for p in PACKAGE.rglob("*.py")
            if "devtools" not in p.parts}


def test_no_code_but_the_table_reads_a_deadline_window_from_the_policy() -> None:
    pattern = re.compile(r"\.(" + "|".join(WINDOWS) + r")\b")
    found = [f"{p.relative_to(ROOT)}: {m.group(0)}" for p, text in _product_sources().items()
             if p != TABLE for m in pattern.finditer(text)]
    assert found == []


def test_violation_and_lapse_names_and_consequences_are_spelled_only_in_the_table() -> None:
    columns = {c.name for table in metadata.tables.values() for c in table.columns}
    words = ({t.missed for t in TIMEOUTS.values()} | {
        t.consequence for t in TIMEOUTS.values() if t.is_violation}) - columns
    allowed = {TABLE, PACKAGE / "domain" / "states.py"}
    found = []
    for path, text in _product_sources().items():
        if path in allowed:
            continue
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Constant) and node.value in words:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value}")
    assert found == []


def test_docs_architecture_shows_every_row_of_the_table() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    for timeout in TIMEOUTS.values():
        row = next((line for line in text.splitlines()
                    if line.startswith(f"| {timeout.rule} |")), None)
        assert row is not None, timeout.rule
        for value in (timeout.window, timeout.event, timeout.missed, timeout.consequence):
            assert value in row, (timeout.rule, value)
