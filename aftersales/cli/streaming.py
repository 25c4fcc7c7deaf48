"""Intake through NATS JetStream on the command line: `publish` (a file onto the stream,
each line on its partition's subject) and `work` (one partition's worker).  The wall clock
is read here, at the edge."""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
from datetime import timedelta

from aftersales.application.clock import wall_clock
from aftersales.application.ledger import Ledger
from aftersales.cli.edge import Edge, fail
from aftersales.cli.human import printable
from aftersales.cli.progress import Progress
from aftersales.errors import EXIT_STORE, EXIT_USAGE, CommandRefused
from aftersales.feeds.jetstream import Target
from aftersales.storage.shard import Partition


def cmd_publish(edge: Edge) -> int:
    """`publish FILE --nats URL`: no store is opened (the partition map gives the count)."""
    from aftersales.feeds.publish import Unordered, publish
    args = edge.args
    target = Target.of(args.nats, args.stream)
    count = 1 if edge.partitions is None else edge.partitions.count
    try:
        source = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")  # noqa: SIM115
    except OSError as e:
        return fail(f"cannot read {args.file}: {e.strerror or 'cannot be read'}", EXIT_USAGE)
    total = None if args.file == "-" else _size(args.file)
    progress = Progress("publish", total)

    def refused(number: int, refusal: CommandRefused) -> None:
        progress.say(printable(f"line {number}: {refusal.code}: {refusal.reason}"))

    with source:
        try:
            report = asyncio.run(publish(
                target, enumerate(source, start=1), count, douyin=args.format == "douyin",
                received_at=args.received_at, on_refused=refused,
                on_line=progress.advance))
        except ConnectionError as e:
            progress.close()
            return fail(f"{e}; nothing more was published", EXIT_STORE)
        except Unordered as e:
            progress.close()
            return fail(f"NATS failed part way: {e} (docs/operations.md, \"Partitions\": "
                        "a publish that stopped out of order)", EXIT_STORE)
        except Exception as e:
            from nats.errors import Error as NatsError
            if not isinstance(e, NatsError | asyncio.TimeoutError):
                raise
            progress.close()
            return fail(f"NATS failed: {e or type(e).__name__}; what the stream "
                        "acknowledged is published: run the same command again to carry "
                        "on (copies are dropped)", EXIT_STORE)
    progress.close()
    print(f"{report.summary()}; subjects {target.subject(0)} to "
          f"{target.subject(count - 1)} of stream {target.stream}")
    return 1 if report.refused else 0


def _size(path: str) -> int | None:
    try:
        with open(path, "rb") as f:
            return f.seek(0, 2)
    except OSError:
        return None


def cmd_work(ledger: Ledger, edge: Edge) -> int:
    """`work --partition K --nats URL`: a service, until SIGTERM or Ctrl-C."""
    import logging

    from aftersales.feeds.douyin import Tolerance
    from aftersales.feeds.worker import Worker
    from aftersales.service.logs import configure, log
    args = edge.args
    count = 1 if edge.partitions is None else edge.partitions.count
    if not 0 <= args.partition < count:
        return fail(f"--partition {args.partition}: the map has {count} partition(s) (0 to "
                    f"{count - 1})", EXIT_USAGE)
    ledger.close()  # the worker opens its partition's ledger itself, and again after a
    logger = configure(args.log_level)  # store failure
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    def acked(seq: int) -> None:
        if args.ack:
            print(f"ack message {seq}", flush=True)

    worker = Worker(lambda: edge.ledger(create=False, patient=False, partition=args.partition),
                    Target.of(args.nats, args.stream), Partition(args.partition, count),
                    timedelta(seconds=args.lateness), wall_clock, logger,
                    tolerance=Tolerance(timedelta(seconds=args.tolerance),
                                        timedelta(seconds=args.refund_tolerance)),
                    poll=args.poll, fetch=args.batch, on_acked=acked, stop=stop)
    print(f"working: partition {args.partition} of {count}, stream {args.nats} "
          f"{args.stream}", flush=True)
    report = worker.run()
    log(logger, logging.INFO, "stopped", taken=report.taken,
        acknowledged=report.acknowledged, restarts=report.restarts)
    print(f"stopped: {report.acknowledged:,} messages acknowledged of {report.taken:,} "
          "taken")
    return 0
