"""The one write path: commands and ticks decided against orders held in memory, and
recorded as one unit of work.

A batch of items is decided as if executed one after another: each command on the state
its predecessors left, a refused command leaving nothing but the timeouts it revealed,
duplicates recognised by command id, and a tick applying every timeout due before its
time, to the orders the batch holds (through a heap of their deadlines) and to the others
(found through the deadline index, which the batch has not yet written).  One command is
a batch of one (`GroupCommit.execute`); a sweep (`GroupCommit.tick`) is a run of batches of
one tick each, fed by the deadline index, and one order swept on fresh state (after a
conflict, or where the index was behind) is a sweep of one (`GroupCommit.sweep_order`).

A platform message is decided once (`GroupCommit.execute_message`): its commands are a
batch on fresh state, recorded with the message's outcome, in one transaction, unless its
outcome is recorded already.

If the store reports a conflict (another writer moved an order on, or recorded one of
these command ids), nothing of the batch was recorded: it is redone one item at a time,
each retried on fresh state.  A conflict, or the cache dropping an order for another
writer's events, notes the order; a command line that then meets it tells whether another
process was recording commands for it too (`aftersales.application.other_writers`).

A tick that finds more than `TICK_LIMIT` orders due ends the batch and is swept on its own,
`SWEEP_BATCH` orders a transaction.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from aftersales.application import commands as cmd
from aftersales.application.clock import FutureGuard
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
from aftersales.errors import CommandRefused, ConflictError, IntegrityBroken
from aftersales.runtime.garbage import paused
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
#: Chooses a message's commands on the orders as stored (asked again after a conflict).
Choose = Callable[[], Sequence[cmd.OrderCommand]]
#: A 64-bit integer column holds a message's tag.
_TAG_RANGE = range(-(2**63), 2**63)


@dataclass(frozen=True)
class MessageOutcome:
    """What deciding a platform message did: each command's Outcome or CommandRefused (as
    `execute_batch` gives them; None: the message was decided before, nothing was done),
    and the message's row as recorded (or as found)."""

    results: list[object] | None
    row: MessageRow


@dataclass
class GroupCommit:
    """Deciding and recording through one unit of work, under one policy."""

    uow: UnitOfWork
    policy: Policy
    #: Refuses business times too far ahead of the wall clock (None: no limit).
    guard: FutureGuard | None = None
    max_retries: int = 50

    def too_far_ahead(self, at: datetime) -> CommandRefused | None:
        return None if self.guard is None else self.guard.refusal(at)

    def ahead_check(self) -> Callable[[datetime], CommandRefused | None]:
        """`too_far_ahead` for the items of one batch (the clock read once)."""
        return (lambda at: None) if self.guard is None else self.guard.checker()

    def execute_batch(self, items: Sequence[Item]) -> list[object]:
        """Outcomes (or the CommandRefused / store errors) of the items, in order."""
        results: list[object] = []
        rest = list(items)
        while rest:
            batch = _Batch(self)
            try:
                with paused():
                    done = batch.run(rest)
            except IntegrityError:  # a conflict: nothing was recorded; redo it one by one
                done = [self.outcome_of(item) for item in rest[:batch.stopped_at]]
            results += done
            rest = rest[len(done):]
            if rest:  # a tick with many orders due: swept on its own
                results.append(self.outcome_of(rest.pop(0)))
        return results

    def outcome_of(self, item: Item) -> object:
        """The outcome of one item, or its refusal; store failures are raised (the batch
        is a unit of work: its caller tries it again, or stops)."""
        try:
            return self.execute(item)
        except CommandRefused as refusal:
            return refusal

    def execute(self, item: Item) -> Outcome:
        """One command (a batch of one, tried again on fresh state after a conflict), or a
        sweep; raise `CommandRefused` when a rule forbids it.  The order is read from the
        store, checked, not from the order cache: one command is one load, and whatever
        happened to the stored history since this process last saw it is seen."""
        if isinstance(item, cmd.Tick):
            return self.sweep(item.at)
        if (ahead := self.too_far_ahead(item.at)) is not None:
            raise ahead  # refused at the edge, before the store is asked anything
        for _ in range(self.max_retries):
            try:
                [result] = _Batch(self, fresh=True).run([item])
            except IntegrityError:
                continue  # another writer got there first: look again and decide again
            if isinstance(result, CommandRefused):
                raise result
            assert isinstance(result, Outcome)
            return result
        raise ConflictError(f"order {item.order_id}: gave up after {self.max_retries} "
                            "conflicting attempts")

    def execute_message(self, items: Sequence[cmd.OrderCommand] | Choose, key: str,
                        outcome: Callable[[list[object]], MessageRow],
                        replaces: bool = False) -> MessageOutcome:
        """Decide a platform message once (SPEC section 10): unless its `key` is recorded
        already (then nothing is done: the row found), decide its commands as one batch on
        the orders as stored (each on the state its predecessors left), and record their
        events, command ids and remembered refusals with the message's row,
        `outcome(results)`, in one transaction (the row alone if nothing else is).  With
        `replaces`, a message recorded as reported is decided again and its row replaced
        (one recorded otherwise is left as it is: the row found; one never recorded is
        decided as new).  The row's `replaces` is set here.  A conflict (another
        writer decided the message, or moved an order on) is decided again from the
        look-up, up to `max_retries` times (then `ConflictError`).  `items` may be a
        function choosing the commands on the orders as stored: it is asked again after a
        conflict, so that the commands are chosen on the state they are decided on."""
        for _ in range(self.max_retries):
            found = self.uow.index.message_outcomes([key]).get(key)
            if found is not None and not (replaces and found.outcome == REPORTED):
                return MessageOutcome(None, found)
            chosen = list(items() if callable(items) else items)
            for item in chosen:
                if not isinstance(item, cmd.OrderCommand):
                    raise TypeError(f"a message's items are order commands, not "
                                    f"{type(item).__name__}")
            batch = _Batch(self, fresh=True)
            try:
                results = batch.run(chosen, _message(key, outcome, again=found is not None))
            except IntegrityError:
                continue  # another writer got there first: look again and decide again
            assert batch.message is not None
            return MessageOutcome(results, batch.message._replace(replaces=False))
        raise ConflictError(f"message {key}: gave up after {self.max_retries} conflicting "
                            "attempts")

    def tick(self, now: datetime,
             on_order: Callable[[UUID, int], None] = lambda oid, n: None) -> int:
        """Apply every timeout due before `now` (deadline < now); return how many (see
        `sweep`)."""
        return self.sweep(now, on_order).timeouts

    def sweep(self, now: datetime,
              on_order: Callable[[UUID, int], None] = lambda oid, n: None) -> Outcome:
        """Apply every timeout due before `now` (deadline < now); how many, and how many
        events they recorded (with the refunds, penalties and compensations that follow).

        Due orders are found through the deadline index, `SWEEP_BATCH` at a time, never by
        loading every order; each batch's timeouts are recorded in one transaction (if
        another writer moved one of its orders on, the batch is redone order by order).
        An order whose history is broken is skipped (and kept in `uow.broken`).
        `on_order` hears of each order once its timeouts are recorded."""
        if (ahead := self.too_far_ahead(now)) is not None:
            raise ahead
        timeouts = events = 0
        skipped: set[UUID] = set()
        while True:
            batch = _Batch(self)
            try:
                with paused():
                    swept = batch.sweep_due(now, skipped)
            except IntegrityError:  # nothing was recorded: sweep its orders one by one
                swept = {oid: self.sweep_order(oid, order_id, now)
                         for oid, order_id in batch.due}
            if not swept:
                return Outcome(events=events, timeouts=timeouts)
            for oid, fired in swept.items():
                if fired is None:
                    skipped.add(oid)
                    continue
                timeouts += fired.timeouts
                events += fired.events
                if fired.timeouts:
                    on_order(oid, fired.timeouts)

    def sweep_order(self, oid: UUID, order_id: str, now: datetime) -> Outcome | None:
        """Sweep one order on fresh state, as a sweep of one (retrying conflicts); how many
        timeouts were applied, and their events (None: the order's history is broken,
        nothing was done)."""
        for _ in range(self.max_retries):
            try:
                return _Batch(self, fresh=True).sweep_orders(now, [(oid, order_id)])[oid]
            except IntegrityError:
                continue  # another writer moved the order on: look again
        raise ConflictError(f"sweep of {order_id}: gave up after {self.max_retries} attempts")


def _message(key: str, outcome: Callable[[list[object]], MessageRow], again: bool
             ) -> Callable[[list[object]], MessageRow]:
    """The row `outcome` makes of a message's results, checked, replacing the recorded
    (reported) row if decided `again`."""

    def row(results: list[object]) -> MessageRow:
        made = outcome(results)
        if not isinstance(made, MessageRow) or made.key != key:
            raise ValueError(f"the outcome of message {key} must be its MessageRow, not "
                             f"{made!r}")
        if made.outcome not in MESSAGE_OUTCOMES:
            raise ValueError(f"message {key}: outcome {made.outcome!r} is not one of "
                             f"{', '.join(sorted(MESSAGE_OUTCOMES))}")
        if not isinstance(made.tag, int) or made.tag not in _TAG_RANGE:
            raise ValueError(f"message {key}: tag {made.tag!r} is not a 64-bit integer")
        return made._replace(replaces=again)

    return row


class _Batch:
    """One transaction's worth of items, decided in memory."""

    def __init__(self, writer: GroupCommit, fresh: bool = False) -> None:
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
        self.message: MessageRow | None = None  # a message's row, once recorded

    def run(self, items: Sequence[Item],
            message: Callable[[list[object]], MessageRow] | None = None) -> list[object]:
        """Decide items until the end or a large tick, record them; their outcomes.  With
        `message`, the row it makes of the outcomes is recorded with them (a platform
        message's decision: its items are order commands, no tick)."""
        writer, uow, policy = self.writer, self.uow, self.writer.policy
        index = uow.index
        self.stopped_at = len(items)
        idents = {n: c.identity() for n, c in enumerate(items)
                  if isinstance(c, cmd.OrderCommand)}
        uow.refresh()
        known = index.known_digests(sorted({cid for cid, _ in idents.values()}))
        remembered = {ident: refused for ident, refused
                      in index.known_refusals(sorted(set(idents.values()))).items()
                      if refused[0] not in UNREMEMBERED}  # (an earlier version's: afresh)
        settled = set() if not self.fresh else {  # answered by id alone: nothing to load
            n for n, (cid, digest) in idents.items()
            if known.get(cid) == digest or (cid not in known and (cid, digest) in remembered)}
        self.load({c.order_id for n, c in enumerate(items)
                   if isinstance(c, cmd.OrderCommand) and n not in settled})
        if uow.others.moved:  # another writer moved on orders this process held
            uow.note_other_writers(self.orders.get(c.order_id) for n, c in enumerate(items)
                                   if isinstance(c, cmd.OrderCommand) and n not in settled)
        rows: list[CommandRow] = []
        refusals: list[RefusalRow] = []
        results: list[object] = []
        refused_ids: dict[int, tuple[str, str]] = {}
        repairs: list[tuple[int, UUID, str, datetime]] = []
        swept_until: datetime | None = None
        too_far_ahead = writer.ahead_check()
        try:
            for n, c in enumerate(items):
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
                cid, digest = idents[n]
                order = self.orders.get(c.order_id)
                before = len(order.pending_events) if order is not None else 0
                try:
                    seen = known.get(cid)
                    if seen is not None:
                        if seen == digest:
                            results.append(DUPLICATE)
                            continue
                        if order is not None:  # the refusal reveals the timeouts due
                            order.apply_due_timeouts(c.at, policy)
                        raise duplicate_id(cid)
                    if (cid, digest) in remembered:  # refused before: refused again, as it
                        results.append(remembered_refusal(c, cid, *remembered[(cid, digest)]))
                        continue  # (was, saying so)
                    if c.order_id in self.broken:
                        raise refusal_of(self.broken[c.order_id])
                    if order is None:
                        self.indexed[c.order_id] = None
                    order = self.orders[c.order_id] = decide(order, c, policy, cid)
                    known[cid] = digest
                    rows.append(CommandRow(cid, order.id, digest))
                    results.append(applied(len(order.pending_events) - before))
                except CommandRefused as refusal:
                    if order is not None:
                        refusal.events = len(order.pending_events) - before
                    results.append(refusal)
                    refused_ids[n] = (cid, digest)
                    if refusal.code not in UNREMEMBERED:
                        remembered[(cid, digest)] = (refusal.code, refusal.reason)
                        refusals.append(refusal_row(CommandRow(cid, order_uuid(c.order_id),
                                                               digest), order, refusal))
                if order is not None and order.pending_events:
                    self.touched[c.order_id] = order
                    self.watch(order)
            messages: list[MessageRow] = []
            if message is not None:
                messages.append(message(list(results)))
                refusals = self.as_recorded(refusals)
            if self.touched or refusals or messages:
                self.record(rows, refusals, messages)
        except BaseException:
            self.forget()
            raise
        self.keep()
        self.message = messages[0] if messages else None
        self.settle_repairs(results, repairs)
        self.settle_refusals(results, refused_ids, {row.command_id for row in rows})
        return results

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
