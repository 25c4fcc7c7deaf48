"""A feed's messages are decided many to a transaction (`aftersales.feeds.run.BATCH`),
against the orders held in memory: the ledger they leave is the one deciding them one at
a time leaves, on both durable stores; and a batch whose order another writer moved on
meanwhile records nothing and is redone one message at a time on the stored state."""

from __future__ import annotations

from typing import Any

import pytest

from aftersales import Ledger
from aftersales.application import commands as cmd
from aftersales.application.commands import parse_command
from aftersales.application.group_commit import MessageItem, MessageOutcome
from aftersales.domain.order import Order
from aftersales.feeds import run
from aftersales.feeds.run import ingest_feed
from aftersales.storage.port import MessageRow
from tests.douyin_bodies import HOUR, T0, place
from tests.integration.test_feed_decided_once import LATENESS, ledger_state, scenario


@pytest.fixture(scope="module")
def one_at_a_time() -> tuple[Any, ...]:
    """The scenario decided one message a transaction, in memory."""
    lines = scenario(5)
    ledger = Ledger("memory:")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(run, "BATCH", 1)
        ingest_feed(ledger, lines, lateness=LATENESS)
    try:
        return ledger_state(ledger, lines)
    finally:
        ledger.close()


@pytest.mark.parametrize("batch", [2, 7, run.BATCH])
def test_a_feed_in_batches_leaves_what_one_message_at_a_time_leaves(
        db_url: str, batch: int, one_at_a_time: tuple[Any, ...],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run, "BATCH", batch)
    lines = scenario(5)
    ledger = Ledger(db_url)
    try:
        report = ingest_feed(ledger, lines, lateness=LATENESS)
        assert ledger_state(ledger, lines) == one_at_a_time
        assert report.duplicates == 3 and report.reported == 1
    finally:
        ledger.close()


def _outcome(key: str) -> Any:
    def row(results: list[object]) -> MessageRow:
        done = any(not getattr(r, "duplicate", True) for r in results)
        return MessageRow(key=key, outcome="applied" if done else "ignored", code="",
                          reason="", tag=101, order_ids="", message="")
    return row


def test_a_batch_another_writer_overtook_is_redone_one_by_one_on_the_stored_state(
        db_url: str) -> None:
    ledger, other = Ledger(db_url), Ledger(db_url, create_tables=False)
    try:
        for order_id in ("X", "Y"):
            ledger.execute(parse_command(place(order_id, at=T0)))
        seen: list[int] = []

        def pay_unless_paid(order_id: str, key: str) -> MessageItem:
            def choose(orders: Any) -> list[cmd.OrderCommand]:
                order: Order = orders[order_id]
                seen.append(order.version)
                if order_id == "X" and len(seen) == 1:  # another process pays X now,
                    other.pay(order_id="X", at=T0 + HOUR, command_id="other")  # after
                if order.status != "awaiting_payment":  # the batch read it
                    return []
                return [cmd.Pay(order_id=order_id, at=T0 + 2 * HOUR, command_id=key)]
            return MessageItem(key, (order_id,), choose, _outcome(key))

        results = ledger.execute_batch([pay_unless_paid("X", "douyin:x"),
                                        pay_unless_paid("Y", "douyin:y")])
        assert seen == [1, 1, 2, 1]  # X and Y in the batch; then each on its own, fresh
        x, y = results
        assert isinstance(x, MessageOutcome) and isinstance(y, MessageOutcome)
        assert (x.row.outcome, x.results) == ("ignored", [])  # X was paid by the other
        assert y.row.outcome == "applied"
        paid = [e.command_id for e in ledger.order_events("X")
                if type(e).__name__ == "PaymentReceived"]
        assert paid == ["other"]
        assert set(ledger.message_outcomes(["douyin:x", "douyin:y"])) == {
            "douyin:x", "douyin:y"}
    finally:
        other.close()
        ledger.close()
