"""SPEC section 9: the merchant's one extension of the receipt deadline (D-1) and the
platform's moves of a pending deadline (D-2): events with the old and new deadline, the
deadline index following them, timeouts at the new instant, replay before the change."""

from __future__ import annotations

from datetime import datetime

import pytest

from aftersales import Ledger, history_entry
from tests.scenario import DAY, HOUR, SECOND, T0, Scenario

BOTH = pytest.mark.parametrize("payment", ["online", "cod"])


def indexed(ledger: Ledger, order_id: str = "D1") -> list[tuple[str, datetime]]:
    """The order's rows of the deadline index (instants, whatever their offset)."""
    return [(row.rule, row.deadline) for _, row in ledger.index.pending_deadlines()
            if row.order_id == order_id]


# --- D-1: the merchant extends the receipt deadline once -----------------------------------

@BOTH
@pytest.mark.parametrize("kind", ["return", "exchange"])
def test_D_1_the_receipt_deadline_is_extended_once_by_seven_days(
    ledger: Ledger, payment: str, kind: str,
) -> None:
    s = Scenario(ledger, payment)
    s.to_in_transit() if kind == "return" else s.to_exchange_in_transit()
    old = s.now + 7 * DAY
    s.do("extend_deadline", 7 * DAY)  # exactly at the deadline: still on time
    extended = s.last("DeadlineExtended")
    assert (extended.actor, extended.old_deadline, extended.new_deadline) == (  # type: ignore[attr-defined]
        "merchant", old, old + 7 * DAY)
    assert s.doc["return"]["deadline"] == (old + 7 * DAY).isoformat()
    assert s.doc["next_deadline"]["rule"] == "R-3"
    err = s.refused("D-1", "extend_deadline")
    assert "once" in err.reason


@BOTH
def test_D_1_an_extension_after_the_deadline_is_refused_the_system_acted(
    ledger: Ledger, payment: str,
) -> None:
    s = Scenario(ledger, payment).to_in_transit()
    s.refused("DEADLINE", "extend_deadline", 7 * DAY + SECOND)
    assert s.last("ReceiptAutoConfirmed").rule == "R-3"  # type: ignore[attr-defined]


def test_D_1_only_goods_in_transit_have_a_receipt_deadline_to_extend(ledger: Ledger) -> None:
    s = Scenario(ledger, "online").to_approved()
    s.refused("FLOW", "extend_deadline")
    r = Scenario(ledger, "online", order_id="D2").to_refund_after_shipment()
    r.refused("FLOW", "extend_deadline")


@BOTH
def test_D_1_cascade_an_extension_then_a_sweep_past_the_old_deadline(
    ledger: Ledger, payment: str,
) -> None:
    s = Scenario(ledger, payment).to_in_transit()
    old = s.now + 7 * DAY
    s.do("extend_deadline", DAY)
    assert indexed(ledger) == [("R-3", old + 7 * DAY)]
    assert ledger.tick(old + SECOND) == 0  # the old deadline is gone
    assert s.case_status == "in_transit" and s.doc["violations"] == []
    assert ledger.tick(old + 7 * DAY + SECOND) >= 1
    assert s.last("ReceiptAutoConfirmed").at == old + 7 * DAY
    assert s.doc["violations"][0]["rule"] == "RECEIPT_CONFIRM_7D"


def test_D_1_as_of_before_the_extension_shows_the_old_deadline(ledger: Ledger) -> None:
    s = Scenario(ledger, "online").to_in_transit()
    old = s.now + 7 * DAY
    before = s.now + HOUR
    s.do("extend_deadline", 2 * HOUR)
    then = ledger.order_as_of("D1", before)
    assert then is not None and then.pending_deadline is not None
    assert then.pending_deadline.at == old
    now = ledger.order_as_of("D1", s.now)
    assert now is not None and now.pending_deadline is not None
    assert now.pending_deadline.at == old + 7 * DAY


# --- D-2: the platform moves a pending deadline --------------------------------------------

@BOTH
def test_D_2_the_platform_moves_a_case_deadline_and_the_timeout_happens_then(
    ledger: Ledger, payment: str,
) -> None:
    s = Scenario(ledger, payment).to_requested()
    old = s.now + 48 * HOUR
    until = old + 3 * DAY
    s.do("set_deadline", until=until, reason="holiday")
    moved = s.last("DeadlineSet")
    assert (moved.actor, moved.old_deadline, moved.new_deadline,  # type: ignore[attr-defined]
            moved.reason, moved.deadline_rule) == ("platform", old, until, "holiday", "R-1")  # type: ignore[attr-defined]
    assert indexed(ledger) == [("R-1", until)]
    assert ledger.tick(old + SECOND) == 0
    s.do("approve_return", at=until)  # exactly at the new deadline: on time
    assert s.last("MerchantApproved").actor == "merchant"
    assert s.doc["violations"] == []


def test_D_2_a_deadline_may_also_be_moved_earlier(ledger: Ledger) -> None:
    s = Scenario(ledger, "online").to_requested()
    until = s.now + 2 * HOUR
    s.do("set_deadline", until=until, reason="platform feed")
    assert ledger.tick(until + SECOND) == 1
    assert s.last("ReturnAutoApproved").deadline == until  # type: ignore[attr-defined]


def test_D_2_the_payment_deadline_of_an_unpaid_order_is_moved(ledger: Ledger) -> None:
    s = Scenario(ledger, "online")
    until = T0 + 3 * DAY
    s.do("set_deadline", until=until, reason="logistics disruption")
    assert s.last("DeadlineSet").case is None  # type: ignore[attr-defined]
    assert s.doc["next_deadline"] == {"rule": "C-ON-4", "case": None,
                                      "deadline": until.isoformat()}
    assert ledger.tick(T0 + 24 * HOUR + SECOND) == 0
    s.do("pay", at=T0 + 2 * DAY)
    assert s.order_status == "paid" and s.doc["lapses"] == []


def test_D_2_the_new_deadline_must_be_later_than_the_command(ledger: Ledger) -> None:
    s = Scenario(ledger, "online").to_requested()
    s.refused("D-2", "set_deadline", HOUR, until=s.now + HOUR, reason="x")
    s.refused("D-2", "set_deadline", HOUR, until=s.now, reason="x")


def test_D_2_with_nothing_pending_it_is_FLOW(ledger: Ledger) -> None:
    s = Scenario(ledger, "online").to_delivered()
    s.refused("FLOW", "set_deadline", until=s.now + DAY, reason="x")
    s.do("request_return", reason="x")
    s.do("reject_return", reason="no")
    s.refused("FLOW", "set_deadline", until=s.now + DAY, reason="x")


def test_D_2_a_passed_deadline_is_a_fact_the_next_one_is_moved(ledger: Ledger) -> None:
    s = Scenario(ledger, "cod").to_requested()
    answer_by = s.now + 48 * HOUR
    s.do("set_deadline", 48 * HOUR + SECOND, until=s.now + 30 * DAY, reason="late move")
    assert s.event_names()[-2:] == ["ReturnAutoApproved", "DeadlineSet"]
    assert s.last("ReturnAutoApproved").at == answer_by
    assert s.last("DeadlineSet").deadline_rule == "R-2"  # type: ignore[attr-defined]


def test_deadline_changes_are_in_the_audit_trail(ledger: Ledger) -> None:
    s = Scenario(ledger, "online").to_in_transit()
    s.do("extend_deadline")
    s.do("set_deadline", until=s.now + 30 * DAY, reason="holiday")
    trail = [e for e in map(history_entry, s.events()) if e["event"].startswith("Deadline")]
    assert [(e["event"], e["actor"]) for e in trail] == [
        ("DeadlineExtended", "merchant"), ("DeadlineSet", "platform")]
    assert set(trail[1]["details"]) >= {"old_deadline", "new_deadline", "reason", "case"}
