"""The interpretation switches and durations live in one Policy object."""

from __future__ import annotations

from datetime import timedelta

from aftersales import Ledger, Policy
from tests.scenario import DAY, GOODS, HOUR, POSTAGE, SECOND, T0, Scenario


def test_durations_come_from_the_policy(store_url: str) -> None:
    ledger = Ledger(store_url, policy=Policy(payment_window=timedelta(hours=2)))
    s = Scenario(ledger)
    assert ledger.tick(T0 + 2 * HOUR + SECOND) == 1
    assert s.order_status == "cancelled"


def test_a_deadline_is_stored_in_its_event_so_a_new_policy_does_not_rewrite_history(
    db_url: str,
) -> None:
    first = Ledger(db_url)
    Scenario(first).to_requested()
    first.close()
    later = Ledger(db_url, policy=Policy(merchant_response_window=timedelta(hours=1)))
    order = later.get_order("D1")
    assert order is not None and order.pending_deadline is not None
    assert order.pending_deadline.at == order.cases[0].requested_at + 48 * HOUR
    later.close()


def test_return_window_policy_refuses_late_requests(store_url: str) -> None:
    ledger = Ledger(store_url, policy=Policy(return_window=7 * DAY))
    s = Scenario(ledger).to_delivered()
    s.refused("DEADLINE", "request_return", 7 * DAY + SECOND, reason="late")
    assert s.doc["return"] is None


def test_return_window_policy_allows_requests_inside_it(store_url: str) -> None:
    ledger = Ledger(store_url, policy=Policy(return_window=7 * DAY))
    s = Scenario(ledger).to_delivered()
    s.do("request_return", 7 * DAY, reason="on time")
    assert s.case_status == "requested"


def test_postage_refund_on_return_is_a_policy_switch(store_url: str) -> None:
    ledger = Ledger(store_url, policy=Policy(refund_postage_on_return=True))
    s = Scenario(ledger).to_delivered()
    s.do("request_return", reason="all of it")
    assert s.doc["return"]["amount"] == GOODS + POSTAGE


def test_withdrawal_can_be_switched_off(store_url: str) -> None:
    ledger = Ledger(store_url, policy=Policy(user_may_withdraw=False))
    s = Scenario(ledger).to_requested()
    s.refused("R-5", "withdraw_return")
