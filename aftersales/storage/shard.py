"""An order's shard: which of 16 an order belongs to, and which worker owns it.

Each order belongs to one of 16 shards, the low four bits of its aggregate id (the uuid5 of
the order number); worker `index` of `count` owns the shards `s` with `s % count == index`.
Parallel ingest routes an order's lines to its owner (`aftersales.ingest.routing`), and the
stores filter their deadline index and their log by the same shard, in SQL: the four
ways of computing it live here, and tests/unit/test_partition.py checks they agree.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from uuid import UUID

from aftersales.domain.order import ORDER_NAMESPACE

SHARDS = 16
_NAMESPACE = ORDER_NAMESPACE.bytes


def shard_of(order_id: str) -> int:
    """The shard of an order: `order_uuid(order_id).int % 16`, without building the UUID
    (uuid5's last byte is SHA-1's byte 15; version and variant bits lie elsewhere)."""
    return hashlib.sha1(_NAMESPACE + order_id.encode()).digest()[15] & 15


def shard_of_id(originator_id: UUID) -> int:
    return originator_id.int & 15


#: The shard in SQLite's SQL, of an id stored as 32 hex digits: its last digit.
SQLITE_SHARD = "(instr('0123456789abcdef', substr(originator_id, 32, 1)) - 1)"
#: The shard in PostgreSQL's SQL, of a `uuid` column: the low four bits of its last byte.
POSTGRES_SHARD = "(get_byte(uuid_send(originator_id), 15) & 15)"


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
