"""Orders another process recorded commands for while this one was deciding their lines.

Lines of one order must reach the ledger in one stream.  Two processes that decide lines of
the same order at once (two ingests of files that split an order's lines between them, an
ingest and the webhook's applier) each decide some lines on a state the other changed, and
the order differs for good from what one stream would have made of it: a re-run cannot
repair it, as each command is decided once.  No store can say that another process is
writing an order right now; but two moments already show that one did, and the ledger does
extra work at both anyway, so watching them costs nothing on the normal path:

- the order cache drops an order because another writer recorded events for it since this
  process held it (`UnitOfWork.refresh`: the log's tail, less this process's positions);
- a unit of work conflicts (`UnitOfWork.record`: the recorder raises the library's
  `IntegrityError`, another writer moved one of its orders on, and nothing was recorded).

Each notes the version this process held the order at (`held`).  When a command line of this
process next loads that order (`UnitOfWork.note_other_writers`, only while some are noted),
an order further on than that has its events since read back: if one of them carries a
command id, another process recorded a command for an order this one is deciding lines of
(`found`).  Events without one are timeouts and what follows them: a sweep's (`tick`, or a
tick line of another ingest), which may run at once and is not reported.

A parallel ingest's own workers never share an order (each decides the lines of its shards,
sweeps only those, and reads the log's tail for its shards alone), so what is found is
always another process's doing.  A sure sign, not a complete one: an order met for the first
time, or after it left the cache, was not held, and is not looked at.
"""

from __future__ import annotations

from collections import OrderedDict
from uuid import UUID

#: Orders noted, and orders found, at most (a process that nobody asks keeps no more).
LIMIT = 20_000


class OtherWriters:
    """The orders another writer moved on since this process held them, and those found
    to carry another process's commands."""

    def __init__(self, limit: int = LIMIT) -> None:
        self.limit = limit
        #: The version this process held each order at before another writer moved it on
        #: (the earliest, if noted again); looked at and dropped when a command line of this
        #: process next loads the order.
        self.moved: OrderedDict[UUID, int] = OrderedDict()
        self._found: set[UUID] = set()
        self._new: list[str] = []

    def held(self, oid: UUID, version: int) -> None:
        """Another writer may have moved the order on since this process held it at
        `version`."""
        moved = self.moved
        if oid in moved or oid in self._found:
            return
        if len(moved) >= self.limit:
            moved.popitem(last=False)  # the oldest note
        moved[oid] = version

    def known(self, oid: UUID) -> bool:
        """Whether the order was found already (it is not looked at again)."""
        return oid in self._found

    def found(self, oid: UUID, order_id: str) -> None:
        """Another process recorded a command for the order while this one decided its
        lines."""
        if oid in self._found or len(self._found) >= self.limit:
            return
        self._found.add(oid)
        self._new.append(order_id)

    def take(self) -> list[str]:
        """The orders found since last asked, by number, in the order found."""
        new, self._new = self._new, []
        return new
