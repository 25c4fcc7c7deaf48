"""The ledger: an eventsourcing Application with one method per command, and the queries.

It composes the store (the library's recorder, with the deadline index and command ids
beside the events), the unit of work and the one write path
(`aftersales.application.group_commit`), where the refusals only the application can see
are added (UNKNOWN-ORDER, DUPLICATE-ORDER, DUPLICATE-ID, FUTURE, INTEGRITY), commands are
made idempotent by `command_id` and optimistic-concurrency conflicts are retried.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import StoredEvent, Transcoder

from aftersales.application.clock import FutureGuard
from aftersales.application.unit_of_work import UnitOfWork
from aftersales.domain.events import OrderEvent
from aftersales.domain.order import Order
from aftersales.domain.policy import DEFAULT_POLICY, Policy
from aftersales.errors import IntegrityBroken, NeedsUpgrade
from aftersales.settings import DEFAULT_SETTINGS, Settings
from aftersales.storage.codec import FastJSONTranscoder
from aftersales.storage.config import eventsourcing_env, redacted, resolve_url
from aftersales.storage.integrity import record_breaks, walk_log
from aftersales.storage.port import LedgerRecorder, MessageRow
from aftersales.storage.reading import AS_RECORDED, LogReading, Positions
from aftersales.storage.shard import Partition

if TYPE_CHECKING:
    from aftersales.application import commands as cmd
    from aftersales.application.decisions import Outcome
    from aftersales.application.group_commit import (
        Choose,
        GroupCommit,
        MessageItem,
        MessageOutcome,
    )


class Ledger(Application[UUID]):
    """The after-sales ledger over one store (see `aftersales.storage.config` for URLs)."""

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
        name: str | None = None,
        positions: Positions = AS_RECORDED,
    ) -> None:
        self.url = resolve_url(url)
        self.settings = settings
        #: A parallel ingest's worker sweeps only the orders it owns
        #: (`aftersales.storage.shard`).
        self.partition = partition
        self.policy = policy
        env = eventsourcing_env(self.url, settings)
        env["CREATE_TABLE"] = "y" if create_tables else "n"
        super().__init__(env=env)
        if name is not None:  # a partition's: its read-model position is its own
            self.name = name  # (`aftersales.storage.partition_map`)
        #: How its log positions are numbered in the read models (a partition's: apart
        #: from the other partitions').
        self.positions = positions
        self.uow = UnitOfWork(self.recorder, self.mapper, partition)
        self._guard, self._max_retries = guard, max_retries
        if not upgrading and self.index.needs_upgrade():
            self.close()
            raise NeedsUpgrade(
                f"the ledger at {redacted(self.url)} was written by an earlier version of "
                "aftersales, before the chained record: run `aftersales db upgrade` once "
                "(it keeps every event and adds the chain)")

    @cached_property
    def writer(self) -> GroupCommit:
        """The one write path; the guard refuses business times too far ahead of the wall
        clock (None: no limit): the edge that reads the clock gives it.  Made at the first
        write: a command that only reads loads no command models (docs/performance.md,
        "Starting a command")."""
        from aftersales.application.group_commit import GroupCommit
        return GroupCommit(self.uow, self.policy, self._guard, self._max_retries)

    def construct_transcoder(self) -> Transcoder:
        """The library's JSON format, through orjson (see `aftersales.storage.codec`)."""
        transcoder = FastJSONTranscoder()
        self.register_transcodings(transcoder)
        return transcoder

    @property
    def index(self) -> LedgerRecorder:
        """The deadline index, command ids and chained record kept beside the events."""
        return self.uow.index

    @property
    def broken(self) -> dict[UUID, IntegrityBroken]:
        """The orders found with a broken history by this ledger's loads, by id."""
        return self.uow.broken

    # --- the reading port (`aftersales.storage.reading.LedgerReading`) ------------------

    @property
    def store_log(self) -> LogReading:
        """The log and the records beside it, as the read side reads them (the recorder:
        the library's log and the ledger's index are one object)."""
        return cast(LogReading, self.index)

    def to_domain_event(self, stored: StoredEvent) -> Any:
        return self.mapper.to_domain_event(stored)

    def walked_limits(self, cut: int) -> dict[str, tuple[int, str]]:
        """Walk the whole log chain up to `cut` first, as `verify` does, and record the
        orders its breaks name; every recorded break (these and earlier ones), by
        order_uuid: a rebuild never adopts a history `verify` calls broken.  (The wall
        clock is read here, at the edge, for the time the breaks are recorded.)"""
        walk = walk_log(self.index, cut)
        record_breaks(self.index, walk.breaks, datetime.now(UTC))
        return self.recorded_limits()

    def recorded_limits(self) -> dict[str, tuple[int, str]]:
        """Every break recorded so far (by earlier walks), by order_uuid, as
        `walked_limits` gives them."""
        return {r.originator_id.hex: (r.version, f"{r.reason} (found by a walk of the log)")
                for r in self.index.recorded_breaks()}

    def opener(self) -> Callable[[], Ledger]:
        """This ledger opened again (tables not created), in another process."""
        return partial(Ledger, self.url, create_tables=False, settings=self.settings,
                       name=self.name, positions=self.positions)

    def store_reason(self) -> str | None:
        """Why the store cannot be reached now, in its own words, if it can say (used when
        a pool only reports that it got no connection in time)."""
        unreachable = getattr(self.factory, "unreachable", None)
        return unreachable() if unreachable is not None else None

    # --- commands ----------------------------------------------------------------------

    def execute(self, command: cmd.OrderCommand | cmd.Tick) -> Outcome:
        """Apply one command; raise `CommandRefused` when a rule forbids it."""
        return self.writer.execute(command)

    def execute_batch(self, items: Sequence[cmd.OrderCommand | cmd.Tick | MessageItem]
                      ) -> list[object]:
        """Group commit: the outcomes of commands, ticks and platform messages (or their
        refusals and store errors) as if executed one by one, recorded in one transaction
        (see `aftersales.application.group_commit`)."""
        return self.writer.execute_batch(items)

    # One method per command, for callers in Python.
    def place_order(self, **fields: Any) -> Outcome:
        return self.execute(_build("PlaceOrder", fields))

    def pay(self, **fields: Any) -> Outcome:
        return self.execute(_build("Pay", fields))

    def confirm_order(self, **fields: Any) -> Outcome:
        return self.execute(_build("ConfirmOrder", fields))

    def ship(self, **fields: Any) -> Outcome:
        return self.execute(_build("Ship", fields))

    def deliver(self, **fields: Any) -> Outcome:
        return self.execute(_build("Deliver", fields))

    def cancel(self, **fields: Any) -> Outcome:
        return self.execute(_build("Cancel", fields))

    def request_return(self, **fields: Any) -> Outcome:
        return self.execute(_build("RequestReturn", fields))

    def approve_return(self, **fields: Any) -> Outcome:
        return self.execute(_build("ApproveReturn", fields))

    def reject_return(self, **fields: Any) -> Outcome:
        return self.execute(_build("RejectReturn", fields))

    def withdraw_return(self, **fields: Any) -> Outcome:
        return self.execute(_build("WithdrawReturn", fields))

    def submit_tracking(self, **fields: Any) -> Outcome:
        return self.execute(_build("SubmitTracking", fields))

    def confirm_receipt(self, **fields: Any) -> Outcome:
        return self.execute(_build("ConfirmReceipt", fields))

    def upload_refund_voucher(self, **fields: Any) -> Outcome:
        return self.execute(_build("UploadRefundVoucher", fields))

    def request_refund(self, **fields: Any) -> Outcome:
        return self.execute(_build("RequestRefund", fields))

    def request_exchange(self, **fields: Any) -> Outcome:
        return self.execute(_build("RequestExchange", fields))

    def amend_request(self, **fields: Any) -> Outcome:
        return self.execute(_build("AmendRequest", fields))

    def reject_receipt(self, **fields: Any) -> Outcome:
        return self.execute(_build("RejectReceipt", fields))

    def ship_replacement(self, **fields: Any) -> Outcome:
        return self.execute(_build("ShipReplacement", fields))

    def deliver_replacement(self, **fields: Any) -> Outcome:
        return self.execute(_build("DeliverReplacement", fields))

    def extend_deadline(self, **fields: Any) -> Outcome:
        return self.execute(_build("ExtendDeadline", fields))

    def set_deadline(self, **fields: Any) -> Outcome:
        return self.execute(_build("SetDeadline", fields))

    def appeal(self, **fields: Any) -> Outcome:
        return self.execute(_build("Appeal", fields))

    def submit_evidence(self, **fields: Any) -> Outcome:
        return self.execute(_build("SubmitEvidence", fields))

    def arbitrate(self, **fields: Any) -> Outcome:
        return self.execute(_build("Arbitrate", fields))

    def withdraw_appeal(self, **fields: Any) -> Outcome:
        return self.execute(_build("WithdrawAppeal", fields))

    def record_blame(self, **fields: Any) -> Outcome:
        return self.execute(_build("RecordBlame", fields))

    def reconcile(self, **fields: Any) -> Outcome:
        return self.execute(_build("Reconcile", fields))

    # Platform messages, each decided once (SPEC section 10).
    def execute_message(self, items: Sequence[cmd.OrderCommand] | Choose, key: str,
                        outcome: Callable[[list[object]], MessageRow],
                        replaces: bool = False) -> MessageOutcome:
        """Decide a platform message's commands and record them with its outcome in one
        transaction, unless it was decided before (see `GroupCommit.execute_message`)."""
        return self.writer.execute_message(items, key, outcome, replaces)

    def message_outcomes(self, keys: Sequence[str]) -> dict[str, MessageRow]:
        """The recorded decisions of these messages, by key."""
        return self.index.message_outcomes(keys)

    def reported_messages(self, prefix: str, limit: int, after: str = ""
                          ) -> list[MessageRow]:
        """Messages recorded as reported whose keys start with `prefix`, after `after`, in
        key order (those `aftersales feed retry` decides again)."""
        return self.index.reported_messages(prefix, limit, after)

    # --- timeouts ----------------------------------------------------------------------

    def tick(self, now: datetime,
             on_order: Callable[[UUID, int], None] = lambda oid, n: None) -> int:
        """Apply every timeout due before `now` (deadline < now); return how many;
        `on_order` hears of each order once its timeouts are recorded (see
        `GroupCommit.tick`)."""
        return self.writer.tick(now, on_order)

    def sweep(self, now: datetime,
              on_order: Callable[[UUID, int], None] = lambda oid, n: None) -> Outcome:
        """`tick`, saying also how many events the timeouts recorded (with the refunds,
        penalties and compensations that follow them)."""
        return self.writer.sweep(now, on_order)

    # --- queries -----------------------------------------------------------------------

    def order_number(self, stored: StoredEvent) -> str | None:
        """The order number an order's first event names (for messages)."""
        return self.uow.order_number(stored)

    def get_order(self, order_id: str) -> Order | None:
        """The order as recorded now (no timeouts are invented), or None; `IntegrityBroken`
        if its recorded history is broken."""
        return self.uow.get(order_id)

    def order_events(self, order_id: str) -> Iterator[OrderEvent]:
        """The order's events, checked (`IntegrityBroken` before any is given)."""
        return self.uow.events(order_id)

    def all_events(self, page: int = 1000) -> Iterator[OrderEvent]:
        """Every recorded event in recording order, a page at a time (not checked: see
        `aftersales.storage.integrity` for the log's chain)."""
        return self.uow.all_events(page)

    def order_as_of(self, order_id: str, as_of: datetime) -> Order | None:
        """The order as it stood at business time `as_of` (events with at <= as_of); its
        whole history checked, `IntegrityBroken` if it is broken."""
        return self.uow.as_of(order_id, as_of)


def _build(kind: str, fields: dict[str, Any]) -> cmd.OrderCommand:
    """The command of that class with these fields (validated as a line's would be)."""
    from aftersales.application import commands as cmd  # the models: loaded for a command
    built: cmd.OrderCommand = cmd.build(getattr(cmd, kind), fields)
    return built
