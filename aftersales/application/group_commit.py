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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from aftersales.application import commands as cmd
from aftersales.application.batch import (
    Batch,
    ChooseOn,
    Item,
    MessageItem,
    MessageOutcome,
)
from aftersales.application.clock import FutureGuard
from aftersales.application.decisions import Outcome
from aftersales.application.unit_of_work import UnitOfWork
from aftersales.domain.order import Order
from aftersales.domain.policy import Policy
from aftersales.errors import CommandRefused, ConflictError
from aftersales.runtime.garbage import paused
from aftersales.storage.port import MessageRow

__all__ = ["ChooseOn", "GroupCommit", "MessageItem", "MessageOutcome"]

#: Chooses a message's commands on the orders as stored (asked again after a conflict).
Choose = Callable[[], Sequence[cmd.OrderCommand]]


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

    def execute_batch(self, items: Sequence[Item | MessageItem]) -> list[object]:
        """Outcomes (or the CommandRefused / store errors) of the items, in order; a
        message's is its MessageOutcome, or the refusal (FUTURE) or `IntegrityBroken` that
        kept it from being decided."""
        results: list[object] = []
        rest = list(items)
        while rest:
            batch = Batch(self)
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

    def outcome_of(self, item: Item | MessageItem) -> object:
        """The outcome of one item, or its refusal; store failures are raised (the batch
        is a unit of work: its caller tries it again, or stops)."""
        if isinstance(item, MessageItem):
            return self.decide_message(item)
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
                [result] = Batch(self, fresh=True).run([item])
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
        conflict, so that the commands are chosen on the state they are decided on.
        A feed's messages are decided many to a transaction by `execute_batch`."""
        def choose(orders: Mapping[str, Order | None]) -> Sequence[cmd.OrderCommand]:
            return items() if callable(items) else items

        done = self.decide_message(MessageItem(key, (), choose, outcome, replaces))
        if isinstance(done, Exception):
            raise done
        assert isinstance(done, MessageOutcome)
        return done

    def decide_message(self, item: MessageItem) -> object:
        """One message decided as a batch of one on fresh state (see `execute_batch`),
        tried again after a conflict."""
        for _ in range(self.max_retries):
            try:
                [result] = Batch(self, fresh=True).run([item])
            except IntegrityError:
                continue  # another writer got there first: look again and decide again
            return result
        raise ConflictError(f"message {item.key}: gave up after {self.max_retries} "
                            "conflicting attempts")

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
            batch = Batch(self)
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
                return Batch(self, fresh=True).sweep_orders(now, [(oid, order_id)])[oid]
            except IntegrityError:
                continue  # another writer moved the order on: look again
        raise ConflictError(f"sweep of {order_id}: gave up after {self.max_retries} attempts")


