"""The commands that write the ledger: `ingest` (a command file, or a platform's pushes
with --format douyin), `feed` (the webhook's inbox; `feed retry`), `tick` (the sweep of
due timeouts, after a walk of the log) and `serve-webhook`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, BinaryIO

from aftersales.application.clock import wall_clock
from aftersales.application.ledger import Ledger
from aftersales.cli.anchors import anchor_if_due
from aftersales.cli.edge import Edge, fail, report_broken, waiting
from aftersales.cli.human import local, printable
from aftersales.cli.integrity import blamed_names
from aftersales.cli.progress import Progress
from aftersales.cli.projecting import partition_ledgers, project
from aftersales.errors import EXIT_INTEGRITY, EXIT_STORE, EXIT_USAGE, CommandRefused
from aftersales.ingest.parallel import default_workers, ingest_in_parallel
from aftersales.ingest.serial import Settled, broken_names, ingest
from aftersales.storage.integrity import watch_log
from aftersales.storage.logcheck import LogWalk
from aftersales.storage.shard import SHARDS

if TYPE_CHECKING:
    from aftersales.feeds.douyin import Tolerance
    from aftersales.storage.partition_map import PartitionMap


def unreadable(path: str) -> int:
    try:
        open(path, "rb").close()
        reason = "cannot be read"
    except OSError as e:
        reason = e.strerror or "cannot be read"
    return fail(f"cannot read {path}: {reason}", EXIT_USAGE)


def refusals_beside(progress: Progress) -> Callable[[int, CommandRefused], None]:
    """Refusals written on lines of their own, the progress bar drawn again after each."""
    def say(number: int, refusal: CommandRefused) -> None:
        progress.say(printable(f"line {number}: {refusal.code}: {refusal.reason}"))
    return say


class _OtherWriters:
    """`ingest`'s warning of an order another process wrote while this one decided its
    lines: once per order, the first `NAMED` in full, the rest counted (`close`).  The exit
    code does not change: the lines were decided and recorded, and a re-run cannot decide
    them again (docs/operations.md, "What may run at once")."""

    NAMED = 5

    def __init__(self, progress: Progress) -> None:
        self.progress, self.count = progress, 0

    def __call__(self, order_id: str) -> None:
        self.count += 1
        if self.count <= self.NAMED:
            self.progress.say(
                f"aftersales: warning: order {order_id} was written by another process while "
                "this ingest ran: lines of one order must reach the ledger in one stream "
                '(docs/operations.md, "What may run at once"); its lines here were decided on '
                "the state after the other writer's")

    def close(self) -> None:
        if self.count > self.NAMED:
            print(f"aftersales: warning: {self.count - self.NAMED:,} more orders were written "
                  f"by another process while this ingest ran ({self.count:,} in all; the "
                  f"first {self.NAMED} are named above)", file=sys.stderr)


def _acknowledge(settled: Settled) -> None:
    print(f"ack {settled.line} {settled.status}", flush=True)


def _lines_of(stream: BinaryIO) -> Iterator[bytes]:
    yield from stream


def cmd_ingest(ledger: Ledger, edge: Edge) -> int:
    args = edge.args
    if args.file == "-":
        source, total = sys.stdin.buffer, None
    else:
        try:
            source, total = open(args.file, "rb"), os.path.getsize(args.file)  # noqa: SIM115
        except OSError:
            return unreadable(args.file)
    if args.format == "douyin":
        return _ingest_feed(ledger, edge, source, total)
    workers = _workers(args, ledger, total, edge.partitions)
    if isinstance(workers, str):
        source.close()
        return fail(workers, EXIT_USAGE)
    progress = Progress("ingest", total)
    ack = _acknowledge if args.ack else lambda settled: None
    name = "standard input" if args.file == "-" else args.file

    def acknowledge(settled: Settled) -> None:
        edge.reached = f"line {settled.line:,} of {name}"  # for the line Ctrl-C prints
        ack(settled)
    others = _OtherWriters(progress)
    with source:
        refused = refusals_beside(progress)
        if workers == 1 and edge.partitions is None:
            report = ingest(ledger, _lines_of(source), refused, progress.advance,
                            acknowledge, batch=args.batch, patience=edge.patience(ledger),
                            on_other=others)
        else:
            def done(settled: Settled) -> None:
                progress.count()
                acknowledge(settled)

            stores = ledger.url if edge.partitions is None else edge.partitions.urls
            report = ingest_in_parallel(stores, args.file, workers, refused,
                                        done, progress.reach, batch=args.batch,
                                        settings=edge.settings, on_wait=waiting,
                                        on_other=others)
    progress.close()
    others.close()
    print(report.summary())
    if (stopped := report.stop_message()) is not None:
        return fail(stopped, EXIT_STORE)
    project(ledger, edge)
    broken = report_broken(report.broken)
    return broken or (1 if report.refused else 0)


def _ingest_feed(ledger: Ledger, edge: Edge, source: BinaryIO, total: int | None) -> int:
    """`ingest --format douyin`: a platform's push messages, in business-time order (the
    bar shows the share of the file read: a message is decided once the lateness window
    has passed it)."""
    from aftersales.feeds.run import ingest_feed
    progress = Progress("ingest", total)

    def read(lines: Iterator[bytes]) -> Iterator[bytes]:
        for line in lines:
            progress.advance(len(line))
            yield line

    # A store failure stops it (exit 3); run it again: what was applied is skipped by
    # its message id, the rest applied.
    if edge.partitions is not None:
        source.close()
        if total is None:
            return fail("a partitioned ledger ingests a file, not standard input (or "
                        "publish standard input to NATS: `aftersales publish - --format "
                        "douyin --nats URL`)", EXIT_USAGE)
        return _ingest_feed_partitions(ledger, edge, total)
    with source:
        report = ingest_feed(ledger, read(_lines_of(source)),
                             lateness=timedelta(seconds=edge.args.lateness),
                             on_refused=lambda text: progress.say(printable(text)),
                             tolerance=_tolerance(edge.args),
                             received_at=edge.args.received_at)
    progress.close()
    print(report.summary())
    project(ledger, edge)
    return report_broken(broken_names(ledger)) or (
        1 if report.refused or report.reported else 0)


def _ingest_feed_partitions(ledger: Ledger, edge: Edge, total: int | None) -> int:
    """A platform feed into a partitioned ledger: the file read once per partition, each
    partition deciding its part (its orders' lines and messages, in its own lateness
    window), one after another."""
    from aftersales.feeds.run import ingest_feed
    from aftersales.storage.shard import Partition
    assert edge.partitions is not None and total is not None
    count, broken, unsettled = edge.partitions.count, set(), False
    for k, one in partition_ledgers(edge, ledger):
        progress = Progress(f"ingest {k + 1}/{count}", total)

        def read(lines: Iterator[bytes], progress: Progress = progress) -> Iterator[bytes]:
            for line in lines:
                progress.advance(len(line))
                yield line

        with open(edge.args.file, "rb") as source:
            report = ingest_feed(one, read(_lines_of(source)),
                                 lateness=timedelta(seconds=edge.args.lateness),
                                 on_refused=_saying(progress),
                                 tolerance=_tolerance(edge.args),
                                 received_at=edge.args.received_at,
                                 part=Partition(k, count))
        progress.close()
        print(f"partition {k}: {report.summary()}")
        broken |= broken_names(one)
        unsettled = unsettled or bool(report.refused or report.reported)
    project(ledger, edge)
    return report_broken(broken) or (1 if unsettled else 0)


def _saying(progress: Progress) -> Callable[[str], None]:
    return lambda text: progress.say(printable(text))


def _tolerance(args: argparse.Namespace) -> Tolerance:
    from aftersales.feeds.douyin import Tolerance
    return Tolerance(timedelta(seconds=args.tolerance),
                     timedelta(seconds=args.refund_tolerance))


def cmd_feed(ledger: Ledger, edge: Edge) -> int:
    """`feed` (`feed inbox`): what the webhook received and applied; `feed retry`: the
    reported messages decided again, on the ledger as it is now."""
    from aftersales.feeds.run import retry
    unsettled, broken = False, set()
    for k, one in partition_ledgers(edge, ledger):  # (a partitioned ledger's: each)
        where = "" if edge.partitions is None else f"partition {k}: "
        one.index.create_table()  # a store older than the messages' table gets it
        if edge.args.action == "inbox":
            from aftersales.cli.webhook import show_inbox
            if where:
                print(where.rstrip(": ") + ":")
            show_inbox(one, edge.zone)
            continue
        report = retry(one, tolerance=_tolerance(edge.args),
                       on_refused=lambda text: print(printable(text), file=sys.stderr))
        print(f"{where}{report.messages:,} reported messages decided again: "
              f"{report.applied:,} applied ({report.reconciled:,} reconciled), "
              f"{report.ignored:,} ignored, {report.reported:,} still reported, "
              f"{sum(report.refused.values()):,} refused; {report.events:,} events recorded")
        unsettled = unsettled or bool(report.refused or report.reported)
        broken |= broken_names(one)
    if edge.args.action == "inbox":
        return 0
    project(ledger, edge)
    return report_broken(broken) or (1 if unsettled else 0)


def _workers(args: argparse.Namespace, ledger: Ledger, size: int | None,
             partitions: PartitionMap | None = None) -> int | str:
    """How many processes ingest the file (or why the number asked for cannot be): a
    partitioned ledger's, one per partition."""
    if partitions is not None:
        if args.workers not in (None, partitions.count):
            return f"--workers: a partitioned ledger is ingested by one process per " \
                   f"partition ({partitions.count})"
        if size is None:
            return "a partitioned ledger ingests a file, not standard input (or publish " \
                   "standard input to NATS: `aftersales publish - --nats URL`)"
        return partitions.count
    if args.workers is not None:
        if not 1 <= args.workers <= SHARDS:
            return f"--workers takes 1 to {SHARDS}"
        if args.workers > 1 and (size is None or ledger.url.startswith("memory:")):
            return "parallel ingest reads a file into a durable store, not standard input " \
                   "or memory:"
        return int(args.workers)
    if args.batch <= 1 or ledger.url.startswith("memory:"):
        return 1
    return default_workers(size)


def cmd_tick(ledger: Ledger, edge: Edge) -> int:
    """`tick`: sweep the timeouts due (a partitioned ledger's: in every partition, or in
    `--partition K`), then project."""
    now = edge.args.now or wall_clock()
    only = getattr(edge.args, "partition", None)
    if only is not None and edge.partitions is None:
        return fail("--partition is for a partitioned ledger (--partitions, or "
                    "$AFTERSALES_PARTITIONS)", EXIT_USAGE)
    broken: set[str] = set()
    breaks = False
    for k, one in partition_ledgers(edge, ledger, only):
        breaks = _sweep(one, edge, now, None if edge.partitions is None else k) or breaks
        broken |= broken_names(one)
    project(ledger, edge)
    code = report_broken(broken) or (EXIT_INTEGRITY if breaks else 0)
    anchored = anchor_if_due(ledger, edge) if edge.args.anchor_every is not None else 0
    return code or anchored


def _sweep(ledger: Ledger, edge: Edge, now: datetime, partition: int | None) -> bool:
    """Walk one ledger's log since its last check, then sweep it; whether the walk found
    the log broken."""
    def acknowledge(oid: object, n: int) -> None:
        if edge.args.ack:
            print(f"ack swept {getattr(oid, 'hex', oid)} {n}", flush=True)

    patience = edge.patience(ledger)
    walked = patience.run(lambda: watch_log(ledger.index, wall_clock()),
                          "walking the log since its last check")
    _say_log_breaks(ledger, walked)
    swept = patience.run(lambda: ledger.sweep(now, acknowledge),
                         f"sweeping the timeouts due before {now.isoformat()}")
    print(("" if partition is None else f"partition {partition}: ")
          + f"swept {swept.timeouts:,} timeouts due before {local(now, edge.zone)} "
          f"({swept.events:,} events recorded, with the refunds, penalties and compensations "
          "that follow)" + ("; a store failure was tried again, and what the sweep had "
                            "recorded before it is not counted here" if patience.retries
                            else ""))
    return bool(walked.breaks)


def _say_log_breaks(ledger: Ledger, walked: LogWalk) -> None:
    """Warn of the breaks a walk of the log found (recorded: those orders are refused)."""
    if not walked.breaks:
        return
    names = blamed_names(ledger, walked.position, walked.breaks)
    for b in walked.breaks:
        print(f"aftersales: warning: the log chain breaks at position {b.position}: "
              f"{b.reason}; refused from now on: "
              + ", ".join(f"order {names.get(oid, oid)}" for oid, _ in b.blamed)
              + " (run `aftersales verify`)", file=sys.stderr)


def cmd_serve_webhook(ledger: Ledger, edge: Edge) -> int:
    """Serve Douyin's pushes until SIGTERM or Ctrl-C (aftersales/cli/webhook.py)."""
    from aftersales.cli.webhook import serve_webhook
    return serve_webhook(ledger, edge.args, lambda: edge.ledger(create=False, patient=False),
                         _tolerance(edge.args),
                         1 if edge.partitions is None else edge.partitions.count)
