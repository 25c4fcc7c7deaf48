"""Stores written by earlier versions, on SQLite: whether one needs `db upgrade`, and the
upgrade itself (the chained record's digests, head records and links added to every event
already there, in one transaction).  A part of the ledger's recorder
(`aftersales.storage.sqlite.SQLiteLedgerRecorder`)."""

from __future__ import annotations

from collections.abc import Callable

from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor

from aftersales.storage.chain import ZERO, HeadCache, digest, id_bytes, link

#: Events a `db upgrade` chains per statement batch.
UPGRADE_PAGE = 5_000


class SQLiteUpgrade(SQLiteApplicationRecorder):
    """The recorder's methods for stores written before the chained record."""

    heads: HeadCache

    def _columns(self, c: SQLiteCursor) -> set[str]:
        c.execute(f"PRAGMA table_info({self.events_table_name})")
        return {str(r[1]) for r in c.fetchall()}

    def has_ledger(self) -> bool:
        with self.datastore.transaction(commit=False) as c:
            return bool(self._columns(c))

    def needs_upgrade(self) -> bool:
        """Whether the events table lacks the chained record or the predecessor columns
        (an earlier version wrote it); an empty table gets the columns here.  Events
        without a digest or link in a chained store are breaks, never an upgrade."""
        with self.datastore.transaction(commit=False) as c:
            columns = self._columns(c)
            if not columns or "prev_link" in columns:
                return False
            c.execute(f"SELECT 1 FROM {self.events_table_name} LIMIT 1")
            if c.fetchone() is not None:
                return True
        self.upgrade(lambda n: None)  # nothing to chain: just the columns
        return False

    def unchained(self) -> int:
        """How many events lack their digest or link (a whole scan, for `db upgrade`)."""
        with self.datastore.transaction(commit=False) as c:
            if "event_digest" not in self._columns(c):
                c.execute(f"SELECT count(*) FROM {self.events_table_name}")
            else:
                c.execute(f"SELECT count(*) FROM {self.events_table_name} "
                          "WHERE event_digest IS NULL OR log_link IS NULL")
            return int(c.fetchone()[0])

    def upgrade(self, on_progress: Callable[[int], None]) -> int:
        """In one transaction: a store written before the chained record (no event has a
        digest) gets the digests, head records and links, each order's events in version
        order, then the log in position order; a chained store written before the
        predecessor columns gets each event's predecessor in the log.  No event is
        touched, and no digest or link is computed where one exists."""
        t = self.events_table_name
        with self.datastore.transaction(commit=True) as c:
            columns = self._columns(c)
            chain = "event_digest" not in columns
            for column, kind in (("event_digest", "BLOB"), ("log_link", "BLOB"),
                                 ("prev_id", "TEXT"), ("prev_version", "INTEGER"),
                                 ("prev_link", "BLOB")):
                if column not in columns:
                    c.execute(f"ALTER TABLE {t} ADD COLUMN {column} {kind}")
            for statement in self.create_table_statements:
                c.execute(statement)
            done = self._digest_orders(c, on_progress) if chain else 0
            position, current = 0, ZERO
            before: tuple[str, int, bytes] | None = None
            while True:
                c.execute(f"SELECT rowid, event_digest, originator_id, originator_version, "
                          f"log_link FROM {t} WHERE rowid > ? ORDER BY rowid LIMIT ?",
                          (position, UPGRADE_PAGE))
                page = c.fetchall()
                if not page:
                    break
                if chain:
                    links = []
                    for rowid, d, _, _, _ in page:
                        current = link(current, d)
                        links.append((current, rowid))
                    c.executemany(f"UPDATE {t} SET log_link=? WHERE rowid=?", links)
                else:
                    on_progress(len(page))
                    done += len(page)
                # Each event's predecessor and its link, as the log holds them (copied,
                # never computed: a break there stays a break).
                c.execute(f"SELECT rowid, originator_id, originator_version, log_link "
                          f"FROM {t} WHERE rowid >= ? AND rowid <= ? ORDER BY rowid",
                          (page[0][0], page[-1][0]))
                refs = []
                for rowid, hex_id, version, stored in c.fetchall():
                    refs.append((*(before or (None, None, ZERO)), rowid))
                    before = (hex_id, version, stored)
                c.executemany(f"UPDATE {t} SET prev_id=?, prev_version=?, prev_link=? "
                              "WHERE rowid=?", refs)
                position = page[-1][0]
        self.heads.clear()
        return done

    def _digest_orders(self, c: SQLiteCursor, on_progress: Callable[[int], None]) -> int:
        """Digest every event of a store that has none, and write the head records."""
        t = self.events_table_name
        done = 0
        after: tuple[str, int] = ("", 0)
        head: tuple[str, bytes, bytes, int] = ("", b"", ZERO, 0)  # id, ident, digest, v
        while True:
            c.execute(f"SELECT originator_id, originator_version, topic, state FROM {t} "
                      "WHERE (originator_id, originator_version) > (?, ?) "
                      "ORDER BY originator_id, originator_version LIMIT ?",
                      (*after, UPGRADE_PAGE))
            page = c.fetchall()
            if not page:
                break
            updates, heads = [], []
            for hex_id, version, topic, state in page:
                if hex_id != head[0]:
                    if head[0]:
                        heads.append((head[0], head[3], head[2]))
                    oid = self.convert_originator_id(hex_id)
                    head = (hex_id, id_bytes(oid), ZERO, 0)
                d = digest(head[2], head[1], version, topic, state)
                head = (hex_id, head[1], d, version)
                updates.append((d, hex_id, version))
            c.executemany(f"UPDATE {t} SET event_digest=? WHERE originator_id=? AND "
                          "originator_version=?", updates)
            c.executemany("INSERT OR REPLACE INTO ledger_heads VALUES (?,?,?)", heads)
            after = (page[-1][0], page[-1][1])
            done += len(page)
            on_progress(len(page))
        if head[0]:
            c.execute("INSERT OR REPLACE INTO ledger_heads VALUES (?,?,?)",
                      (head[0], head[3], head[2]))
        return done
