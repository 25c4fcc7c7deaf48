"""Group commit: many commands decided against orders held in memory, recorded in one
transaction.

The outcomes are those of `Ledger.execute` applied one command after another: each
command is decided on the state its predecessors left, a refused command leaves nothing
but the timeouts it revealed, and duplicates are recognised by command id.  The batch is
recorded all at once (events, deadline-index rows, command ids), so nothing of it is
acknowledged before it is durable.  If the store reports a conflict (another writer moved
an order on, or recorded one of these command ids), nothing of the batch was recorded: it
is redone one command at a time through `Ledger.execute`, which retries on fresh state.

Orders recorded by a batch stay in a bounded cache for the next one; before a batch uses a
cached order it checks, in one query, that no other writer has recorded events for it since.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING
from uuid import UUID

from eventsourcing.persistence import IntegrityError, PersistenceError

from aftersales import commands as cmd
from aftersales.domain.errors import AftersalesError, CommandRefused
from aftersales.domain.order import Order, order_uuid
from aftersales.recorders.rows import CommandRow

if TYPE_CHECKING:
    from aftersales.application import Ledger

CACHE_SIZE = 5_000


class OrderCache:
    """Orders as last recorded by this process, least recently used dropped first."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self._orders: OrderedDict[UUID, Order] = OrderedDict()

    def get(self, oid: UUID) -> Order | None:
        return self._orders.get(oid)

    def put(self, order: Order) -> None:
        self._orders[order.id] = order
        self._orders.move_to_end(order.id)
        while len(self._orders) > self.size:
            self._orders.popitem(last=False)

    def drop(self, oid: UUID) -> None:
        self._orders.pop(oid, None)

    def __contains__(self, oid: object) -> bool:
        return oid in self._orders


def execute_batch(ledger: Ledger, commands: Sequence[cmd.OrderCommand]) -> list[object]:
    """Outcomes (or the CommandRefused / store errors) of the commands, in order."""
    try:
        return _decide_and_record(ledger, commands)
    except IntegrityError:
        pass  # a conflict: nothing was recorded; redo it one command at a time
    results: list[object] = []
    for command in commands:
        try:
            results.append(ledger.execute(command))
        except (AftersalesError, PersistenceError) as e:
            results.append(e)
    return results


def _load(ledger: Ledger, oids: set[UUID]) -> dict[UUID, Order]:
    """The orders, from the cache where it is up to date, else from the store."""
    cache = ledger.order_cache
    cached = [oid for oid in oids if oid in cache]
    latest = ledger.index.max_versions(cached) if cached else {}
    orders: dict[UUID, Order] = {}
    missing = [oid for oid in oids if oid not in cache]
    for oid in cached:
        order = cache.get(oid)
        if order is not None and latest.get(oid) == order.version:
            orders[oid] = order
        else:
            cache.drop(oid)
            missing.append(oid)
    for rebuilt in ledger.load_orders(missing):
        orders[rebuilt.id] = rebuilt
    return orders


def _decide_and_record(ledger: Ledger, commands: Sequence[cmd.OrderCommand]) -> list[object]:
    from aftersales.application import Outcome, decide, duplicate_id

    idents = [c.identity() for c in commands]
    known = ledger.index.known_digests(sorted({i[0] for i in idents}))
    orders: dict[UUID, Order | None] = dict(_load(
        ledger, {order_uuid(c.order_id) for c in commands}))
    touched: dict[UUID, Order] = {}
    rows: list[CommandRow] = []
    results: list[object] = []
    refused_ids: dict[int, tuple[str, str]] = {}
    try:
        for n, (c, (cid, digest)) in enumerate(zip(commands, idents, strict=True)):
            oid = order_uuid(c.order_id)
            order = orders.get(oid)
            before = len(order.pending_events) if order is not None else 0
            try:
                seen = known.get(cid)
                if seen is not None:
                    if seen == digest:
                        results.append(Outcome(duplicate=True))
                        continue
                    if order is not None:
                        order.apply_due_timeouts(c.at, ledger.policy)
                    raise duplicate_id(cid)
                order = orders[oid] = decide(order, c, ledger.policy)
                known[cid] = digest
                rows.append(CommandRow(cid, oid, digest))
                results.append(Outcome(events=len(order.pending_events) - before))
            except CommandRefused as refusal:
                results.append(refusal)
                refused_ids[n] = (cid, digest)
            if order is not None and order.pending_events:
                touched[oid] = order
        if touched:
            ledger.record(list(touched.values()), rows)
    except BaseException:
        for oid in orders:  # in memory they may hold what was not recorded
            ledger.order_cache.drop(oid)
        raise
    for order in orders.values():
        if order is not None:
            ledger.order_cache.put(order)
    # Refused here, but perhaps applied by another writer meanwhile (not by a later line of
    # this batch: that one was applied, this one stays refused, as one by one).
    applied_here = {row.command_id for row in rows}
    others = {x for x, _ in refused_ids.values() if x not in applied_here}
    if others:
        now_known = ledger.index.known_digests(sorted(others))
        for n, (cid, digest) in refused_ids.items():
            if cid in others and now_known.get(cid) == digest:
                results[n] = Outcome(duplicate=True)
    return results
