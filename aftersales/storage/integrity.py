"""Checking the whole chained record (SPEC section 11, invariant I11): `aftersales verify`.

Two walks over the store, each holding one page at a time:

- **by order** (the events in key order, beside the head records in the same order): every
  order's events must follow each other's digests and end where its head record says;
  this names each broken order and the first version that does not hold;
- **the log** (the events in position order, `aftersales.storage.logcheck.LogWalk`): each
  event's link must follow the link before it and the event's digest, so that a removed,
  inserted or reordered event breaks it, and the order a removed event belonged to is
  named by the event after it (the breaks a walk finds are recorded, `record_breaks`, and
  those orders are refused from then on; `watch_log` walks only what was recorded since
  the last walk, for `tick` and `anchor`); the last link is the **head digest**, printed
  so that it can be kept elsewhere and checked later (`verify --head`): a history
  rewritten with every digest after it recomputed still has another head.

Events recorded after the walks began (a live ledger) are not checked; their head records
are recognised as such.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from aftersales.storage.chain import (
    ZERO,
    Break,
    Head,
    Row,
    all_missing,
    check_chain,
    check_head,
)
from aftersales.storage.logcheck import LinkRow, LogBreak, LogWalk, as_uuid, break_rows
from aftersales.storage.port import LedgerRecorder

PAGE = 20_000


@dataclass
class Check:
    """What `check` found."""

    events: int = 0
    orders: int = 0
    breaks: list[tuple[Break, str | None]] = field(default_factory=list)  # (break, order id)
    log_breaks: list[LogBreak] = field(default_factory=list)
    head: bytes = ZERO  # the last link of the log
    position: int = 0  # of the last event
    kept_at: int | None = None  # the position whose link is the digest given, if any

    @property
    def intact(self) -> bool:
        return not self.breaks and not self.log_breaks


def check(recorder: LedgerRecorder, upto: int, order_id_of: Callable[[StoredEvent], str | None],
          kept: bytes | None = None, on_progress: Callable[[int], None] = lambda n: None
          ) -> Check:
    """Check every order's chain and the log's, up to position `upto` (the log's end
    when the check began); `kept` is a head digest kept elsewhere, to find in the log."""
    found = Check(position=0)
    _check_orders(recorder, upto, order_id_of, found, on_progress)
    _check_log(recorder, upto, kept, found, on_progress)
    return found


def _orders(recorder: LedgerRecorder, upto: int) -> Iterator[tuple[UUID, list[Row]]]:
    """Each order's events (up to `upto`), in key order."""
    after: tuple[UUID, int] | None = None
    current: UUID | None = None
    rows: list[Row] = []
    while page := recorder.events_by_order(upto, after, PAGE):
        for n in page:
            oid = n.originator_id
            assert isinstance(oid, UUID)
            if oid != current:
                if current is not None:
                    yield current, rows
                current, rows = oid, []
            rows.append(Row(n.originator_version, n.topic, n.state, n.digest))
        last = page[-1]
        assert isinstance(last.originator_id, UUID)
        after = (last.originator_id, last.originator_version)
    if current is not None:
        yield current, rows


def _heads(recorder: LedgerRecorder) -> Iterator[tuple[UUID, Head]]:
    after: UUID | None = None
    while page := recorder.heads_page(after, PAGE):
        yield from page
        after = page[-1][0]


def _merged(recorder: LedgerRecorder, upto: int
            ) -> Iterator[tuple[UUID, list[Row], Head | None]]:
    """Orders and head records side by side, by key (either may be missing)."""
    orders, heads = _orders(recorder, upto), _heads(recorder)
    order, head = next(orders, None), next(heads, None)
    while order is not None or head is not None:
        if head is None or (order is not None and order[0] < head[0]):
            assert order is not None
            yield order[0], order[1], None
            order = next(orders, None)
        elif order is None or head[0] < order[0]:
            yield head[0], [], head[1]
            head = next(heads, None)
        else:
            yield order[0], order[1], head[1]
            order, head = next(orders, None), next(heads, None)


def _check_orders(recorder: LedgerRecorder, upto: int,
                  order_id_of: Callable[[StoredEvent], str | None], found: Check,
                  on_progress: Callable[[int], None]) -> None:
    for oid, rows, head in _merged(recorder, upto):
        found.orders += bool(rows)
        found.events += len(rows)
        on_progress(len(rows))
        broken = None
        if rows:
            broken, last = check_chain(oid, rows)
            if broken is None and not _recorded_since(recorder, oid, rows[-1].version, head):
                broken = check_head(oid, rows[-1].version, last, head)
        elif head is not None and not _recorded_since(recorder, oid, 0, head):
            broken = all_missing(oid, head)
        if broken is not None:
            found.breaks.append((broken, _order_id(oid, rows, order_id_of)))


def _recorded_since(recorder: LedgerRecorder, oid: UUID, last: int, head: Head | None) -> bool:
    """Whether the order's head is ahead of the events walked because its next event was
    recorded after the walk's end (a live ledger), not because events are missing."""
    return (head is not None and head.version > last
            and bool(recorder.versions_present([(oid, last + 1)])))


def _order_id(oid: UUID, rows: list[Row], order_id_of: Callable[[StoredEvent], str | None]
              ) -> str | None:
    """The order number, read from the order's first event if it is there and readable."""
    if not rows or rows[0].version != 1:
        return None
    try:
        return order_id_of(StoredEvent(oid, 1, rows[0].topic, rows[0].state))
    except Exception:  # an altered first event may not even decode
        return None


def _check_log(recorder: LedgerRecorder, upto: int, kept: bytes | None, found: Check,
               on_progress: Callable[[int], None]) -> None:
    walk = walk_log(recorder, upto, on_progress, kept=kept, found=found)
    found.log_breaks = walk.breaks
    found.head, found.position = walk.head, walk.position


def walk_log(recorder: LedgerRecorder, upto: int | None = None,
             on_progress: Callable[[int], None] = lambda n: None,
             start: LinkRow | None = None, kept: bytes | None = None,
             found: Check | None = None) -> LogWalk:
    """Walk the log chain from after `start` (None: the beginning) up to position `upto`
    (None: its end); with `kept`, note in `found` where that link is."""
    walk = LogWalk(recorder.missing_events)
    position = 0
    if start is not None:
        walk.previous, walk.head, walk.position = start, start.link or ZERO, start.id
        position = start.id
    while page := recorder.links_page(position, PAGE):
        rows = page if upto is None else [r for r in page if r.id <= upto]
        walk.take(rows)
        on_progress(len(rows))
        if kept is not None and found is not None:
            for row in rows:
                if row.link == kept:
                    found.kept_at = row.id
        if len(rows) < len(page):
            break
        position = page[-1].id
    return walk


def order_names(recorder: LedgerRecorder, upto: int, originator_ids: set[UUID],
                order_id_of: Callable[[StoredEvent], str | None]) -> dict[UUID, str]:
    """The order numbers of these orders, read from their first events where readable."""
    names: dict[UUID, str] = {}
    for oid in sorted(originator_ids):
        first = recorder.events_by_order(upto, (oid, 0), 1)
        if first and first[0].originator_id == oid:
            n = first[0]
            name = _order_id(oid, [Row(n.originator_version, n.topic, n.state, n.digest)],
                             order_id_of)
            if name:
                names[oid] = name
    return names


def record_breaks(recorder: LedgerRecorder, breaks: list[LogBreak], found_at: datetime
                  ) -> int:
    """Record the orders a walk's breaks name (`ledger_breaks`): every later load of them
    is refused.  How many were not recorded before."""
    rows = break_rows(breaks, found_at.astimezone(UTC).isoformat())
    return recorder.record_breaks(rows) if rows else 0


def watch_log(recorder: LedgerRecorder, found_at: datetime) -> LogWalk:
    """Walk the log from where the last walk found it holding (if that position still has
    the link it had, else from the beginning) to its end, record the breaks found, and
    remember the end.  The sweep does this before every run."""
    start, changed = None, None
    checked = recorder.log_checked()
    if checked is not None:
        row = next(iter(recorder.links_page(checked.id - 1, 1)), None)
        if row is not None and row.id == checked.id and row.link == checked.link:
            start = row
        else:  # what an earlier walk found is no longer there: walk it all again
            changed = _checked_gone(recorder, checked, row)
    walk = walk_log(recorder, start=start)
    if changed is not None:
        walk.breaks.insert(0, changed)
    record_breaks(recorder, walk.breaks, found_at)
    if walk.previous is not None and walk.previous.link is not None:
        recorder.set_log_checked(walk.previous)
    return walk


def _checked_gone(recorder: LedgerRecorder, checked: LinkRow, row: LinkRow | None
                  ) -> LogBreak:
    """The break of a log whose event at the position the last walk reached was removed
    (at the log's end, no later event names it) or changed since."""
    ref = (checked.originator_id, checked.version)
    if row is not None and row.id == checked.id:
        return LogBreak(checked.id, as_uuid(row.originator_id), row.version, (
            f"the event at position {checked.id} has another log link than when the log "
            "was last walked: the history up to it was rewritten"),
            ((row.originator_id, row.version),))
    gone = bool(recorder.missing_events([ref]))
    return LogBreak(checked.id, as_uuid(checked.originator_id), checked.version, (
        f"the event at position {checked.id} (order {as_uuid(checked.originator_id)} version "
        f"{checked.version}), which the last walk of the log reached, "
        + ("was removed" if gone else "was moved")), (ref,))
