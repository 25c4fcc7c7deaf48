"""The ledger: an eventsourcing Application with one method per command.

Errors are translated here: the domain raises `CommandRefused`; this layer adds the
refusals only it can see (UNKNOWN-ORDER, DUPLICATE-ORDER, DUPLICATE-ID), makes commands
idempotent by `command_id`, retries optimistic-concurrency conflicts, and keeps the
deadline index and the command ids in the same transaction as the events.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import IntegrityError, StoredEvent, Transcoder

from aftersales import commands as cmd
from aftersales.clock import FutureGuard
from aftersales.collector import paused
from aftersales.decisions import (
    UNREMEMBERED,
    Outcome,
    deadline_row,
    decide,
    duplicate_id,
    refusal_of,
    refusal_row,
)
from aftersales.domain.errors import CommandRefused
from aftersales.domain.events import OrderEvent, OrderPlaced
from aftersales.domain.order import Order, order_uuid
from aftersales.domain.policy import DEFAULT_POLICY, Policy
from aftersales.errors import ConflictError, IntegrityBroken, NeedsUpgrade
from aftersales.group_commit import OrderCache, execute_batch, load_orders
from aftersales.partition import Partition
from aftersales.recorders.chain import Break
from aftersales.recorders.rows import (
    CommandRow,
    DeadlineRow,
    LedgerRecorder,
    RefusalRow,
    chunks,
    sidecar_kwargs,
)
from aftersales.settings import DEFAULT_SETTINGS, Settings
from aftersales.store import eventsourcing_env, redacted, resolve_url
from aftersales.transcoder import FastJSONTranscoder

SWEEP_BATCH = 10_000
#: Beyond this many events recorded by others since the order cache was checked, the
#: cache is dropped rather than checked order by order.
CACHE_CHECK_LIMIT = 200_000


class Ledger(Application[UUID]):
    """The after-sales ledger over one store (see `aftersales.store` for URLs)."""

    name = "aftersales"

    def __init__(
        self,
        url: str | None = None,
        *,
        policy: Policy = DEFAULT_POLICY,
        max_retries: int = 50,
        create_tables: bool = True,
        partition: Partition | None = None,
        upgrading: bool = False,
        settings: Settings = DEFAULT_SETTINGS,
        guard: FutureGuard | None = None,
    ) -> None:
        self.url = resolve_url(url)
        #: A parallel ingest's worker sweeps only the orders it owns (aftersales.partition).
        self.partition = partition
        self.policy = policy
        self.max_retries = max_retries
        self.order_cache = OrderCache()
        #: Refuses business times too far ahead of the wall clock (None: no limit); the
        #: edge that reads the clock gives it.
        self.guard = guard
        #: The orders found with a broken history by this ledger's loads, by aggregate id.
        self.broken: dict[UUID, IntegrityBroken] = {}
        env = eventsourcing_env(self.url, settings)
        env["CREATE_TABLE"] = "y" if create_tables else "n"
        super().__init__(env=env)
        if not upgrading and self.index.needs_upgrade():
            self.close()
            raise NeedsUpgrade(
                f"the ledger at {redacted(self.url)} was written by an earlier version of "
                "aftersales, before the chained record: run `aftersales db upgrade` once "
                "(it keeps every event and adds the chain)")

    def construct_transcoder(self) -> Transcoder:
        """The library's JSON format, through orjson (see `aftersales.transcoder`)."""
        transcoder = FastJSONTranscoder()
        self.register_transcodings(transcoder)
        return transcoder

    def store_reason(self) -> str | None:
        """Why the store cannot be reached now, in its own words, if it can say (used when
        a pool only reports that it got no connection in time)."""
        unreachable = getattr(self.factory, "unreachable", None)
        return unreachable() if unreachable is not None else None

    def too_far_ahead(self, at: datetime) -> CommandRefused | None:
        """The refusal of a business time too far ahead of the wall clock, if it is."""
        return None if self.guard is None else self.guard.refusal(at)

    @property
    def index(self) -> LedgerRecorder:
        """The deadline index and command ids kept beside the events."""
        recorder = self.recorder
        assert hasattr(recorder, "due_orders")
        return recorder  # type: ignore[return-value]

    # --- commands ----------------------------------------------------------------------

    def execute(self, command: cmd.OrderCommand | cmd.Tick) -> Outcome:
        """Apply one command; raise `CommandRefused` when a rule forbids it."""
        if isinstance(command, cmd.Tick):
            return Outcome(timeouts=self.tick(command.at))
        if (ahead := self.too_far_ahead(command.at)) is not None:
            raise ahead  # refused at the edge: it reveals nothing
        command_id, digest = command.identity()
        row = CommandRow(command_id, order_uuid(command.order_id), digest)
        for _ in range(self.max_retries):
            try:
                if (known := self._known(row)) is not None:
                    return known
            except CommandRefused as refused:
                if refused.code == "DUPLICATE-ID":
                    self._reveal_timeouts(command)
                raise  # (a remembered refusal reveals nothing: it did when decided)
            try:
                return self._decide(command, row)
            except IntegrityError:
                continue  # another writer got there first: look again and decide again
            except CommandRefused:
                # Another writer may have applied this very command after we looked.
                if (known := self._known(row)) is not None:
                    return known
                raise
        raise ConflictError(f"order {command.order_id}: gave up after {self.max_retries} "
                            "conflicting attempts")

    def _known(self, row: CommandRow) -> Outcome | None:
        """A duplicate's outcome if the command id was applied, else None; the remembered
        refusal if this very command was refused before (DUPLICATE-ID if the id was
        applied with other content)."""
        known = self.index.command_digest(row.command_id)
        if known is None:
            remembered = self.index.known_refusals([(row.command_id, row.digest)])
            if remembered:
                code, reason = remembered[(row.command_id, row.digest)]
                raise CommandRefused(code, reason)
            return None
        if known != row.digest:
            raise duplicate_id(row.command_id)
        return Outcome(duplicate=True)

    def _decide(self, command: cmd.OrderCommand, row: CommandRow) -> Outcome:
        try:
            found = self.get_order(command.order_id)
        except IntegrityBroken as broken:
            raise refusal_of(broken) from None
        try:
            order = decide(found, command, self.policy)
        except CommandRefused as refused:
            # The timeouts it revealed are facts, and the refusal is remembered with them
            # (so that this command is never decided again, on a later state).
            self._save_refused(found, row, refused)
            raise
        return Outcome(events=self._save(order, row))

    def _save_refused(self, order: Order | None, row: CommandRow,
                      refused: CommandRefused) -> None:
        if order is not None:
            self.order_cache.drop(order.order_id)
        if refused.code in UNREMEMBERED:
            if order is not None:
                self._save(order, None)
            return
        self.record([order] if order is not None else [], [],
                    refusals=[refusal_row(row, order, refused)])

    def _reveal_timeouts(self, command: cmd.OrderCommand) -> None:
        """Record the timeouts a refused command's business time revealed."""
        try:
            order = self.get_order(command.order_id)
        except IntegrityBroken:
            return  # nothing is decided on a broken history, timeouts neither
        if order is not None and order.apply_due_timeouts(command.at, self.policy):
            with contextlib.suppress(IntegrityError):  # another writer moved it on
                self._save(order, None)

    def execute_batch(self, items: Sequence[cmd.OrderCommand | cmd.Tick]) -> list[object]:
        """Group commit: the outcomes of commands and ticks (or their refusals and store
        errors) as if executed one by one, recorded in one transaction (see
        `aftersales.group_commit`)."""
        return execute_batch(self, items)

    def record(self, orders: Sequence[Order], commands: Sequence[CommandRow],
               deadlines: Mapping[UUID, DeadlineRow | None] | None = None,
               refusals: Sequence[RefusalRow] = ()) -> None:
        """Record the orders' pending events, their deadline-index rows (all of them, or
        those given), the command ids and the refusals to remember in one transaction.
        (What `Application.save` does, without its snapshotting and notification hooks,
        which the ledger does not use, and their per-object costs.)"""
        events = [e for order in orders for e in order.collect_events()]
        if deadlines is None:
            deadlines = {order.id: deadline_row(order) for order in orders}
        ids = self.recorder.insert_events(
            [self.mapper.to_stored_event(e) for e in events],
            **sidecar_kwargs(deadlines, commands, refusals))
        if ids:
            self.order_cache.recorded(min(ids), max(ids))

    def refresh_cache(self) -> None:
        """Drop from the order cache what other writers changed since it was last checked:
        the event log's tail, less this ledger's own events, names the orders."""
        cache = self.order_cache
        top = self.recorder.max_notification_id() or 0
        if top == cache.checked:
            return
        others = cache.others(top)
        if cache and sum(b - a for a, b in others) > CACHE_CHECK_LIMIT:
            cache.clear()
        elif cache:
            for after, upto in others:
                for _, oid in self.index.recorded_between(after, upto, self.partition):
                    cache.drop_id(oid)
        cache.checked_upto(top)

    def _save(self, order: Order, command: CommandRow | None) -> int:
        self.order_cache.drop(order.order_id)  # recorded outside a batch: the cache is old
        pending = len(order.pending_events)
        if pending == 0:
            return 0
        self.record([order], [command] if command else [])
        return pending

    # One method per command, for callers in Python.
    def place_order(self, **fields: Any) -> Outcome:
        return self.execute(cmd.build(cmd.PlaceOrder, fields))

    def pay(self, **fields: Any) -> Outcome:
        return self.execute(cmd.build(cmd.Pay, fields))

    def confirm_order(self, **fields: Any) -> Outcome:
        return self.execute(cmd.build(cmd.ConfirmOrder, fields))

    def ship(self, **fields: Any) -> Outcome:
        return self.execute(cmd.build(cmd.Ship, fields))

    def deliver(self, **fields: Any) -> Outcome:
        return self.execute(cmd.build(cmd.Deliver, fields))

    def cancel(self, **fields: Any) -> Outcome:
        return self.execute(cmd.build(cmd.Cancel, fields))

    def request_return(self, **fields: Any) -> Outcome:
        return self.execute(cmd.build(cmd.RequestReturn, fields))

    def approve_return(self, **fields: Any) -> Outcome:
        return self.execute(cmd.build(cmd.ApproveReturn, fields))

    def reject_return(self, **fields: Any) -> Outcome:
        return self.execute(cmd.build(cmd.RejectReturn, fields))

    def withdraw_return(self, **fields: Any) -> Outcome:
        return self.execute(cmd.build(cmd.WithdrawReturn, fields))

    def submit_tracking(self, **fields: Any) -> Outcome:
        return self.execute(cmd.build(cmd.SubmitTracking, fields))

    def confirm_receipt(self, **fields: Any) -> Outcome:
        return self.execute(cmd.build(cmd.ConfirmReceipt, fields))

    def upload_refund_voucher(self, **fields: Any) -> Outcome:
        return self.execute(cmd.build(cmd.UploadRefundVoucher, fields))

    # --- timeouts ----------------------------------------------------------------------

    def tick(self, now: datetime,
             on_order: Callable[[UUID, int], None] = lambda oid, n: None) -> int:
        """Apply every timeout due before `now` (deadline < now); return how many.

        Due orders are found through the deadline index, a batch at a time, never by
        loading every order; each batch's timeouts are recorded in one transaction (if
        another writer moved one of its orders on, the batch is redone order by order).
        An order whose history is broken is skipped (and kept in `broken`).  `on_order`
        hears of each order once its timeouts are recorded."""
        if (ahead := self.too_far_ahead(now)) is not None:
            raise ahead
        total = 0
        self.refresh_cache()
        skipped: set[UUID] = set()
        while due := [x for x in self.index.due_orders(now, SWEEP_BATCH + len(skipped),
                                                       partition=self.partition)
                      if x[0] not in skipped][:SWEEP_BATCH]:
            try:
                with paused():
                    swept = self._sweep_batch(due, now)
            except IntegrityError:
                swept = {oid: self.sweep_order(oid, now) for oid, _ in due}
            for oid, fired in swept.items():
                if fired is None:
                    skipped.add(oid)
                    continue
                total += fired
                if fired:
                    on_order(oid, fired)
        return total

    def _sweep_batch(self, due: list[tuple[UUID, str]], now: datetime
                     ) -> dict[UUID, int | None]:
        """Sweep these orders (from the order cache where it holds them, as group commit
        does) and record their timeouts in one transaction; None for an order whose
        history is broken."""
        ids = {order_id: oid for oid, order_id in due}
        orders = load_orders(self, ids.keys(), ids)
        fired: dict[UUID, int | None] = {oid: 0 for oid, _ in due}
        changed = []
        try:
            for oid, order_id in due:
                order = orders.get(order_id)
                if isinstance(order, IntegrityBroken):
                    fired[oid] = None
                elif order is not None and order.id == oid:
                    fired[oid] = order.apply_due_timeouts(now, self.policy)
                    if fired[oid]:
                        changed.append(order)
            if changed:  # in key order, as group commit records (fewer index pages read)
                self.record(sorted(changed, key=lambda order: order.id.hex), [])
        except BaseException:
            for order_id in orders:  # in memory they may hold what was not recorded
                self.order_cache.drop(order_id)
            raise
        for order in changed:
            self.order_cache.put(order)
        for oid, _ in due:  # nothing due after all: another writer moved it on, or the row
            if fired[oid] == 0:  # was behind the events (see sweep_order)
                fired[oid] = self.sweep_order(oid, now)
        return fired

    def load_orders(self, oids: Sequence[UUID]) -> dict[UUID, Order | IntegrityBroken]:
        """The orders, rebuilt from their checked events, a few hundred per query (so that
        only those orders' events are held at once); a broken history as its error.
        Orders never placed are left out."""
        orders: dict[UUID, Order | IntegrityBroken] = {}
        for part in chunks(oids):
            for oid, stored in self.index.select_events_many(part).items():
                try:
                    if isinstance(stored, Break):
                        raise IntegrityBroken(stored)
                    order = self._fold(oid, stored)
                except IntegrityBroken as broken:
                    orders[oid] = self.remember(broken)
                    continue
                if order is not None:
                    orders[oid] = order
        return orders

    def sweep_order(self, oid: UUID, now: datetime) -> int | None:
        """Apply one order's timeouts due before `now`, on fresh state (retrying conflicts);
        when none is due, set its index row from its state.  How many were applied (None:
        the order's history is broken, nothing was done)."""
        for _ in range(self.max_retries):
            try:
                order = self._load(oid)
            except IntegrityBroken:
                return None
            if order is None:  # an index row without events: drop it
                self.index.repair_deadline(oid, None, 0)
                return 0
            fired = order.apply_due_timeouts(now, self.policy)
            if fired == 0:
                # Nothing is due: another writer moved the order on after the index was
                # read (and set its row), or the row is behind the events: set it from
                # this state, unless an event was recorded since.
                self.index.repair_deadline(oid, deadline_row(order), order.version)
                return 0
            try:
                self._save(order, None)
            except IntegrityError:
                continue
            return fired
        raise ConflictError(f"sweep of {oid}: gave up after {self.max_retries} attempts")

    # --- queries -----------------------------------------------------------------------

    def _fold(self, oid: UUID, stored: Sequence[StoredEvent]) -> Order | None:
        """The order its (checked) stored events make; `IntegrityBroken` for an event that
        cannot be read or applied (its bytes are as recorded, but this version of the
        ledger cannot make sense of them)."""
        order: Order | None = None
        for event in self._decoded(oid, stored):
            try:
                order = event.mutate(order)
            except Exception as e:  # an event this version cannot apply to the order
                raise self.remember(IntegrityBroken(Break(
                    oid, event.originator_version,
                    f"the event cannot be applied ({type(e).__name__}: {e})"))) from e
        return order

    def _decoded(self, oid: UUID, stored: Sequence[StoredEvent]) -> Iterator[OrderEvent]:
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

    def _stored(self, oid: UUID) -> Sequence[StoredEvent]:
        try:
            return self.recorder.select_events(oid)
        except IntegrityBroken as broken:
            raise self.remember(broken) from None

    def _load(self, oid: UUID) -> Order | None:
        return self._fold(oid, self._stored(oid))

    def order_number(self, stored: StoredEvent) -> str | None:
        """The order number an order's first event names (for messages)."""
        event = self.mapper.to_domain_event(stored)
        return event.order_id if isinstance(event, OrderPlaced) else None

    def get_order(self, order_id: str) -> Order | None:
        """The order as recorded now (no timeouts are invented), or None; `IntegrityBroken`
        if its recorded history is broken."""
        try:
            return self._load(order_uuid(order_id))
        except IntegrityBroken as broken:
            raise self.remember(broken.naming(order_id)) from None

    def order_events(self, order_id: str) -> Iterator[OrderEvent]:
        """The order's events, checked (`IntegrityBroken` before any is given)."""
        oid = order_uuid(order_id)
        try:
            return iter(list(self._decoded(oid, self._stored(oid))))
        except IntegrityBroken as broken:
            raise self.remember(broken.naming(order_id)) from None

    def all_events(self, page: int = 1000) -> Iterator[OrderEvent]:
        """Every recorded event in recording order, a page at a time (not checked: see
        `aftersales.integrity` for the log's chain)."""
        start = 1
        while notifications := self.recorder.select_notifications(start, page):
            for notification in notifications:
                event = self.mapper.to_domain_event(notification)
                assert isinstance(event, OrderEvent)
                yield event
            start = notifications[-1].id + 1

    def order_as_of(self, order_id: str, as_of: datetime) -> Order | None:
        """The order as it stood at business time `as_of` (events with at <= as_of)."""
        order: Order | None = None
        for event in self.order_events(order_id):
            if event.at > as_of:
                break
            order = event.mutate(order)
        return order

