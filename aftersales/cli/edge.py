"""What every command of the command line shares: the run's arguments and settings
(`Edge`), saying what it waits for, and how an error becomes a line and an exit code."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from aftersales.application.clock import guard_for
from aftersales.errors import (
    EXIT_INTEGRITY,
    EXIT_INTERRUPTED,
    EXIT_STORE,
    EXIT_USAGE,
    AftersalesError,
    IntegrityBroken,
    LedgerMissing,
    LogBroken,
    RebuildInterrupted,
    StoreConfigError,
    StoreUnavailable,
    Unsettled,
)
from aftersales.settings import ENV_VAR, PARTITIONS_ENV_VAR, Settings, business_zone
from aftersales.storage.config import redacted, resolve_url, sqlite_hint, sqlite_path
from aftersales.storage.retry import Patience, is_store_error
from aftersales.storage.retry import describe as store_error

if TYPE_CHECKING:
    from aftersales.application.ledger import Ledger
    from aftersales.storage.partition_map import PartitionMap

T = TypeVar("T")


class Edge:
    """What one run of the command line works with: its arguments, its settings, and how
    it tells what it waits for."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        settings = Settings.from_env()
        if getattr(args, "retry_for", None) is not None:
            settings = replace(settings, retry_for=max(0.0, args.retry_for))
        if getattr(args, "allow_future", False):
            settings = replace(settings, future_margin=None)
        self.settings = settings
        #: A partitioned ledger's map (None: one store, `url`).
        self.partitions: PartitionMap | None = None
        if getattr(args, "partitions", None) or os.environ.get(PARTITIONS_ENV_VAR):
            from aftersales.storage.partition_map import read_map  # (loads the shards)
            self.partitions = read_map(getattr(args, "partitions", None))
        if self.partitions is not None and getattr(args, "db", None) is not None:
            raise StoreConfigError("give --db (one store) or a partition map, not both")
        self.url = resolve_url(getattr(args, "db", None)) if self.partitions is None \
            else self.partitions.urls[0]
        self.tz_name, self.zone = business_zone()  # where a person reads business times
        #: How far the work got, for the line Ctrl-C prints ("line 1,234", say).
        self.reached: str | None = None

    def ledger(self, create: bool, patient: bool = True, partition: int | None = None
               ) -> Ledger:
        """The ledger at the URL; a command that does not create one needs it there.  A
        store that cannot be reached is waited for (`--retry-for`), unless not `patient`
        (a service's own loop waits, and hears its stop signal meanwhile).  With a
        partition map: the store of `partition`, else of the order the command names,
        else partition 0's."""
        from aftersales.application.ledger import Ledger  # the store: loaded to open one
        from aftersales.storage.reading import AS_RECORDED

        url, name, positions = self.url, None, AS_RECORDED
        if self.partitions is not None:
            if partition is None:
                partition = getattr(self.args, "partition", None)
            if partition is None:
                order_id = getattr(self.args, "order_id", None)
                partition = 0 if order_id is None else self.partitions.partition_of(order_id)
            self.partitions.partition(partition)  # (one the map has)
            url, name = self.partitions.urls[partition], self.partitions.name(partition)
            positions = self.partitions.positions(partition)
        path = sqlite_path(url)
        if not create and path is not None and not Path(path).exists():
            raise LedgerMissing(self.missing(url))

        def open_it() -> Ledger:
            return Ledger(url, create_tables=create, settings=self.settings,
                          guard=guard_for(self.settings), name=name, positions=positions)

        ledger = self.patience(url=url).run(open_it, "opening the ledger") if patient \
            else open_it()
        if not create and not ledger.index.has_ledger():
            ledger.close()
            raise LedgerMissing(self.missing(url))
        try:
            self._check_partition(ledger, partition)
        except BaseException:
            ledger.close()
            raise
        return ledger

    def _check_partition(self, ledger: Ledger, partition: int | None) -> None:
        """The store holds the partition the map says (recorded on first use, for a map
        of several), or is one store's ledger where no map is given
        (`aftersales.storage.partition_claim`)."""
        count = 1 if self.partitions is None else self.partitions.count
        claim = None if count == 1 or partition is None else (partition, count)
        found = ledger.index.partition_claim(claim)
        if found is None or found == (claim or (0, 1)):
            return
        what = f"partition {found[0]} of a ledger of {found[1]} partitions"
        said = (f"the map makes it partition {partition} of {count}" if self.partitions
                is not None else "it was given as a ledger of its own (--db)")
        raise StoreConfigError(
            f"{redacted(ledger.url)} holds {what}, but {said}: give the partition map it "
            "was made with (a map changed, or lines of it reordered, would look for and "
            "write orders in the wrong store; changing the number of partitions is a "
            're-partition: docs/operations.md, "Partitions")')

    def missing(self, url: str | None = None) -> str:
        url = url or self.url
        return (f"no ledger at {redacted(url)}{sqlite_hint(url)}: nothing was "
                f"created (give --db or "
                f"${ENV_VAR}, or start one with `aftersales ingest FILE` or `aftersales db "
                "init`)")

    def patience(self, ledger: Ledger | None = None, retry_for: float | None = -1.0,
                 url: str | None = None) -> Patience:
        where = url or (ledger.url if ledger is not None else self.url)
        return Patience(self.settings.retry_for if retry_for == -1.0 else retry_for,
                        redacted(where), on_wait=waiting,
                        explain=ledger.store_reason if ledger is not None else lambda: None)


def waiting(text: str) -> None:
    """Say what is waited for (on a line of its own, even when a progress bar shows)."""
    print(f"\raftersales: waiting: {text}", file=sys.stderr, flush=True)


def fail(text: str, code: int) -> int:
    print(f"aftersales: {text}", file=sys.stderr)
    return code


def failure(error: Exception) -> tuple[int, str]:
    """The exit code and the line `main` gives for an error (`db check --json` says it in
    its object as well)."""
    if isinstance(error, (IntegrityBroken, LogBroken)):
        return EXIT_INTEGRITY, str(error)
    if isinstance(error, (RebuildInterrupted, Unsettled)):
        return EXIT_INTERRUPTED, str(error)
    if isinstance(error, StoreUnavailable):
        return EXIT_STORE, str(error)
    if isinstance(error, AftersalesError):
        return EXIT_USAGE, str(error)
    if is_store_error(error):
        return EXIT_STORE, f"the store failed: {store_error(error)}"
    raise error


def read(ledger: Ledger, edge: Edge, step: Callable[[], T], doing: str) -> T:
    """A read of the ledger, tried again while a store failure may pass."""
    return edge.patience(ledger).run(step, doing)


def report_broken(names: set[str]) -> int:
    """Say which orders this run found broken; the exit code that goes with it."""
    if not names:
        return 0
    print(f"aftersales: {len(names)} order(s) with a broken history were refused or "
          f"skipped: {few(sorted(names))}; run `aftersales verify`", file=sys.stderr)
    return EXIT_INTEGRITY


def few(names: list[str], most: int = 5) -> str:
    return ", ".join(names[:most]) + (f" and {len(names) - most} more"
                                      if len(names) > most else "")
