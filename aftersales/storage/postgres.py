"""The ledger's recorder for PostgreSQL: eventsourcing's (psycopg 3, pooled), plus the
chained record (each event's digest and log link, each order's head record), the deadline
index and the command ids, all written in the events' transaction."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.persistence import (
    IntegrityError,
    Notification,
    OperationalError,
    PersistenceError,
    StoredEvent,
)
from eventsourcing.postgres import PostgresFactory
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

from aftersales.errors import LogBroken, StoreUnavailable
from aftersales.settings import millis
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
from aftersales.storage.connections import answering, session
from aftersales.storage.inbox import INDEX, TABLE
from aftersales.storage.logcheck import (
    Beside,
    BreakRow,
    LinkRow,
    Ref,
    as_uuid,
    checked,
    placements,
)
from aftersales.storage.partition_claim import Claim, postgres_claim
from aftersales.storage.port import (
    ChainedNotification,
    CheckedReads,
    CommandRow,
    DeadlineRow,
    InboxOf,
    Loaded,
    MessageRow,
    RefusalRow,
    check_refusals,
    message_row,
    message_values,
    prefix_bounds,
)
from aftersales.storage.postgres_inbox import PostgresInbox
from aftersales.storage.postgres_sql import as_bytes, statements
from aftersales.storage.postgres_upgrade import PostgresUpgrade
from aftersales.storage.retry import FirstContact, describe, may_pass, retry_races
from aftersales.storage.shard import Partition

DDL_ATTEMPTS = 5
#: The lower bound of a due-orders query without one (before any business time).
NO_LOWER_BOUND = datetime(1, 1, 1, tzinfo=UTC)
#: Seconds the connection pool keeps trying in the background after a failed connection.
RECONNECT_WITHIN = 3.0
#: Above every order id (uuid5 ids carry version bits, so none is all ones).
LAST_ID = UUID(int=2**128 - 1)


class PostgresLedgerRecorder(CheckedReads, InboxOf, PostgresUpgrade):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.heads = HeadCache()
        # The originator id's column type, as the library's (`ORIGINATOR_ID_TYPE`).
        self.id_type = self.datastore.originator_id_type
        sql = statements(self.datastore.schema, self.events_table_name, self.id_type)
        self._q = sql.queries
        # The events table with the chained record's columns, and the ledger's tables.
        self.sql_create_statements[self.create_table_statement_index] = sql.events_table
        self.sql_create_statements += sql.tables
        self.inbox = PostgresInbox(self.datastore)
        self.sql_create_statements += self.inbox.ddl

    def create_table(self) -> None:
        """Create what is missing; a ledger that has it all is only read (creating an
        index that exists still waits for the table's lock).  Processes starting
        together may race on PostgreSQL's catalog (`tuple concurrently updated`,
        duplicate types): the loser tries again and then finds everything there."""
        if not self._complete():
            retry_races(super().create_table, (PersistenceError,), DDL_ATTEMPTS)

    def _complete(self) -> bool:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(SQL("SELECT count(*) AS n FROM pg_class c JOIN pg_namespace s ON "
                             "s.oid = c.relnamespace WHERE s.nspname = %s AND c.relname = "
                             "ANY(%s)"), (self.datastore.schema, [
                                 self.events_table_name, self.notification_id_index_name,
                                 "ledger_heads", "ledger_deadlines", "ledger_deadlines_due",
                                 "ledger_commands", "ledger_refusals", "ledger_messages",
                                 "ledger_messages_reported", "ledger_breaks",
                                 "ledger_log_checked", TABLE, INDEX]))
            found = curs.fetchone()
            return found is not None and found["n"] == 13

    @contextmanager
    def listen(self) -> Iterator[Callable[[float], None]]:
        """A wait(timeout) that returns when new events are recorded (the library's NOTIFY
        on every insert) or after `timeout` seconds."""
        with self.datastore.get_connection() as conn:
            conn.execute(SQL("LISTEN {}").format(Identifier(self.channel_name)))

            def wait(timeout: float) -> None:
                for _ in conn.notifies(timeout=timeout, stop_after=1):
                    pass

            try:
                yield wait
            finally:
                conn.execute(SQL("UNLISTEN {}").format(Identifier(self.channel_name)))

    def create_schema(self) -> None:
        def create() -> None:
            with self.datastore.transaction(commit=True) as curs:
                curs.execute(SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                    Identifier(self.datastore.schema)))

        retry_races(create, (PersistenceError,), DDL_ATTEMPTS)

    # --- writing -----------------------------------------------------------------------

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any
                      ) -> Sequence[int] | None:
        """Insert the events chained, their orders' heads, and what the ledger keeps beside
        them, in one transaction that first takes the events table's lock (as the library
        does, so that positions are committed in order).  Every write of the ledger takes
        that lock before any row lock (the deadline repair too), so writers never wait for
        each other in a cycle."""
        with self.datastore.get_connection() as conn, conn.transaction(), \
                conn.cursor() as curs:
            self._lock_table(curs)
            self._notify_channel(curs)
            ids, heads = self._record(curs, stored_events, **kwargs)
        self.heads.put_many(heads.items())  # once committed
        return ids

    def _record(self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent],
                **kwargs: Any) -> tuple[list[int], dict[UUID | str, Head]]:
        ids: list[int] = []
        heads: dict[UUID | str, Head] = {}
        if stored_events:
            curs.execute(self._q["last_link"], prepare=True)
            last = curs.fetchone()
            last_link = ZERO if last is None else last["log_link"]
            if last_link is None:
                raise LogBroken(0 if last is None else last["notification_id"])
            try:
                chained, heads = chain_events(
                    [(s.originator_id, s.originator_version, s.topic, s.state)
                     for s in stored_events],
                    heads_before(firsts_of((s.originator_id, s.originator_version)
                                           for s in stored_events),
                                 self.heads, lambda missing: self._heads_in(curs, missing)),
                    bytes(last_link), None if last is None else (
                        last["originator_id"], last["originator_version"]))
            except ChainGap as e:
                raise IntegrityError(str(e)) from e
            curs.execute(self._q["insert"], (
                [x.originator_id for x in chained], [x.version for x in chained],
                [x.topic for x in chained], [x.state for x in chained],
                [x.digest for x in chained], [x.link for x in chained],
                [None if x.prev is None else x.prev[0] for x in chained],
                [None if x.prev is None else x.prev[1] for x in chained],
                [x.prev_link for x in chained]))
            ids = [r["notification_id"] for r in curs.fetchall()]
            put = sorted(heads.items(), key=lambda x: str(x[0]))
            curs.execute(self._q["put_heads"], ([oid for oid, _ in put],
                                                [h.version for _, h in put],
                                                [h.digest for _, h in put]))
        for oid, row in sorted(kwargs.get("deadlines", {}).items()):  # in key order
            self._put_deadline(curs, oid, row)
        commands: Sequence[CommandRow] = kwargs.get("commands", ())
        if commands:
            curs.executemany(self._q["command"], sorted(
                (x.command_id, x.originator_id, x.digest) for x in commands))
        refusals: Sequence[RefusalRow] = kwargs.get("refusals", ())
        if refusals:
            check_refusals(refusals, heads, lambda ids: self._heads_in(curs, ids))
            curs.executemany(self._q["refusal"], sorted(
                (r.command_id, r.digest, r.code, r.reason) for r in refusals))
        messages: Sequence[MessageRow] = kwargs.get("messages", ())
        if messages:
            self._put_messages(curs, messages)
        return ids, heads

    def _put_messages(self, curs: Cursor[DictRow], messages: Sequence[MessageRow]) -> None:
        """Record decided messages: a new key is inserted (one there already is another
        writer's decision: `IntegrityError`); one that `replaces` must find its key
        recorded as reported (else it was decided again meanwhile: `IntegrityError`)."""
        new, again = message_values(messages)
        for values in again:
            curs.execute(self._q["message_again"], values, prepare=True)
            if curs.rowcount != 1:
                raise IntegrityError(f"message {values[-1]} is no longer recorded as "
                                     "reported: decided again meanwhile")
        if new:  # a feed's batch records thousands: one statement for them all
            curs.executemany(self._q["message"], new)
        if before := max(m.inbox_before for m in messages):
            self.inbox.mark_in(curs, before)

    def _heads_in(self, curs: Cursor[DictRow], originator_ids: Sequence[UUID | str]
                  ) -> dict[UUID | str, Head]:
        curs.execute(self._q["heads"], (list(originator_ids),), prepare=True)
        return {r["originator_id"]: Head(r["version"], bytes(r["event_digest"]))
                for r in curs.fetchall()}

    def _put_deadline(self, curs: Cursor[DictRow], oid: UUID, row: DeadlineRow | None) -> None:
        if row is None:
            curs.execute(self._q["delete"], (oid,), prepare=True)
        else:
            curs.execute(self._q["upsert"], (oid, row.order_id, row.deadline, row.rule,
                                             row.case), prepare=True)

    def repair_deadline(self, originator_id: UUID, row: DeadlineRow | None,
                        version: int) -> bool:
        """Set an order's index row from its state at `version`, only if no event was
        recorded since; the events table lock serialises this with every insert."""
        with self.datastore.transaction(commit=True) as curs:
            self._lock_table(curs)
            curs.execute(self._q["version"], (originator_id,))
            found = curs.fetchone()
            if ((found["v"] if found else None) or 0) != version:
                return False
            self._put_deadline(curs, originator_id, row)
            return True

    # --- reading orders, checked -------------------------------------------------------

    def select_events_many(self, originator_ids: Sequence[Any]) -> dict[Any, Loaded]:
        rows: dict[UUID | str, list[Row]] = {}
        own: dict[UUID | str, list[Beside]] = {}
        near: dict[int, Beside] = {}
        heads: dict[UUID | str, Head] = {}
        recorded: dict[UUID | str, tuple[int, str]] = {}
        ids = list(originator_ids)
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self._q["many"], (ids, ids, ids), prepare=True)
            for r in curs.fetchall():
                kind, oid = r["kind"], r["originator_id"]
                if kind == 1:
                    heads[oid] = Head(r["version"], bytes(r["digest"]))
                elif kind == 2:
                    recorded[oid] = (r["version"], r["reason"])
                else:
                    event = near[r["pos"]] = Beside(
                        r["pos"], oid, r["version"], as_bytes(r["digest"]), as_bytes(r["link"]),
                        _ref(r["prev_id"], r["prev_version"]), as_bytes(r["prev_link"]))
                    if kind == 0:  # the order's own, by version
                        rows.setdefault(oid, []).append(Row(
                            r["version"], r["topic"], bytes(r["state"]), event.digest))
                        own.setdefault(oid, []).append(event)
            places = {oid: placements(events, near,
                                      lambda p, step: self._nearest(curs, p, step))
                      for oid, events in own.items()}
            return checked(rows, heads, self.heads, places, recorded,
                           lambda ref: self._missing(curs, ref))

    def _nearest(self, curs: Cursor[DictRow], position: int, step: int) -> Beside | None:
        """The event nearest to `position` before it (step -1) or after it (1)."""
        curs.execute(self._q["nearest_before" if step < 0 else "nearest_after"], (position,),
                     prepare=True)
        r = curs.fetchone()
        return None if r is None else Beside(
            r["notification_id"], r["originator_id"], r["originator_version"],
            as_bytes(r["event_digest"]), as_bytes(r["log_link"]),
            _ref(r["prev_id"], r["prev_version"]), as_bytes(r["prev_link"]))

    def _missing(self, curs: Cursor[DictRow], ref: Ref) -> bool:
        """Whether `ref` is an event not in the store at any position."""
        curs.execute(self._q["event_there"], ref)
        return curs.fetchone() is None

    def heads_of(self, originator_ids: Sequence[UUID]) -> dict[UUID, Head]:
        with self.datastore.transaction(commit=False) as curs:
            return self._heads_in(curs, originator_ids)  # type: ignore[return-value]

    def heads_page(self, after: UUID | None, limit: int) -> list[tuple[UUID, Head]]:
        with self.datastore.transaction(commit=False) as curs:
            first = UUID(int=0) if self.id_type == "uuid" else ""  # below every id
            curs.execute(self._q["heads_page"], (after or first, limit), prepare=True)
            return [(r["originator_id"], Head(r["version"], bytes(r["event_digest"])))
                    for r in curs.fetchall()]

    def versions_present(self, pairs: Sequence[tuple[UUID, int]]) -> set[tuple[UUID, int]]:
        if not pairs:
            return set()
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self._q["present"], ([p[0] for p in pairs], [p[1] for p in pairs]))
            return {(r["originator_id"], r["originator_version"]) for r in curs.fetchall()}

    # --- reading the log ---------------------------------------------------------------

    def max_notification_id(self) -> int | None:
        """The library's, without its own retries (ten, 0.2 s apart, each waiting for the
        pool): the ledger retries whole units of work (`aftersales.storage.retry.Patience`)."""
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self.max_notification_id_statement)
            found = curs.fetchone()
            return None if found is None else found["max"]

    def select_notifications(self, start: int | None, limit: int, stop: int | None = None,
                             topics: Sequence[str] = (), *, inclusive_of_start: bool = True
                             ) -> Sequence[Notification]:
        """The library's page of the log, each notification with its digests."""
        first = 0 if start is None else start if inclusive_of_start else start + 1
        last = 2**63 - 1 if stop is None else stop
        with self.datastore.transaction(commit=False) as curs:
            if topics:
                curs.execute(self._q["log_topics"], (first, last, list(topics), limit),
                             prepare=True)
            else:
                curs.execute(self._q["log"], (first, last, limit), prepare=True)
            return [ChainedNotification(
                id=r["notification_id"], originator_id=r["originator_id"],
                originator_version=r["originator_version"], topic=r["topic"],
                state=bytes(r["state"]), digest=as_bytes(r["event_digest"]),
                link=as_bytes(r["log_link"])) for r in curs.fetchall()]

    def links_page(self, after: int, limit: int) -> list[LinkRow]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self._q["links"], (after, limit), prepare=True)
            return [LinkRow(r["notification_id"], r["originator_id"], r["originator_version"],
                            as_bytes(r["event_digest"]), as_bytes(r["log_link"]),
                            _ref(r["prev_id"], r["prev_version"]), as_bytes(r["prev_link"]))
                    for r in curs.fetchall()]

    def missing_events(self, refs: Collection[Ref]) -> set[Ref]:
        wanted = sorted({(as_uuid(oid), version) for oid, version in refs})
        if not wanted:
            return set()
        present = self.versions_present(wanted)
        return {ref for ref in refs if (as_uuid(ref[0]), ref[1]) not in present}

    def record_breaks(self, rows: Sequence[BreakRow]) -> int:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(self._q["put_breaks"], (
                [r.originator_id for r in rows], [r.version for r in rows],
                [r.position for r in rows], [r.reason for r in rows],
                [r.found_at for r in rows]))
            return max(curs.rowcount, 0)

    def recorded_breaks(self) -> list[BreakRow]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self._q["breaks"])
            return [BreakRow(r["originator_id"], r["version"], r["position"], r["reason"],
                             r["found_at"]) for r in curs.fetchall()]

    def log_checked(self) -> LinkRow | None:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self._q["checked"])
            found = curs.fetchone()
            return None if found is None else LinkRow(
                found["position"], found["originator_id"], found["version"], None,
                bytes(found["log_link"]))

    def set_log_checked(self, row: LinkRow) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(self._q["set_checked"], (row.id, row.link, row.originator_id,
                                                  row.version))

    def due_orders(self, before: datetime, limit: int, since: datetime | None = None,
                   partition: Partition | None = None) -> list[tuple[UUID, str]]:
        after = since or NO_LOWER_BOUND
        with self.datastore.transaction(commit=False) as curs:
            if partition is None:
                curs.execute(self._q["due"], (before, after, limit), prepare=True)
            else:
                curs.execute(self._q["due_mine"], (before, after, partition.count,
                                                   partition.index, limit), prepare=True)
            return [(r["originator_id"], r["order_id"]) for r in curs.fetchall()]

    def command_digest(self, command_id: str) -> str | None:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self._q["digest"], (command_id,), prepare=True)
            found = curs.fetchone()
            return None if found is None else str(found["digest"])

    def known_digests(self, command_ids: Sequence[str]) -> dict[str, str]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self._q["digests"], (list(command_ids),), prepare=True)
            return {str(r["command_id"]): str(r["digest"]) for r in curs.fetchall()}

    def known_refusals(self, commands: Sequence[tuple[str, str]]
                       ) -> dict[tuple[str, str], tuple[str, str]]:
        wanted = set(commands)
        return {k: v for k, v in self.refusals_of(sorted({cid for cid, _ in wanted})).items()
                if k in wanted}

    def refusals_of(self, command_ids: Sequence[str]
                    ) -> dict[tuple[str, str], tuple[str, str]]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self._q["refusals"], (list(command_ids),), prepare=True)
            return {(str(r["command_id"]), str(r["digest"])): (str(r["code"]), str(r["reason"]))
                    for r in curs.fetchall()}

    def message_outcomes(self, keys: Sequence[str]) -> dict[str, MessageRow]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self._q["messages"], (sorted(set(keys)),), prepare=True)
            return {str(r["key"]): _message(r) for r in curs.fetchall()}

    def reported_messages(self, prefix: str, limit: int, after: str = ""
                          ) -> list[MessageRow]:
        low, high = prefix_bounds(prefix)
        with self.datastore.transaction(commit=False) as curs:
            if high is None:
                curs.execute(self._q["reported"], (after, low, limit), prepare=True)
            else:
                curs.execute(self._q["reported_below"], (after, low, high, limit),
                             prepare=True)
            return [_message(r) for r in curs.fetchall()]

    def recorded_between(self, after: int, upto: int, partition: Partition | None = None
                         ) -> list[tuple[int, UUID]]:
        with self.datastore.transaction(commit=False) as curs:
            if partition is None:
                curs.execute(self._q["between"], (after, upto), prepare=True)
            else:
                curs.execute(self._q["between_mine"], (after, upto, partition.count,
                                                       partition.index), prepare=True)
            return [(r["notification_id"], r["originator_id"]) for r in curs.fetchall()]

    def events_by_order(self, upto: int, after: tuple[UUID, int] | None, limit: int,
                        before: UUID | None = None) -> list[ChainedNotification]:
        oid, version = (UUID(int=0), 0) if after is None else after
        end = LAST_ID if before is None else before
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self._q["by_order"], (upto, oid, version, end, limit), prepare=True)
            return [ChainedNotification(
                id=r["notification_id"], originator_id=r["originator_id"],
                originator_version=r["originator_version"], topic=r["topic"],
                state=bytes(r["state"]), digest=as_bytes(r["event_digest"]))
                for r in curs.fetchall()]

    def partition_claim(self, claim: Claim) -> Claim:
        # (processes starting together may race on the catalog: the loser tries again)
        found: Claim = retry_races(lambda: postgres_claim(self.datastore, claim),
                                   (PersistenceError,), DDL_ATTEMPTS)
        return found

    def command_ids(self) -> set[str]:
        """Every applied command id (for audits and tests)."""
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self._q["commands"])
            return {str(r["command_id"]) for r in curs.fetchall()}

    def pending_deadlines(self) -> list[tuple[UUID, DeadlineRow]]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self._q["pending"])
            return [(r["originator_id"],
                     DeadlineRow(r["order_id"], r["due"], r["rule"], r["case_no"]))
                    for r in curs.fetchall()]


def _message(r: DictRow) -> MessageRow:
    return message_row(r["key"], r["outcome"], r["code"], r["reason"], r["tag"],
                       r["order_ids"], r["message"])


def _ref(originator_id: Any, version: int | None) -> tuple[Any, int] | None:
    return None if originator_id is None or version is None else (originator_id, version)



class LedgerPostgresFactory(PostgresFactory):
    """eventsourcing's PostgreSQL factory, whose application recorder is the ledger's, whose
    connections bound every wait (`aftersales.settings`), and which first connects once
    on its own, so that a server that cannot be reached is reported with its reason (the
    pool only says it got no connection in time)."""

    application_recorder_class = PostgresLedgerRecorder

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        pool = self.datastore.pool
        assert isinstance(pool.kwargs, dict)
        statement = float(self.env.get("LEDGER_STATEMENT_TIMEOUT") or 60)
        pool.kwargs.update(session(statement, self._lock_timeout(),
                                   float(self.env.get("POSTGRES_CONNECT_TIMEOUT") or 5)))
        pool.connection_class = answering(float(self.env.get("LEDGER_ANSWER_TIMEOUT") or 0)
                                          or None)
        # When connecting fails, the pool tries again in the background, waiting twice as
        # long each time for up to five minutes: after an outage it could take as long
        # again to notice the server is back.  Giving up after a few seconds instead, it
        # starts afresh (at once) the next time a connection is asked for.
        pool.reconnect_timeout = RECONNECT_WITHIN
        self._probe(pool.kwargs)

    def _lock_timeout(self) -> float:
        return float(self.env.get("LEDGER_LOCK_TIMEOUT") or 10)

    def _probe(self, kwargs: dict[str, Any]) -> None:
        """Connect once: a server that is down or restarting is an `OperationalError` (a
        failure that may pass: the caller waits, saying why); a missing database, a wrong
        role or an unknown host is `StoreUnavailable` at once, and so is a server that
        refuses the first connection of a command (`FirstContact`)."""
        found = self._connect_once()
        server = (str(kwargs.get("host")), str(kwargs.get("port")))
        if found is None:
            FirstContact.connected(*server)
            return
        reason, error = found
        if FirstContact.refused_at_once(*server, error):
            raise StoreUnavailable(
                f"{reason.split(': ', 1)[0]}: Connection refused: nothing accepts "
                f"connections at {server[0]} port {server[1]}; check the host and port of "
                "the URL (a server still starting: run the command again once it is up, "
                "as `pg_isready` tells)") from None
        if may_pass(error):
            raise OperationalError(reason) from None  # (its text is the reason to show)
        raise StoreUnavailable(reason) from None

    def unreachable(self) -> str | None:
        """Why a connection of its own cannot be made now (None: it can)."""
        found = self._connect_once()
        return None if found is None else found[0]

    def _connect_once(self) -> tuple[str, psycopg.Error] | None:
        kwargs = self.datastore.pool.kwargs
        assert isinstance(kwargs, dict)
        where = (f"{kwargs.get('host')}:{kwargs.get('port')}/{kwargs.get('dbname')} "
                 f"as {kwargs.get('user')}")
        try:
            with psycopg.connect(**{k: v for k, v in kwargs.items() if k != "row_factory"}):
                return None
        except psycopg.Error as e:
            return f"cannot connect to PostgreSQL at {where}: {describe(e)}", e

    def application_recorder(self) -> PostgresLedgerRecorder:
        recorder = PostgresLedgerRecorder(datastore=self.datastore,
                                          events_table_name=self._events_table())
        # The library's lock timeout takes whole seconds; ours, milliseconds.
        recorder.lock_table_statements[0] = SQL("SET LOCAL lock_timeout = {}").format(
            f"{millis(self._lock_timeout())}ms")
        if self.env_create_table():
            recorder.create_schema()
            recorder.create_table()
        return recorder

    def _events_table(self) -> str:
        return (self.env.name.lower() or "stored") + "_events"
