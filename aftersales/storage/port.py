"""What the ledger keeps beside its events, and what it asks of a recorder about them."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, Protocol, cast, runtime_checkable
from uuid import UUID

from eventsourcing.persistence import IntegrityError, Notification, StoredEvent

from aftersales.errors import IntegrityBroken
from aftersales.storage.chain import Break, Head
from aftersales.storage.logcheck import BreakRow, LinkRow, Ref
from aftersales.storage.shard import Partition

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def to_micros(at: datetime) -> int:
    """An aware datetime as integer microseconds since the epoch (exact, sortable)."""
    return (at - _EPOCH) // _MICROSECOND


class DeadlineRow(NamedTuple):
    order_id: str
    deadline: datetime
    rule: str
    case: int | None


class CommandRow(NamedTuple):
    command_id: str
    originator_id: UUID
    digest: str


class RefusalRow(NamedTuple):
    """A command refused on an order's state: remembered (by id and content), so that the
    same command is never decided twice (a re-run of a file refuses it again, as it was).
    `version` is the order's version it was decided on (0: no such order); the recorder
    writes it only if the order is still there, else the decision is stale (a conflict)."""

    command_id: str
    digest: str
    originator_id: UUID
    version: int
    code: str
    reason: str


#: What a platform message's decision was (`MessageRow.outcome`).
MESSAGE_OUTCOMES = frozenset({"applied", "reconciled", "refused", "reported", "ignored"})
#: The outcome of a message decided again only on purpose (`aftersales feed retry`).
REPORTED = "reported"


class MessageRow(NamedTuple):
    """A platform message decided once (SPEC section 10): its outcome, recorded with its key
    in the transaction that decides it.  `key` names the message (e.g.
    "douyin:7134483582361747744"); `code` is the refusal's rule ID ("" otherwise); `reason`
    says why ("" for applied); `tag` is the push tag (0: not a push); `order_ids` the
    ledger order ids it concerns, space-separated; `message` the message as read (kept
    so that a reported one can be decided again, `aftersales feed retry`; may be "").
    Written with `replaces`, the row
    replaces a recorded `reported` one (else the write is a conflict); without, the key
    must be new (else a conflict: another writer decided the message).  With
    `inbox_before`, the webhook inbox's unapplied rows before that seq are marked applied
    in the same transaction (this message was the last of theirs to be decided)."""

    key: str
    outcome: str
    code: str
    reason: str
    tag: int
    order_ids: str
    message: str = ""
    replaces: bool = False
    inbox_before: int = 0


class InboxRow(NamedTuple):
    """A push body as the webhook received it (the `ledger_inbox` table): `seq` its place,
    the order received (ascending, never reused; rows become visible in seq order);
    `digest` the sha256 hex of `body`; `received_at` when, as aware UTC (the instant
    given, whatever its offset); `body` its exact bytes."""

    seq: int
    digest: str
    received_at: datetime
    body: bytes


class InboxStats(NamedTuple):
    """The inbox at a glance: rows received, applied and not yet applied (`backlog`), and
    the first unapplied row's received_at (aware UTC) and seq (None: no backlog)."""

    received: int
    applied: int
    backlog: int
    oldest_unapplied: datetime | None
    first_unapplied: int | None


def inbox_digest(body: bytes) -> str:
    """A body's key in the inbox: its sha256, hex."""
    return hashlib.sha256(body).hexdigest()


@runtime_checkable
class ApplierLock(Protocol):
    """The inbox applier's lock on a store: one holder at a time, across processes (a
    process that dies, or loses its store connection, lets go of it)."""

    def try_acquire(self) -> bool:
        """Take it without waiting: True if this holder now has it (or had it already)."""

    def held(self) -> bool:
        """Whether this holder still has it (on PostgreSQL: its connection still answers;
        False once that connection was lost, and then another may take it)."""

    def release(self) -> None:
        """Let go of it (again: nothing happens)."""


class InboxOf:
    """A recorder's inbox methods (the `LedgerRecorder` protocol's), passed to the store's
    own inbox object, `self.inbox` (`aftersales.storage.inbox`, or memory's)."""

    inbox: Any

    def inbox_add(self, body: bytes, received_at: datetime) -> tuple[int, bool]:
        return cast(tuple[int, bool], self.inbox.add(body, received_at))

    def inbox_unapplied(self, after: int, limit: int) -> list[InboxRow]:
        return cast(list[InboxRow], self.inbox.unapplied(after, limit))

    def inbox_mark_applied(self, before: int, at: datetime) -> int:
        return int(self.inbox.mark_applied(before, at))

    def inbox_stats(self) -> InboxStats:
        return cast(InboxStats, self.inbox.stats())

    def applier_lock(self) -> ApplierLock:
        return cast(ApplierLock, self.inbox.applier_lock())


def prefix_bounds(prefix: str) -> tuple[str, str | None]:
    """The keys that start with `prefix`, as a range in code-point (UTF-8 byte) order:
    prefix <= key < upper (None: no upper bound)."""
    for n in range(len(prefix) - 1, -1, -1):
        last = ord(prefix[n]) + 1
        if last == 0xD800:  # surrogates are no characters of a stored key
            last = 0xE000
        if last <= 0x10FFFF:
            return prefix, prefix[:n] + chr(last)
    return prefix, None


def check_refusals(refusals: Sequence[RefusalRow], heads: Mapping[Any, Head],
                   lookup: Callable[[list[Any]], Mapping[Any, Head]]) -> None:
    """Inside the inserting transaction: each refusal must have been decided on its
    order's version now (the heads just written, else those recorded: `lookup`), else
    another writer moved the order on meanwhile (`IntegrityError`: decide again)."""
    others = [r.originator_id for r in refusals if r.originator_id not in heads]
    recorded = lookup(others) if others else {}
    for r in refusals:
        head = heads.get(r.originator_id) or recorded.get(r.originator_id)
        if (0 if head is None else head.version) != r.version:
            raise IntegrityError(f"order {r.originator_id} moved on since command "
                                 f"{r.command_id} was refused: decide it again")


@dataclass(frozen=True)
class ChainedNotification(Notification):
    """A notification with the event's order-chain digest and log-chain link (None: written
    before the chained record)."""

    digest: bytes | None = None
    link: bytes | None = None


#: What loading an order gives: its stored events, or where its history breaks.
Loaded = list[StoredEvent] | Break


class CheckedReads:
    """The library's `select_events`, answered from `select_events_many`: the whole
    history read and checked against its chain and head record first (`IntegrityBroken`
    if it fails), then sliced as asked."""

    def select_events_many(self, originator_ids: Sequence[Any]) -> dict[Any, Loaded]:
        raise NotImplementedError

    def select_events(self, originator_id: UUID | str, *, gt: int | None = None,
                      lte: int | None = None, desc: bool = False, limit: int | None = None
                      ) -> Sequence[StoredEvent]:
        found = self.select_events_many([originator_id]).get(originator_id, [])
        if not isinstance(found, list):
            raise IntegrityBroken(found)
        events = [s for s in found if (gt is None or s.originator_version > gt)
                  and (lte is None or s.originator_version <= lte)]
        if desc:
            events.reverse()
        return events if limit is None else events[:limit]


@runtime_checkable
class LedgerRecorder(Protocol):
    """What the ledger needs beside an ApplicationRecorder."""

    def due_orders(self, before: datetime, limit: int, since: datetime | None = None,
                   partition: Partition | None = None) -> list[tuple[UUID, str]]:
        """(originator id, order id) of orders with a deadline before `before` (and not
        before `since`; of the partition's orders only), earliest first."""

    def command_digest(self, command_id: str) -> str | None: ...

    def pending_deadlines(self) -> list[tuple[UUID, DeadlineRow]]: ...

    def repair_deadline(self, originator_id: UUID, row: DeadlineRow | None,
                        version: int) -> bool: ...

    def command_ids(self) -> set[str]: ...

    def partition_claim(self, claim: tuple[int, int] | None) -> tuple[int, int] | None:
        """Which partition of how many this store holds, as recorded (None: none);
        `claim` recorded first if none is (`aftersales.storage.partition_claim`)."""

    def known_digests(self, command_ids: Sequence[str]) -> dict[str, str]: ...

    def known_refusals(self, commands: Sequence[tuple[str, str]]
                       ) -> dict[tuple[str, str], tuple[str, str]]:
        """The remembered refusals of these (command id, digest): (code, reason)."""

    def refusals_of(self, command_ids: Sequence[str]
                    ) -> dict[tuple[str, str], tuple[str, str]]:
        """The remembered refusals of these command ids, whatever their digests, by
        (command id, digest): (code, reason)."""

    def message_outcomes(self, keys: Sequence[str]) -> dict[str, MessageRow]:
        """The recorded decisions of these messages, by key (those never decided are left
        out)."""

    def reported_messages(self, prefix: str, limit: int, after: str = ""
                          ) -> list[MessageRow]:
        """Up to `limit` messages recorded as `reported`, whose keys start with `prefix`
        and come after `after`, in key order (code-point order)."""

    def recorded_between(self, after: int, upto: int, partition: Partition | None = None
                         ) -> list[tuple[int, UUID]]:
        """(notification id, originator id) of the events recorded after position `after`
        up to `upto` (of the partition's orders only)."""

    def events_by_order(self, upto: int, after: tuple[UUID, int] | None, limit: int,
                        before: UUID | None = None) -> list[ChainedNotification]:
        """Up to `limit` events at positions up to `upto`, in the order of (originator id,
        version), after the event `after` names and of originators before `before` (a
        page of a replay order by order), with their digests (not checked)."""

    def select_events_many(self, originator_ids: Sequence[UUID]) -> dict[UUID, Loaded]:
        """The orders' events, each order checked against its chain and head record (a
        `Break` where it fails); orders without events are left out."""

    def heads_of(self, originator_ids: Sequence[UUID]) -> dict[UUID, Head]: ...

    def heads_page(self, after: UUID | None, limit: int) -> list[tuple[UUID, Head]]:
        """Head records in key order, after the originator `after`."""

    def versions_present(self, pairs: Sequence[tuple[UUID, int]]) -> set[tuple[UUID, int]]:
        """Which of these (originator id, version) are recorded, at any position."""

    def links_page(self, after: int, limit: int) -> list[LinkRow]:
        """The events after position `after`, in log order, as the log chain reads them."""

    def missing_events(self, refs: Collection[Ref]) -> set[Ref]:
        """Which of these (originator id, version) are not recorded at any position."""

    def record_breaks(self, rows: Sequence[BreakRow]) -> int:
        """Record breaks a walk of the log found (an order's first one is kept); how many
        orders were not recorded before.  Every later load of those orders is refused."""

    def recorded_breaks(self) -> list[BreakRow]:
        """Every recorded break, by order id."""

    def log_checked(self) -> LinkRow | None:
        """The last event the last walk of the log reached: its position, order, version
        and link (None: never walked)."""

    def set_log_checked(self, row: LinkRow) -> None:
        """Remember the last event a walk of the log reached (its link not None)."""

    def inbox_add(self, body: bytes, received_at: datetime) -> tuple[int, bool]:
        """Commit a received body durably in its own transaction (durable as the ledger's
        own commits are): (its seq, True); or, when a row with the same digest is there
        already, (that row's seq, False) and nothing is written.  `received_at` must be
        timezone-aware.  Safe from many threads at once; never takes the events' lock."""

    def inbox_unapplied(self, after: int, limit: int) -> list[InboxRow]:
        """Unapplied rows with seq > `after`, by seq, at most `limit` (none on a store
        that has no inbox table yet)."""

    def inbox_mark_applied(self, before: int, at: datetime) -> int:
        """Mark every unapplied row with seq < `before` applied at `at`; how many."""

    def inbox_stats(self) -> InboxStats:
        """The inbox's counts (zeros on a store that has no inbox table yet)."""

    def applier_lock(self) -> ApplierLock:
        """A new holder of the store's applier lock (not yet acquired)."""

    def create_table(self) -> None:
        """Create the tables that are missing (a store opened by a newer version)."""

    def has_ledger(self) -> bool:
        """Whether the store holds a ledger (its events table)."""

    def needs_upgrade(self) -> bool:
        """Whether the store was written by an earlier version: before the chained record,
        or before each event recorded the event before it in the log (`db upgrade`)."""

    def unchained(self) -> int:
        """How many events lack their digest or link (in a chained store: breaks)."""

    def upgrade(self, on_progress: Callable[[int], None]) -> int:
        """Bring a store written by an earlier version up to date: chain a store written
        before the chained record (none of its events has a digest), or record each
        event's predecessor in the log; never computes a digest or link for an event that
        has one.  How many events were upgraded."""


CHUNK = 500


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def sidecar_kwargs(deadlines: Mapping[UUID, DeadlineRow | None],
                   commands: Sequence[CommandRow],
                   refusals: Sequence[RefusalRow] = (),
                   messages: Sequence[MessageRow] = ()) -> dict[str, Any]:
    """The keyword arguments `insert_events` passes down: the index rows, command ids,
    remembered refusals and decided messages to write in the events' transaction."""
    return {"deadlines": deadlines, "commands": commands, "refusals": refusals,
            "messages": messages}


def message_values(messages: Sequence[MessageRow]
                   ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The messages' columns (outcome, code, reason, tag, order_ids, message, key), in key
    order: those recorded new, and those that replace a reported row."""
    new: list[tuple[Any, ...]] = []
    again: list[tuple[Any, ...]] = []
    for m in sorted(messages):
        (again if m.replaces else new).append(
            (m.outcome, m.code, m.reason, m.tag, m.order_ids, m.message, m.key))
    return new, again


def message_row(key: str, outcome: str, code: str, reason: str, tag: int,
                order_ids: str, message: str) -> MessageRow:
    """A message row as a store reads it back (typed, never `replaces`)."""
    return MessageRow(str(key), str(outcome), str(code), str(reason), int(tag),
                      str(order_ids), str(message))


class StaleRepair(Exception):
    """An event was recorded since the state a repair was computed from (rolled back)."""
