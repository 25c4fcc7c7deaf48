"""The ledger's in-process recorder (fast tests): eventsourcing's POPO recorder, plus the
chained record, the deadline index and the command ids under the same lock."""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError, Notification, StoredEvent
from eventsourcing.popo import POPOApplicationRecorder, POPOFactory

from aftersales.storage.chain import (
    ZERO,
    ChainGap,
    Head,
    HeadCache,
    Row,
    chain_events,
)
from aftersales.storage.inbox import NO_STATS, utc
from aftersales.storage.logcheck import Beside, BreakRow, LinkRow, Placed, Ref, checked
from aftersales.storage.port import (
    REPORTED,
    ChainedNotification,
    CheckedReads,
    CommandRow,
    DeadlineRow,
    InboxOf,
    InboxRow,
    InboxStats,
    Loaded,
    MessageRow,
    RefusalRow,
    check_refusals,
    inbox_digest,
    prefix_bounds,
)
from aftersales.storage.shard import Partition


class MemoryInbox:
    """The webhook's inbox of a memory store (as `ledger_inbox`), under its own lock: a
    body is accepted while events are written."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[int, InboxRow] = {}
        self._by_digest: dict[str, int] = {}
        self._unapplied: dict[int, None] = {}  # seqs, ascending (insertion order)
        self._last = 0
        #: The applier's lock: one holder at a time (one process holds a memory store).
        self.applier = threading.Lock()

    def add(self, body: bytes, received_at: datetime) -> tuple[int, bool]:
        found = inbox_digest(body)
        at = utc(received_at)
        with self._lock:
            if found in self._by_digest:
                return self._by_digest[found], False
            self._last += 1
            self._rows[self._last] = InboxRow(self._last, found, at, bytes(body))
            self._by_digest[found] = self._last
            self._unapplied[self._last] = None
            return self._last, True

    def unapplied(self, after: int, limit: int) -> list[InboxRow]:
        with self._lock:
            found: list[InboxRow] = []
            for seq in self._unapplied:
                if len(found) >= limit:
                    break
                if seq > after:
                    found.append(self._rows[seq])
            return found

    def mark_applied(self, before: int, at: datetime) -> int:
        utc(at)
        with self._lock:
            done = [seq for seq in self._unapplied if seq < before]
            for seq in done:
                del self._unapplied[seq]
            return len(done)

    def stats(self) -> InboxStats:
        with self._lock:
            if not self._rows:
                return NO_STATS
            first = next(iter(self._unapplied), None)
            backlog = len(self._unapplied)
            return InboxStats(len(self._rows), len(self._rows) - backlog, backlog,
                              None if first is None else self._rows[first].received_at,
                              first)

    def applier_lock(self) -> MemoryApplierLock:
        return MemoryApplierLock(self.applier)


class MemoryApplierLock:
    """A holder of a memory store's applier lock (a thread lock)."""

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock
        self._held = False
        self._guard = threading.Lock()

    def try_acquire(self) -> bool:
        with self._guard:
            if not self._held:
                self._held = self._lock.acquire(blocking=False)
            return self._held

    def held(self) -> bool:
        return self._held

    def release(self) -> None:
        with self._guard:
            if self._held:
                self._held = False
                self._lock.release()


class MemoryLedgerRecorder(CheckedReads, InboxOf, POPOApplicationRecorder):
    def __init__(self) -> None:
        super().__init__()
        self._deadlines: dict[UUID, DeadlineRow] = {}
        self._commands: dict[str, str] = {}
        self._refusals: dict[tuple[str, str], tuple[str, str]] = {}
        self._refused: dict[str, set[str]] = {}  # the digests refused, by command id
        self._messages: dict[str, MessageRow] = {}
        self._digests: list[bytes] = []  # beside `_stored_events`, by position
        self._links: list[bytes] = []
        self._prevs: list[Ref | None] = []
        self._prev_links: list[bytes] = []
        self._breaks: dict[UUID, BreakRow] = {}
        self._checked: LinkRow | None = None
        self._heads: dict[UUID | str, Head] = {}
        self.heads = HeadCache(0)  # the head records are at hand: nothing to cache
        self.inbox = MemoryInbox()

    def create_table(self) -> None:
        """Nothing to create: the memory store holds its tables from the start."""

    def _insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        with self._database_lock:
            commands: Sequence[CommandRow] = kwargs.get("commands", ())
            for x in commands:
                if x.command_id in self._commands:
                    raise IntegrityError(f"command id {x.command_id} already recorded")
            messages: Sequence[MessageRow] = kwargs.get("messages", ())
            self._check_messages(messages)
            self._assert_uniqueness(stored_events, **kwargs)
            try:
                chained, heads = chain_events(
                    [(s.originator_id, s.originator_version, s.topic, s.state)
                     for s in stored_events],
                    {s.originator_id: self._heads.get(s.originator_id)
                     for s in stored_events}, self._links[-1] if self._links else ZERO,
                    self._last_ref())
            except ChainGap as e:
                raise IntegrityError(str(e)) from e
            refusals: Sequence[RefusalRow] = kwargs.get("refusals", ())
            check_refusals(refusals, heads, lambda ids: {
                x: self._heads[x] for x in ids if x in self._heads})
            ids = self._update_table(stored_events, **kwargs)
            for r in refusals:
                self._refusals[(r.command_id, r.digest)] = (r.code, r.reason)
                self._refused.setdefault(r.command_id, set()).add(r.digest)
            for m in messages:
                self._messages[m.key] = m._replace(replaces=False, inbox_before=0)
                if m.inbox_before:
                    self.inbox.mark_applied(m.inbox_before, datetime.now(UTC))
            self._digests += [x.digest for x in chained]
            self._links += [x.link for x in chained]
            self._prevs += [x.prev for x in chained]
            self._prev_links += [x.prev_link for x in chained]
            self._heads.update(heads)
            for x in commands:
                self._commands[x.command_id] = x.digest
            for oid, row in kwargs.get("deadlines", {}).items():
                self._put_deadline(oid, row)
            return ids

    def _last_ref(self) -> Ref | None:
        if not self._stored_events:
            return None
        last = self._stored_events[-1]
        return (last.originator_id, last.originator_version)

    def _beside(self, position: int) -> Beside | None:
        """The event at a 0-based position, if there is one."""
        if not 0 <= position < len(self._stored_events):
            return None
        s = self._stored_events[position]
        return Beside(position + 1, s.originator_id, s.originator_version,
                      self._digests[position], self._links[position], self._prevs[position],
                      self._prev_links[position])

    def _check_messages(self, messages: Sequence[MessageRow]) -> None:
        """As the SQL stores: a new key must be new, one that `replaces` must be recorded
        as reported (else `IntegrityError`: another writer decided it)."""
        seen: set[str] = set()
        for m in messages:
            found = self._messages.get(m.key)
            if m.key in seen or (found is not None and not m.replaces):
                raise IntegrityError(f"message {m.key} already decided")
            if m.replaces and (found is None or found.outcome != REPORTED):
                raise IntegrityError(f"message {m.key} is no longer recorded as reported: "
                                     "decided again meanwhile")
            seen.add(m.key)

    def _put_deadline(self, originator_id: UUID, row: DeadlineRow | None) -> None:
        if row is None:
            self._deadlines.pop(originator_id, None)
        else:
            self._deadlines[originator_id] = row

    def repair_deadline(self, originator_id: UUID, row: DeadlineRow | None,
                        version: int) -> bool:
        with self._database_lock:
            if len(self._stored_events_index[str(originator_id)]) != version:
                return False
            self._put_deadline(originator_id, row)
            return True

    # --- reading orders, checked -------------------------------------------------------

    def select_events_many(self, originator_ids: Sequence[Any]) -> dict[Any, Loaded]:
        with self._database_lock:
            rows: dict[UUID | str, list[Row]] = {}
            heads: dict[UUID | str, Head] = {}
            places: dict[UUID | str, list[Placed]] = {}
            for oid in originator_ids:
                positions = self._stored_events_index.get(str(oid), {})
                if positions:
                    rows[oid] = [Row(v, self._stored_events[p].topic,
                                     self._stored_events[p].state, self._digests[p])
                                 for v, p in sorted(positions.items())]
                    places[oid] = [Placed(event, self._beside(p - 1), self._beside(p + 1))
                                   for _, p in sorted(positions.items())
                                   if (event := self._beside(p)) is not None]
                if oid in self._heads:
                    heads[oid] = self._heads[oid]
            recorded = {oid: (b.version, b.reason) for oid, b in self._breaks.items()}
            return checked(rows, heads, self.heads, places, recorded,
                           lambda ref: ref[1] not in self._stored_events_index.get(
                               str(ref[0]), {}))

    def heads_of(self, originator_ids: Sequence[UUID]) -> dict[UUID, Head]:
        with self._database_lock:
            return {x: self._heads[x] for x in originator_ids if x in self._heads}

    def heads_page(self, after: UUID | None, limit: int) -> list[tuple[UUID, Head]]:
        with self._database_lock:
            keys = sorted(k for k in self._heads if isinstance(k, UUID)
                          and (after is None or k > after))
            return [(k, self._heads[k]) for k in keys[:limit]]

    def versions_present(self, pairs: Sequence[tuple[UUID, int]]) -> set[tuple[UUID, int]]:
        with self._database_lock:
            return {(oid, v) for oid, v in pairs
                    if v in self._stored_events_index.get(str(oid), {})}

    # --- reading the log ---------------------------------------------------------------

    def select_notifications(self, start: int | None, limit: int, stop: int | None = None,
                             topics: Sequence[str] = (), *, inclusive_of_start: bool = True
                             ) -> Sequence[Notification]:
        with self._database_lock:
            found = super().select_notifications(start, limit, stop, topics,
                                                 inclusive_of_start=inclusive_of_start)
            return [ChainedNotification(
                id=n.id, originator_id=n.originator_id,
                originator_version=n.originator_version, topic=n.topic, state=n.state,
                digest=self._digests[n.id - 1], link=self._links[n.id - 1]) for n in found]

    def links_page(self, after: int, limit: int) -> list[LinkRow]:
        with self._database_lock:
            out = []
            for position in range(after, min(after + limit, len(self._stored_events))):
                s = self._stored_events[position]
                oid = s.originator_id
                assert isinstance(oid, UUID)
                out.append(LinkRow(position + 1, oid, s.originator_version,
                                   self._digests[position], self._links[position],
                                   self._prevs[position], self._prev_links[position]))
            return out

    def missing_events(self, refs: Collection[Ref]) -> set[Ref]:
        with self._database_lock:
            return {(oid, v) for oid, v in refs
                    if v not in self._stored_events_index.get(str(oid), {})}

    def record_breaks(self, rows: Sequence[BreakRow]) -> int:
        with self._database_lock:
            new = [r for r in rows if r.originator_id not in self._breaks]
            self._breaks.update((r.originator_id, r) for r in new)
            return len(new)

    def recorded_breaks(self) -> list[BreakRow]:
        with self._database_lock:
            return sorted(self._breaks.values())

    def log_checked(self) -> LinkRow | None:
        return self._checked

    def set_log_checked(self, row: LinkRow) -> None:
        self._checked = row

    def due_orders(self, before: datetime, limit: int, since: datetime | None = None,
                   partition: Partition | None = None) -> list[tuple[UUID, str]]:
        with self._database_lock:
            due = sorted((r.deadline, oid, r.order_id) for oid, r in self._deadlines.items()
                         if r.deadline < before and (since is None or r.deadline >= since)
                         and (partition is None or partition.owns_id(oid)))
            return [(oid, order_id) for _, oid, order_id in due[:limit]]

    def command_digest(self, command_id: str) -> str | None:
        with self._database_lock:
            return self._commands.get(command_id)

    def known_digests(self, command_ids: Sequence[str]) -> dict[str, str]:
        with self._database_lock:
            return {x: self._commands[x] for x in command_ids if x in self._commands}

    def known_refusals(self, commands: Sequence[tuple[str, str]]
                       ) -> dict[tuple[str, str], tuple[str, str]]:
        with self._database_lock:
            return {x: self._refusals[x] for x in commands if x in self._refusals}

    def refusals_of(self, command_ids: Sequence[str]
                    ) -> dict[tuple[str, str], tuple[str, str]]:
        with self._database_lock:
            return {(cid, d): self._refusals[(cid, d)] for cid in command_ids
                    for d in self._refused.get(cid, ())}

    def message_outcomes(self, keys: Sequence[str]) -> dict[str, MessageRow]:
        with self._database_lock:
            return {k: self._messages[k] for k in keys if k in self._messages}

    def reported_messages(self, prefix: str, limit: int, after: str = ""
                          ) -> list[MessageRow]:
        low, high = prefix_bounds(prefix)
        with self._database_lock:
            keys = sorted(k for k, m in self._messages.items() if m.outcome == REPORTED
                          and k > after and k >= low and (high is None or k < high))
            return [self._messages[k] for k in keys[:limit]]

    def recorded_between(self, after: int, upto: int, partition: Partition | None = None
                         ) -> list[tuple[int, UUID]]:
        found = []
        for n in self.select_notifications(after, upto - after, stop=upto,
                                           inclusive_of_start=False):
            oid = n.originator_id
            assert isinstance(oid, UUID)
            if partition is None or partition.owns_id(oid):
                found.append((n.id, oid))
        return found

    def events_by_order(self, upto: int, after: tuple[UUID, int] | None, limit: int,
                        before: UUID | None = None) -> list[ChainedNotification]:
        found = sorted((n for n in self.select_notifications(1, upto, stop=upto)
                        if before is None or str(n.originator_id) < str(before)),
                       key=lambda n: (str(n.originator_id), n.originator_version))
        if after is not None:
            key = (str(after[0]), after[1])
            found = [n for n in found if (str(n.originator_id), n.originator_version) > key]
        return [n for n in found[:limit] if isinstance(n, ChainedNotification)]

    def command_ids(self) -> set[str]:
        with self._database_lock:
            return set(self._commands)

    def partition_claim(self, claim: tuple[int, int] | None) -> tuple[int, int] | None:
        """A store of one process is never a partition (`storage.partition_claim`)."""
        return None

    def pending_deadlines(self) -> list[tuple[UUID, DeadlineRow]]:
        with self._database_lock:
            return sorted(self._deadlines.items(), key=lambda x: x[1].deadline)

    def has_ledger(self) -> bool:
        return True  # made with its process

    def needs_upgrade(self) -> bool:
        return False  # a memory store is always written by this version

    def unchained(self) -> int:
        return 0

    def upgrade(self, on_progress: Callable[[int], None]) -> int:
        return 0


class LedgerPOPOFactory(POPOFactory):
    """eventsourcing's in-process factory, whose application recorder is the ledger's."""

    def application_recorder(self) -> MemoryLedgerRecorder:
        return MemoryLedgerRecorder()
