"""An order's events beside their neighbours in the log (SPEC section 11, invariant I11).

Each stored event's log link follows the link of the event before it in the log, and each
event also records **which** event that was (`prev`: its order and version).  So:

- **on load** (`check_places`), an order's events are checked against the events on either
  side of them in the log, in the same read as the events themselves: an event rewritten
  with its order's digests and head record recomputed no longer follows the link before it
  (or, if its own link was recomputed too, the next event no longer follows it);
- **in log order** (`LogWalk`: `verify`, `rebuild`, `anchor`, the sweep), a link that does
  not follow is attributed: where an event's recorded predecessor is missing from the
  store, that event was removed, and the order it belonged to is named, even when its
  head record was rewritten to hide it (which its own load cannot see).  The walks record
  such breaks in the store (`ledger_breaks`), and every later load of the order is refused.

A link between two events that does not hold, with the right predecessor recorded, means
that one of the two was rewritten: both orders are named (nothing tells which).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from aftersales.storage.chain import ZERO, Break, Head, HeadCache, Row, check_history, link

#: An event by (originator id, version).
Ref = tuple[UUID | str, int]


class Beside(NamedTuple):
    """An event of the log as the checks read it: its position, key, digests and its
    recorded predecessor (None: it says it is the log's first)."""

    position: int
    originator_id: UUID | str
    version: int
    digest: bytes | None
    link: bytes | None
    prev: Ref | None


class Placed(NamedTuple):
    """One of an order's events in the log, with the events before and after it (None:
    none there)."""

    event: Beside
    before: Beside | None
    after: Beside | None


def _name(ref: Ref | None) -> str:
    return "none" if ref is None else f"order {_hex(ref[0])} version {ref[1]}"


def _hex(oid: UUID | str) -> str:
    return oid.hex if isinstance(oid, UUID) else oid


def check_places(originator_id: UUID | str, places: Sequence[Placed],
                 removed_elsewhere: Callable[[Ref], bool]) -> Break | None:
    """Where an order's events (in version order, their own chain already checked) stop
    fitting the log around them, if they do.  `removed_elsewhere(ref)`: whether a recorded
    predecessor that is not the event before is another order's removed event (its head
    record no longer reaches it): that gap is the other order's break, found by the walks;
    anything else is this order's."""
    versions = {p.event.version for p in places}
    last_position = 0
    for event, before, _ in places:  # each event against the one before it, first
        broken = _follows_before(originator_id, event, before, removed_elsewhere)
        if broken is None and event.position <= last_position:
            broken = Break(originator_id, event.version, "the event stands before its "
                           "order's previous event in the log (reordered)")
        if broken is not None:
            return broken
        last_position = event.position
    for event, _, after in places:  # then the one after each against it
        broken = _followed_by(originator_id, event, after, versions)
        if broken is not None:
            return broken
    return None


def _follows_before(originator_id: UUID | str, event: Beside, before: Beside | None,
                    removed_elsewhere: Callable[[Ref], bool]) -> Break | None:
    version = event.version
    if event.link is None:
        return Break(originator_id, version, "the event has no log link: it was removed "
                                             "(a chained store always has one)")
    found = None if before is None else (before.originator_id, before.version)
    if event.prev == found:
        if event.digest is not None and (before is None or before.link is not None) \
                and event.link != link(ZERO if before is None else before.link or ZERO,
                                       event.digest):
            return Break(originator_id, version, (
                f"its log link (position {event.position}) does not follow the event "
                "before it: this event was rewritten with its order's digests "
                f"recomputed, or that one ({_name(found)}) was changed"))
    elif event.prev is None or event.prev[0] == originator_id \
            or not removed_elsewhere(event.prev):
        return Break(originator_id, version, (
            f"its record of the event before it in the log ({_name(event.prev)}) is not "
            f"the event there ({_name(found)}): the log was reordered or this record "
            "changed"))
    return None


def _followed_by(originator_id: UUID | str, event: Beside, after: Beside | None,
                 versions: set[int]) -> Break | None:
    if after is None or event.link is None:
        return None
    version = event.version
    if after.prev == (originator_id, version):
        if after.digest is not None and after.link is not None \
                and after.link != link(event.link, after.digest):
            return Break(originator_id, version, (
                f"the log's next event (position {after.position}) does not follow it: "
                "this event was rewritten with its order's digests and log link "
                "recomputed, or that one was changed"))
    elif after.prev is not None and after.prev[0] == originator_id:
        missing = after.prev[1]
        if missing in versions:
            return Break(originator_id, version, (
                f"the log's next event (position {after.position}) names this order's "
                f"event {missing} as the one before it: the log was reordered"))
        return Break(originator_id, missing, (
            f"event {missing} was removed: the log's event at position {after.position} "
            "names it as the event before it"))
    return None


def checked(rows: Mapping[UUID | str, Sequence[Row]], heads: Mapping[UUID | str, Head],
            cache: HeadCache, places: Mapping[Any, Sequence[Placed]] | None = None,
            recorded: Mapping[Any, tuple[int, str]] | None = None,
            removed_elsewhere: Callable[[Ref], bool] = lambda ref: False
            ) -> dict[Any, list[StoredEvent] | Break]:
    """The orders read (rows, head records, their events' places in the log and the
    breaks recorded for them, from one snapshot of the store), each as its stored events
    or, where its history fails a check, its `Break`; the heads of the good ones go into
    the cache."""
    found: dict[Any, list[StoredEvent] | Break] = {}
    good: list[tuple[UUID | str, Head]] = []
    for oid in rows.keys() | heads.keys():
        history = rows.get(oid, ())
        broken = check_history(oid, history, heads.get(oid))
        if broken is None and places is not None:
            broken = check_places(oid, places.get(oid, ()), removed_elsewhere)
        if broken is None and recorded and oid in recorded:
            version, reason = recorded[oid]
            broken = Break(oid, version, f"{reason} (found by a walk of the log, recorded "
                                         "in ledger_breaks)")
        if broken is not None:
            found[oid] = broken
            continue
        found[oid] = [StoredEvent(oid, r.version, r.topic, r.state) for r in history]
        good.append((oid, heads[oid]))
    cache.put_many(good)
    return found


class LinkRow(NamedTuple):
    """One event as the log walk reads it."""

    id: int
    originator_id: UUID
    version: int
    digest: bytes | None
    link: bytes | None
    prev: Ref | None = None


@dataclass(frozen=True)
class LogBreak:
    """Where the log chain does not hold: the event at `position`; `blamed`, the events
    (order, version) the break is attributed to."""

    position: int
    originator_id: UUID
    version: int
    reason: str
    blamed: tuple[tuple[UUID, int], ...] = ()


@dataclass
class LogWalk:
    """The log chain, checked in log order from a position whose link is known (the
    start: none, ZERO).  Feed it pages (`take`); `breaks` says where it does not hold and
    whom each break names.  `missing(refs)`: which of these events are not in the store
    at any position."""

    missing: Callable[[Collection[tuple[UUID, int]]], set[tuple[UUID, int]]]
    previous: LinkRow | None = None
    head: bytes = ZERO
    position: int = 0
    breaks: list[LogBreak] = field(default_factory=list)

    def take(self, page: Sequence[LinkRow]) -> None:
        previous = self.previous
        for row in page:
            expected = None if previous is None else (previous.originator_id,
                                                      previous.version)
            found = self._check(row, previous, expected)
            if isinstance(found, str):  # a gap: is the event it names anywhere?
                gone = self.missing([(UUID(str(row.prev[0])), row.prev[1])]
                                    if row.prev is not None else [])
                found = self._gap(row, expected, gone)
            if found is not None:
                self.breaks.append(found)
            previous = row
            self.head, self.position = row.link or ZERO, row.id
        self.previous = previous

    def _check(self, row: LinkRow, previous: LinkRow | None, expected: Ref | None
               ) -> LogBreak | str | None:
        mine = ((row.originator_id, row.version),)
        if row.digest is None or row.link is None:
            return LogBreak(row.id, row.originator_id, row.version,
                            "the event has no digest or log link: they were removed (a "
                            "chained store always has them)", mine)
        if row.prev != expected:
            return "gap"
        if previous is not None and previous.link is None:
            return None  # the link before is gone (that event's break): nothing to follow
        before = ZERO if previous is None else previous.link or ZERO
        if row.link != link(before, row.digest):
            both = mine if previous is None else ((previous.originator_id,
                                                   previous.version), *mine)
            return LogBreak(row.id, row.originator_id, row.version, (
                "the log chain breaks here: this event, or the one before it, was "
                "rewritten with its order's digests recomputed"), both)
        return None

    @staticmethod
    def _gap(row: LinkRow, expected: Ref | None, gone: set[tuple[UUID, int]]) -> LogBreak:
        mine = ((row.originator_id, row.version),)
        prev = row.prev
        if prev is not None and (UUID(str(prev[0])), prev[1]) in gone:
            victim = (UUID(str(prev[0])), prev[1])
            return LogBreak(row.id, row.originator_id, row.version, (
                f"the event before it in the log, {_name(prev)}, was removed"), (victim,))
        return LogBreak(row.id, row.originator_id, row.version, (
            f"its record of the event before it ({_name(prev)}) is not the event there "
            f"({_name(expected)}): the log was reordered or this record changed"), mine)


class BreakRow(NamedTuple):
    """A break a walk of the log found and recorded (`ledger_breaks`): the order, the
    first version that does not hold, the log position where it was seen, why, and
    when (aware UTC, text)."""

    originator_id: UUID
    version: int
    position: int
    reason: str
    found_at: str


def break_rows(breaks: Sequence[LogBreak], found_at: str) -> list[BreakRow]:
    """One row per order a walk's breaks name (its first version named)."""
    rows: dict[UUID, BreakRow] = {}
    for b in breaks:
        for oid, version in b.blamed:
            if oid not in rows or version < rows[oid].version:
                rows[oid] = BreakRow(oid, version, b.position, b.reason, found_at)
    return sorted(rows.values())
