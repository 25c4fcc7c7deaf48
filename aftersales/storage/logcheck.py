"""An order's events beside their neighbours in the log (SPEC section 11, invariant I11).

Each stored event's log link is SHA-256(link before it ‖ its digest), and each event also
records which event was before it in the log and that event's link (`prev`: order and
version; `prev_link`).  So every link can be checked on its own (`link == SHA-256(prev_link
‖ digest)`: an event rewritten with its order's digests recomputed fails it), and each
pair of neighbours must agree (`prev` names the event before, `prev_link` is its link: an
event rewritten with its own link recomputed too fails this with the event after it).
Where the event named before is missing from the store, it was removed, and the order it
belonged to is named, even when that order's head record was set back to hide it.

- **On load** (`check_places`), an order's events are checked, in the same read as the
  events themselves, on their own and against the events on either side of them; an
  event after a removed one of another order still checks on its own.
- **In log order** (`LogWalk`: `verify`, `rebuild`, `anchor`, the sweep), every event and
  every pair is checked, and each break is attributed; the walks record the orders they
  name in the store (`ledger_breaks`), and every later load of them is refused.

Two neighbours that do not agree, each holding on its own, mean that one of the two was
rewritten with its link recomputed: both orders are named (nothing tells which).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from aftersales.storage.chain import ZERO, Break, Head, HeadCache, Row, check_history, link

_SHA256 = hashlib.sha256

#: A named tuple made without the Python `__new__` its class generates: the reads that
#: check an order build one per event and neighbour (half the time of `Placed(...)`).
NEW = tuple.__new__

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
    prev_link: bytes | None


def holds(event: Beside | LinkRow) -> bool:
    """Whether the event's link follows the link it records as the one before it."""
    return event.digest is not None and event.link is not None \
        and event.prev_link is not None and event.link == link(event.prev_link, event.digest)


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


def placements(events: Sequence[Beside], near: Mapping[int, Beside],
               nearest: Callable[[int, int], Beside | None]) -> list[Placed]:
    """Each of an order's events with the events before and after it in the log: from
    `near` (events of the log by position, the order's own among them), else (no event at
    the position next to it: a removed one, a gap in the ids, the log's end)
    `nearest(position, step)` looks the nearest one up."""
    get = near.get
    return [NEW(Placed, (e, get(e.position - 1) or (None if e.position <= 1
                                                     else nearest(e.position, -1)),
                         get(e.position + 1) or nearest(e.position, 1))) for e in events]


def check_places(originator_id: UUID | str, places: Sequence[Placed],
                 missing: Callable[[Ref], bool], key: Any = None) -> Break | None:
    """Where an order's events (in version order, their own chain already checked) stop
    fitting the log around them, if they do.  `missing(ref)`: whether that event is not in
    the store at any position (a recorded predecessor that is not the event before and is
    missing is another order's removed event: that order's break, named by the walks).
    `key`: the order's id as the places name orders (default: `originator_id`)."""
    key = originator_id if key is None else key
    last_position = 0
    for event, before, _ in places:  # each event on its own and with the one before it
        # The usual case, without a call: it follows its own recorded link, and that
        # is the link of the event there (a load of 200 events: 0.2 ms less).
        prev, prev_link, digest_ = event.prev, event.prev_link, event.digest
        if not (prev_link is not None and digest_ is not None and event.link is not None
                and event.position > last_position
                and event.link == _SHA256(prev_link + digest_).digest()
                and ((prev is None and before is None and prev_link == ZERO)
                     or (before is not None and prev is not None and prev[1] == before[2]
                     and prev[0] == before[1] and prev_link == before.link))):
            broken = _follows_before(originator_id, key, event, before, missing)
            if broken is None and event.position <= last_position:
                broken = Break(originator_id, event.version, "the event stands before "
                               "its order's previous event in the log (reordered)")
            if broken is not None:
                return broken
        last_position = event.position
    versions: set[int] | None = None
    for event, _, after in places:  # then the one after each with it
        if after is None or (after.prev is not None and after.prev[1] == event.version
                             and after.prev[0] == key and after.prev_link == event.link):
            continue
        if versions is None:
            versions = {p.event.version for p in places}
        broken = _followed_by(originator_id, key, event, after, versions)
        if broken is not None:
            return broken
    return None


def _follows_before(originator_id: UUID | str, key: Any, event: Beside,
                    before: Beside | None, missing: Callable[[Ref], bool]) -> Break | None:
    version = event.version
    if event.link is None or event.prev_link is None:
        return Break(originator_id, version, "the event has no log link: it was removed "
                                             "(a chained store always has one)")
    if not holds(event):
        return Break(originator_id, version, (
            f"its log link (position {event.position}) does not follow the link it "
            "records before it: the event was rewritten with its order's digests "
            "recomputed"))
    found = None if before is None else (before.originator_id, before.version)
    if event.prev == found:
        if before is not None and before.link is None:
            return None  # that event's own break
        if event.prev_link != (ZERO if before is None else before.link):
            return Break(originator_id, version, (
                f"its log link (position {event.position}) does not follow the event "
                f"before it ({_name(found)}): this event or that one was rewritten with "
                "its log link recomputed"))
    elif event.prev is None or event.prev[0] == key or not missing(event.prev):
        return Break(originator_id, version, (
            f"its record of the event before it in the log ({_name(event.prev)}) is not "
            f"the event there ({_name(found)}): the log was reordered or this record "
            "changed"))
    return None


def _followed_by(originator_id: UUID | str, key: Any, event: Beside, after: Beside | None,
                 versions: set[int]) -> Break | None:
    if after is None or event.link is None:
        return None
    version = event.version
    if after.prev == (key, version):
        if after.prev_link is not None and after.prev_link != event.link:
            return Break(originator_id, version, (
                f"the log's next event (position {after.position}) does not follow it: "
                "this event was rewritten with its order's digests and log link "
                "recomputed, or that one was changed"))
    elif after.prev is not None and after.prev[0] == key:
        gone = after.prev[1]
        if gone in versions:
            return Break(originator_id, version, (
                f"the log's next event (position {after.position}) names this order's "
                f"event {gone} as the one before it: the log was reordered"))
        return Break(originator_id, gone, (
            f"event {gone} was removed: the log's event at position {after.position} "
            "names it as the event before it"))
    return None


def checked(rows: Mapping[UUID | str, Sequence[Row]], heads: Mapping[UUID | str, Head],
            cache: HeadCache, places: Mapping[Any, Sequence[Placed]] | None = None,
            recorded: Mapping[Any, tuple[int, str]] | None = None,
            missing: Callable[[Ref], bool] = lambda ref: False,
            keys: Mapping[Any, Any] | None = None) -> dict[Any, list[StoredEvent] | Break]:
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
            broken = check_places(oid, places.get(oid, ()), missing,
                                  None if keys is None else keys.get(oid))
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
    """One event as the log walk reads it.  Its order's id may be the store's hex text
    (SQLite's): building a UUID per row was a third of a walk (3.2 s for 522,333 events,
    cProfile), and the walk only compares ids; a break names UUIDs (`LogBreak`)."""

    id: int
    originator_id: UUID | str
    version: int
    digest: bytes | None
    link: bytes | None
    prev: Ref | None = None
    prev_link: bytes | None = None


@dataclass(frozen=True)
class LogBreak:
    """Where the log chain does not hold: the event at `position`; `blamed`, the events
    (order, version) the break is attributed to."""

    position: int
    originator_id: UUID
    version: int
    reason: str
    blamed: tuple[tuple[Any, int], ...] = ()

    def __post_init__(self) -> None:  # the walk's rows may hold ids as stored hex text
        object.__setattr__(self, "blamed", tuple((as_uuid(o), v) for o, v in self.blamed))


def as_uuid(oid: UUID | str) -> UUID:
    """An order's id as a UUID (from the stored hex text of SQLite's rows)."""
    return oid if isinstance(oid, UUID) else UUID(oid)


@dataclass
class LogWalk:
    """The log chain, checked in log order from a position whose link is known (the
    start: none, ZERO).  Feed it pages (`take`); `breaks` says where it does not hold and
    whom each break names.  `missing(refs)`: which of these events are not in the store
    at any position."""

    missing: Callable[[Collection[tuple[Any, int]]], set[tuple[Any, int]]]
    previous: LinkRow | None = None
    head: bytes = ZERO
    position: int = 0
    breaks: list[LogBreak] = field(default_factory=list)

    def take(self, page: Sequence[LinkRow]) -> None:
        previous = self.previous
        for row in page:
            # The usual case without a call: the row follows the one before it, and its
            # link is the hash of the two (a walk of 522,333 events: 2.1 s to 1.7 s).
            if not (previous is not None and row.prev_link is not None
                    and row.digest is not None and row.link is not None
                    and row.prev_link == previous.link
                    and row.prev == (previous.originator_id, previous.version)
                    and row.link == _SHA256(row.prev_link + row.digest).digest()):
                found = self._check(row, previous)
                if found is not None:
                    self.breaks.append(found)
            previous = row
        if page:
            self.head, self.position = page[-1].link or ZERO, page[-1].id
        self.previous = previous

    def _check(self, row: LinkRow, previous: LinkRow | None) -> LogBreak | None:
        mine: tuple[tuple[Any, int], ...] = ((row.originator_id, row.version),)
        expected = None if previous is None else (previous.originator_id, previous.version)

        def broken(reason: str, blamed: tuple[tuple[Any, int], ...] = mine) -> LogBreak:
            return LogBreak(row.id, as_uuid(row.originator_id), row.version, reason, blamed)

        if row.digest is None or row.link is None or row.prev_link is None:
            return broken("the event has no digest or log link: they were removed (a "
                          "chained store always has them)")
        if not holds(row):
            return broken("the event's log link does not follow the link it records "
                          "before it: it was rewritten with its order's digests recomputed")
        if row.prev == expected:
            if previous is not None and previous.link is None:
                return None  # that event's own break
            if row.prev_link != (ZERO if previous is None else previous.link):
                return broken("the log chain breaks here: this event, or the one before it, "
                              "was rewritten with its log link recomputed",
                              mine if previous is None else (
                                  (previous.originator_id, previous.version), *mine))
            return None
        prev = row.prev
        if prev is not None and prev[0] != row.originator_id \
                and self.missing([(prev[0], prev[1])]):
            return broken(f"the event before it in the log, {_name(prev)}, was removed",
                          ((prev[0], prev[1]),))
        return broken(f"its record of the event before it ({_name(prev)}) is not the event "
                      f"there ({_name(expected)}): the log was reordered or this record "
                      "changed")


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
