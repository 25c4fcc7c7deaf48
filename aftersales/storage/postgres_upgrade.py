"""Stores written by earlier versions, on PostgreSQL: whether one needs `db upgrade`, and
the upgrade itself (the chained record's digests, head records and links added to every
event already there, in one transaction that holds the events table's lock).  A part of
the ledger's recorder (`aftersales.storage.postgres.PostgresLedgerRecorder`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier

from aftersales.storage.chain import ZERO, Head, HeadCache, digest, id_bytes, link
from aftersales.storage.postgres_sql import as_bytes

#: Events a `db upgrade` chains per statement.
UPGRADE_PAGE = 5_000


class PostgresUpgrade(PostgresApplicationRecorder):
    """The recorder's methods for stores written before the chained record."""

    heads: HeadCache
    id_type: str
    _q: dict[str, SQL | Composed]

    def _columns(self, curs: Cursor[DictRow]) -> set[str]:
        curs.execute(self._q["columns"], (self.datastore.schema, self.events_table_name))
        return {str(r["column_name"]) for r in curs.fetchall()}

    def has_ledger(self) -> bool:
        with self.datastore.transaction(commit=False) as curs:
            return bool(self._columns(curs))

    def needs_upgrade(self) -> bool:
        """Whether the events table lacks the chained record or the predecessor columns
        (an earlier version wrote it); an empty table gets the columns here.  Events
        without a digest or link in a chained store are breaks, never an upgrade."""
        table = SQL("{}.{}").format(Identifier(self.datastore.schema),
                                    Identifier(self.events_table_name))
        with self.datastore.transaction(commit=False) as curs:
            columns = self._columns(curs)
            if not columns or "prev_link" in columns:
                return False
            curs.execute(SQL("SELECT 1 FROM {} LIMIT 1").format(table))
            if curs.fetchone() is not None:
                return True
        self.upgrade(lambda n: None)  # nothing to chain: just the columns
        return False

    def unchained(self) -> int:
        """How many events lack their digest or link (a whole scan, for `db upgrade`)."""
        table = SQL("{}.{}").format(Identifier(self.datastore.schema),
                                    Identifier(self.events_table_name))
        with self.datastore.transaction(commit=False) as curs:
            if "event_digest" not in self._columns(curs):
                curs.execute(SQL("SELECT count(*) AS n FROM {}").format(table))
            else:
                curs.execute(SQL("SELECT count(*) AS n FROM {} WHERE event_digest IS NULL "
                                 "OR log_link IS NULL").format(table))
            found = curs.fetchone()
            return int(found["n"]) if found else 0

    def upgrade(self, on_progress: Callable[[int], None]) -> int:
        """In one transaction that holds the events table's lock: a store written before
        the chained record (no event has a digest) gets the digests, head records and
        links, each order's events in version order, then the log in position order; a
        chained store written before the predecessor columns gets each event's
        predecessor in the log.  No event is touched, and no digest or link is computed
        where one exists."""
        s, t = Identifier(self.datastore.schema), Identifier(self.events_table_name)
        done = 0
        with self.datastore.transaction(commit=True) as curs:
            self._lock_table(curs)
            chain = "event_digest" not in self._columns(curs)
            for column, kind in (("event_digest", "bytea"), ("log_link", "bytea"),
                                 ("prev_id", self.id_type), ("prev_version", "bigint"),
                                 ("prev_link", "bytea")):
                curs.execute(SQL("ALTER TABLE {}.{} ADD COLUMN IF NOT EXISTS {} {}")
                             .format(s, t, Identifier(column), SQL(kind)))
            for statement in self.sql_create_statements:
                if "CREATE TABLE" in statement.as_string() or \
                        "CREATE INDEX" in statement.as_string():
                    curs.execute(statement)
            if chain:
                done = self._digest_orders(curs, on_progress)
            position, current = 0, ZERO
            before: tuple[Any, int, bytes] | None = None
            while True:
                curs.execute(SQL("SELECT notification_id, event_digest, originator_id, "
                                 "originator_version, log_link FROM {}.{} "
                                 "WHERE notification_id > %s "
                                 "ORDER BY notification_id LIMIT %s")
                             .format(s, t), (position, UPGRADE_PAGE))
                page = curs.fetchall()
                if not page:
                    break
                links: list[bytes | None] = []
                refs: list[tuple[Any, int, bytes] | None] = []
                for r in page:
                    if chain:
                        current = link(current, bytes(r["event_digest"]))
                    links.append(current if chain else None)
                    refs.append(before)
                    # Each event's predecessor and its link, as the log holds them (copied,
                    # never computed: a break there stays a break).
                    stored = current if chain else as_bytes(r["log_link"])
                    before = (r["originator_id"], r["originator_version"], stored or b"")
                if not chain:
                    done += len(page)
                    on_progress(len(page))
                curs.execute(SQL(
                    "UPDATE {}.{} AS e SET log_link = coalesce(u.l, e.log_link), "
                    "prev_id = u.p, prev_version = u.pv, prev_link = u.pl FROM "
                    "unnest(%s::bytea[], %s::bigint[], %s::{}[], %s::bigint[], %s::bytea[]) "
                    "AS u(l, n, p, pv, pl) WHERE e.notification_id = u.n"
                ).format(s, t, SQL(self.id_type)),
                    (links, [r["notification_id"] for r in page],
                     [None if x is None else x[0] for x in refs],
                     [None if x is None else x[1] for x in refs],
                     [ZERO if x is None else x[2] or None for x in refs]))
                position = page[-1]["notification_id"]
        self.heads.clear()
        return done

    def _digest_orders(self, curs: Cursor[DictRow], on_progress: Callable[[int], None]
                       ) -> int:
        """Digest every event of a store that has none, and write the head records."""
        s, t = Identifier(self.datastore.schema), Identifier(self.events_table_name)
        done = 0
        after: tuple[Any, int] = (UUID(int=0) if self.id_type == "uuid" else "", 0)
        head: tuple[Any, bytes, bytes, int] = (None, b"", ZERO, 0)
        heads: dict[Any, Head] = {}
        while True:
            curs.execute(SQL(
                "SELECT originator_id, originator_version, topic, state FROM {}.{} "
                "WHERE (originator_id, originator_version) > (%s, %s) ORDER BY "
                "originator_id, originator_version LIMIT %s").format(s, t),
                (*after, UPGRADE_PAGE))
            page = curs.fetchall()
            if not page:
                break
            updates: list[tuple[bytes, Any, int]] = []
            for r in page:
                oid = r["originator_id"]
                if oid != head[0]:
                    head = (oid, id_bytes(oid), ZERO, 0)
                d = digest(head[2], head[1], r["originator_version"], r["topic"],
                           bytes(r["state"]))
                head = (oid, head[1], d, r["originator_version"])
                heads[oid] = Head(head[3], d)
                updates.append((d, oid, r["originator_version"]))
            curs.execute(SQL(
                "UPDATE {}.{} AS e SET event_digest = u.d FROM unnest(%s::bytea[], "
                "%s::{}[], %s::bigint[]) AS u(d, o, v) WHERE e.originator_id = u.o "
                "AND e.originator_version = u.v").format(s, t, SQL(self.id_type)),
                ([u[0] for u in updates], [u[1] for u in updates],
                 [u[2] for u in updates]))
            after = (page[-1]["originator_id"], page[-1]["originator_version"])
            done += len(page)
            on_progress(len(page))
            if len(heads) >= UPGRADE_PAGE:
                self._put_heads(curs, heads, keep=head[0])
        self._put_heads(curs, heads, keep=None)
        return done

    def _put_heads(self, curs: Cursor[DictRow], heads: dict[UUID, Head],
                   keep: UUID | None) -> None:
        """Write the heads gathered so far, but the one still growing (`keep`)."""
        put = sorted((oid, h) for oid, h in heads.items() if oid != keep)
        if put:
            curs.execute(self._q["put_heads"], ([oid for oid, _ in put],
                                                [h.version for _, h in put],
                                                [h.digest for _, h in put]))
        for oid, _ in put:
            del heads[oid]
