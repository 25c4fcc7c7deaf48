"""A partitioned ledger's map: which store holds which orders.

A ledger of N partitions (1 to 16) keeps each order in partition `shard_of(order_id) % N`
(`aftersales.storage.shard`: the stable hash parallel ingest uses), and each partition is
a complete ledger of its own (events, log chain and head, command ids, refusals, deadline
index) in its own database, on any server.  The map names one store URL per partition,
partition 0 first:

    --partitions FILE          a file: one URL per line; blank lines and # comments skipped
    --partitions URL,URL,...   the URLs themselves (commas or white space between them)
    $AFTERSALES_PARTITIONS     either of these, when --partitions is not given

A map of one partition is today's ledger (its read models' position is named as an
unpartitioned ledger's).  Changing N moves orders between partitions: it is an offline
re-partition (docs/operations.md, "Re-partitioning"), never a change of the map alone.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from aftersales.errors import StoreConfigError
from aftersales.settings import PARTITIONS_ENV_VAR
from aftersales.storage.config import eventsourcing_env, redacted
from aftersales.storage.reading import AS_RECORDED, Positions
from aftersales.storage.shard import SHARDS, Partition, shard_of

#: The read-model position of partition K of a map of N > 1 is `TRACKING.K`; of a map of
#: one, the unpartitioned ledger's name.
TRACKING = "aftersales"


@dataclass(frozen=True)
class PartitionMap:
    """One store URL per partition, partition 0 first."""

    urls: tuple[str, ...]
    #: Where the map was read from (for messages).
    source: str = ""

    def __post_init__(self) -> None:
        n = len(self.urls)
        if not 1 <= n <= SHARDS:
            raise StoreConfigError(f"a partition map names 1 to {SHARDS} stores, not {n}"
                                   + (f" ({self.source})" if self.source else ""))
        seen: dict[str, int] = {}
        for k, url in enumerate(self.urls):
            if url.startswith("memory:"):
                raise StoreConfigError(f"partition {k}: memory: is one process's only; a "
                                       "partition is a durable store")
            eventsourcing_env(url)  # an unknown or malformed URL is said here
            if url in seen:
                raise StoreConfigError(f"partitions {seen[url]} and {k} name the same store "
                                       f"{redacted(url)}: each partition is a ledger of its "
                                       "own")
            seen[url] = k

    @property
    def count(self) -> int:
        return len(self.urls)

    def partition_of(self, order_id: str) -> int:
        """The partition that holds an order."""
        return shard_of(order_id) % self.count

    def partition(self, index: int) -> Partition:
        if not 0 <= index < self.count:
            raise StoreConfigError(f"no partition {index}: the map has {self.count} "
                                   f"(0 to {self.count - 1})")
        return Partition(index, self.count)

    def name(self, index: int) -> str:
        """The name partition `index`'s read-model position is recorded under."""
        return TRACKING if self.count == 1 else f"{TRACKING}.{index}"

    def positions(self, index: int) -> Positions:
        """How partition `index`'s log positions are numbered in the read models."""
        return AS_RECORDED if self.count == 1 else Positions(SHARDS, index)

    def __iter__(self) -> Iterator[tuple[int, str]]:
        return iter(enumerate(self.urls))


def read_map(given: str | None, environ: dict[str, str] | None = None) -> PartitionMap | None:
    """The map `--partitions` gives, else `$AFTERSALES_PARTITIONS`, else None (one store,
    chosen by --db)."""
    env = os.environ if environ is None else environ
    text = given if given is not None else env.get(PARTITIONS_ENV_VAR, "")
    if not text.strip():
        return None
    where = "--partitions" if given is not None else f"${PARTITIONS_ENV_VAR}"
    if "://" not in text and not text.strip().startswith("memory:"):
        path = Path(text.strip())
        try:
            content = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            reason = getattr(e, "strerror", None) or "not UTF-8 text"
            raise StoreConfigError(f"{where} {path}: the partition map cannot be read: "
                                   f"{reason}") from None
        urls = [line.split("#", 1)[0].strip() for line in content.splitlines()]
        return PartitionMap(tuple(u for u in urls if u), f"{where} {path}")
    urls = [u for u in text.replace(",", " ").split() if u]
    return PartitionMap(tuple(urls), where)
