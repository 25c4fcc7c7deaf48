"""A platform feed into the ledger: push bodies (and ledger command lines, mixed in one
file) applied in business-time order within a lateness window, each message decided
once.

A message is decided on the ledger's state as of its time (each order it names as the
ledger holds it, its due timeouts applied to a copy), into the commands its meaning
needs; those commands and the message's outcome (applied, reconciled, refused, reported,
ignored) are recorded in the same transaction, under the message's key
(`douyin:<msg_id>`).  Messages leaving the window, and command lines, are decided in
order against the orders held in memory and recorded `BATCH` to a transaction, as
`ingest` records command lines (`aftersales.application.group_commit`): each decided on
the state its predecessors left; a conflict redoes the batch one item at a time.
A message whose outcome is recorded is never decided again, whether it comes again in
the same feed, in another file, or after a crash and restart: so a feed applied with
interruptions leaves the ledger it leaves uninterrupted.  Only `retry` decides reported
messages again, on purpose (after the missing order export was loaded).

Not recorded, because they do not depend on the ledger's state and come out the same
every time: a message that cannot be read (INPUT), a tag the ledger does not read, and
refusals decided afresh by rule (FUTURE, INTEGRITY).
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from aftersales.application.commands import OrderCommand, Reconcile, Tick, parse_command
from aftersales.application.decisions import Outcome
from aftersales.application.group_commit import MessageItem, MessageOutcome
from aftersales.application.ledger import Ledger
from aftersales.domain import rules
from aftersales.domain.order import Order
from aftersales.errors import CommandRefused, IntegrityBroken
from aftersales.feeds.douyin import (
    RANK,
    TOLERANCE,
    Message,
    Skipped,
    Tolerance,
    decide,
    message,
)
from aftersales.feeds.pushes import MAX_BODY, read_line
from aftersales.feeds.window import Window
from aftersales.ingest.serial import decode_line
from aftersales.settings import INGEST_BATCH
from aftersales.storage.port import MessageRow
from aftersales.storage.shard import Partition

#: How far behind the latest business time a message may arrive and still be put in its
#: place (AFTERSALES_FEED_LATENESS / --lateness).
LATENESS = timedelta(minutes=10)
#: The longest feed line: a push body as large as the webhook accepts (1 MiB), with the
#: receive time around it; what was acknowledged is applied, whatever its size.
MAX_FEED_LINE = MAX_BODY + 1024
#: Messages and command lines recorded per transaction, as many as `ingest` records.
#: One message a transaction spent 2/3 of a feed's time in SQLite's commit and most of
#: the rest reading each order twice; 1,000 a transaction still spent a fifth of it
#: recording (docs/performance.md, "Platform feeds").
BATCH = INGEST_BATCH
#: The outcomes of a message, most telling first: a message with a reported part is
#: reported (so that `feed retry` decides it again); one with a refused command, refused.
OUTCOMES = ("reported", "refused", "reconciled", "applied", "ignored")

Item = tuple[int, Message]  # a message held, with its line


@dataclass
class _Queued:
    """A line's item waiting for the next batch: a command line, or a message out of the
    window (with what choosing its commands gave, once chosen)."""

    number: int
    position: int  # in the queue
    item: OrderCommand | Tick | MessageItem | None = None
    message: Message | None = None
    chosen: _Chosen | None = None


@dataclass
class FeedReport:
    lines: int = 0
    messages: int = 0
    commands: int = 0  # ledger command lines among them
    applied: int = 0
    reconciled: int = 0  # of those applied: accounts of steps the ledger had taken
    duplicates: int = 0  # messages decided before, command lines applied before
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
                f"reconciled), {self.duplicates:,} decided before, {self.ignored:,} "
                f"ignored, {self.reported:,} reported, {refused:,} refused"
                + (f" ({codes})" if codes else "") + f"; {self.late:,} came later than "
                f"the window; {self.events:,} events recorded")


class Feed:
    """A feed being applied: lines added as they come (a file's, or a webhook's bodies),
    each message held in the window until its place in business time is known, then
    decided and applied; `drain` applies what is still held (the end of the input)."""

    def __init__(self, ledger: Ledger, lateness: timedelta = LATENESS,
                 on_refused: Callable[[str], None] = lambda text: None, *,
                 tolerance: Tolerance = TOLERANCE,
                 received_at: datetime | None = None, inbox: bool = False,
                 part: Partition | None = None) -> None:
        self.ledger = ledger
        #: A partition's feed decides only its orders' lines and messages (and the sub-orders
        #: of a message that are its own); what names no order is partition 0's to say.
        self.part = part
        #: The lines are the webhook inbox's rows (their seqs): a message's decision marks
        #: the rows it completes applied, in its own transaction.
        self.inbox = inbox
        self._adding: int | None = None  # the line being read (its messages not all held)
        self._last = 0  # the last line read whole
        self.report = FeedReport()
        self.window: Window[Item] = Window(lateness)
        self.on_refused = on_refused
        self.tolerance = tolerance
        #: The receive time of bare bodies (`--received-at`; None: unknown).
        self.received_at = received_at
        self._seen: set[str] = set()
        #: Command lines read and messages out of the window, not yet recorded.
        self._queue: list[_Queued] = []
        #: While a batch is recorded: for each of its items, the first line of the items
        #: after it (none: 0), which the inbox rows before its message's are not.
        self._later: list[int] = []
        self._first = 0  # ...and the first line held in the window or not read whole

    def say(self, number: int, what: str, code: str, reason: str) -> None:
        self.on_refused(f"line {number}{what}: {code}: {reason}")

    def add(self, number: int, raw: bytes) -> None:
        """Line `number` of the feed: a push body, a received body or a ledger command
        line."""
        self._adding = number
        try:
            self._add(number, raw)
        finally:
            self._adding, self._last = None, number

    def complete_before(self) -> int:
        """The first line some message of which is not yet decided (held, or not yet
        read): every line before it is decided whole."""
        held = self.first_held()
        read = self._reading()
        return read if held is None else min(held, read)

    def _reading(self) -> int:
        """The first line not read whole."""
        return self._last + 1 if self._adding is None else self._adding

    def _add(self, number: int, raw: bytes) -> None:
        report = self.report
        report.lines += 1
        try:
            text = decode_line(raw, MAX_FEED_LINE).strip()
            if not text:
                return
            body = read_line(text, self.received_at)
            if body is None:
                command = parse_command(text)
                if not self._mine(command):
                    return
                report.commands += 1  # applied in file order (an order export comes
                self._release(command.at)  # before the pushes about its orders), after
                self._enqueue(_Queued(number, 0, command))  # the messages held that
                return  # precede it
        except CommandRefused as refused:
            if self._mine(None):
                report.refused[refused.code] += 1
                self.say(number, "", refused.code, refused.reason)
            return
        for n, found in enumerate(body.messages):
            try:
                m = message(n, found, body.received_at)
                if isinstance(m, Message) and self.part is not None:
                    own = self._own_part(m)
                    if own is None:
                        continue
                    m = own
            except UNREADABLE as e:  # a field nothing reads: the message, not the reader
                if not self._mine(None):
                    continue
                report.messages += 1
                unread = _unreadable(e, f"message {n + 1}")
                report.refused[unread.code] += 1  # one message of the body: the rest
                self.say(number, "", unread.code, unread.reason)  # stand
                continue
            if isinstance(m, Skipped) and not self._mine(None):
                continue
            report.messages += 1
            if isinstance(m, Skipped):
                report.ignored += 1
                report.by_tag[str(m.tag)] += 1
                continue
            report.by_tag[m.name] += 1
            if (ahead := self.ledger.writer.too_far_ahead(m.at)) is not None:
                report.refused[ahead.code] += 1  # said, and kept out of the window's clock
                self.say(number, _what(m), ahead.code, in_its_terms(m, ahead).reason)
                continue
            if m.key in self._seen:  # delivered twice in this feed
                report.duplicates += 1
                continue
            self._seen.add(m.key)
            for due, late in self.window.add(m.at, (number, m), RANK.get(m.tag, m.tag)):
                self._apply(due, late)

    def _mine(self, command: OrderCommand | Tick | None) -> bool:
        """Whether this feed decides a command line (None: a line or message that names no
        order, said by partition 0 alone)."""
        if self.part is None or isinstance(command, Tick):
            return True
        return self.part.owns(command.order_id) if command is not None \
            else self.part.index == 0

    def _own_part(self, m: Message) -> Message | None:
        """The message for this partition's sub-orders (None: it names none of them)."""
        assert self.part is not None
        if not m.order_ids:
            return m if self.part.index == 0 else None
        owned = tuple(o for o in m.order_ids if self.part.owns(o))
        if not owned:
            return None
        return m if owned == m.order_ids else replace(m, order_ids=owned)

    def drain(self) -> None:
        """Apply everything held (the end of the input)."""
        for due, late in self.window.drain():
            self._apply(due, late)
        self.flush()

    def release(self, upto: datetime) -> None:
        """Apply what is held up to business time `upto`, and record it."""
        self._release(upto)
        self.flush()

    def _release(self, upto: datetime) -> None:
        for due, late in self.window.release(upto):
            self._apply(due, late)

    def first_held(self) -> int | None:
        """The first line with a message still held, or a message or command line not
        yet recorded (None: nothing is)."""
        return min([number for number, _ in self.window.held()]
                   + [q.number for q in self._queue], default=None)

    def _apply(self, item: Item, late: bool) -> None:
        number, m = item
        self.report.late += late
        self.decide(number, m)

    def _enqueue(self, queued: _Queued) -> None:
        queued.position = len(self._queue)
        self._queue.append(queued)
        if len(self._queue) >= BATCH:
            self.flush()

    def flush(self) -> None:
        """Record the queued command lines and messages in one transaction (each line's
        and each message's outcome what it would be one by one), counting what each did
        or saying why it was refused."""
        queue = self._queue
        if not queue:
            return
        if self.inbox:  # (the window does not move while the batch is recorded)
            self._first = min([n for n, _ in self.window.held()] + [self._reading()])
            later, self._later = 0, [0] * len(queue)
            for q in reversed(queue):
                self._later[q.position] = later
                later = q.number if not later else min(later, q.number)
        results = self.ledger.execute_batch([_item(q) for q in queue])
        self._queue = []
        for q, result in zip(queue, results, strict=True):
            if q.message is not None:
                self._told(q, result)
                continue
            report = self.report
            if isinstance(result, CommandRefused):
                report.refused[result.code] += 1
                report.events += result.events
                self.say(q.number, "", result.code, result.reason)
            elif isinstance(result, Outcome):
                report.events += result.events
                if result.duplicate:
                    report.duplicates += 1
                else:
                    report.applied += 1

    def decide(self, number: int, m: Message, *, again: bool = False) -> None:
        """Queue a message to be decided on its orders' state at its time and recorded
        with what it becomes, once.  A message decided before is not decided again,
        unless `again` (a reported one, `retry`)."""
        q = _Queued(number, 0, message=m)
        ledger, tolerance = self.ledger, self.tolerance

        def choose(orders: Mapping[str, Order | None]) -> list[OrderCommand]:
            """The commands on the orders as they are held (asked again, on the orders as
            stored, after a conflict)."""
            as_of: dict[str, Order | None] = {}
            for order_id in m.order_ids:
                order = orders.get(order_id)
                if order is not None and (due := order.pending_deadline) is not None \
                        and due.at < m.at:  # the state at the message's time: a copy,
                    # never recorded; without the batch's unrecorded events, which the
                    # copy would otherwise carry (a copy cost 0.5 ms with them)
                    order = copy.deepcopy(order, {id(order.pending_events): []})
                    order.apply_due_timeouts(m.at, ledger.policy)
                as_of[order_id] = order
            chosen = q.chosen = _Chosen()
            try:
                decided = decide(m, as_of, tolerance)
            except UNREADABLE as e:  # a field no rule can read, in this state: recorded
                chosen.unread = _unreadable(e, "the message")
                return []
            chosen.skipped = [d for _, d in decided if isinstance(d, Skipped)]
            chosen.commands = [c for _, d in decided if not isinstance(d, Skipped) for c in d]
            chosen.reported = [o for o, d in decided if isinstance(d, Skipped)
                               and d.status == "reported"]
            for c in chosen.commands:  # decided afresh every time: not recorded
                if (ahead := ledger.writer.too_far_ahead(c.at)) is not None:
                    raise ahead
            return chosen.commands

        def row(results: list[object]) -> MessageRow:
            assert q.chosen is not None
            found = _row(m, q.chosen, results)  # (this message is out of the window)
            return found._replace(inbox_before=self._inbox_before(q)) if self.inbox \
                else found

        q.item = MessageItem(m.key, m.order_ids, choose, row, replaces=again,
                             ids=tuple(m.command_id(o, step) for o in m.order_ids
                                       for step in (1, 2)))
        self._enqueue(q)

    def _inbox_before(self, q: _Queued) -> int:
        """The first line some message of which is not recorded by the time `q`'s is
        (recorded with the items before it in its batch, or after them): one held in
        the window, one not read whole yet, or one of the items queued after it."""
        later = self._later[q.position]
        return min(self._first, later) if later else self._first

    def _told(self, q: _Queued, result: object) -> None:
        """Count what deciding a message did and say why a part of it was not applied."""
        m, report = q.message, self.report
        assert m is not None
        what = _what(m)
        if isinstance(result, IntegrityBroken):
            report.refused[rules.INTEGRITY] += 1
            self.say(q.number, what, rules.INTEGRITY, result.describe())
            return
        if isinstance(result, CommandRefused):  # FUTURE
            report.refused[result.code] += 1
            self.say(q.number, what, result.code, in_its_terms(m, result).reason)
            return
        assert isinstance(result, MessageOutcome)
        if result.results is None:  # decided before (or by another writer meanwhile)
            report.duplicates += 1
            return
        chosen = q.chosen
        assert chosen is not None
        if chosen.unread is not None:
            self.say(q.number, what, chosen.unread.code, chosen.unread.reason)
        for done in result.results:
            if isinstance(done, CommandRefused):
                report.events += done.events
                self.say(q.number, what, done.code, in_its_terms(m, done).reason)
            elif isinstance(done, Outcome):
                report.events += done.events
        for skip in chosen.skipped:
            if skip.status == "reported":
                self.say(q.number, what, "REPORTED", skip.reason)
        outcome = result.row.outcome
        if outcome == "refused":
            report.refused[result.row.code] += 1
        elif outcome in ("applied", "reconciled"):
            report.applied += 1
            report.reconciled += outcome == "reconciled"
        else:
            setattr(report, outcome, getattr(report, outcome) + 1)


def _item(q: _Queued) -> OrderCommand | Tick | MessageItem:
    assert q.item is not None
    return q.item


@dataclass
class _Chosen:
    """What choosing a message's commands gave: the commands, the sub-orders skipped (and
    which of them were reported), or the refusal of a field no rule could read."""

    commands: list[OrderCommand] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    reported: list[str] = field(default_factory=list)
    unread: CommandRefused | None = None


#: What a message's fields can raise when read: a refusal, or (a field of a shape no rule
#: foresaw) an error of the value's own, which refuses the message, never stops the reader.
UNREADABLE = (CommandRefused, ValueError, TypeError, ArithmeticError, LookupError)


def _unreadable(e: Exception, what: str) -> CommandRefused:
    if isinstance(e, CommandRefused):
        return e
    return CommandRefused(rules.INPUT, f"{what} cannot be read: {type(e).__name__}: {e}")


def in_its_terms(m: Message, refusal: CommandRefused) -> CommandRefused:
    """A refusal of a command a message became, naming the message's own time field where
    it speaks of the command's business time: the platform's `pay_time` (as the message
    gave it), not the ledger's `at`."""
    said = f"business time {m.at.isoformat()} "
    if not refusal.reason.startswith(said):
        return refusal
    given = m.data.get(m.time_field)
    field = (f"{m.time_field} {m.at.isoformat()} (the body's receive time: the message "
             "carries no time)" if m.time_field == "received_at" else
             f"{m.time_field} {m.at.isoformat()}" if str(given) == m.at.isoformat() else
             f"{m.time_field} {given} ({m.at.isoformat()})")
    named = CommandRefused(refusal.code, f"{field} {refusal.reason.removeprefix(said)}")
    named.events = refusal.events
    return named


def _what(m: Message) -> str:
    return f" (msg {m.msg_id}, tag {m.tag} {m.name})"


def _row(m: Message, chosen: _Chosen, results: list[object]) -> MessageRow:
    """The outcome a message's decision is recorded with.  A reported message keeps the
    sub-orders it was reported for (`order_ids`): `retry` decides those again, not the
    ones decided already."""
    found: list[tuple[str, str, str]] = []  # (outcome, code, reason)
    if chosen.unread is not None:
        found.append(("refused", chosen.unread.code, chosen.unread.reason))
    for skip in chosen.skipped:
        found.append((skip.status, "", skip.reason))
    for c, result in zip(chosen.commands, results, strict=True):
        if isinstance(result, CommandRefused):
            found.append(("refused", result.code, in_its_terms(m, result).reason))
        elif isinstance(result, Outcome):
            if isinstance(c, Reconcile):
                found.append(("reconciled", "", ""))
            else:
                found.append(("applied", "", "already applied" if result.duplicate else ""))
    outcome, code, reason = min(found, key=lambda x: OUTCOMES.index(x[0]),
                                default=("ignored", "", ""))
    orders = chosen.reported if outcome == "reported" else m.order_ids
    return MessageRow(key=m.key, outcome=outcome, code=code, reason=reason, tag=m.tag,
                      order_ids=" ".join(orders), message=m.kept)


def ingest_feed(ledger: Ledger, lines: Iterable[bytes], *,
                lateness: timedelta = LATENESS,
                on_refused: Callable[[str], None] = lambda text: None,
                tolerance: Tolerance = TOLERANCE,
                received_at: datetime | None = None,
                part: Partition | None = None) -> FeedReport:
    """Apply a feed (a partition's: its part of it); each refused or reported message is
    told as `line N: …`."""
    feed = Feed(ledger, lateness, on_refused, tolerance=tolerance, received_at=received_at,
                part=part)
    for number, raw in enumerate(lines, start=1):
        feed.add(number, raw)
    feed.drain()
    return feed.report


def retry(ledger: Ledger, *, tolerance: Tolerance = TOLERANCE,
          on_refused: Callable[[str], None] = lambda text: None,
          prefix: str = "douyin:") -> FeedReport:
    """Decide the reported messages again, on the ledger as it is now, in business-time
    order (after the missing orders were placed): each for the sub-orders it was reported
    for, recorded anew, once.  A kept message that cannot be read now is refused `INPUT`
    and recorded so."""
    feed = Feed(ledger, on_refused=on_refused, tolerance=tolerance)
    kept: list[Message] = []
    after = ""
    while rows := ledger.reported_messages(prefix, 1000, after):
        after = rows[-1].key
        for row in rows:
            if row.outcome != "reported":
                continue
            try:
                found = _kept_message(row)
            except UNREADABLE as e:
                unread = _unreadable(e, "the kept message")
                refused = row._replace(outcome="refused", code=unread.code,
                                       reason=unread.reason)
                ledger.execute_message([], row.key, _always(refused), replaces=True)
                feed.report.messages += 1
                feed.report.refused[unread.code] += 1
                on_refused(f"{row.key}: {unread.code}: {unread.reason}")
                continue
            kept.append(found)
    for n, m in enumerate(sorted(kept, key=lambda m: (m.at, RANK.get(m.tag, m.tag))), 1):
        feed.report.messages += 1
        feed.decide(n, m, again=True)
    feed.flush()
    return feed.report


def _always(row: MessageRow) -> Callable[[list[object]], MessageRow]:
    return lambda results: row


def _kept_message(row: MessageRow) -> Message:
    """A reported message as it was kept, for the sub-orders it was reported for."""
    raw = json.loads(row.message)
    at = datetime.fromisoformat(raw.pop("at"))
    found = message(0, raw, at)
    if not isinstance(found, Message):
        raise CommandRefused(rules.INPUT, f"tag {found.tag} is not one the ledger reads")
    return replace(found, order_ids=tuple(row.order_ids.split()))
