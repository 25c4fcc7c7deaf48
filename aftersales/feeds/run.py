"""A platform feed into the ledger: push bodies (and ledger command lines, mixed in one
file) applied in business-time order within a lateness window, one message at a time.

Each message is decided on the ledger's state as of its time (the order read from the
store, its due timeouts applied to that copy), so it must be applied before the next is
decided: a feed is applied one command a transaction, not in group commits (a feed of a
few thousand messages a day; docs/platforms/douyin.md has the figures).  A message whose
id was applied before (`douyin:<msg_id>`) is skipped before it is decided: delivered again
after its order moved on, it would otherwise be decided into another command.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aftersales.application.commands import OrderCommand, Reconcile, Tick, parse_command
from aftersales.application.ledger import Ledger
from aftersales.domain import rules
from aftersales.errors import CommandRefused, IntegrityBroken
from aftersales.feeds.douyin import (
    RANK,
    TAGS,
    Message,
    Skipped,
    decide,
    is_push,
    parse_messages,
)
from aftersales.feeds.window import Window
from aftersales.ingest.serial import decode_line

#: How far behind the latest business time a message may arrive and still be put in its
#: place (AFTERSALES_FEED_LATENESS / --lateness).
LATENESS = timedelta(minutes=10)

Item = tuple[int, OrderCommand | Tick | Message]


@dataclass
class FeedReport:
    lines: int = 0
    messages: int = 0
    commands: int = 0  # ledger command lines among them
    applied: int = 0
    reconciled: int = 0  # of those applied: accounts of steps the ledger had taken
    duplicates: int = 0
    ignored: int = 0
    reported: int = 0
    late: int = 0
    events: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    by_tag: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        refused = sum(self.refused.values())
        codes = ", ".join(f"{c} {n}" for c, n in sorted(self.refused.items()))
        return (f"{self.lines:,} lines: {self.messages:,} messages and {self.commands:,} "
                f"ledger commands; {self.applied:,} applied ({self.reconciled:,} "
                f"reconciled), {self.duplicates:,} already applied, {self.ignored:,} "
                f"ignored, {self.reported:,} reported, {refused:,} refused"
                + (f" ({codes})" if codes else "") + f"; {self.late:,} came later than "
                f"the window; {self.events:,} events recorded")


class Feed:
    """A feed being applied: lines added as they come (a file's, or a webhook's bodies),
    each message held in the window until its place in business time is known, then
    decided and applied; `drain` applies what is still held (the end of the input)."""

    def __init__(self, ledger: Ledger, lateness: timedelta = LATENESS,
                 on_refused: Callable[[str], None] = lambda text: None) -> None:
        self.ledger = ledger
        self.report = FeedReport()
        self.window: Window[Item] = Window(lateness)
        self.on_refused = on_refused
        self._seen: set[str] = set()

    def say(self, number: int, what: str, code: str, reason: str) -> None:
        self.on_refused(f"line {number}{what}: {code}: {reason}")

    def add(self, number: int, raw: bytes) -> None:
        """Line `number` of the feed: a push body or a ledger command line."""
        report = self.report
        report.lines += 1
        try:
            text = decode_line(raw).strip()
            if not text:
                return
            if is_push(text):
                read: list[Any] = parse_messages(text)
            else:
                read = [parse_command(text)]
        except CommandRefused as refused:
            report.refused[refused.code] += 1
            self.say(number, "", refused.code, refused.reason)
            return
        for x in read:
            if isinstance(x, CommandRefused | Skipped):  # one message of the body
                report.messages += 1
                if isinstance(x, Skipped):
                    report.ignored += 1
                else:
                    report.refused[x.code] += 1
                    self.say(number, "", x.code, x.reason)
                continue
            item: Item = (number, x)
            if isinstance(x, Message):
                if (ahead := self.ledger.writer.too_far_ahead(x.at)) is not None:
                    report.messages += 1  # said, and kept out of the window's clock
                    report.refused[ahead.code] += 1
                    self.say(number, f" (msg {x.msg_id}, tag {x.tag})", ahead.code,
                             ahead.reason)
                    continue
                report.messages += 1
                report.by_tag[TAGS[x.tag].name if x.tag in TAGS else str(x.tag)] += 1
                if x.msg_id in self._seen:  # delivered twice in this feed
                    report.duplicates += 1
                    continue
                self._seen.add(x.msg_id)
            else:  # a ledger command line: applied in file order (an order export comes
                report.commands += 1  # before the pushes about its orders), after the
                self.release(x.at)  # messages held that precede it in business time
                self._apply(item, False)
                continue
            for due, late in self.window.add(x.at, item, RANK.get(x.tag, x.tag)):
                self._apply(due, late)

    def drain(self) -> None:
        for due, late in self.window.drain():
            self._apply(due, late)

    def release(self, upto: datetime) -> None:
        """Apply what is held up to business time `upto`."""
        for due, late in self.window.release(upto):
            self._apply(due, late)

    def first_held(self) -> int | None:
        """The first line with a message still held (None: nothing is)."""
        return min((number for number, _ in self.window.held()), default=None)

    def _apply(self, item: Item, late: bool) -> None:
        number, x = item
        self.report.late += late
        if isinstance(x, Message):
            self._message(number, x)
            return
        self._execute(number, "", x)

    def _execute(self, number: int, what: str, command: OrderCommand | Tick) -> None:
        """Apply one command of the feed (a line's, or a message's), counting what it did
        or saying why it was refused."""
        report = self.report
        try:
            outcome = self.ledger.execute(command)
        except CommandRefused as refused:
            report.refused[refused.code] += 1
            report.events += refused.events
            self.say(number, what, refused.code, refused.reason)
            return
        report.events += outcome.events
        if outcome.duplicate:
            report.duplicates += 1
            return
        report.applied += 1
        report.reconciled += isinstance(command, Reconcile)

    def _message(self, number: int, m: Message) -> None:
        """Decide a message on its order's state at its time, and apply what it becomes."""
        ledger, report = self.ledger, self.report
        what = f" (msg {m.msg_id}, tag {m.tag}" + (f" {TAGS[m.tag].name})" if m.tag in TAGS
                                                    else ")")
        if ledger.index.command_digest(m.command_id) is not None:
            report.duplicates += 1
            return
        try:
            order = ledger.get_order(m.order_id) if m.order_id else None
        except IntegrityBroken as broken:
            report.refused[rules.INTEGRITY] += 1
            self.say(number, what, rules.INTEGRITY, broken.describe())
            return
        if order is not None:  # the state at the message's time: a copy, never recorded
            order.apply_due_timeouts(m.at, ledger.policy)
        decision: OrderCommand | Skipped | CommandRefused
        try:
            decision = decide(m, order)
        except CommandRefused as refused:
            decision = refused
        except (ValueError, TypeError, OverflowError) as e:  # a field no rule could read
            decision = CommandRefused(rules.INPUT, f"cannot read the message: {e}")
        if isinstance(decision, CommandRefused):
            report.refused[decision.code] += 1
            self.say(number, what, decision.code, decision.reason)
        elif isinstance(decision, Skipped):
            if decision.status == "ignored":
                report.ignored += 1
            else:
                report.reported += 1
                self.say(number, what, "REPORTED", decision.reason)
        else:
            self._execute(number, what, decision)


def ingest_feed(ledger: Ledger, lines: Iterable[bytes], *,
                lateness: timedelta = LATENESS,
                on_refused: Callable[[str], None] = lambda text: None) -> FeedReport:
    """Apply a feed; each refused or reported message is told as `line N: …`."""
    feed = Feed(ledger, lateness, on_refused)
    for number, raw in enumerate(lines, start=1):
        feed.add(number, raw)
    feed.drain()
    return feed.report
