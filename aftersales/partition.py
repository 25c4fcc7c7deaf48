"""How parallel ingest splits a command file: by order.

Each order belongs to one of 16 shards, the low four bits of its aggregate id (the uuid5 of
the order number); worker `index` of `count` owns the shards `s` with `s % count == index`.
An order's commands are therefore all decided by one worker, in file order, and so its
events are exactly those of a one-process ingest.  Ticks go to every worker, and each
sweeps the orders it owns (the stores filter their deadline index by the same shard:
`shard_sql`).  A line that is not a JSON object with an order id goes to worker 0, which
refuses it as a one-process ingest would.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import NamedTuple
from uuid import UUID

import orjson

from aftersales.domain.order import ORDER_NAMESPACE

SHARDS = 16
_NAMESPACE = ORDER_NAMESPACE.bytes
EVERY = -1  # `owner` of a tick: every worker


def shard_of(order_id: str) -> int:
    """The shard of an order: `order_uuid(order_id).int % 16`, without building the UUID
    (uuid5's last byte is SHA-1's byte 15; version and variant bits lie elsewhere)."""
    return hashlib.sha1(_NAMESPACE + order_id.encode()).digest()[15] & 15


def shard_of_id(originator_id: UUID) -> int:
    return originator_id.int & 15


@dataclass(frozen=True)
class Partition:
    """Worker `index` of `count` (at most 16)."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.count <= SHARDS or not 0 <= self.index < self.count:
            raise ValueError(f"no worker {self.index} of {self.count} (1 to {SHARDS})")

    def owns(self, order_id: str) -> bool:
        return shard_of(order_id) % self.count == self.index

    def owns_id(self, originator_id: UUID) -> bool:
        return shard_of_id(originator_id) % self.count == self.index


class Route(NamedTuple):
    """Where a line of a command file goes: its worker (`EVERY` for a tick) and its
    explicit command id, if it has one."""

    owner: int
    command_id: str | None = None


def route(text: str, count: int) -> Route:
    """The route of a line (decoded text).  Read with orjson, not validated: whatever the
    worker's strict parser then says of the line, only its owner decides it."""
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        return Route(0)
    if type(doc) is not dict:
        return Route(0)
    if doc.get("command") == "tick":
        return Route(EVERY)
    order_id = doc.get("order_id")
    if type(order_id) is not str:
        return Route(0)
    command_id = doc.get("command_id")
    return Route(shard_of(order_id) % count,
                 command_id if type(command_id) is str else None)

