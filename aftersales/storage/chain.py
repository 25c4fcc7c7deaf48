"""The chained record (SPEC section 11): nobody changes history unnoticed.

Every stored event carries two digests, computed by the recorder when it inserts the event:

    digest(e) = SHA-256(digest of the order's previous event ‖ order id ‖ version ‖ topic ‖ state)
    link(e)   = SHA-256(link of the log's previous event ‖ digest(e))

and beside them the log's previous event: its order and version, and its link (`prev`,
`prev_link`), so that each event's link can be checked on its own and the event before
it named even when that one was removed (`aftersales.storage.logcheck`).

(the first event of an order, and of the log, follows 32 zero bytes).  The order chain binds
each event to its order's history: changing a byte of an event, or removing, inserting or
reordering an order's events, breaks it at that version.  The log chain binds every event to
the whole log before it, across orders, so removing or reordering any event breaks it; its
last link is the **head digest**, which `aftersales verify` prints and can check against a
copy kept elsewhere (`verify --head`): rewriting history and every digest after it still
changes the head.  Each order's last version and digest are also kept in a head record
(`ledger_heads`), written in the same transaction, so that removing an order's last events
is seen too.

An order's events are checked against their digests and its head record every time the
order is loaded (`check_history`), and against the log links beside them
(`aftersales.storage.logcheck`); a broken order is refused (`IntegrityBroken`), and the
others keep working.  Each event also names the event before it in the log, so that the
walks of the log (`aftersales.storage.integrity`: `verify`, `rebuild`, `anchor`, `tick`)
name the order an event was removed from, and record it.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple
from uuid import UUID

ZERO = bytes(32)
_SHA256 = hashlib.sha256


def id_bytes(originator_id: UUID | str) -> bytes:
    """An originator id as the digest reads it (a UUID's 16 bytes, else its UTF-8 text),
    prefixed by its length."""
    raw = originator_id.bytes if isinstance(originator_id, UUID) else originator_id.encode()
    return len(raw).to_bytes(2, "big") + raw


def digest(previous: bytes, ident: bytes, version: int, topic: str, state: bytes) -> bytes:
    """The order-chain digest of an event (`ident` from `id_bytes`)."""
    name = _NAMES.get(topic) or _named(topic)
    return _SHA256(b"".join((previous, ident, version.to_bytes(8, "big", signed=True), name,
                             state))).digest()


#: A topic as the digest reads it (its length, then its UTF-8 text), kept for the few
#: topics there are: every event's digest is computed on record and checked on each read
#: (a 200-event order read as of a time: 0.9 of 4.6 ms profiled in `digest`).
_NAMES: dict[str, bytes] = {}


def _named(topic: str) -> bytes:
    name = topic.encode()
    named = len(name).to_bytes(2, "big") + name
    if len(_NAMES) < 256:  # what a store holds is not trusted to be few
        _NAMES[topic] = named
    return named


def link(previous: bytes, event_digest: bytes) -> bytes:
    """The log-chain link of an event."""
    return _SHA256(previous + event_digest).digest()


class Head(NamedTuple):
    """An order's last recorded version and its digest."""

    version: int
    digest: bytes


class Row(NamedTuple):
    """One stored event as the chain reads it."""

    version: int
    topic: str
    state: bytes
    digest: bytes | None


@dataclass(frozen=True)
class Break:
    """Where an order's history stops holding: the first version that does not, and why."""

    originator_id: UUID | str
    version: int
    reason: str

    def describe(self) -> str:
        return f"version {self.version}: {self.reason}"


def check_history(originator_id: UUID | str, rows: Sequence[Row],
                  head: Head | None) -> Break | None:
    """None if the rows (in version order) are the order's whole history as chained and as
    its head record says; else where and why it breaks."""
    if not rows:
        return None if head is None else all_missing(originator_id, head)
    broken, last = check_chain(originator_id, rows)
    return broken or check_head(originator_id, rows[-1].version, last, head)


def all_missing(originator_id: UUID | str, head: Head) -> Break:
    """The break of an order with a head record and no events at all."""
    return Break(originator_id, 1, f"every event is missing (its head record says "
                                   f"{head.version} were recorded)")


def check_chain(originator_id: UUID | str, rows: Sequence[Row]) -> tuple[Break | None, bytes]:
    """Where the rows (in version order, not empty) stop following each other's digests,
    if they do; and the digest of the last one that holds."""
    ident = id_bytes(originator_id)
    expected = ZERO
    previous: int | None = None
    for version, topic, state, stored in rows:
        if previous is not None and version != previous + 1:
            what = (f"event {previous + 1} is missing" if version > previous + 1
                    else f"event {version} is recorded twice")
            return Break(originator_id, previous + 1, what), expected
        if stored is None:
            return Break(originator_id, version,
                         "the event has no digest: it was removed (a chained store always "
                         "has one)"), expected
        found = digest(expected, ident, version, topic, state)
        if found != stored:
            return Break(originator_id, version,
                         "the event does not match its digest: it was altered, or an event "
                         "before it was removed, inserted or reordered"), expected
        expected = found
        previous = version
    return None, expected


def check_head(originator_id: UUID | str, last: int, last_digest: bytes,
               head: Head | None) -> Break | None:
    """Whether the head record names the order's last event (version and digest)."""
    if head is None:
        return Break(originator_id, last, "the order's head record is missing")
    if head.version > last:
        missing = (f"event {last + 1} is" if head.version == last + 1
                   else f"events {last + 1} to {head.version} are")
        return Break(originator_id, last + 1,
                     f"{missing} missing (the head record says {head.version})")
    if head.version < last:
        return Break(originator_id, head.version + 1,
                     f"events after {head.version} are not in the head record (inserted?)")
    if head.digest != last_digest:
        return Break(originator_id, last,
                     "the order's head record does not match its last event")
    return None


class HeadCache:
    """The heads of the orders this process recently loaded or recorded (bounded, least
    recently used dropped first), so that a new event's predecessor digest is at hand
    without a query.  An entry is used only for the version it names: if another writer
    recorded that order since, the insert conflicts on the version anyway."""

    def __init__(self, size: int = 20_000) -> None:
        self.size = size
        self._heads: OrderedDict[UUID | str, Head] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, originator_id: UUID | str) -> Head | None:
        with self._lock:
            return self._heads.get(originator_id)

    def put_many(self, heads: Iterable[tuple[UUID | str, Head]]) -> None:
        with self._lock:
            found = self._heads
            for originator_id, head in heads:
                found[originator_id] = head
                found.move_to_end(originator_id)
            while len(found) > self.size:
                found.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._heads.clear()


def heads_before(firsts: Iterable[tuple[UUID | str, int]], cache: HeadCache,
                 lookup: Callable[[list[UUID | str]], Mapping[UUID | str, Head]]
                 ) -> dict[UUID | str, Head | None]:
    """Each order's head before the events about to be inserted (`firsts`: each order and
    the version of its first event here): from the cache where it names the version just
    before, None for an order starting at version 1 that the cache does not know (if it
    exists, the insert conflicts), else from the head records (`lookup`, inside the
    inserting transaction)."""
    found: dict[UUID | str, Head | None] = {}
    missing: list[UUID | str] = []
    for originator_id, first in firsts:
        cached = cache.get(originator_id)
        if cached is not None and cached.version == first - 1:
            found[originator_id] = cached
        elif cached is None and first == 1:
            found[originator_id] = None
        else:
            missing.append(originator_id)
    if missing:
        stored = lookup(missing)
        found.update((x, stored.get(x)) for x in missing)
    return found


def firsts_of(events: Iterable[tuple[UUID | str, int]]) -> list[tuple[UUID | str, int]]:
    """Each originator of these (originator id, version) pairs with its first version."""
    firsts: dict[UUID | str, int] = {}
    for originator_id, version in events:
        firsts.setdefault(originator_id, version)
    return list(firsts.items())


class Chained(NamedTuple):
    """An event to insert, with its digests and the event before it in the log."""

    originator_id: UUID | str
    version: int
    topic: str
    state: bytes
    digest: bytes
    link: bytes
    prev: tuple[UUID | str, int] | None
    prev_link: bytes


def chain_events(events: Sequence[tuple[UUID | str, int, str, bytes]],
                 heads: dict[UUID | str, Head | None], last_link: bytes,
                 last: tuple[UUID | str, int] | None = None
                 ) -> tuple[list[Chained], dict[UUID | str, Head]]:
    """Digests and links for events about to be inserted after the log's last event
    (`last`, None: the log is empty) and its `last_link`, each
    order's first one following its head (None: a new order), in the order given; and the
    orders' new heads.  `ChainGap` if an event does not follow its order's head.

    An order's events usually come one after another (group commit records order by
    order), so its head and id bytes are looked up once per run of them, the run told by
    the id object itself: a 20,000-order ingest hashed UUIDs 750,000 times otherwise."""
    out: list[Chained] = []
    new_heads: dict[UUID | str, Head] = {}
    current = last_link
    run: UUID | str | None = None  # the order of the run of events being chained
    known = False  # whether the run's order has a head (else its first event may be 0 or 1)
    version_now, digest_now, ident = 0, ZERO, b""
    for originator_id, version, topic, state in events:
        if originator_id is not run:
            if run is not None:
                new_heads[run] = Head(version_now, digest_now)
            run = originator_id
            head = new_heads.get(originator_id) or heads.get(originator_id)
            known = head is not None
            version_now, digest_now = (0, ZERO) if head is None else head
            ident = id_bytes(originator_id)
        if (version != version_now + 1) if known else (version > 1):
            raise ChainGap(originator_id, version, version_now)
        digest_now = digest(digest_now, ident, version, topic, state)
        before, current = current, link(current, digest_now)
        version_now, known = version, True
        out.append(Chained(originator_id, version, topic, state, digest_now, current, last,
                           before))
        last = (originator_id, version)
    if run is not None:
        new_heads[run] = Head(version_now, digest_now)
    return out, new_heads


class ChainGap(Exception):
    """An event does not follow its order's last recorded version (a conflict: the version
    is taken, or the order moved on; raised by recorders as the library's IntegrityError)."""

    def __init__(self, originator_id: UUID | str, version: int, head: int) -> None:
        super().__init__(f"event {version} of {originator_id} does not follow the recorded "
                         f"version {head}")
