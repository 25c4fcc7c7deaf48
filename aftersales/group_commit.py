"""Group commit: many commands and ticks decided against orders held in memory, recorded in
one transaction.

The outcomes are those of `Ledger.execute` applied one item after another: each command is
decided on the state its predecessors left, a refused command leaves nothing but the
timeouts it revealed, duplicates are recognised by command id, and a tick applies every
timeout due before its time, to orders the batch holds (found through an in-memory heap of
their deadlines) and to the others (found through the deadline index, which the batch has
not yet written).  The batch is recorded all at once (events, deadline-index rows, command
ids), so nothing of it is acknowledged before it is durable.  If the store reports a
conflict (another writer moved an order on, or recorded one of these command ids), nothing
of the batch was recorded: it is redone one item at a time through `Ledger.execute`, which
retries on fresh state.  A tick that finds more than `TICK_LIMIT` orders due ends the batch
and is swept on its own, a bounded batch at a time (`Ledger.tick`).

Orders recorded by a batch stay in a bounded cache for the next one; before a batch uses a
cached order it checks, in one query, that no other writer has recorded events for it since.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from aftersales import commands as cmd
from aftersales.collector import paused
from aftersales.decisions import (
    DUPLICATE,
    UNREMEMBERED,
    Outcome,
    applied,
    deadline_row,
    decide,
    duplicate_id,
    refusal_of,
    refusal_row,
)
from aftersales.domain.errors import CommandRefused
from aftersales.domain.order import Order, order_uuid
from aftersales.errors import IntegrityBroken
from aftersales.recorders.rows import CommandRow, DeadlineRow, RefusalRow

if TYPE_CHECKING:
    from aftersales.application import Ledger


#: Orders kept between batches (about 2 KB each, measured on orders of six or seven events).
CACHE_SIZE = 10_000
#: A tick with more orders due than this is swept on its own (`Ledger.tick`).
TICK_LIMIT = 2_000

Item = cmd.OrderCommand | cmd.Tick


class OrderCache:
    """Orders as last recorded by this process, by order id, least recently used dropped
    first.  `checked` is the log position up to which other writers' events were looked
    at (`Ledger.refresh_cache`); this process's own events since are in `own`."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self._orders: OrderedDict[str, Order] = OrderedDict()
        self._ids: dict[UUID, str] = {}
        self.checked = 0
        self._own: list[tuple[int, int]] = []

    def get(self, order_id: str) -> Order | None:
        return self._orders.get(order_id)

    def put(self, order: Order) -> None:
        if order.order_id not in self._orders:
            self._ids[order.id] = order.order_id
        self._orders[order.order_id] = order
        self._orders.move_to_end(order.order_id)
        while len(self._orders) > self.size:
            _, dropped = self._orders.popitem(last=False)
            del self._ids[dropped.id]

    def drop(self, order_id: str) -> None:
        dropped = self._orders.pop(order_id, None)
        if dropped is not None:
            del self._ids[dropped.id]

    def drop_id(self, originator_id: UUID) -> None:
        order_id = self._ids.get(originator_id)
        if order_id is not None:
            self.drop(order_id)

    def clear(self) -> None:
        self._orders.clear()
        self._ids.clear()

    def recorded(self, first: int, last: int) -> None:
        """This process recorded the events at these positions."""
        self._own.append((first, last))

    def others(self, upto: int) -> list[tuple[int, int]]:
        """The log positions after `checked` up to `upto` that this process did not record,
        as (after, upto) ranges."""
        gaps = []
        after = self.checked
        for first, last in sorted(self._own):
            if first - 1 > after:
                gaps.append((after, min(first - 1, upto)))
            after = max(after, last)
        if upto > after:
            gaps.append((after, upto))
        return [(a, b) for a, b in gaps if b > a]

    def checked_upto(self, position: int) -> None:
        self.checked = position
        self._own = [(a, b) for a, b in self._own if b > position]

    def __contains__(self, order_id: object) -> bool:
        return order_id in self._orders

    def __len__(self) -> int:
        return len(self._orders)


def execute_batch(ledger: Ledger, items: Sequence[Item]) -> list[object]:
    """Outcomes (or the CommandRefused / store errors) of the items, in order."""
    results: list[object] = []
    rest = list(items)
    while rest:
        batch = _Batch(ledger)
        try:
            with paused():
                done = batch.run(rest)
        except IntegrityError:  # a conflict: nothing was recorded; redo it one by one
            done = [outcome_of(ledger, item) for item in rest[:batch.stopped_at]]
        results += done
        rest = rest[len(done):]
        if rest:  # a tick with many orders due: swept on its own
            results.append(outcome_of(ledger, rest.pop(0)))
    return results


def outcome_of(ledger: Ledger, item: Item) -> object:
    """The outcome of one item, or its refusal; store failures are raised (the batch is
    a unit of work: its caller tries it again, or stops)."""
    try:
        return ledger.execute(item)
    except CommandRefused as refusal:
        return refusal


class _Batch:
    """One transaction's worth of items, decided in memory."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.orders: dict[str, Order | None] = {}  # the working set, by order id
        self.broken: dict[str, IntegrityBroken] = {}  # orders whose history is broken
        self.deadlines: list[tuple[datetime, str]] = []  # heap of (pending deadline, id)
        self.touched: dict[str, Order] = {}
        self.indexed: dict[str, DeadlineRow | None] = {}  # index rows as the store has them
        self.stopped_at = 0

    def run(self, items: Sequence[Item]) -> list[object]:
        """Decide items until the end or a large tick, record them; their outcomes."""
        ledger, policy = self.ledger, self.ledger.policy
        self.stopped_at = len(items)
        idents = {n: c.identity() for n, c in enumerate(items)
                  if isinstance(c, cmd.OrderCommand)}
        ledger.refresh_cache()
        known = ledger.index.known_digests(sorted({cid for cid, _ in idents.values()}))
        remembered = ledger.index.known_refusals(sorted(set(idents.values())))
        self.load({c.order_id for c in items if isinstance(c, cmd.OrderCommand)})
        rows: list[CommandRow] = []
        refusals: list[RefusalRow] = []
        results: list[object] = []
        refused_ids: dict[int, tuple[str, str]] = {}
        repairs: list[tuple[int, UUID, str, datetime]] = []
        swept_until: datetime | None = None
        try:
            for n, c in enumerate(items):
                if (ahead := ledger.too_far_ahead(c.at)) is not None:
                    results.append(ahead)  # refused at the edge: it reveals nothing
                    continue
                if isinstance(c, cmd.Tick):
                    # Rows due before an earlier tick of this batch belong to orders it
                    # loaded (the index is written when the batch is recorded).
                    due = ledger.index.due_orders(c.at, TICK_LIMIT + 1, swept_until,
                                                  ledger.partition)
                    swept_until = c.at if swept_until is None else max(swept_until, c.at)
                    if len(due) > TICK_LIMIT:
                        self.stopped_at = n
                        break
                    fresh = self.load({order_id for _, order_id in due})
                    fired, swept = self.sweep(c.at)
                    results.append(Outcome(timeouts=fired))
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
                        if order is not None:
                            order.apply_due_timeouts(c.at, policy)
                        raise duplicate_id(cid)
                    if (cid, digest) in remembered:  # refused before: refused again, as it
                        results.append(CommandRefused(*remembered[(cid, digest)]))  # was
                        continue
                    if c.order_id in self.broken:
                        raise refusal_of(self.broken[c.order_id])
                    if order is None:
                        self.indexed[c.order_id] = None
                    order = self.orders[c.order_id] = decide(order, c, policy)
                    known[cid] = digest
                    rows.append(CommandRow(cid, order.id, digest))
                    results.append(applied(len(order.pending_events) - before))
                except CommandRefused as refusal:
                    results.append(refusal)
                    refused_ids[n] = (cid, digest)
                    if refusal.code not in UNREMEMBERED:
                        remembered[(cid, digest)] = (refusal.code, refusal.reason)
                        refusals.append(refusal_row(CommandRow(cid, order_uuid(c.order_id),
                                                               digest), order, refusal))
                if order is not None and order.pending_events:
                    self.touched[c.order_id] = order
                    self.watch(order)
            if self.touched or refusals:
                self.record(rows, refusals)
        except BaseException:
            for order_id in self.orders:  # in memory they may hold what was not recorded
                ledger.order_cache.drop(order_id)
            raise
        for order in self.orders.values():
            if order is not None:
                ledger.order_cache.put(order)
        self.settle_repairs(results, repairs)
        self.settle_refusals(results, refused_ids, {row.command_id for row in rows})
        return results

    def record(self, rows: list[CommandRow], refusals: list[RefusalRow]) -> None:
        """Record the batch: the index rows written are those that changed."""
        changed: dict[UUID, DeadlineRow | None] = {}
        for order_id, order in self.touched.items():
            row = deadline_row(order)
            if row != self.indexed[order_id]:
                changed[order.id] = row
        # In key order, the inserts walk each index once (fewer pages read back).
        orders = sorted(self.touched.values(), key=lambda order: order.id.hex)
        self.ledger.record(orders, rows, changed, refusals)

    def load(self, order_ids: Iterable[str]) -> set[str]:
        """Add orders to the working set (from the cache where it is up to date, else from
        the store); the ids of those that were not there already."""
        wanted = {x for x in order_ids if x not in self.orders and x not in self.broken}
        for order_id, order in load_orders(self.ledger, wanted).items():
            if isinstance(order, IntegrityBroken):
                self.broken[order_id] = order
                continue
            self.orders[order_id] = order
            self.indexed[order_id] = None if order is None else deadline_row(order)
            if order is not None:
                self.watch(order)
        return wanted

    def watch(self, order: Order) -> None:
        due = order.pending_deadline
        if due is not None:
            heapq.heappush(self.deadlines, (due.at, order.order_id))

    def sweep(self, now: datetime) -> tuple[int, set[str]]:
        """Apply the timeouts due before `now` to the orders of the working set; how many,
        and the orders they changed."""
        fired = 0
        swept = set()
        heap, policy = self.deadlines, self.ledger.policy
        while heap and heap[0][0] < now:
            _, order_id = heapq.heappop(heap)
            order = self.orders[order_id]
            assert order is not None
            n = order.apply_due_timeouts(now, policy)
            if n:
                fired += n
                swept.add(order_id)
                self.touched[order_id] = order
                self.watch(order)
        return fired, swept

    def settle_repairs(self, results: list[object],
                       repairs: list[tuple[int, UUID, str, datetime]]) -> None:
        """Index rows that said an order outside the batch was due when it was not (another
        writer moved it on, or the row was behind its events): now that the batch is
        recorded, sweep those orders one by one, which sets their rows right (as
        `Ledger.tick` does).  Rows of orders this batch recorded are already right."""
        for n, oid, order_id, now in repairs:
            if order_id in self.touched or order_id in self.broken:
                continue
            fired = self.ledger.sweep_order(oid, now) or 0
            outcome = results[n]
            assert isinstance(outcome, Outcome)
            results[n] = Outcome(timeouts=outcome.timeouts + fired)

    def settle_refusals(self, results: list[object], refused_ids: dict[int, tuple[str, str]],
                        applied_here: set[str]) -> None:
        """Refused here, but perhaps applied by another writer meanwhile (not by a later
        line of this batch: that one was applied, this one stays refused, as one by one)."""
        others = {x for x, _ in refused_ids.values() if x not in applied_here}
        if not others:
            return
        now_known = self.ledger.index.known_digests(sorted(others))
        for n, (cid, digest) in refused_ids.items():
            if cid in others and now_known.get(cid) == digest:
                results[n] = DUPLICATE


def load_orders(ledger: Ledger, order_ids: Iterable[str],
                known: Mapping[str, UUID] | None = None
                ) -> dict[str, Order | IntegrityBroken | None]:
    """The orders (None: never placed; an `IntegrityBroken` where the history is broken),
    from the cache (once `Ledger.refresh_cache` has dropped what other writers changed),
    else from the store; `known` gives the ids of some of them (else they are derived)."""
    cache = ledger.order_cache
    found: dict[str, Order | IntegrityBroken | None] = {}
    missing: dict[UUID, str] = {}
    uuid_of = known or {}
    for order_id in order_ids:
        order = cache.get(order_id)
        found[order_id] = order
        if order is None:
            missing[uuid_of.get(order_id) or order_uuid(order_id)] = order_id
    for oid, loaded in ledger.load_orders(list(missing)).items():
        order_id = missing[oid]
        found[order_id] = (ledger.remember(loaded.naming(order_id))
                           if isinstance(loaded, IntegrityBroken) else loaded)
    return found
