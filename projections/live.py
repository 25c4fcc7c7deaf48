"""The reporting projection: batches of events folded into the read models, written in one
transaction together with the tracking position (exactly once)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import date
from functools import singledispatchmethod
from typing import Any

from eventsourcing.persistence import Notification, Tracking
from eventsourcing.projection import Projection
from sqlalchemy import Connection, Table, and_, bindparam, delete, insert, select, update

from aftersales.storage.reading import AS_RECORDED, Positions
from projections.calendar import cover_days
from projections.database import ReadModels
from projections.fold import (
    Batch,
    Decode,
    Row,
    compliance_row,
    fold_recorded,
    median_seconds,
    pending_rows,
)
from projections.schema import (
    deadline_changes,
    discrepancies,
    disputes,
    integrity_breaks,
    lapses,
    merchant_compliance,
    order_status,
    pending_deadlines,
    return_cases,
    violations,
)

IN_CHUNK = 500


class ReportingProjection(Projection[ReadModels]):
    name = "reporting"

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """The library's one-event interface cannot be served: a decoded event has lost
        the bytes its digest covers, so it could not be checked against the chained
        record, and the order's digest would go stale.  The runner uses `process_batch`,
        which folds recorded notifications, each checked."""
        raise NotImplementedError("the reporting projection folds recorded notifications, "
                                  "each checked against the chained record: use "
                                  "process_batch (projections.runner.Runner)")

    def process_batch(self, notifications: Sequence[Notification], application: str,
                      expected: int | None, decode: Decode,
                      positions: Positions = AS_RECORDED) -> None:
        """Check the recorded events against their orders' chains, fold them into the read
        models, and move the position from `expected` to the last one's, all in one
        transaction."""
        if not notifications:
            return

        def fill(batch: Batch) -> None:
            for n in notifications:
                fold_recorded(batch, n, decode)

        keys = {n.originator_id.hex for n in notifications}  # type: ignore[union-attr]
        self._project(Tracking(application, notifications[-1].id), expected, keys, fill,
                      positions)

    def _project(self, last: Tracking, expected: int | None, keys: set[str],
                 fill: Callable[[Batch], None], positions: Positions) -> None:
        with self.view.transaction() as conn:
            self.view.one_writer(conn)
            self.view.advance(conn, last, expected)
            self.view.check(conn)
            batch = Batch(self.view.tz, positions=positions)
            load(conn, batch, keys)
            fill(batch)
            write(conn, batch)


def _chunks(keys: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for i in range(0, len(keys), IN_CHUNK):
        yield keys[i : i + IN_CHUNK]


def load(conn: Connection, batch: Batch, order_keys: set[str]) -> None:
    keys = sorted(order_keys)
    for chunk in _chunks(keys):
        for row in conn.execute(select(order_status).where(
                order_status.c.order_uuid.in_(chunk))).mappings():
            batch.orders[row["order_uuid"]] = dict(row)
        for row in conn.execute(select(return_cases).where(
                return_cases.c.order_uuid.in_(chunk))).mappings():
            batch.cases[(row["order_uuid"], row["case_no"])] = dict(row)
        for row in conn.execute(select(disputes).where(
                disputes.c.order_uuid.in_(chunk))).mappings():
            batch.disputes[(row["order_uuid"], row["case_no"])] = dict(row)
        batch.frozen.update(conn.execute(select(integrity_breaks.c.order_uuid).where(
            integrity_breaks.c.order_uuid.in_(chunk))).scalars())


def _upsert(conn: Connection, table: Table, rows: list[Row], new: list[Row],
            keys: tuple[str, ...]) -> None:
    """Insert the new rows and update the others by primary key (executemany)."""
    if new:
        conn.execute(insert(table), new)
    if rows:
        where = and_(*(table.c[k] == bindparam(f"k_{k}") for k in keys))
        values: dict[str, Any] = {
            c.name: bindparam(f"v_{c.name}") for c in table.c if c.name not in keys}
        conn.execute(update(table).where(where).values(values), [
            {**{f"k_{k}": r[k] for k in keys},
             **{f"v_{c}": r[c] for c in r if c not in keys}} for r in rows])


def write(conn: Connection, batch: Batch) -> None:
    orders = list(batch.orders.values())
    _upsert(conn, order_status,
            [o for k, o in batch.orders.items() if k not in batch.new_orders],
            [o for k, o in batch.orders.items() if k in batch.new_orders], ("order_id",))
    _upsert(conn, return_cases,
            [c for k, c in batch.cases.items() if k not in batch.new_cases],
            [c for k, c in batch.cases.items() if k in batch.new_cases],
            ("order_id", "case_no"))
    _upsert(conn, disputes,
            [d for k, d in batch.disputes.items() if k not in batch.new_disputes],
            [d for k, d in batch.disputes.items() if k in batch.new_disputes],
            ("order_id", "case_no"))
    if batch.violations:
        conn.execute(insert(violations), batch.violations)
    if batch.lapses:
        conn.execute(insert(lapses), batch.lapses)
    if batch.deadline_changes:
        conn.execute(insert(deadline_changes), batch.deadline_changes)
    if batch.discrepancies:
        conn.execute(insert(discrepancies), batch.discrepancies)
    if batch.breaks:
        conn.execute(insert(integrity_breaks), list(batch.breaks.values()))
    _write_compliance(conn, batch)
    cover_days(conn, batch.first_day, batch.last_day)
    ids = [o["order_id"] for o in orders]
    for chunk in _chunks(ids):
        conn.execute(delete(pending_deadlines).where(pending_deadlines.c.order_id.in_(chunk)))
    pending = pending_rows(orders)
    if pending:
        conn.execute(insert(pending_deadlines), pending)


def _write_compliance(conn: Connection, batch: Batch) -> None:
    pairs = set(batch.compliance) | batch.medians
    if not pairs:
        return
    merchants = sorted({m for m, _ in pairs})
    days = sorted({d for _, d in pairs})
    existing: dict[tuple[str, date], Row] = {}
    for chunk in _chunks(merchants):
        for stored in conn.execute(select(merchant_compliance).where(
                merchant_compliance.c.merchant_id.in_(chunk),
                merchant_compliance.c.business_day.in_(days))).mappings():
            existing[(stored["merchant_id"], stored["business_day"])] = dict(stored)
    new: list[Row] = []
    changed: list[Row] = []
    for pair in sorted(pairs):
        found = existing.get(pair)
        if found is None:
            row: Row = {**compliance_row(*pair, {}), "median_response_seconds": None}
            new.append(row)
        else:
            row = found
            changed.append(row)
        for counter, n in batch.compliance.get(pair, {}).items():
            row[counter] += n
        if pair in batch.medians:
            times = conn.execute(select(return_cases.c.response_seconds).where(
                return_cases.c.merchant_id == pair[0],
                return_cases.c.decided_business_day == pair[1])).scalars().all()
            row["median_response_seconds"] = median_seconds(times)
    _upsert(conn, merchant_compliance, changed, new, ("merchant_id", "business_day"))
