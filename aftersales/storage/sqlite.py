"""The ledger's recorder for SQLite: eventsourcing's, plus the chained record (each event's
digest and log link, each order's head record), the deadline index and the command ids,
all in the events' transaction."""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from itertools import groupby
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError, Notification, StoredEvent
from eventsourcing.sqlite import SQLiteCursor, SQLiteFactory
from eventsourcing.utils import Environment, EnvType

from aftersales.errors import LogBroken
from aftersales.storage.chain import (
    ZERO,
    ChainGap,
    Head,
    HeadCache,
    Row,
    chain_events,
    firsts_of,
    heads_before,
)
from aftersales.storage.inbox import INDEX, SQLITE_DDL, TABLE, SQLiteInbox
from aftersales.storage.logcheck import (
    NEW,
    Beside,
    BreakRow,
    LinkRow,
    Placed,
    Ref,
    checked,
    placements,
)
from aftersales.storage.partition_claim import Claim, sqlite_claim
from aftersales.storage.port import (
    REPORTED,
    ChainedNotification,
    CheckedReads,
    CommandRow,
    DeadlineRow,
    InboxOf,
    Loaded,
    MessageRow,
    RefusalRow,
    StaleRepair,
    check_refusals,
    chunks,
    message_row,
    message_values,
    prefix_bounds,
    to_micros,
)
from aftersales.storage.shard import SQLITE_SHARD, Partition
from aftersales.storage.sqlite_pool import TunedConnectionPool
from aftersales.storage.sqlite_upgrade import SQLiteUpgrade


def _pair(hex_id: str | None, version: int | None) -> tuple[str, int] | None:
    return None if hex_id is None or version is None else (hex_id, version)


_BESIDE = ("rowid, originator_id, originator_version, event_digest, log_link, prev_id, "
           "prev_version, prev_link")


def _beside(r: Sequence[Any]) -> Beside:
    return NEW(Beside, (r[0], r[1], r[2], r[3], r[4], _pair(r[5], r[6]), r[7]))


def _hex(originator_id: UUID | str) -> str:
    return originator_id.hex if isinstance(originator_id, UUID) else originator_id


def _marks(n: int) -> str:
    return ",".join("?" * n)


class SQLiteLedgerRecorder(CheckedReads, InboxOf, SQLiteUpgrade):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._last_id: tuple[str, UUID | str] = ("", "")
        self.heads = HeadCache()
        t = self.events_table_name
        self._insert = (f"INSERT INTO {t} (originator_id, originator_version, topic, state, "
                        "event_digest, log_link, prev_id, prev_version, prev_link) "
                        "VALUES (?,?,?,?,?,?,?,?,?)")
        self._own = (
            f"SELECT originator_id, originator_version, topic, state, event_digest, rowid, "
            f"log_link, prev_id, prev_version, prev_link FROM {t} WHERE originator_id "
            "IN ({}) ORDER BY originator_id, originator_version")
        self.inbox = SQLiteInbox(self.datastore)

    def convert_originator_id(self, originator_id: str) -> UUID | str:
        """The library converts the id of every row it reads; an order's rows share one,
        so the last conversion is kept (an order of 200 events read as of a time: 15% of
        the time went to building the same UUID 200 times).  One tuple, swapped whole, so
        threads sharing the recorder never see a half-updated pair."""
        last = self._last_id
        if last[0] == originator_id:
            return last[1]
        converted = super().convert_originator_id(originator_id)
        self._last_id = (originator_id, converted)
        return converted

    def construct_create_table_statements(self) -> list[str]:
        return [
            f"CREATE TABLE IF NOT EXISTS {self.events_table_name} ("
            "originator_id TEXT, originator_version INTEGER, topic TEXT, state BLOB, "
            "event_digest BLOB, log_link BLOB, prev_id TEXT, prev_version INTEGER, "
            "prev_link BLOB, "
            "PRIMARY KEY (originator_id, originator_version))",
            "CREATE TABLE IF NOT EXISTS ledger_breaks ("
            "originator_id TEXT PRIMARY KEY, version INTEGER NOT NULL, "
            "position INTEGER NOT NULL, reason TEXT NOT NULL, found_at TEXT NOT NULL) "
            "WITHOUT ROWID",
            "CREATE TABLE IF NOT EXISTS ledger_log_checked ("
            "one INTEGER PRIMARY KEY CHECK (one = 1), position INTEGER NOT NULL, "
            "log_link BLOB NOT NULL, originator_id TEXT NOT NULL, version INTEGER NOT NULL)",
            "CREATE TABLE IF NOT EXISTS ledger_heads ("
            "originator_id TEXT PRIMARY KEY, version INTEGER NOT NULL, "
            "event_digest BLOB NOT NULL) WITHOUT ROWID",
            "CREATE TABLE IF NOT EXISTS ledger_deadlines ("
            "originator_id TEXT PRIMARY KEY, order_id TEXT NOT NULL, "
            "due_us INTEGER NOT NULL, deadline TEXT NOT NULL, rule TEXT NOT NULL, "
            "case_no INTEGER)",
            "CREATE INDEX IF NOT EXISTS ledger_deadlines_due ON ledger_deadlines (due_us)",
            "CREATE TABLE IF NOT EXISTS ledger_commands ("
            "command_id TEXT PRIMARY KEY, originator_id TEXT NOT NULL, digest TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS ledger_refusals ("
            "command_id TEXT NOT NULL, digest TEXT NOT NULL, code TEXT NOT NULL, "
            "reason TEXT NOT NULL, PRIMARY KEY (command_id, digest)) WITHOUT ROWID",
            "CREATE TABLE IF NOT EXISTS ledger_messages ("
            "key TEXT PRIMARY KEY, outcome TEXT NOT NULL, code TEXT NOT NULL, "
            "reason TEXT NOT NULL, tag INTEGER NOT NULL, order_ids TEXT NOT NULL, "
            "message TEXT NOT NULL) WITHOUT ROWID",
            "CREATE INDEX IF NOT EXISTS ledger_messages_reported ON ledger_messages (key) "
            f"WHERE outcome = '{REPORTED}'",
            *SQLITE_DDL,
        ]

    def create_table(self) -> None:
        """Create what is missing; a ledger that has it all is only read (no write lock is
        taken: opening a ledger does not wait for a writer)."""
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'index')")
            found = {str(r[0]) for r in c.fetchall()}
        wanted = {self.events_table_name, "ledger_heads", "ledger_deadlines",
                  "ledger_deadlines_due", "ledger_commands", "ledger_refusals",
                  "ledger_messages", "ledger_messages_reported", "ledger_breaks",
                  "ledger_log_checked", TABLE, INDEX}
        if not wanted <= found:
            super().create_table()

    # --- writing -----------------------------------------------------------------------

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any
                      ) -> Sequence[int] | None:
        with self.datastore.transaction(commit=True) as c:
            ids, heads = self._record(c, stored_events, **kwargs)
        self.heads.put_many(heads.items())  # once committed
        return ids

    def _insert_events(self, c: SQLiteCursor, stored_events: Sequence[StoredEvent],
                       **kwargs: Any) -> Sequence[int] | None:
        """The library's hook (a transaction its caller commits)."""
        ids, _ = self._record(c, stored_events, **kwargs)
        return ids

    def _record(self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
                ) -> tuple[list[int], dict[UUID | str, Head]]:
        """Insert the events chained, their orders' heads, and what the ledger keeps beside
        them; the notification ids.  The transaction holds the write lock (IMMEDIATE), so
        the ids follow the last one read here."""
        ids: list[int] = []
        heads: dict[UUID | str, Head] = {}
        if stored_events:
            c.execute(f"SELECT rowid, log_link, originator_id, originator_version FROM "
                      f"{self.events_table_name} ORDER BY rowid DESC LIMIT 1")
            last = c.fetchone()
            last_id, last_link = (0, ZERO) if last is None else (last[0], last[1])
            if last_link is None:
                raise LogBroken(last_id)
            try:
                chained, heads = chain_events(
                    [(s.originator_id, s.originator_version, s.topic, s.state)
                     for s in stored_events],
                    self._heads_before(c, stored_events), last_link,
                    None if last is None else (self.convert_originator_id(last[2]), last[3]))
            except ChainGap as e:
                raise IntegrityError(str(e)) from e
            c.executemany(self._insert, [
                (_hex(x.originator_id), x.version, x.topic, x.state, x.digest, x.link,
                 None if x.prev is None else _hex(x.prev[0]),
                 None if x.prev is None else x.prev[1], x.prev_link) for x in chained])
            c.executemany(
                "INSERT INTO ledger_heads VALUES (?,?,?) ON CONFLICT (originator_id) DO "
                "UPDATE SET version=excluded.version, event_digest=excluded.event_digest",
                sorted((_hex(oid), h.version, h.digest) for oid, h in heads.items()))
            ids = list(range(last_id + 1, last_id + 1 + len(stored_events)))
        self._put_deadlines(c, kwargs.get("deadlines", {}))
        commands: Sequence[CommandRow] = kwargs.get("commands", ())
        if commands:
            c.executemany(
                "INSERT INTO ledger_commands VALUES (?,?,?)",
                sorted((x.command_id, x.originator_id.hex, x.digest) for x in commands),
            )
        refusals: Sequence[RefusalRow] = kwargs.get("refusals", ())
        if refusals:
            check_refusals(refusals, heads, lambda ids: self._heads_in(c, ids))
            # A row there already is the same decision (another writer's, on the same
            # version), or one an earlier version remembered that is now decided afresh.
            c.executemany("INSERT OR REPLACE INTO ledger_refusals VALUES (?,?,?,?)",
                          sorted((r.command_id, r.digest, r.code, r.reason) for r in refusals))
        messages: Sequence[MessageRow] = kwargs.get("messages", ())
        if messages:
            self._put_messages(c, messages)
        return ids, heads

    @staticmethod
    def _put_messages(c: SQLiteCursor, messages: Sequence[MessageRow]) -> None:
        """Record decided messages: a new key is inserted (one there already is another
        writer's decision: `IntegrityError`); one that `replaces` must find its key
        recorded as reported (else it was decided again meanwhile: `IntegrityError`)."""
        new, again = message_values(messages)
        for values in again:
            c.execute("UPDATE ledger_messages SET outcome=?, code=?, reason=?, tag=?, "
                      "order_ids=?, message=? WHERE key=? AND outcome=?", (*values, REPORTED))
            if c.sqlite_cursor.rowcount != 1:
                raise IntegrityError(f"message {values[-1]} is no longer recorded as "
                                     "reported: decided again meanwhile")
        if new:  # a feed's batch records thousands: one statement for them all
            c.executemany("INSERT INTO ledger_messages (outcome, code, reason, tag, "
                          "order_ids, message, key) VALUES (?,?,?,?,?,?,?)", new)
        if before := max(m.inbox_before for m in messages):
            SQLiteInbox.mark_in(c, before)

    def _heads_before(self, c: SQLiteCursor, stored_events: Sequence[StoredEvent]
                      ) -> dict[UUID | str, Head | None]:
        return heads_before(
            firsts_of((s.originator_id, s.originator_version) for s in stored_events),
            self.heads, lambda missing: self._heads_in(c, missing))

    def _heads_in(self, c: SQLiteCursor, originator_ids: Sequence[UUID | str]
                  ) -> dict[UUID | str, Head]:
        ids = {_hex(x): x for x in originator_ids}
        found: dict[UUID | str, Head] = {}
        for part in chunks(list(ids)):
            c.execute("SELECT originator_id, version, event_digest FROM ledger_heads "
                      f"WHERE originator_id IN ({_marks(len(part))})", list(part))
            found.update((ids[r[0]], Head(r[1], r[2])) for r in c.fetchall())
        return found

    @staticmethod
    def _put_deadlines(c: SQLiteCursor, rows: Mapping[UUID, DeadlineRow | None]) -> None:
        """Set the orders' index rows (None: the order has no pending deadline), in key
        order."""
        gone = sorted((oid.hex,) for oid, row in rows.items() if row is None)
        if gone:
            c.executemany("DELETE FROM ledger_deadlines WHERE originator_id=?", gone)
        put = sorted((oid.hex, row.order_id, to_micros(row.deadline), row.deadline.isoformat(),
                      row.rule, row.case) for oid, row in rows.items() if row is not None)
        if put:
            c.executemany(
                "INSERT INTO ledger_deadlines VALUES (?,?,?,?,?,?) ON CONFLICT (originator_id) "
                "DO UPDATE SET order_id=excluded.order_id, due_us=excluded.due_us, "
                "deadline=excluded.deadline, rule=excluded.rule, case_no=excluded.case_no",
                put)

    def repair_deadline(self, originator_id: UUID, row: DeadlineRow | None,
                        version: int) -> bool:
        """Set an order's index row from its state at `version`, only if no event was
        recorded since (else the writer of that event has set the row); True if set.
        The transaction holds the write lock from its start (IMMEDIATE)."""
        with contextlib.suppress(StaleRepair), self.datastore.transaction(commit=True) as c:
            c.execute(f"SELECT MAX(originator_version) FROM {self.events_table_name} "
                      "WHERE originator_id=?", (originator_id.hex,))
            if (c.fetchone()[0] or 0) != version:
                raise StaleRepair
            self._put_deadlines(c, {originator_id: row})
            return True
        return False

    # --- reading orders, checked -------------------------------------------------------

    def select_events_many(self, originator_ids: Sequence[Any]) -> dict[Any, Loaded]:
        """The orders' events, checked: their chains, head records, recorded breaks and
        the events either side of each in the log, all read in one snapshot (a read
        transaction).  The neighbours are read by rowid once the orders' own rows are in
        hand, and only those that are not the orders' own (an order of 200 events as of a
        time: 2.6 ms with a join per event for each neighbour, 1.5 ms so).  Ids stay in
        their stored hex form for the checks (`keys`)."""
        rows: dict[UUID | str, list[Row]] = {}
        places: dict[UUID | str, list[Placed]] = {}
        heads: dict[UUID | str, Head] = {}
        recorded: dict[UUID | str, tuple[int, str]] = {}
        keys: dict[UUID | str, str] = {}
        with self.datastore.transaction(commit=False) as c:
            for part in chunks(list(originator_ids)):
                ids = {_hex(x): x for x in part}
                keys.update((x, h) for h, x in ids.items())
                c.execute(self._own.format(_marks(len(ids))), list(ids))
                found = c.fetchall()  # by order and version
                near = {r[5]: NEW(Beside, (r[5], r[0], r[1], r[4], r[6], _pair(r[7], r[8]),
                                           r[9])) for r in found}
                wanted = sorted({p + d for p in near for d in (-1, 1)} - near.keys() - {0})
                for chunk in chunks(wanted):
                    c.execute(f"SELECT {_BESIDE} FROM {self.events_table_name} WHERE rowid "
                              f"IN ({_marks(len(chunk))})", list(chunk))
                    near.update((r[0], _beside(r)) for r in c.fetchall())
                for key, group in groupby(found, key=lambda r: r[0]):
                    mine = list(group)
                    oid = ids[key]
                    rows[oid] = [NEW(Row, (r[1], r[2], r[3], r[4])) for r in mine]
                    places[oid] = placements([near[r[5]] for r in mine], near,
                                             lambda p, step: self._nearest(c, p, step))
                heads.update(self._heads_in(c, part))
                c.execute("SELECT originator_id, version, reason FROM ledger_breaks WHERE "
                          f"originator_id IN ({_marks(len(ids))})", list(ids))
                recorded.update((ids[r[0]], (r[1], r[2])) for r in c.fetchall())
            return checked(rows, heads, self.heads, places, recorded,
                           lambda ref: self._missing(c, ref), keys)

    def _nearest(self, c: SQLiteCursor, position: int, step: int) -> Beside | None:
        """The event nearest to `position` before it (step -1) or after it (1)."""
        c.execute(f"SELECT {_BESIDE} FROM {self.events_table_name} WHERE rowid "
                  + ("< ? ORDER BY rowid DESC" if step < 0 else "> ? ORDER BY rowid")
                  + " LIMIT 1", (position,))
        r = c.fetchone()
        return None if r is None else _beside(r)

    def _missing(self, c: SQLiteCursor, ref: Ref) -> bool:
        """Whether `ref` is an event not in the store at any position."""
        c.execute(f"SELECT 1 FROM {self.events_table_name} WHERE originator_id=? AND "
                  "originator_version=?", (_hex(ref[0]), ref[1]))
        return c.fetchone() is None

    def heads_of(self, originator_ids: Sequence[UUID]) -> dict[UUID, Head]:
        with self.datastore.transaction(commit=False) as c:
            return self._heads_in(c, originator_ids)  # type: ignore[return-value]

    def heads_page(self, after: UUID | None, limit: int) -> list[tuple[UUID, Head]]:
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT originator_id, version, event_digest FROM ledger_heads "
                      "WHERE originator_id > ? ORDER BY originator_id LIMIT ?",
                      ("" if after is None else after.hex, limit))
            return [(UUID(r[0]), Head(r[1], r[2])) for r in c.fetchall()]

    def versions_present(self, pairs: Sequence[tuple[UUID, int]]) -> set[tuple[UUID, int]]:
        found: set[tuple[UUID, int]] = set()
        with self.datastore.transaction(commit=False) as c:
            for oid, version in pairs:
                c.execute(f"SELECT 1 FROM {self.events_table_name} WHERE originator_id=? "
                          "AND originator_version=?", (_hex(oid), version))
                if c.fetchone() is not None:
                    found.add((oid, version))
        return found

    # --- reading the log ---------------------------------------------------------------

    def select_notifications(self, start: int | None, limit: int, stop: int | None = None,
                             topics: Sequence[str] = (), *, inclusive_of_start: bool = True
                             ) -> Sequence[Notification]:
        """The library's page of the log, each notification with its digests."""
        where: list[str] = []
        params: list[object] = []
        if start is not None:
            where.append("rowid >= ?" if inclusive_of_start else "rowid > ?")
            params.append(start)
        if stop is not None:
            where.append("rowid <= ?")
            params.append(stop)
        if topics:
            where.append(f"topic IN ({_marks(len(topics))})")
            params += list(topics)
        sql = (f"SELECT rowid, originator_id, originator_version, topic, state, event_digest, "
               f"log_link FROM {self.events_table_name} "
               + (f"WHERE {' AND '.join(where)} " if where else "") + "ORDER BY rowid LIMIT ?")
        with self.datastore.transaction(commit=False) as c:
            c.execute(sql, [*params, limit])
            return [ChainedNotification(id=r[0], originator_id=self.convert_originator_id(r[1]),
                                        originator_version=r[2], topic=r[3], state=r[4],
                                        digest=r[5], link=r[6]) for r in c.fetchall()]

    def links_page(self, after: int, limit: int) -> list[LinkRow]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT rowid, originator_id, originator_version, event_digest, "
                      f"log_link, prev_id, prev_version, prev_link FROM "
                      f"{self.events_table_name} WHERE rowid > ? ORDER BY rowid LIMIT ?",
                      (after, limit))
            # Ids as stored (hex): see `LinkRow`.
            return [NEW(LinkRow, (r[0], r[1], r[2], r[3], r[4],
                                  None if r[5] is None or r[6] is None else (r[5], r[6]),
                                  r[7])) for r in c.fetchall()]

    def missing_events(self, refs: Collection[Ref]) -> set[Ref]:
        wanted = set(refs)
        with self.datastore.transaction(commit=False) as c:
            for oid, version in sorted(wanted):
                c.execute(f"SELECT 1 FROM {self.events_table_name} WHERE originator_id=? "
                          "AND originator_version=?", (_hex(oid), version))
                if c.fetchone() is not None:
                    wanted.discard((oid, version))
        return wanted

    def record_breaks(self, rows: Sequence[BreakRow]) -> int:
        with self.datastore.transaction(commit=True) as c:
            new = 0
            for r in rows:
                c.execute("INSERT INTO ledger_breaks VALUES (?,?,?,?,?) ON CONFLICT "
                          "(originator_id) DO NOTHING",
                          (r.originator_id.hex, r.version, r.position, r.reason, r.found_at))
                new += c.sqlite_cursor.rowcount
            return new

    def recorded_breaks(self) -> list[BreakRow]:
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT originator_id, version, position, reason, found_at "
                      "FROM ledger_breaks ORDER BY originator_id")
            return [BreakRow(UUID(r[0]), r[1], r[2], r[3], r[4]) for r in c.fetchall()]

    def log_checked(self) -> LinkRow | None:
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT position, log_link, originator_id, version "
                      "FROM ledger_log_checked")
            found = c.fetchone()
            return None if found is None else LinkRow(  # the id as stored, as `links_page`
                int(found[0]), found[2], int(found[3]), None, bytes(found[1]))

    def set_log_checked(self, row: LinkRow) -> None:
        assert row.link is not None
        with self.datastore.transaction(commit=True) as c:
            c.execute("INSERT INTO ledger_log_checked VALUES (1, ?, ?, ?, ?) ON CONFLICT "
                      "(one) DO UPDATE SET position=excluded.position, log_link="
                      "excluded.log_link, originator_id=excluded.originator_id, "
                      "version=excluded.version",
                      (row.id, row.link, _hex(row.originator_id), row.version))

    def due_orders(self, before: datetime, limit: int, since: datetime | None = None,
                   partition: Partition | None = None) -> list[tuple[UUID, str]]:
        params: list[object] = [to_micros(before),
                                -(2**62) if since is None else to_micros(since)]
        mine = ""
        if partition is not None:
            mine = f"AND {SQLITE_SHARD} % ? = ? "
            params += [partition.count, partition.index]
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                "SELECT originator_id, order_id FROM ledger_deadlines "
                f"WHERE due_us < ? AND due_us >= ? {mine}ORDER BY due_us LIMIT ?",
                [*params, limit],
            )
            return [(UUID(r[0]), r[1]) for r in c.fetchall()]

    def command_digest(self, command_id: str) -> str | None:
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT digest FROM ledger_commands WHERE command_id=?", (command_id,))
            row = c.fetchone()
            return None if row is None else str(row[0])

    def known_digests(self, command_ids: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        with self.datastore.transaction(commit=False) as c:
            for part in chunks(command_ids):
                c.execute("SELECT command_id, digest FROM ledger_commands WHERE command_id "
                          f"IN ({_marks(len(part))})", list(part))
                found.update((str(r[0]), str(r[1])) for r in c.fetchall())
        return found

    def known_refusals(self, commands: Sequence[tuple[str, str]]
                       ) -> dict[tuple[str, str], tuple[str, str]]:
        wanted = set(commands)
        return {k: v for k, v in self.refusals_of(sorted({cid for cid, _ in wanted})).items()
                if k in wanted}

    def refusals_of(self, command_ids: Sequence[str]
                    ) -> dict[tuple[str, str], tuple[str, str]]:
        found: dict[tuple[str, str], tuple[str, str]] = {}
        with self.datastore.transaction(commit=False) as c:
            for part in chunks(command_ids):
                c.execute("SELECT command_id, digest, code, reason FROM ledger_refusals "
                          f"WHERE command_id IN ({_marks(len(part))})", list(part))
                found.update(((str(r[0]), str(r[1])), (str(r[2]), str(r[3])))
                             for r in c.fetchall())
        return found

    def message_outcomes(self, keys: Sequence[str]) -> dict[str, MessageRow]:
        found: dict[str, MessageRow] = {}
        with self.datastore.transaction(commit=False) as c:
            for part in chunks(sorted(set(keys))):
                c.execute("SELECT key, outcome, code, reason, tag, order_ids, message FROM "
                          f"ledger_messages WHERE key IN ({_marks(len(part))})", list(part))
                found.update((str(r[0]), message_row(*r)) for r in c.fetchall())
        return found

    def reported_messages(self, prefix: str, limit: int, after: str = ""
                          ) -> list[MessageRow]:
        low, high = prefix_bounds(prefix)
        where, params = "", [after, low]
        if high is not None:
            where, params = "AND key < ? ", [*params, high]
        with self.datastore.transaction(commit=False) as c:  # (the partial index's term)
            c.execute("SELECT key, outcome, code, reason, tag, order_ids, message FROM "
                      f"ledger_messages WHERE outcome = '{REPORTED}' AND key > ? AND key >= ? "
                      f"{where}"
                      "ORDER BY key LIMIT ?", [*params, limit])
            return [message_row(*r) for r in c.fetchall()]

    def recorded_between(self, after: int, upto: int, partition: Partition | None = None
                         ) -> list[tuple[int, UUID]]:
        params: list[object] = [after, upto]
        mine = ""
        if partition is not None:
            mine = f"AND {SQLITE_SHARD} % ? = ?"
            params += [partition.count, partition.index]
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT rowid, originator_id FROM {self.events_table_name} "
                      f"WHERE rowid > ? AND rowid <= ? {mine}", params)
            return [(r[0], UUID(r[1])) for r in c.fetchall()]

    def events_by_order(self, upto: int, after: tuple[UUID, int] | None, limit: int,
                        before: UUID | None = None) -> list[ChainedNotification]:
        oid, version = ("", 0) if after is None else (after[0].hex, after[1])
        end = "g" if before is None else before.hex  # "g" sorts after every hex id
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT rowid, originator_id, originator_version, topic, state, "
                      f"event_digest FROM {self.events_table_name} WHERE rowid <= ? AND "
                      "(originator_id, originator_version) > (?, ?) AND originator_id < ? "
                      "ORDER BY originator_id, originator_version LIMIT ?",
                      (upto, oid, version, end, limit))
            ids: dict[str, UUID] = {}
            return [ChainedNotification(
                id=r[0], originator_id=ids.get(r[1]) or ids.setdefault(r[1], UUID(r[1])),
                originator_version=r[2], topic=r[3], state=r[4], digest=r[5])
                for r in c.fetchall()]

    def partition_claim(self, claim: Claim) -> Claim:
        return sqlite_claim(self.datastore, claim)

    def command_ids(self) -> set[str]:
        """Every applied command id (for audits and tests)."""
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT command_id FROM ledger_commands")
            return {str(r[0]) for r in c.fetchall()}

    def pending_deadlines(self) -> list[tuple[UUID, DeadlineRow]]:
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT originator_id, order_id, deadline, rule, case_no "
                      "FROM ledger_deadlines ORDER BY due_us")
            return [
                (UUID(r[0]), DeadlineRow(r[1], datetime.fromisoformat(r[2]), r[3], r[4]))
                for r in c.fetchall()
            ]


class LedgerSQLiteFactory(SQLiteFactory):
    """eventsourcing's SQLite factory, with connections set up as `PRAGMAS` says, whose
    application recorder is the ledger's."""

    application_recorder_class = SQLiteLedgerRecorder

    def __init__(self, env: Environment | EnvType | None):
        super().__init__(env)
        plain = self.datastore.pool  # no connection is made before first use
        # The busy timeout: how long a statement waits for another process's lock
        # (`aftersales.settings`; the library's own setting takes whole seconds).  Where
        # neither sets one, the pool's stays None, as the library's factory leaves it, and
        # its connections wait `TunedConnectionPool.DEFAULT_BUSY_TIMEOUT`.
        ours = self.env.get("LEDGER_LOCK_TIMEOUT")
        wait = float(ours) if ours else plain.lock_timeout
        self.datastore.pool = TunedConnectionPool(db_name=plain.db_name,
                                                  lock_timeout=wait)  # type: ignore[arg-type]
