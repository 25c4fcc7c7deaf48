"""Rebuilding the read models from the events, order by order.

Replaying the log in its own order touches an order's rows again and again (its events are
spread over weeks of the log), so each batch must read rows back and write them again.  A
rebuild reads the events grouped by order instead (the event store's key order), up to a
cut taken when it starts: each order's rows are folded from nothing by the runner's own
fold (`projections.fold`) and inserted once, and so are its violations, lapses and
pending deadline.  The merchants' daily counters each page adds are written to a scratch
table and summed at the end, where the median response times are computed from the return
cases, as the runner does.  The rows are those of a replay in log order (`verify`
compares the two).

On a large log, several processes replay at once, each the orders of one range of ids,
and the one that started them finishes.  They fill shadow tables (`projections.swap`),
committing pages as they go; the shadow says "being rebuilt" (schema version 0) until the
last transaction writes the tracking position, and only then are the shadow tables swapped
in, all in one transaction.  Readers see the old read models, whole, until then; a rebuild
that stopped midway leaves them serving, and the next one starts its shadow afresh.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import groupby, islice, pairwise
from multiprocessing.connection import Connection as Pipe
from uuid import UUID

from eventsourcing.persistence import Notification, Tracking
from sqlalchemy import (
    Column,
    Connection,
    Date,
    MetaData,
    Table,
    bindparam,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.schema import CreateTable

from aftersales.errors import RebuildFailed, RebuildInterrupted
from aftersales.runtime.garbage import give_back_memory
from aftersales.runtime.processes import serve, spawn
from aftersales.settings import DEFAULT_SETTINGS, Settings
from aftersales.storage.chain import check_head
from aftersales.storage.reading import LedgerReading
from projections.calendar import cover_days
from projections.database import PROJECTION_NAME, ReadModels
from projections.fold import (
    COUNTERS,
    Batch,
    broken,
    compliance_row,
    decoding,
    fold_recorded,
    median_seconds,
    pending_rows,
)
from projections.inserts import RowInserter
from projections.schema import (
    ID,
    SCHEMA_VERSION,
    counter_columns,
    deadline_changes,
    discrepancies,
    disputes,
    integrity_breaks,
    lapses,
    merchant_compliance,
    metadata,
    order_status,
    pending_deadlines,
    projection_meta,
    return_cases,
    violations,
)
from projections.swap import copies, shadow_of, swap_in

#: Events read per page (the trailing order of a full page waits for the next one).
PAGE = 20_000
#: Logs this long are rebuilt by several processes by default.
PARALLEL_FROM = 100_000
#: Aggregate ids, as integers, lie in [0, SPACE).
SPACE = 2**128
#: Median rows computed and written at a time.
MEDIANS_CHUNK = 5_000
#: The index `_medians` reads the return cases in order by.
MEDIANS_INDEX = "return_cases_merchant_decided"
#: The read models' schema version while a rebuild runs.
REBUILDING = 0

_scratch = MetaData()
#: What each page added to the merchants' daily counters (summed by `_finish`).
compliance_deltas = Table(
    "projection_rebuild_compliance", _scratch,
    Column("merchant_id", ID, nullable=False),
    Column("business_day", Date, nullable=False),
    *counter_columns(),
)


@dataclass(frozen=True)
class _Range:
    """A rebuild worker's job: the orders whose ids lie in [low, high) (as integers)."""

    #: Opens the ledger in the worker's process (`LedgerReading.opener`).
    store: Callable[[], LedgerReading]
    views: str
    tz: str
    cut: int
    low: int
    high: int
    settings: Settings = DEFAULT_SETTINGS
    #: The orders the walk of the log found broken: (first version, why), by order_uuid.
    limits: Mapping[str, tuple[int, str]] = field(default_factory=dict)


def default_workers(events: int, shared: bool = True) -> int:
    """Processes for a rebuild of `events` events: one per core, up to four, for a large
    log in databases that other processes can open (`shared`); else one."""
    return min(os.cpu_count() or 1, 4) if shared and events >= PARALLEL_FROM else 1


def rebuild(ledger: LedgerReading, views: ReadModels,
            on_page: Callable[[int], None] = lambda n: None,
            workers: int | None = None, partitions: Sequence[LedgerReading] = ()) -> int:
    """Replay all events order by order into shadow read models and swap them in at once
    (`projections.swap`); how many.  With several workers each replays the orders of one
    range of ids (this process the first, and it walks the log beside them), and this
    process finishes.  A partitioned ledger's read models are rebuilt from every one of
    its `partitions` (`ledger` is then one of them), one after another, each log walked
    first, and swapped in once, each partition's position its own."""
    if partitions:
        return _rebuild_partitions(partitions, views, on_page, workers)
    cut = ledger.store_log.max_notification_id() or 0
    shadow = shadow_of(views)
    try:
        count = workers or default_workers(
            cut, shared=not ledger.url.startswith("memory:") and views.url != "sqlite://")
        copied = copies(views, shadow)
        done = None
        if count > 1:  # the walk beside the other processes' replays
            done = _build(ledger, shadow, cut, ledger.recorded_limits(), on_page, count,
                          copied, lambda: ledger.walked_limits(cut))
        if done is None:  # (or the walk found breaks not recorded when they started)
            done = _build(ledger, shadow, cut, ledger.walked_limits(cut), on_page, count,
                          copied)
            assert done is not None  # (without a walk beside it, it is never redone)
        swap_in(views, shadow)
    finally:
        if shadow is not views:
            shadow.close()
    return done


def _rebuild_partitions(ledgers: Sequence[LedgerReading], views: ReadModels,
                        on_page: Callable[[int], None], workers: int | None) -> int:
    cuts = [ledger.store_log.max_notification_id() or 0 for ledger in ledgers]
    shadow = shadow_of(views)
    try:
        count = workers or default_workers(sum(cuts), shared=views.url != "sqlite://")
        copied = copies(views, shadow)
        _start(shadow)
        done = 0
        for ledger, cut in zip(ledgers, cuts, strict=True):
            replayed = _replay_ranges(ledger, shadow, cut, ledger.walked_limits(cut), on_page,
                                      count)
            assert replayed is not None  # (without a walk beside it, it is never redone)
            done += replayed
        _finish(shadow, [(ledger.name, cut) for ledger, cut in zip(ledgers, cuts,
                                                                    strict=True)], copied)
        swap_in(views, shadow)
    finally:
        if shadow is not views:
            shadow.close()
    return done


#: The log walk's cost beside the replay's (a 100,000-order log: 1.7 s against 17 s of
#: replay, both CPU): the process that walks takes that much less of the orders.
WALK_SHARE = 0.1


def _edges(count: int, walking: bool) -> list[int]:
    """The ranges' bounds: equal ranges, the first smaller when its process also walks."""
    first = max(0.0, 1 / count - (WALK_SHARE * (1 - 1 / count) if walking else 0))
    return [0] + [int(SPACE * (first + (1 - first) * k / (count - 1)))
                  for k in range(count - 1)] + [SPACE] if count > 1 else [0, SPACE]


def _build(ledger: LedgerReading, views: ReadModels, cut: int,
           limits: Mapping[str, tuple[int, str]], on_page: Callable[[int], None],
           count: int, copied: bool,
           walk: Callable[[], Mapping[str, tuple[int, str]]] | None = None) -> int | None:
    """Replay every order up to `cut` into empty read models (the shadow ones), not
    adopting the histories `limits` names as broken.  With `walk`, this process walks the
    log while the others replay (on the breaks recorded before); None if the walk named
    other breaks (their replays are then stopped and nothing of them is kept)."""
    _start(views)
    done = _replay_ranges(ledger, views, cut, limits, on_page, count, walk)
    if done is not None:
        _finish(views, [(ledger.name, cut)], copied)
    return done


def _replay_ranges(ledger: LedgerReading, views: ReadModels, cut: int,
                   limits: Mapping[str, tuple[int, str]], on_page: Callable[[int], None],
                   count: int,
                   walk: Callable[[], Mapping[str, tuple[int, str]]] | None = None
                   ) -> int | None:
    """`_build`'s replay, into read models started: `count` processes, each the orders
    of one range of ids."""
    edges = _edges(count, walk is not None)
    jobs = [_Range(ledger.opener(), views.url, views.tz_name, cut, low, high, views.settings,
                   limits) for low, high in pairwise(edges)]
    spawned = [spawn("projections.rebuild", job) for job in jobs[1:]]
    running = set(range(len(spawned)))
    done = 0

    def hear(k: int) -> None:
        """One message of worker k: a page projected, or its end."""
        nonlocal done
        try:
            message = spawned[k].pipe.recv()
        except EOFError:
            raise RebuildFailed("a rebuild worker stopped") from None
        if message[0] == "page":
            done += message[1]
            on_page(message[1])
        elif message[0] == "done":
            running.discard(k)
        else:
            raise RebuildFailed(f"a rebuild worker failed:\n{message[1]}")

    def page_done(n: int) -> None:
        nonlocal done
        done += n
        on_page(n)
        for k in list(running):  # the others' progress, as it comes
            while k in running and spawned[k].pipe.poll():
                hear(k)

    try:
        if walk is not None and walk() != limits:
            return None
        _replay(ledger, views, jobs[0], page_done)
        for k in list(running):
            while k in running:
                hear(k)
    finally:
        for worker in spawned:
            worker.stop()
    return done


def _replay(ledger: LedgerReading, views: ReadModels, job: _Range,
            on_page: Callable[[int], None]) -> int:
    """Project the orders of the job's range, a page at a time."""
    done = 0
    after: tuple[UUID, int] = (UUID(int=job.low), 0)
    before = UUID(int=job.high) if job.high < SPACE else None
    page = PAGE
    while True:
        events = ledger.store_log.events_by_order(job.cut, after, page, before)
        if not events:
            return done
        if len(events) == page:  # the last order may go on in the next page: leave it
            last = events[-1].originator_id
            whole = [n for n in events if n.originator_id != last]
            if not whole:  # one order with more events than a page: a bigger page
                page *= 2
                continue
            events = whole
        _project_page(ledger, views, events, job.limits)
        give_back_memory()
        last_id = events[-1].originator_id
        assert isinstance(last_id, UUID)
        after = (last_id, events[-1].originator_version)
        done += len(events)
        on_page(len(events))


def _work(job: _Range, out: Pipe) -> None:
    """`python -m projections.rebuild`: a worker replays its range."""
    ledger = job.store()
    views = ReadModels(job.views, job.tz, job.settings)
    try:
        _replay(ledger, views, job, lambda n: out.send(("page", n)))
    finally:
        views.close()
        ledger.close()


def _start(views: ReadModels) -> None:
    """Empty read models (and scratch table), marked as being rebuilt.  Their indexes are
    built at the end, from all rows at once (`_finish`)."""
    with views.engine.begin() as conn:
        metadata.drop_all(conn)
        _scratch.drop_all(conn)
        for table in metadata.sorted_tables:
            conn.execute(CreateTable(table))
        _scratch.create_all(conn)
        conn.execute(insert(projection_meta).values(
            name=PROJECTION_NAME, schema_version=REBUILDING, timezone=views.tz_name))



def _project_page(ledger: LedgerReading, views: ReadModels, page: Sequence[Notification],
                  limits: Mapping[str, tuple[int, str]]) -> None:
    batch = Batch(views.tz, limits=limits, positions=ledger.positions)
    decode = decoding(ledger.to_domain_event)
    for notification in page:
        fold_recorded(batch, notification, decode)
    _check_heads(ledger, batch, page)
    orders = list(batch.orders.values())
    deltas = [compliance_row(merchant, day, counts)
              for (merchant, day), counts in batch.compliance.items()]
    with views.engine.begin() as conn:
        _check(conn, views)
        RowInserter(order_status, conn)(orders)
        RowInserter(return_cases, conn)(list(batch.cases.values()))
        RowInserter(disputes, conn)(list(batch.disputes.values()))
        RowInserter(violations, conn)(batch.violations)
        RowInserter(lapses, conn)(batch.lapses)
        RowInserter(deadline_changes, conn)(batch.deadline_changes)
        RowInserter(discrepancies, conn)(batch.discrepancies)
        RowInserter(pending_deadlines, conn)(pending_rows(orders))
        RowInserter(integrity_breaks, conn)(list(batch.breaks.values()))
        RowInserter(compliance_deltas, conn)(deltas)
        cover_days(conn, batch.first_day, batch.last_day)


def _check_heads(ledger: LedgerReading, batch: Batch, page: Sequence[Notification]) -> None:
    """The orders whose head record does not name the last event the page holds: events
    missing at the end (unless the next one was recorded after the rebuild's cut, to be
    folded later), or a missing or altered head record (`check_head`).  Their rows stay as
    the events found made them."""
    last: dict[UUID, int] = {}
    for n in page:
        assert isinstance(n.originator_id, UUID)
        last[n.originator_id] = n.originator_version
    heads = ledger.store_log.heads_of(list(last))
    ahead = [(oid, v + 1) for oid, v in last.items()
             if oid in heads and heads[oid].version > v]
    later = ledger.store_log.versions_present(ahead) if ahead else set()
    for oid, version in last.items():
        key = oid.hex
        if key in batch.frozen:
            continue
        if key in batch.limits:  # its events end before the break a walk found
            broken(batch, key, None, *batch.limits[key])
            continue
        if (oid, version + 1) in later:
            continue
        found = check_head(oid, version, bytes.fromhex(batch.orders[key]["history_digest"]),
                           heads.get(oid))
        if found is not None:
            broken(batch, key, None, found.version, found.reason)


def _check(conn: Connection, views: ReadModels) -> None:
    found = conn.execute(select(projection_meta.c.schema_version, projection_meta.c.timezone)
                         .where(projection_meta.c.name == PROJECTION_NAME)).first()
    if found is None or tuple(found) != (REBUILDING, views.tz_name):
        raise RebuildInterrupted("the read models were replaced while they were rebuilt; "
                                 "run `aftersales rebuild` again")


def _finish(views: ReadModels, positions: Sequence[tuple[str, int]], copied: bool = False
            ) -> None:
    """Sum the daily counters, compute the medians, and open the read models at the
    positions (each ledger's, or partition's, name and cut).
    Read models `copied` into others by the swap (SQLite's) get only the index the medians
    read: the swap builds every index on the copy (built here as well, they took a
    twentieth of a 100,000-order rebuild's one-process time)."""
    with views.engine.begin() as conn:
        _check(conn, views)
        sums = [func.sum(compliance_deltas.c[name]).label(name) for name in COUNTERS]
        conn.execute(insert(merchant_compliance).from_select(
            ["merchant_id", "business_day", *COUNTERS],
            select(compliance_deltas.c.merchant_id, compliance_deltas.c.business_day, *sums)
            .group_by(compliance_deltas.c.merchant_id, compliance_deltas.c.business_day)))
        cover_days(conn)  # the days between the pages' spans
        _scratch.drop_all(conn)
        for table in metadata.sorted_tables:
            for index in table.indexes:
                if not copied or index.name == MEDIANS_INDEX:
                    index.create(conn)
        _medians(conn)  # after the indexes: one of them orders the cases for it
        for application, cut in positions:
            if cut:
                views.advance(conn, Tracking(application, cut), None)
        conn.execute(update(projection_meta).where(projection_meta.c.name == PROJECTION_NAME)
                     .values(schema_version=SCHEMA_VERSION))


def _medians(conn: Connection) -> None:
    """Each merchant's median response time per day of decision, from the return cases
    (the runner's `_write_compliance` computes the same, a day at a time)."""
    rows = conn.execute(
        select(return_cases.c.merchant_id, return_cases.c.decided_business_day,
               return_cases.c.response_seconds)
        .where(return_cases.c.decided_business_day.is_not(None))
        .order_by(return_cases.c.merchant_id, return_cases.c.decided_business_day)
        .execution_options(yield_per=MEDIANS_CHUNK))  # streamed (PostgreSQL: server-side)
    setting = update(merchant_compliance).where(
        merchant_compliance.c.merchant_id == bindparam("m"),
        merchant_compliance.c.business_day == bindparam("d")).values(
        median_response_seconds=bindparam("v"))
    groups = groupby(rows, key=lambda row: (row[0], row[1]))
    medians = ({"m": merchant, "d": day, "v": median_seconds(r[2] for r in group)}
               for (merchant, day), group in groups)
    while chunk := list(islice(medians, MEDIANS_CHUNK)):  # memory stays flat
        conn.execute(setting, chunk)

if __name__ == "__main__":
    serve(_work)
