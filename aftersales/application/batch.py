"""One transaction's worth of items decided in memory (`Batch`), for the one write path
(`aftersales.application.group_commit`, which says what a batch decides and how a
conflict is redone): order commands, ticks and platform messages, each decided on the
state the items before it left, against the orders the batch holds, and recorded as one
unit of work.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from aftersales.application import commands as cmd
from aftersales.application.decisions import (
    DUPLICATE,
    NOTHING,
    UNREMEMBERED,
    Outcome,
    applied,
    deadline_row,
    decide,
    duplicate_id,
    refusal_of,
    refusal_row,
    remembered_refusal,
)
from aftersales.application.unit_of_work import UnitOfWork
from aftersales.domain.order import Order, order_uuid
from aftersales.domain.policy import Policy
from aftersales.errors import CommandRefused, IntegrityBroken
from aftersales.storage.port import (
    MESSAGE_OUTCOMES,
    REPORTED,
    CommandRow,
    DeadlineRow,
    MessageRow,
    RefusalRow,
)

#: A tick of a batch with more orders due than this is swept on its own.
TICK_LIMIT = 2_000
#: Orders a sweep records per transaction.
SWEEP_BATCH = 10_000

Item = cmd.OrderCommand | cmd.Tick
#: Chooses a message's commands on its orders as a batch holds them (None: never
#: placed); the orders are the batch's own: read them, never change them.
ChooseOn = Callable[[Mapping[str, Order | None]], Sequence[cmd.OrderCommand]]
#: A 64-bit integer column holds a message's tag.
_TAG_RANGE = range(-(2**63), 2**63)


@dataclass(frozen=True)
class MessageItem:
    """A platform message among a batch's items: decided once (unless its `key` is
    recorded already) on the state the items before it left, its commands chosen by
    `choose` on its orders (`order_ids`, loaded with the batch), its row made by
    `outcome` of their results and recorded in the batch's transaction.  With `replaces`,
    one recorded as reported is decided again and its row replaced."""

    key: str
    order_ids: tuple[str, ...]
    choose: ChooseOn
    outcome: Callable[[list[object]], MessageRow]
    replaces: bool = False
    #: The command ids its commands are likely to have: looked up with the batch's, not
    #: one message at a time (others are looked up as they come).
    ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class MessageOutcome:
    """What deciding a platform message did: each command's Outcome or CommandRefused (as
    `execute_batch` gives them; None: the message was decided before, nothing was done),
    and the message's row as recorded (or as found)."""

    results: list[object] | None
    row: MessageRow


class Writer(Protocol):
    """What a batch asks of the write path it belongs to (`GroupCommit`)."""

    uow: UnitOfWork
    policy: Policy

    def ahead_check(self) -> Callable[[datetime], CommandRefused | None]: ...

    def sweep_order(self, oid: UUID, order_id: str, now: datetime) -> Outcome | None: ...



def _remembered(found: dict[tuple[str, str], tuple[str, str]]
                ) -> dict[tuple[str, str], tuple[str, str]]:
    """Refusals found remembered that are given again (an earlier version's of a rule now
    unremembered are decided afresh)."""
    return {ident: refused for ident, refused in found.items()
            if refused[0] not in UNREMEMBERED}


def _checked_row(m: MessageItem, results: list[object], again: bool) -> MessageRow:
    """The row `m.outcome` makes of a message's results, checked, replacing the recorded
    (reported) row if decided `again`."""
    made = m.outcome(results)
    if not isinstance(made, MessageRow) or made.key != m.key:
        raise ValueError(f"the outcome of message {m.key} must be its MessageRow, not "
                         f"{made!r}")
    if made.outcome not in MESSAGE_OUTCOMES:
        raise ValueError(f"message {m.key}: outcome {made.outcome!r} is not one of "
                         f"{', '.join(sorted(MESSAGE_OUTCOMES))}")
    if not isinstance(made.tag, int) or made.tag not in _TAG_RANGE:
        raise ValueError(f"message {m.key}: tag {made.tag!r} is not a 64-bit integer")
    return made if made.replaces == again else made._replace(replaces=again)


class Batch:
    """One transaction's worth of items, decided in memory."""

    def __init__(self, writer: Writer, fresh: bool = False) -> None:
        self.writer = writer
        #: Orders read from the store, not the cache (and not kept in it afterwards).
        self.fresh = fresh
        self.uow = writer.uow
        self.orders: dict[str, Order | None] = {}  # the working set, by order id
        self.broken: dict[str, IntegrityBroken] = {}  # orders whose history is broken
        self.deadlines: list[tuple[datetime, str]] = []  # heap of (pending deadline, id)
        self.touched: dict[str, Order] = {}
        self.indexed: dict[str, DeadlineRow | None] = {}  # index rows as the store has them
        self.due: list[tuple[UUID, str]] = []  # a sweep's orders (sweep_due)
        self.stopped_at = 0
        # What `run` decides: the command ids known (the store's and the batch's) and
        # the refusals remembered, and the rows it records.
        self.asked: set[str] = set()  # the command ids looked up in the store
        self.known: dict[str, str] = {}
        self.remembered: dict[tuple[str, str], tuple[str, str]] = {}
        self.rows: list[CommandRow] = []
        self.refusals: list[RefusalRow] = []
        self.messages: list[MessageRow] = []
        self.too_far_ahead: Callable[[datetime], CommandRefused | None] = lambda at: None

    def run(self, items: Sequence[Item | MessageItem]) -> list[object]:
        """Decide items until the end or a large tick, record them; their outcomes (a
        message's: its `MessageOutcome`, or the refusal or broken history that kept it
        from being decided: nothing of it is recorded)."""
        uow = self.uow
        index = uow.index
        self.stopped_at = len(items)
        idents = {n: c.identity() for n, c in enumerate(items)
                  if isinstance(c, cmd.OrderCommand)}
        uow.refresh()
        self.asked = {cid for cid, _ in idents.values()}
        self.asked.update(cid for m in items if isinstance(m, MessageItem) for cid in m.ids)
        self.known = index.known_digests(sorted(self.asked))
        self.remembered = _remembered(index.refusals_of(sorted(self.asked)))
        settled = set() if not self.fresh else {  # answered by id alone: nothing to load
            n for n, (cid, digest) in idents.items()
            if self.known.get(cid) == digest
            or (cid not in self.known and (cid, digest) in self.remembered)}
        keys = [m.key for m in items if isinstance(m, MessageItem)]
        decided = index.message_outcomes(keys) if keys else {}
        self.load({c.order_id for n, c in enumerate(items)
                   if isinstance(c, cmd.OrderCommand) and n not in settled}
                  | {o for m in items if isinstance(m, MessageItem) for o in m.order_ids})
        if uow.others.moved:  # another writer moved on orders this process held
            uow.note_other_writers(self.orders.get(c.order_id) for n, c in enumerate(items)
                                   if isinstance(c, cmd.OrderCommand) and n not in settled)
        results: list[object] = []
        refused_ids: dict[int, tuple[str, str]] = {}
        repairs: list[tuple[int, UUID, str, datetime]] = []
        swept_until: datetime | None = None
        self.too_far_ahead = too_far_ahead = self.writer.ahead_check()
        try:
            for n, c in enumerate(items):
                if isinstance(c, MessageItem):
                    results.append(self.decide_message(c, decided))
                    continue
                if (ahead := too_far_ahead(c.at)) is not None:
                    results.append(ahead)  # refused at the edge: it reveals nothing
                    continue
                if isinstance(c, cmd.Tick):
                    # Rows due before an earlier tick of this batch belong to orders it
                    # loaded (the index is written when the batch is recorded).
                    due = index.due_orders(c.at, TICK_LIMIT + 1, swept_until, uow.partition)
                    swept_until = c.at if swept_until is None else max(swept_until, c.at)
                    if len(due) > TICK_LIMIT:
                        self.stopped_at = n
                        break
                    fresh = self.load({order_id for _, order_id in due})
                    swept = self.sweep(c.at)
                    results.append(Outcome(events=sum(x.events for x in swept.values()),
                                           timeouts=sum(x.timeouts for x in swept.values())))
                    repairs += [(n, oid, order_id, c.at) for oid, order_id in due
                                if order_id in fresh and order_id not in swept]
                    continue
                result, refused = self.decide_command(c, *idents[n])
                results.append(result)
                if refused:
                    refused_ids[n] = idents[n]
            if self.messages:  # one transaction whatever happens: see `as_recorded`
                self.refusals = self.as_recorded(self.refusals)
            if self.touched or self.refusals or self.messages:
                self.record(self.rows, self.refusals, self.messages)
        except BaseException:
            self.forget()
            raise
        self.keep()
        self.settle_repairs(results, repairs)
        self.settle_refusals(results, refused_ids, {row.command_id for row in self.rows})
        return results

    def decide_command(self, c: cmd.OrderCommand, cid: str, digest: str
                       ) -> tuple[object, bool]:
        """Decide one order command on the working set: its outcome, and whether it was
        refused here (not a duplicate, not a refusal remembered)."""
        order = self.orders.get(c.order_id)
        before = len(order.pending_events) if order is not None else 0
        try:
            seen = self.known.get(cid)
            if seen is not None:
                if seen == digest:
                    return DUPLICATE, False
                if order is not None:  # the refusal reveals the timeouts due
                    order.apply_due_timeouts(c.at, self.writer.policy)
                raise duplicate_id(cid)
            if (cid, digest) in self.remembered:  # refused before: refused again, as it
                return remembered_refusal(c, cid, *self.remembered[(cid, digest)]), False
            if c.order_id in self.broken:
                raise refusal_of(self.broken[c.order_id])
            if order is None:
                self.indexed[c.order_id] = None
            order = self.orders[c.order_id] = decide(order, c, self.writer.policy, cid)
            self.known[cid] = digest
            self.rows.append(CommandRow(cid, order.id, digest))
            result: object = applied(len(order.pending_events) - before)
        except CommandRefused as refusal:
            if order is not None:
                refusal.events = len(order.pending_events) - before
            result = refusal
            if refusal.code not in UNREMEMBERED:
                self.remembered[(cid, digest)] = (refusal.code, refusal.reason)
                self.refusals.append(refusal_row(CommandRow(cid, order_uuid(c.order_id),
                                                            digest), order, refusal))
        if order is not None and order.pending_events:
            self.touched[c.order_id] = order
            self.watch(order)
        return result, isinstance(result, CommandRefused)

    def decide_message(self, m: MessageItem, decided: dict[str, MessageRow]) -> object:
        """Decide a platform message on the working set (its commands chosen on the
        orders as the batch holds them, each decided on the state its predecessors
        left), its row added to those recorded; its MessageOutcome.  Decided before
        (recorded, or earlier in this batch): the row found.  An order of it with a
        broken history (`IntegrityBroken`), or a refusal raised while choosing (a
        business time too far ahead): that, and nothing of it recorded."""
        found = decided.get(m.key)
        if found is not None and not (m.replaces and found.outcome == REPORTED):
            return MessageOutcome(None, found)
        for order_id in m.order_ids:
            if order_id in self.broken:
                return self.broken[order_id]
        try:
            chosen = list(m.choose({o: self.orders.get(o) for o in m.order_ids}))
        except CommandRefused as refused:
            return refused
        for item in chosen:
            if not isinstance(item, cmd.OrderCommand):
                raise TypeError(f"a message's items are order commands, not "
                                f"{type(item).__name__}")
        if any(c.order_id not in self.orders for c in chosen):
            self.load({c.order_id for c in chosen})
        idents = [c.identity() for c in chosen]
        index = self.uow.index
        if ids := sorted({cid for cid, _ in idents if cid not in self.asked}):
            self.asked.update(ids)
            self.known.update(index.known_digests(ids))
            self.remembered.update(_remembered(index.refusals_of(ids)))
        results: list[object] = []
        for c, (cid, digest) in zip(chosen, idents, strict=True):
            if (ahead := self.too_far_ahead(c.at)) is not None:
                results.append(ahead)
                continue
            results.append(self.decide_command(c, cid, digest)[0])
        row = _checked_row(m, results, again=found is not None)
        self.messages.append(row)
        if row.replaces:
            row = row._replace(replaces=False)
        decided[m.key] = row
        return MessageOutcome(results, row)

    def sweep_due(self, now: datetime, skipped: set[UUID]) -> dict[UUID, Outcome | None]:
        """Sweep the next `SWEEP_BATCH` due orders the index names (less those `skipped`);
        how many timeouts each got, and their events (None: its history is broken).  Empty
        when nothing is due."""
        self.uow.refresh()
        self.due = [x for x in self.uow.index.due_orders(now, SWEEP_BATCH + len(skipped),
                                                         partition=self.uow.partition)
                    if x[0] not in skipped][:SWEEP_BATCH]
        return self.sweep_orders(now, self.due)

    def sweep_orders(self, now: datetime, due: list[tuple[UUID, str]]
                     ) -> dict[UUID, Outcome | None]:
        """Apply the timeouts due before `now` to these orders and record them in one
        transaction; how many each got, and their events (None: its history is broken).
        An order with nothing due after all (another writer moved it on after the index was
        read, or its row is behind its events) is swept again on fresh state, which sets its
        row from that state unless an event was recorded since."""
        ids = {order_id: oid for oid, order_id in due}
        try:
            self.load(ids, ids, watch=False)
            swept = self.sweep(now, ids)
            if self.touched:
                self.record([], [])
        except BaseException:
            self.forget()
            raise
        self.keep()
        fired: dict[UUID, Outcome | None] = {}
        for oid, order_id in due:
            if order_id in self.broken:
                fired[oid] = None
            elif order_id in swept:
                fired[oid] = swept[order_id]
            elif self.fresh:  # nothing due on the store's own state: set the row from it
                order = self.orders.get(order_id)
                self.uow.index.repair_deadline(
                    oid, None if order is None else deadline_row(order),
                    0 if order is None else order.version)
                fired[oid] = NOTHING
            else:
                fired[oid] = self.writer.sweep_order(oid, order_id, now)
        return fired

    def as_recorded(self, refusals: list[RefusalRow]) -> list[RefusalRow]:
        """Refusals of orders this batch records events of, checked against the version
        it records (a refusal decided before a later command of the batch moved its order
        on is still the batch's decision; the events' chain already fails if another
        writer moved the order meanwhile).  Those of other orders keep the version they
        were decided on, checked against the store's.  (A message's batch is one
        transaction; `execute_batch` redoes such a batch one by one instead.)"""
        written = {order.id: order.version for order in self.touched.values()}
        return [r._replace(version=written[r.originator_id])
                if r.originator_id in written else r for r in refusals]

    def record(self, rows: list[CommandRow], refusals: list[RefusalRow],
               messages: Sequence[MessageRow] = ()) -> None:
        """Record the batch: the index rows written are those that changed."""
        changed: dict[UUID, DeadlineRow | None] = {}
        for order_id, order in self.touched.items():
            row = deadline_row(order)
            if row != self.indexed[order_id]:
                changed[order.id] = row
        # In key order, the inserts walk each index once (fewer pages read back).
        orders = sorted(self.touched.values(), key=lambda order: order.id.hex)
        self.uow.record(orders, rows, changed, refusals, messages)

    def keep(self) -> None:
        """Recorded: the working set is what the store holds, for the next batch."""
        if self.fresh:
            return
        for order in self.orders.values():
            if order is not None:
                self.uow.cache.put(order)

    def forget(self) -> None:
        """Not recorded: in memory the working set may hold what the store does not."""
        for order_id in self.orders:
            self.uow.cache.drop(order_id)

    def load(self, order_ids: Iterable[str], known: dict[str, UUID] | None = None,
             watch: bool = True) -> set[str]:
        """Add orders to the working set (from the cache where it is up to date, else from
        the store), their deadlines to the heap unless not `watch`ed; the ids of those that
        were not there already."""
        wanted = {x for x in order_ids if x not in self.orders and x not in self.broken}
        if self.fresh:
            for order_id in wanted:
                self.uow.cache.drop(order_id)
        for order_id, order in self.uow.load(wanted, known).items():
            if isinstance(order, IntegrityBroken):
                self.broken[order_id] = order
                continue
            self.orders[order_id] = order
            self.indexed[order_id] = None if order is None else deadline_row(order)
            if order is not None and watch:
                self.watch(order)
        return wanted

    def watch(self, order: Order) -> None:
        due = order.pending_deadline
        if due is not None:
            heapq.heappush(self.deadlines, (due.at, order.order_id))

    def sweep(self, now: datetime, due: Iterable[str] | None = None) -> dict[str, Outcome]:
        """Apply the timeouts due before `now` to orders of the working set: those the heap
        of their deadlines names (a tick of a batch), or those given (a sweep's orders, as
        the deadline index names them); how many each order that changed got, and the
        events they recorded."""
        swept: dict[str, Outcome] = {}
        policy = self.writer.policy
        for order_id in self._due_in_heap(now) if due is None else due:
            order = self.orders.get(order_id)
            if order is None:  # never placed, or broken: left to the repairs
                continue
            before = len(order.pending_events)
            n = order.apply_due_timeouts(now, policy)
            if n:
                was = swept.get(order_id, NOTHING)
                swept[order_id] = Outcome(
                    events=was.events + len(order.pending_events) - before,
                    timeouts=was.timeouts + n)
                self.touched[order_id] = order
                if due is None:
                    self.watch(order)
        return swept

    def _due_in_heap(self, now: datetime) -> Iterator[str]:
        """The orders whose deadline in the heap is before `now`, earliest first.  (Not for
        a sweep's 10,000 orders: popping aware datetimes of mixed zones cost 15 µs an
        order, a fifth of the sweep.)"""
        heap = self.deadlines
        while heap and heap[0][0] < now:
            yield heapq.heappop(heap)[1]

    def settle_repairs(self, results: list[object],
                       repairs: list[tuple[int, UUID, str, datetime]]) -> None:
        """Index rows that said an order outside the batch was due when it was not (another
        writer moved it on, or the row was behind its events): now that the batch is
        recorded, sweep those orders one by one, which sets their rows right.  Rows of
        orders this batch recorded are already right."""
        for n, oid, order_id, now in repairs:
            if order_id in self.touched or order_id in self.broken:
                continue
            fired = self.writer.sweep_order(oid, order_id, now) or NOTHING
            outcome = results[n]
            assert isinstance(outcome, Outcome)
            results[n] = Outcome(events=outcome.events + fired.events,
                                 timeouts=outcome.timeouts + fired.timeouts)

    def settle_refusals(self, results: list[object], refused_ids: dict[int, tuple[str, str]],
                        applied_here: set[str]) -> None:
        """Refused here, but perhaps applied by another writer meanwhile (not by a later
        line of this batch: that one was applied, this one stays refused, as one by one)."""
        others = {x for x, _ in refused_ids.values() if x not in applied_here}
        if not others:
            return
        now_known = self.uow.index.known_digests(sorted(others))
        for n, (cid, digest) in refused_ids.items():
            if cid in others and now_known.get(cid) == digest:
                results[n] = DUPLICATE
