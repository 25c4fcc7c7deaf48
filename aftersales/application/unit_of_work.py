"""One unit of work: the orders a decision needs, loaded and checked, and what the decision
left behind, recorded in one transaction.

Loading: an order comes from the order cache where that is up to date (`refresh`), else
from the store, its events checked against the chained record and folded; an order whose
history is broken is an `IntegrityBroken` (kept in `broken`), never an order.

Recording (`record`): the orders' new events, their deadline-index rows (those that
changed), the command ids applied, the refusals to remember and the platform messages
decided go to the store in one transaction, so nothing of a unit is acknowledged before
all of it is durable, and a conflict (another writer moved an order on, recorded one of
these command ids or decided one of these messages) leaves nothing of it recorded.

Both note the orders another writer moved on since this process held them (a conflict, or
an order the cache drops for another writer's events), so that a command line of this
process that meets such an order can tell whether another process was deciding lines of it
too (`aftersales.application.other_writers`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder, IntegrityError, Mapper, StoredEvent

from aftersales.application.order_cache import OrderCache
from aftersales.application.other_writers import OtherWriters
from aftersales.domain.events import OrderEvent, OrderPlaced
from aftersales.domain.order import Order, order_uuid
from aftersales.errors import IntegrityBroken
from aftersales.storage.chain import Break
from aftersales.storage.port import (
    CommandRow,
    DeadlineRow,
    LedgerRecorder,
    MessageRow,
    RefusalRow,
    chunks,
    sidecar_kwargs,
)
from aftersales.storage.shard import Partition

#: Beyond this many events recorded by others since the order cache was checked, the
#: cache is dropped rather than checked order by order.
CACHE_CHECK_LIMIT = 200_000

#: What loading an order by its number gives: the order, None (never placed), or the
#: break in its history.
Found = Order | IntegrityBroken | None


class UnitOfWork:
    """Loading and recording orders through one store (the recorder of a `Ledger`)."""

    def __init__(self, recorder: ApplicationRecorder, mapper: Mapper[UUID],
                 partition: Partition | None = None) -> None:
        if not isinstance(recorder, LedgerRecorder):
            raise TypeError(f"{type(recorder).__name__} keeps no deadline index: use a "
                            "recorder of aftersales.storage")
        self.recorder = recorder
        #: The deadline index, command ids and chained record kept beside the events.
        self.index: LedgerRecorder = recorder
        self.mapper = mapper
        self.partition = partition
        self.cache = OrderCache()
        #: The orders found with a broken history by this process's loads, by id.
        self.broken: dict[UUID, IntegrityBroken] = {}
        #: The orders another writer moved on while this process held them, and those
        #: another process recorded commands for meanwhile.
        self.others = OtherWriters()

    # --- recording ---------------------------------------------------------------------

    def record(self, orders: Sequence[Order], commands: Sequence[CommandRow],
               deadlines: Mapping[UUID, DeadlineRow | None],
               refusals: Sequence[RefusalRow] = (),
               messages: Sequence[MessageRow] = ()) -> None:
        """Record the orders' pending events, the deadline-index rows given, the command
        ids, the refusals to remember and the messages decided in one transaction (a
        message's key recorded already, or no longer reported where the row `replaces`
        it, is a conflict: `IntegrityError`).  (What `Application.save` does, without its
        snapshotting and notification hooks, which the ledger does not use, and their
        per-object costs.)"""
        events = [e for order in orders for e in order.collect_events()]
        try:
            ids = self.recorder.insert_events(
                [self.mapper.to_stored_event(e) for e in events],
                **sidecar_kwargs(deadlines, commands, refusals, messages))
        except IntegrityError:  # a conflict: another writer may have moved these on
            for e in events:  # (an order's first event here follows the version held)
                self.others.held(e.originator_id, e.originator_version - 1)
            for r in refusals:
                self.others.held(r.originator_id, r.version)
            raise
        if ids:
            self.cache.recorded(min(ids), max(ids))

    # --- loading -----------------------------------------------------------------------

    def refresh(self) -> None:
        """Drop from the order cache what other writers changed since it was last checked:
        the event log's tail, less this process's own events, names the orders."""
        cache = self.cache
        top = self.recorder.max_notification_id() or 0
        if top == cache.checked:
            return
        others = cache.others(top)
        if cache and sum(b - a for a, b in others) > CACHE_CHECK_LIMIT:
            for order in cache.orders():
                self.others.held(order.id, order.version)
            cache.clear()
        elif cache:
            for after, upto in others:
                for _, oid in self.index.recorded_between(after, upto, self.partition):
                    dropped = cache.drop_id(oid)
                    if dropped is not None:  # another writer moved it on
                        self.others.held(oid, dropped.version)
        cache.checked_upto(top)

    def note_other_writers(self, orders: Iterable[Order | None]) -> None:
        """Of these orders, just loaded for command lines of this process, those another
        writer moved on since this process held them (`others.moved`): read their events
        since, and note in `others` those where one carries a command id (another process
        decided lines of the order meanwhile; a sweep's events carry none).  Only called
        while some order is noted: a conflict or another writer's events came first."""
        moved = self.others.moved
        since: dict[UUID, tuple[str, int]] = {}
        for order in orders:
            if order is None:
                continue
            held = moved.pop(order.id, None)
            if held is not None and order.version > held and not self.others.known(order.id):
                since[order.id] = (order.order_id, held)
        for part in chunks(list(since)):
            loaded = self.index.select_events_many(part)
            for oid in part:  # in the order of the lines
                stored, (order_id, held) = loaded.get(oid), since[oid]
                if stored is None or isinstance(stored, Break):
                    continue  # (a broken history is refused by the order's next load)
                later = [s for s in stored if s.originator_version > held]
                try:
                    if any(e.command_id is not None for e in self.decoded(oid, later)):
                        self.others.found(oid, order_id)
                except IntegrityBroken:
                    continue

    def load(self, order_ids: Iterable[str], known: Mapping[str, UUID] | None = None
             ) -> dict[str, Found]:
        """The orders by number, from the cache (once `refresh` has dropped what other
        writers changed), else from the store; `known` gives the ids of some of them
        (else they are derived)."""
        cache = self.cache
        found: dict[str, Found] = {}
        missing: dict[UUID, str] = {}
        uuid_of = known or {}
        for order_id in order_ids:
            order = cache.get(order_id)
            found[order_id] = order
            if order is None:
                missing[uuid_of.get(order_id) or order_uuid(order_id)] = order_id
        for oid, loaded in self.load_ids(list(missing)).items():
            order_id = missing[oid]
            found[order_id] = (self.remember(loaded.naming(order_id))
                               if isinstance(loaded, IntegrityBroken) else loaded)
        return found

    def load_ids(self, oids: Sequence[UUID]) -> dict[UUID, Order | IntegrityBroken]:
        """The orders, rebuilt from their checked events, a few hundred per query (so that
        only those orders' events are held at once); a broken history as its error.
        Orders never placed are left out."""
        orders: dict[UUID, Order | IntegrityBroken] = {}
        for part in chunks(oids):
            for oid, stored in self.index.select_events_many(part).items():
                try:
                    if isinstance(stored, Break):
                        raise IntegrityBroken(stored)
                    order = self.fold(oid, stored)
                except IntegrityBroken as broken:
                    orders[oid] = self.remember(broken)
                    continue
                if order is not None:
                    orders[oid] = order
        return orders

    def load_id(self, oid: UUID) -> Order | None:
        """One order from the store (not the cache); `IntegrityBroken` if it is broken."""
        return self.fold(oid, self.stored(oid))

    def get(self, order_id: str) -> Order | None:
        """The order as recorded now, from the store, or None; `IntegrityBroken` if its
        recorded history is broken."""
        try:
            return self.load_id(order_uuid(order_id))
        except IntegrityBroken as broken:
            raise self.remember(broken.naming(order_id)) from None

    def events(self, order_id: str) -> Iterator[OrderEvent]:
        """The order's events, checked (`IntegrityBroken` before any is given)."""
        oid = order_uuid(order_id)
        try:
            return iter(list(self.decoded(oid, self.stored(oid))))
        except IntegrityBroken as broken:
            raise self.remember(broken.naming(order_id)) from None

    def stored(self, oid: UUID) -> Sequence[StoredEvent]:
        try:
            return self.recorder.select_events(oid)
        except IntegrityBroken as broken:
            raise self.remember(broken) from None

    def as_of(self, order_id: str, as_of: datetime) -> Order | None:
        """The order as it stood at business time `as_of` (its events with at <= as_of),
        from the store; `IntegrityBroken` if its recorded history is broken.  The whole
        history is checked against its chain; only the events up to `as_of` are decoded
        (an order of 200 events as of a time in the middle: 0.3 ms of the 2.4 ms)."""
        oid = order_uuid(order_id)
        try:
            return self.fold(oid, self.stored(oid), as_of)
        except IntegrityBroken as broken:
            raise self.remember(broken.naming(order_id)) from None

    def fold(self, oid: UUID, stored: Sequence[StoredEvent],
             until: datetime | None = None) -> Order | None:
        """The order its (checked) stored events make (those up to business time `until`
        only, if given); `IntegrityBroken` for an event that cannot be read or applied
        (its bytes are as recorded, but this version of the ledger cannot make sense of
        them)."""
        order: Order | None = None
        for event in self.decoded(oid, stored):
            if until is not None and event.at > until:
                break
            try:
                order = event.mutate(order)
            except Exception as e:  # an event this version cannot apply to the order
                raise self.remember(IntegrityBroken(Break(
                    oid, event.originator_version,
                    f"the event cannot be applied ({type(e).__name__}: {e})"))) from e
        return order

    def decoded(self, oid: UUID, stored: Sequence[StoredEvent]) -> Iterator[OrderEvent]:
        for s in stored:
            try:
                event = self.mapper.to_domain_event(s)
                if not isinstance(event, OrderEvent):
                    raise TypeError(f"{s.topic} is not an order event")
            except Exception as e:  # whatever the codec raises: the event is unreadable
                raise self.remember(IntegrityBroken(Break(
                    oid, s.originator_version,
                    f"the event cannot be read ({type(e).__name__}: {e})"))) from e
            yield event

    def remember(self, broken: IntegrityBroken) -> IntegrityBroken:
        """Keep a broken order in `broken` (by the order number once that is known)."""
        oid = broken.originator_id
        if isinstance(oid, UUID) and (broken.order_id or oid not in self.broken):
            self.broken[oid] = broken
        return broken

    def order_number(self, stored: StoredEvent) -> str | None:
        """The order number an order's first event names (for messages)."""
        event = self.mapper.to_domain_event(stored)
        return event.order_id if isinstance(event, OrderPlaced) else None

    def all_events(self, page: int = 1000) -> Iterator[OrderEvent]:
        """Every recorded event in recording order, a page at a time (not checked: see
        `aftersales.storage.integrity` for the log's chain)."""
        start = 1
        while notifications := self.recorder.select_notifications(start, page):
            for notification in notifications:
                event = self.mapper.to_domain_event(notification)
                assert isinstance(event, OrderEvent)
                yield event
            start = notifications[-1].id + 1

