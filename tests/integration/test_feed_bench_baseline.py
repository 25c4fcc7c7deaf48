"""The bench's feed baseline is fair: the command lines `aftersales.devtools.feed_bench`
writes for a Douyin feed, ingested as commands, leave every order as the feed leaves it
(the same events, with the same command ids), so the two ingests record the same work."""

from __future__ import annotations

from pathlib import Path

from aftersales import Ledger
from aftersales.devtools.feed_bench import write_feed
from aftersales.feeds.run import ingest_feed
from aftersales.ingest.serial import ingest


def _orders(ledger: Ledger) -> dict[str, list[tuple[object, ...]]]:
    found: dict[str, list[tuple[object, ...]]] = {}
    for event in ledger.all_events():
        found.setdefault(str(event.originator_id), []).append(
            (type(event).__name__, event.at, event.command_id, getattr(event, "rule", None)))
    return found


def test_the_feeds_command_lines_leave_the_orders_the_feed_leaves(tmp_path: Path) -> None:
    feed, commands, messages, count = write_feed(60, tmp_path)
    assert messages > 60 and count > 60
    by_feed, by_commands = (Ledger(f"sqlite:///{tmp_path / name}")
                            for name in ("feed.db", "commands.db"))
    try:
        with feed.open("rb") as lines:
            report = ingest_feed(by_feed, lines)
        with commands.open("rb") as lines:
            done = ingest(by_commands, lines, lambda n, e: None)
        assert done.applied == count and not done.refused
        assert report.events == done.events
        assert _orders(by_commands) == _orders(by_feed)
    finally:
        by_feed.close()
        by_commands.close()
