"""`aftersales publish`: a file's lines (ledger command lines, and Douyin push bodies with
--format douyin) put on the NATS JetStream stream, each on its partition's subject
(`aftersales.feeds.jetstream`), for the partitions' workers to decide.

Where each line goes:
- a command line: to its order's partition, `Nats-Msg-Id` its command id as the ledger
  derives it from its content, or the id given with its content's digest (a copy is
  dropped; the same id with other content is not, and reaches the ledger to be refused
  there); a tick, to every partition (`@K` after its id: each partition sweeps its own
  orders);
- a push body: to every partition that holds an order one of its messages names (a message
  naming none, or that cannot be read, to partition 0, which says so), as it was received
  (a bare body with --received-at: wrapped with that receive time, as the webhook keeps
  it); `Nats-Msg-Id` its messages' `msg_id`s (`@K` where it goes to several partitions);
  each worker decides only its own sub-orders of it.

A line that cannot be read as either is refused here (`line N: INPUT: …`) and not
published: nothing a worker could decide.  A line counts as published once the stream has
acknowledged it (stored, or dropped as a copy of one it holds); a publish that stops
(Ctrl-C, a server gone) is run again: what was published is dropped as a copy.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aftersales.application.commands import Tick, parse_command
from aftersales.domain import rules
from aftersales.errors import CommandRefused
from aftersales.feeds.douyin import Message, message
from aftersales.feeds.jetstream import (
    LINE_HEADER,
    PARTITIONS_HEADER,
    Target,
    connect,
    ensure_stream,
)
from aftersales.feeds.pushes import read_line
from aftersales.feeds.run import MAX_FEED_LINE, UNREADABLE
from aftersales.feeds.webhook import received_line
from aftersales.ingest.serial import decode_line
from aftersales.storage.shard import shard_of

#: Messages published before their acknowledgements are awaited together.
IN_FLIGHT = 2_000


@dataclass(frozen=True)
class Outgoing:
    """One message to publish: its partition, its bytes and its Nats-Msg-Id."""

    partition: int
    data: bytes
    msg_id: str


def outgoing(raw: bytes, count: int, douyin: bool,
             received_at: datetime | None = None) -> list[Outgoing]:
    """Where a line goes (see above); `CommandRefused('INPUT', …)` for one that is neither
    a command line nor a push body; [] for a blank line."""
    text = decode_line(raw, MAX_FEED_LINE).strip()
    if not text:
        return []
    body = read_line(text) if douyin else None
    if body is None:
        command = parse_command(text)
        command_id, digest = command.identity()
        if command.command_id is not None:  # given: the same id with other content must
            command_id += f":{digest[:16]}"  # reach the ledger, to be refused DUPLICATE-ID
        data = text.encode()
        if isinstance(command, Tick):
            return [Outgoing(k, data, f"{command_id}@{k}") for k in range(count)]
        return [Outgoing(shard_of(command.order_id) % count, data, command_id)]
    data, at = text.encode(), body.received_at
    if at is None and received_at is not None:  # a bare body: kept with its receive time
        data, at = received_line(data, received_at), received_at
    keys: list[str] = []
    targets: set[int] = set()
    for n, found in enumerate(body.messages):
        given = found.get("msg_id", found.get("msgId")) if isinstance(found, dict) else None
        if given is not None:
            keys.append(str(given))
        try:
            m = message(n, found, at)
        except UNREADABLE:
            targets.add(0)  # refused there, naming the message
            continue
        if isinstance(m, Message) and m.order_ids:
            targets.update(shard_of(o) % count for o in m.order_ids)
        else:
            targets.add(0)  # ignored (a tag not read) or reported (no order): said there
    key = "douyin:" + ",".join(keys) if keys else f"douyin-body:{hash_of(data)}"
    ordered = sorted(targets)
    return [Outgoing(k, data, key if len(ordered) == 1 else f"{key}@{k}") for k in ordered]


def hash_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class PublishReport:
    lines: int = 0
    messages: int = 0
    copies: int = 0  # dropped by the stream: published before
    refused: dict[str, int] = field(default_factory=dict)
    #: A message failed while a later one was stored: published again, it comes after
    #: the later one in its subject.
    out_of_order: bool = False

    def summary(self) -> str:
        refused = sum(self.refused.values())
        return (f"{self.lines:,} lines: {self.messages:,} messages published "
                f"({self.copies:,} of them copies the stream already held, dropped), "
                f"{refused:,} lines refused")


async def publish(target: Target, lines: Iterable[tuple[int, bytes]], count: int, *,
                  douyin: bool, received_at: datetime | None = None,
                  on_refused: Callable[[int, CommandRefused], None] = lambda n, r: None,
                  on_line: Callable[[int], None] = lambda n: None) -> PublishReport:
    """Publish the lines (numbered) for a ledger of `count` partitions; the report."""
    report = PublishReport()
    nc = await connect(target, "aftersales publish")
    try:
        js = nc.jetstream()
        await ensure_stream(js, target)
        flying: list[asyncio.Future[Any]] = []
        for number, raw in lines:
            on_line(len(raw))
            report.lines += 1
            try:
                found = outgoing(raw, count, douyin, received_at)
                if any(len(o.data) > nc.max_payload for o in found):
                    raise CommandRefused(rules.INPUT, f"the line is larger than the NATS "
                                         f"server's max_payload ({nc.max_payload:,} bytes)")
            except CommandRefused as refusal:
                report.refused[refusal.code] = report.refused.get(refusal.code, 0) + 1
                on_refused(number, refusal)
                continue
            for o in found:
                flying.append(await js.publish_async(
                    target.subject(o.partition), o.data, headers={
                        "Nats-Msg-Id": o.msg_id, PARTITIONS_HEADER: str(count),
                        LINE_HEADER: str(number)}))
            if len(flying) >= IN_FLIGHT:
                await _settle(flying, report)
        await _settle(flying, report)
        return report
    finally:
        await nc.close()


class Unordered(RuntimeError):
    """The stream stored a message after one before it failed (see `_settle`)."""


class TooLarge(ValueError):
    """A body the NATS server cannot take (its max_payload): never, however often sent."""


class StreamIntake:
    """`serve-webhook --nats`: each accepted body published, as received (with its
    receive time), to its partitions' subjects; answered success once the stream has
    acknowledged every copy.  Connected on the first body (in the server's event loop)."""

    def __init__(self, target: Target, count: int) -> None:
        self.target, self.count = target, count
        self._client: Any = None
        self._js: Any = None
        self._lock = asyncio.Lock()

    async def _stream(self) -> Any:
        async with self._lock:
            if self._client is None or self._client.is_closed:
                self._client = await connect(self.target, "aftersales serve-webhook")
                self._js = self._client.jetstream()
                await ensure_stream(self._js, self.target)
            return self._js

    async def keep(self, body: bytes, received_at: datetime) -> tuple[int, bool]:
        """Publish the body; (its first copy's stream sequence, whether it was new).
        `TooLarge` for a body larger, with its receive time, than the server takes."""
        js = await self._stream()
        found = outgoing(received_line(body, received_at), self.count, douyin=True)
        if any(len(o.data) > self._client.max_payload for o in found):
            raise TooLarge(f"the body, with its receive time, is larger than the NATS "
                           f"server's max_payload ({self._client.max_payload:,} bytes): "
                           "raise it to 2 MB (docs/operations.md, \"Partitions\")")
        acks = [await js.publish(self.target.subject(o.partition), o.data, headers={
            "Nats-Msg-Id": o.msg_id, PARTITIONS_HEADER: str(self.count)}) for o in found]
        return (acks[0].seq if acks else 0), not all(a.duplicate for a in acks)

    async def ready(self) -> bool:
        """Whether the stream can take a body now (connecting first, if need be)."""
        try:
            await self._stream()
        except (ConnectionError, OSError, TimeoutError):
            return False
        return bool(self._client.is_connected)

    async def close(self) -> None:
        if self._client is not None and not self._client.is_closed:
            await self._client.close()


async def _settle(flying: list[asyncio.Future[Any]], report: PublishReport) -> None:
    """Wait for the stream's acknowledgement of every message in flight.  One that failed
    is raised (the publish stops there; run again, what the stream has is dropped as a
    copy); one that failed before another the stream stored is said first: that message
    reaches its subject after a later line when the file is published again."""
    found = await asyncio.gather(*flying, return_exceptions=True)
    flying.clear()
    failed = next((e for e in found if isinstance(e, BaseException)), None)
    for ack in found:
        if not isinstance(ack, BaseException):
            report.messages += 1
            report.copies += bool(ack.duplicate)
    if failed is not None:
        first = found.index(failed)
        if any(not isinstance(a, BaseException) for a in found[first + 1:]):
            report.out_of_order = True
            raise Unordered(f"a message was not stored ({failed or type(failed).__name__}) "
                            "while a later one was: published again, it would come after "
                            "lines published after it in the file, and an order's lines "
                            "must reach its partition in their order") from failed
        raise failed
