"""Running the reporting projection: catch up, follow, rebuild, verify.

The runner reads the ledger's notification log a page at a time (memory does not grow with
the history) and hands each page to the projection as one batch.  Following a SQLite store
polls (eventsourcing's SQLite recorder has no `subscribe()`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from threading import Event
from typing import Any, NamedTuple

from sqlalchemy import Connection, String, inspect, select

from aftersales.errors import Unsettled
from aftersales.settings import PROJECTION_BATCH
from aftersales.storage.reading import LedgerReading
from projections.database import ReadModels, StaleTracking
from projections.fold import decoding
from projections.live import ReportingProjection
from projections.rebuild import rebuild
from projections.schema import (
    READ_MODELS,
    metadata,
    projection_meta,
    projection_tracking,
)

#: Events per transaction (the measured reason: aftersales/settings.py).
BATCH = PROJECTION_BATCH


class Runner:
    """The reporting projection of one ledger."""

    def __init__(self, ledger: LedgerReading, views: ReadModels, batch: int = BATCH,
                 prepare: bool = True) -> None:
        self.ledger, self.views, self.batch = ledger, views, batch
        self.projection = ReportingProjection(view=views)
        self.decode = decoding(ledger.to_domain_event)
        if prepare:
            views.create_table()
            if views.outdated:  # the upgrade path: old tables serve until the swap
                self.rebuild()
                views.outdated, views.rebuilt_for_version = False, True

    @property
    def position(self) -> int:
        return self.views.max_tracking_id(self.ledger.name) or 0

    def lag(self) -> int:
        """Events recorded but not yet projected."""
        return (self.ledger.store_log.max_notification_id() or 0) - self.position

    def catch_up(self, on_batch: Callable[[int], None] = lambda n: None,
                 stop: Event | None = None, upto: int | None = None) -> int:
        """Project every recorded event not yet projected (up to position `upto`, if
        given), checking `stop` between batches; return how many."""
        done = 0
        while stop is None or not stop.is_set():
            expected = self.views.max_tracking_id(self.ledger.name)
            if upto is not None and (expected or 0) >= upto:
                return done
            page = self.ledger.store_log.select_notifications(
                start=expected, limit=self.batch, stop=upto, inclusive_of_start=False)
            if not page:
                return done
            try:
                self.projection.process_batch(page, self.ledger.name, expected, self.decode,
                                              self.ledger.positions)
            except StaleTracking:
                continue  # another runner projected them: carry on from its position
            done += len(page)
            on_batch(len(page))
        return done

    def follow(self, stop: Event, poll: float = 0.5,
               on_batch: Callable[[int], None] = lambda n: None,
               on_idle: Callable[[], None] = lambda: None) -> None:
        """Catch up, then keep projecting new events until `stop` is set.  On PostgreSQL it
        sleeps until the events table's NOTIFY (at most `poll` seconds); elsewhere it polls.
        `on_idle` is called each time it has caught up, before it waits."""
        with self._waiter(stop) as wait:
            while not stop.is_set():
                if self.catch_up(on_batch, stop) == 0:
                    on_idle()
                    wait(poll)

    @contextmanager
    def _waiter(self, stop: Event) -> Iterator[Callable[[float], object]]:
        listen = getattr(self.ledger.store_log, "listen", None)
        if listen is None:
            yield stop.wait
            return
        with listen() as wait:
            yield wait

    def rebuild(self, on_batch: Callable[[int], None] = lambda n: None,
                workers: int | None = None, partitions: Sequence[LedgerReading] = ()
                ) -> int:
        """Drop every read model and replay all events (with this process's schema version
        and time zone), order by order, by `workers` processes (`projections.rebuild`);
        a partitioned ledger's from each of its `partitions`."""
        return rebuild(self.ledger, self.views, on_batch, workers, partitions)


class Lag(NamedTuple):
    """How far the read models are behind the ledger."""

    #: The last notification id projected (0: none).
    position: int
    #: The ledger's last notification id (0: no event).
    head: int
    #: When the first event not yet projected was recorded (None: none, or unreadable).
    oldest: datetime | None

    @property
    def events(self) -> int:
        """Events recorded but not yet projected (notification ids: PostgreSQL's may have
        gaps, so this counts ids, at least the events)."""
        return max(0, self.head - self.position)

    def seconds(self, now: datetime) -> float | None:
        """Wall clock `now` minus the recorded time of the oldest event not yet projected:
        0 when there is none; None when its time cannot be read."""
        if self.events == 0:
            return 0.0
        if self.oldest is None:
            return None
        return max(0.0, (now - self.oldest).total_seconds())


def lag_behind(ledger: LedgerReading, position: int) -> Lag:
    """The ledger's lead over read models at `position`: two indexed reads (the last
    notification id; the first row after `position`)."""
    head = ledger.store_log.max_notification_id() or 0
    return Lag(position, head, recorded_after(ledger, position) if head > position else None)


def recorded_after(ledger: LedgerReading, position: int) -> datetime | None:
    """When the first event after log position `position` was recorded: its `timestamp`,
    the wall clock as the ledger recorded it (what `history` shows as recorded_at).  None
    when there is none, or its state cannot be read (`verify` says why)."""
    page = ledger.store_log.select_notifications(start=position, limit=1,
                                                inclusive_of_start=False)
    if not page:
        return None
    try:
        at = getattr(ledger.to_domain_event(page[0]), "timestamp", None)
    except Exception:  # a broken record: its lag in time is unknown, not an error here
        return None
    return at if isinstance(at, datetime) else None


class Projected(NamedTuple):
    """What the read models' store holds, read without creating anything."""

    #: Whether the read models were created (`project`, `db init`, or a command that
    #: projects): a ledger ingested with --no-project has none yet.
    created: bool
    #: The schema version they were built with (None: not created).
    schema_version: int | None
    #: The business time zone they count days in (None: not created).
    timezone: str | None
    #: The last notification id projected (0: none).
    position: int


def projected(views: ReadModels, name: str) -> Projected:
    """The read models' state for the ledger called `name`, creating nothing."""
    with views.engine.connect() as conn:
        found = inspect(conn)
        if not (found.has_table(projection_meta.name)
                and found.has_table(projection_tracking.name)):
            return Projected(False, None, None, 0)
        meta = ReadModels._meta(conn)
        position = ReadModels._max(conn, name) or 0
    if meta is None:
        return Projected(False, None, None, position)
    return Projected(True, meta[0], meta[1], position)


def verify(ledger: LedgerReading, views: ReadModels, limit: int = 20, attempts: int = 5,
           on_page: Callable[[int], None] = lambda n: None,
           partitions: Sequence[LedgerReading] = ()) -> list[str]:
    """Rebuild into a scratch database and compare row by row with the live read models.

    Returns the differences (at most `limit` per table); empty when they agree.  The live
    models are first caught up; the scratch ones are built up to the live position, and the
    comparison counts only if no batch was projected while it ran (else it is repeated).
    `on_page` hears how many events each batch of the scratch rebuild replayed.  A
    partitioned ledger's read models are compared with a replay of every one of its
    `partitions`, each up to its own position."""
    ledgers = list(partitions) or [ledger]
    for one in ledgers:
        Runner(one, views).catch_up()
    for _ in range(attempts):
        positions = [views.max_tracking_id(one.name) or 0 for one in ledgers]
        with tempfile.TemporaryDirectory() as tmp:
            scratch = ReadModels(f"sqlite:///{Path(tmp) / 'verify.db'}", views.tz_name)
            try:
                for one, position in zip(ledgers, positions, strict=True):
                    Runner(one, scratch).catch_up(on_page, upto=position)
                differences = _compare(views, scratch, limit)
            finally:
                scratch.close()
        if [views.max_tracking_id(one.name) or 0 for one in ledgers] == positions:
            return differences
    raise Unsettled(f"the read models moved during each of {attempts} comparisons; "
                    "run verify again when fewer events arrive")


def _compare(live: ReadModels, scratch: ReadModels, limit: int) -> list[str]:
    """The tables' differences, row by row: both read in key order side by side (a
    100,000-order ledger's verify held both copies of every table whole: 627 MB at its
    peak), each table's listed by key as text."""
    out: list[str] = []
    with live.engine.connect() as a, scratch.engine.connect() as b:
        for name, keys in READ_MODELS.items():
            found = _differences(name, _keyed(a, name, keys), _keyed(b, name, keys))
            if found is None:  # the two orders disagree: compare the tables whole
                found = _differences(name, iter(sorted(_keyed(a, name, keys))),
                                     iter(sorted(_keyed(b, name, keys))))
                assert found is not None
            found.sort(key=lambda item: str(item[0]))
            out.extend(text for _, text in found[:limit])
            if len(found) > limit:
                out.append(f"{name}: {len(found) - limit} more differences")
    return out


Keyed = tuple[tuple[Any, ...], dict[str, Any]]


def _keyed(conn: Connection, name: str, keys: tuple[str, ...]) -> Iterator[Keyed]:
    """A table's rows in key order (text by code point, as Python compares it), streamed."""
    table = metadata.tables[name]
    text = conn.dialect.name == "postgresql"  # its text sorts by the locale's rules
    order = [table.c[k].collate("C") if text and isinstance(table.c[k].type, String)
             else table.c[k] for k in keys]
    rows = conn.execution_options(yield_per=2000).execute(select(table).order_by(*order))
    for r in rows.mappings():
        yield tuple(r[k] for k in keys), dict(r)


def _differences(name: str, live: Iterator[Keyed], scratch: Iterator[Keyed]
                 ) -> list[tuple[tuple[Any, ...], str]] | None:
    """The rows in which two key-ordered streams differ, by key; None if a stream is
    not in the order Python compares keys in (then nothing is concluded from it)."""
    found: list[tuple[tuple[Any, ...], str]] = []
    x, y = next(live, None), next(scratch, None)
    last_x = last_y = None
    while x is not None or y is not None:
        if (x is not None and last_x is not None and not last_x < x[0]) or \
                (y is not None and last_y is not None and not last_y < y[0]):
            return None
        if y is None or (x is not None and x[0] < y[0]):
            assert x is not None
            found.append((x[0], f"{name} {x[0]}: extra row (rebuild has none)"))
            last_x, x = x[0], next(live, None)
        elif x is None or y[0] < x[0]:
            found.append((y[0], f"{name} {y[0]}: missing (rebuild has it)"))
            last_y, y = y[0], next(scratch, None)
        else:
            if x[1] != y[1]:
                cols = [c for c in x[1] if x[1][c] != y[1][c]]
                found.append((x[0], f"{name} {x[0]}: " + ", ".join(
                    f"{c} is {x[1][c]!r}, rebuild says {y[1][c]!r}" for c in cols)))
            last_x, x = x[0], next(live, None)
            last_y, y = y[0], next(scratch, None)
    return found
