"""The business calendar: one `business_calendar` row per business day, none skipped, from
the first to the last day the ledger's events fall on (`fold.Batch.first_day`/`last_day`).

The live projection covers each batch's days in the batch's transaction; a rebuild covers
each page's (its workers at once: a day already there is left as it is) and, when it
finishes, the days between the pages' (`cover_days` with no span).  Both end with the same
rows, which `verify` compares.
"""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import Connection, func, select
from sqlalchemy.dialects import postgresql, sqlite

from projections.fold import calendar_row
from projections.schema import business_calendar


def cover_days(conn: Connection, first: date | None = None, last: date | None = None) -> int:
    """Make `business_calendar` hold every day from the earlier of its first day and
    `first` to the later of its last day and `last`; how many rows it added.  Safe beside
    other transactions doing the same (the rebuild's workers): a day one of them added
    first is skipped."""
    c = business_calendar.c
    low, high, count = conn.execute(
        select(func.min(c.business_day), func.max(c.business_day), func.count())).one()
    days = [d for d in (low, high, first, last) if d is not None]
    if not days:
        return 0
    start, end = min(days), max(days)
    if count == (end - start).days + 1:
        return 0  # already every day of the span
    held = set(conn.execute(select(c.business_day).where(
        c.business_day.between(start, end))).scalars())
    rows = [calendar_row(start + timedelta(days=n)) for n in range((end - start).days + 1)
            if start + timedelta(days=n) not in held]
    if rows:
        insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)
        conn.execute(insert(business_calendar).on_conflict_do_nothing(), rows)
    return len(rows)
