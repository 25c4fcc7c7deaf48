"""`aftersales work --partition K`: one partition's worker, deciding what was published on
its subject of the NATS JetStream stream (`aftersales.feeds.jetstream`).

The worker holds its partition's applier lock (one worker per partition, across
processes: an advisory lock on PostgreSQL, a file lock on SQLite), then makes its durable
consumer afresh and takes its messages in the subject's order.  Each message is a line of
a feed (`aftersales.feeds.run.Feed`, numbered by its stream sequence): a command line
decided in order, a push body whose messages are held in the partition's lateness window
until their place in business time is known.  A message is acknowledged only once
everything it holds was recorded, in the transaction that decided it (the feed's
`complete_before`): what the worker held when it stopped, however it stopped, is
delivered again, and deciding it again changes nothing (command ids, message keys).

When no message comes for `poll` seconds, what the window holds longer than the lateness
by the wall clock is decided (as the webhook's applier does).  A store failure, or a lost
NATS connection, ends the session: nothing is acknowledged that was not recorded; the
worker starts again (lock, consumer, feed) once the store and the server answer.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aftersales.application.ledger import Ledger
from aftersales.errors import SettingsError, StoreUnavailable
from aftersales.feeds.douyin import TOLERANCE, Tolerance
from aftersales.feeds.jetstream import (
    LINE_HEADER,
    PARTITIONS_HEADER,
    Target,
    connect,
    ensure_stream,
    fresh_consumer,
)
from aftersales.feeds.run import Feed, FeedReport
from aftersales.storage.retry import describe as store_error
from aftersales.storage.retry import is_store_error
from aftersales.storage.shard import Partition

#: Messages asked for at a time.
FETCH = 1_000
#: A message unacknowledged this long after the lateness window is delivered again (to
#: this worker: the consumer's ack wait).
ACK_GRACE = timedelta(minutes=5)


@dataclass
class WorkReport:
    """What a worker did: the messages taken and acknowledged, the feed's counts, and the
    store failures it started again after."""

    taken: int = 0
    acknowledged: int = 0
    restarts: int = 0
    feeds: list[FeedReport] = field(default_factory=list)


@dataclass
class Worker:
    """Partition `part`'s worker over `open_ledger`'s store."""

    open_ledger: Callable[[], Ledger]
    target: Target
    part: Partition
    lateness: timedelta
    clock: Callable[[], datetime]
    log: logging.Logger
    tolerance: Tolerance = TOLERANCE
    poll: float = 1.0
    fetch: int = FETCH
    #: Hears the last stream sequence acknowledged, each time it moves.
    on_acked: Callable[[int], None] = lambda seq: None
    stop: threading.Event = field(default_factory=threading.Event)
    report: WorkReport = field(default_factory=WorkReport)
    _lines: dict[int, str] = field(default_factory=dict)

    def run(self) -> WorkReport:
        """Work until `stop` is set; a store failure is waited out and work starts again."""
        pause = 0.5
        while not self.stop.is_set():
            try:
                ledger = self.open_ledger()
                try:
                    asyncio.run(self._session(ledger))
                    pause = 0.5
                finally:
                    ledger.close()
            except Exception as e:
                if not _passing(e):
                    raise
                self.report.restarts += 1
                self.log.warning("the store or NATS failed; starting again", extra={
                    "fields": {"reason": store_error(e) if is_store_error(e) else str(e)
                               or type(e).__name__, "retry_in_seconds": pause}})
                self.stop.wait(pause)
                pause = min(pause * 2, 30.0)
        return self.report

    async def _session(self, ledger: Ledger) -> None:
        lock = ledger.index.applier_lock()
        try:
            said = False
            while not lock.try_acquire():
                if not said:
                    self.log.info("waiting: another worker of this partition holds it",
                                  extra={"fields": {"partition": self.part.index}})
                    said = True
                if self.stop.wait(1.0):
                    return
            await self._consume(ledger, lock.held)
        finally:
            lock.release()

    async def _consume(self, ledger: Ledger, held: Callable[[], bool]) -> None:
        # Messages the server delivered while the connection was down are pending on the
        # consumer until their ack wait: after a reconnection the session starts again, and
        # its fresh consumer delivers them at once.
        reconnected = asyncio.Event()

        async def on_reconnect() -> None:
            reconnected.set()

        nc = await connect(self.target, f"aftersales work {self.part.index}",
                           reconnected_cb=on_reconnect)
        try:
            js = nc.jetstream()
            await ensure_stream(js, self.target)
            sub = await fresh_consumer(js, self.target, self.part.index,
                                       self.lateness + ACK_GRACE)
            feed = Feed(ledger, self.lateness, self._refused, tolerance=self.tolerance,
                        part=self.part)
            self.report.feeds.append(feed.report)
            self.log.info("working", extra={"fields": {
                "partition": self.part.index, "partitions": self.part.count,
                "stream": self.target.stream}})
            pending: dict[int, Any] = {}  # taken, not yet acknowledged: by stream sequence
            self._lines = {}  # their lines in the published files, for what is said
            last = 0
            while not self.stop.is_set():
                if not held():
                    raise StoreUnavailable("the partition's worker lock was lost with its "
                                           "store connection")
                if reconnected.is_set():
                    raise ConnectionError("the NATS connection was lost and made again")
                try:
                    msgs = await sub.fetch(self.fetch, timeout=self.poll)
                except TimeoutError:  # (nats-py's is one): nothing came
                    msgs = []
                fresh = []
                for msg in msgs:
                    seq = msg.metadata.sequence.stream
                    if seq <= last:  # delivered again: held still, or its ack was lost
                        if seq in pending:
                            pending[seq] = msg
                        else:
                            await msg.ack()
                        continue
                    self._check(msg)
                    pending[seq], last = msg, seq
                    if (line := (msg.headers or {}).get(LINE_HEADER)) is not None:
                        self._lines[seq] = line
                    fresh.append((seq, msg.data))
                    self.report.taken += 1
                if fresh:
                    await asyncio.to_thread(_add, feed, fresh)
                else:
                    await asyncio.to_thread(feed.release, self.clock() - self.lateness)
                upto = feed.complete_before()
                done = sorted(s for s in pending if s < upto)
                for seq in done:
                    await pending.pop(seq).ack()
                    self._lines.pop(seq, None)
                if done:
                    self.report.acknowledged += len(done)
                    self.on_acked(done[-1])
        finally:
            await nc.close()

    def _check(self, msg: Any) -> None:
        """A message published for another partition map is not decided (the orders it
        names may be another partition's): the worker stops, the message kept."""
        given = (msg.headers or {}).get(PARTITIONS_HEADER)
        if given is not None and given != str(self.part.count):
            raise SettingsError(
                f"message {msg.metadata.sequence.stream} of the stream was published for "
                f"a map of {given} partitions; this worker's map has {self.part.count}: "
                "publish with the same map (re-partitioning is offline: "
                "docs/operations.md)")

    def _refused(self, text: str) -> None:
        """A message not applied, said as `message SEQ (line N of the published file):
        CODE: reason` (the feed says `line SEQ…`)."""
        found = re.match(r"line (\d+)", text)
        if found is not None:
            line = self._lines.get(int(found[1]))
            text = (f"message {found[1]}" + (f" (line {line} of the published file)"
                                             if line else "") + text[found.end():])
        self.log.warning("not applied", extra={"fields": {
            "partition": self.part.index, "detail": text}})


def _passing(error: Exception) -> bool:
    """Whether a failure may pass (a store, or a NATS server, gone for a while): the
    session starts again, from what is recorded and what the stream still holds."""
    from nats.errors import Error as NatsError
    return (is_store_error(error) or isinstance(error, (StoreUnavailable, ConnectionError,
                                                        NatsError, asyncio.TimeoutError)))


def _add(feed: Feed, lines: list[tuple[int, bytes]]) -> None:
    """Add the messages taken to the feed, then record what it queued."""
    for seq, data in lines:
        feed.add(seq, data)
    feed.flush()
