"""A webhook inbox row is marked applied in the transaction that records the last of its
messages (with their events and outcomes): so a crash can never leave a row's messages
recorded and the row waiting, nor the row marked and a message of it undecided."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aftersales import Ledger
from aftersales.application.commands import parse_command
from aftersales.feeds.run import Feed
from aftersales.feeds.webhook import received_line
from tests.douyin_bodies import HOUR, body, place
from tests.douyin_bodies import paid as paid_message

NOW = datetime.now(UTC).replace(microsecond=0)


def test_a_row_is_marked_applied_with_the_last_of_its_messages(durable_ledger: Ledger
                                                                ) -> None:
    ledger = durable_ledger
    for n in range(3):
        ledger.execute(parse_command(place(f"M{n}", at=NOW - 3 * HOUR)))
    # Row 1 holds two orders' payments (the second paid later), row 2 one, in between.
    two = b"[" + body(paid_message("p0", "M0", at=NOW - 2 * HOUR))[1:-1] + b"," + body(
        paid_message("p2", "M2", at=NOW - HOUR + timedelta(minutes=30)))[1:-1] + b"]"
    one = body(paid_message("p1", "M1", at=NOW - HOUR))
    rows = [ledger.index.inbox_add(b, NOW)[0] for b in (two, one)]
    feed = Feed(ledger, timedelta(hours=2), inbox=True)  # all three held
    for seq, raw in zip(rows, (two, one), strict=True):
        feed.add(seq, received_line(raw, NOW))
    feed.release(NOW - 2 * HOUR)  # p0 decided: row 1 still has p2 held
    assert ledger.message_outcomes(["douyin:p0"])
    assert ledger.index.inbox_stats().applied == 0
    feed.release(NOW - HOUR)  # p1: row 2 is whole, but row 1 before it is not
    assert ledger.index.inbox_stats().applied == 0
    feed.drain()  # p2: both rows whole, marked in p2's transaction
    stats = ledger.index.inbox_stats()
    assert (stats.applied, stats.backlog) == (2, 0)
    assert sorted(ledger.message_outcomes(["douyin:p0", "douyin:p1", "douyin:p2"])) == [
        "douyin:p0", "douyin:p1", "douyin:p2"]


def test_a_file_feed_marks_no_inbox_row(durable_ledger: Ledger) -> None:
    ledger = durable_ledger
    ledger.execute(parse_command(place("F0", at=NOW - 3 * HOUR)))
    raw = body(paid_message("f0", "F0", at=NOW - HOUR))
    seq, _ = ledger.index.inbox_add(raw, NOW)
    feed = Feed(ledger, timedelta(0))
    feed.add(seq, received_line(raw, NOW))
    feed.drain()
    assert ledger.index.inbox_stats().backlog == 1
