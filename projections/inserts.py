"""Whole rows inserted into an empty read-model table, for the rebuild.

SQLAlchemy's `insert(table)` with a list of rows compiles the statement once but still
runs its per-row parameter machinery (key checks, defaults, one processor call per column
through its own dispatch).  A rebuild inserts every row once into empty tables, all columns
given, so `RowInserter` hands the rows to the driver directly, each value converted by its
column type's own bind processor (the conversion SQLAlchemy would apply: a `UTCDateTime`
becomes UTC text on SQLite, the same on PostgreSQL), in one `executemany`.

Measured reason: a whole 20,000-order rebuild (about 100,000 events, one process,
start-up included) took 3.82 s against 3.92 s with `insert(table)` (median of 5 paired
runs, ratio 0.974, spread 0.92-1.12; 2026-12-02): small, kept because it is this one
module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table


@dataclass
class RowInserter:
    """INSERT of whole rows through the DBAPI, each value converted by its column's type
    as SQLAlchemy would (without its per-row statement machinery)."""

    table: Table
    conn: Connection

    def __post_init__(self) -> None:
        dialect = self.conn.dialect
        names = [c.name for c in self.table.columns]
        marks = ", ".join(["?" if dialect.paramstyle == "qmark" else "%s"] * len(names))
        self.sql = (f"INSERT INTO {self.table.name} ({', '.join(names)}) VALUES ({marks})")
        self.columns = [(c.name, c.type.dialect_impl(dialect).bind_processor(dialect))
                        for c in self.table.columns]

    def __call__(self, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        self.conn.exec_driver_sql(self.sql, [
            tuple(row[name] if convert is None or row[name] is None else convert(row[name])
                  for name, convert in self.columns) for row in rows])
