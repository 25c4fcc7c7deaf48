"""Which partition of a partitioned ledger a store holds, recorded in the store itself.

A store opened as partition K of a map of N > 1 records (K, N) the first time, in the
one-row table `ledger_partition`; opened again under another map (another N, the map's
lines in another order, one store named twice), or as a ledger of its own (`--db`), it is
refused, naming what it holds: orders would otherwise be looked for, and written, in the
wrong database.  A store that records nothing is one store's ledger (or a new partition).
Read first, written only when nothing is recorded, so that opening a ledger takes no
write lock.
"""

from __future__ import annotations

from typing import Any

#: (partition, partitions) as recorded, or None.
Claim = tuple[int, int] | None

TABLE = "ledger_partition"
_SQLITE_CREATE = (f"CREATE TABLE IF NOT EXISTS {TABLE} (id INTEGER PRIMARY KEY CHECK (id = 1), "
                  "partition INTEGER NOT NULL, partitions INTEGER NOT NULL)")


def sqlite_claim(datastore: Any, claim: Claim) -> Claim:
    """The SQLite store's recorded partition; `claim` recorded first if none is."""
    def read(c: Any) -> Claim:
        c.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?",
                  (TABLE,))
        if c.fetchone() is None:
            return None
        c.execute(f"SELECT partition, partitions FROM {TABLE} WHERE id = 1")
        row = c.fetchone()
        return None if row is None else (int(row[0]), int(row[1]))

    with datastore.transaction(commit=False) as c:
        found = read(c)
    if found is not None or claim is None:
        return found
    with datastore.transaction(commit=True) as c:
        c.execute(_SQLITE_CREATE)
        c.execute(f"INSERT OR IGNORE INTO {TABLE} VALUES (1, ?, ?)", claim)
        return read(c)


def postgres_claim(datastore: Any, claim: Claim) -> Claim:
    """The PostgreSQL store's recorded partition; `claim` recorded first if none is."""
    from psycopg.sql import SQL, Identifier  # (loaded with the PostgreSQL store only)
    table = SQL("{}.{}").format(Identifier(datastore.schema), Identifier(TABLE))

    def read(curs: Any) -> Claim:
        curs.execute(SQL("SELECT to_regclass(%s) AS t"), (f'"{datastore.schema}".{TABLE}',))
        if curs.fetchone()["t"] is None:
            return None
        curs.execute(SQL("SELECT partition, partitions FROM {} WHERE id = 1").format(table))
        row = curs.fetchone()
        return None if row is None else (int(row["partition"]), int(row["partitions"]))

    with datastore.transaction(commit=False) as curs:
        found = read(curs)
    if found is not None or claim is None:
        return found
    with datastore.transaction(commit=True) as curs:
        curs.execute(SQL("CREATE TABLE IF NOT EXISTS {} (id integer PRIMARY KEY CHECK "
                         "(id = 1), partition integer NOT NULL, partitions integer NOT NULL)"
                         ).format(table))
        curs.execute(SQL("INSERT INTO {} VALUES (1, %s, %s) ON CONFLICT (id) DO NOTHING")
                     .format(table), claim)
        return read(curs)
