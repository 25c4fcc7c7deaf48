"""`aftersales serve-webhook` (the service, put together here) and `aftersales feed`
(what its inbox holds)."""

from __future__ import annotations

import os
import signal
import sys
import threading
from argparse import Namespace
from collections.abc import Callable
from datetime import timedelta, tzinfo
from pathlib import Path

from aftersales.application.clock import wall_clock
from aftersales.application.ledger import Ledger
from aftersales.cli.edge import fail
from aftersales.cli.human import local
from aftersales.feeds.douyin import Tolerance
from aftersales.storage.config import redacted

EXIT_USAGE, EXIT_STORE = 2, 3


def serve_webhook(ledger: Ledger, args: Namespace, open_ledger: Callable[[], Ledger],
                  tolerance: Tolerance, partitions: int = 1) -> int:
    """Serve until SIGTERM or Ctrl-C: stop accepting, answer what was received, let the
    applier record its transaction, exit 0 (3 if the applier stopped on an error).  The
    inbox is written through `ledger`; the applier opens its own (`open_ledger`).  With
    --nats, each body is published to the stream of a ledger of `partitions` instead, and
    no applier runs here (the partitions' workers decide the bodies)."""
    if args.nats is not None:
        return serve_to_stream(args, partitions)
    from aftersales.feeds.webhook import Applier, migrate_spool, secrets
    from aftersales.service import app as webapp
    from aftersales.service.logs import configure
    from aftersales.service.metrics import WebhookMetrics
    from aftersales.service.server import listen, server

    key, secret = secrets()  # checked with the options, before the store was opened
    log = configure(args.log_level)

    said = threading.Lock()

    def say(text: str) -> None:
        """An `ack` line, whole (the server's and the applier's threads both say them)."""
        if args.ack:
            with said:
                sys.stdout.write(text + "\n")
                sys.stdout.flush()

    moved = migrate_spool(ledger, Path(args.spool))
    if moved is not None:
        print(f"moved {moved} bodies of the spool file {args.spool} into the store's "
              f"inbox (the file is kept as {args.spool}.migrated)", flush=True)
    try:
        sock = listen(args.host, args.port)
    except OSError as e:
        return fail(f"cannot listen on {args.host}:{args.port}: {e.strerror}",
                    EXIT_USAGE)
    metrics = WebhookMetrics()
    lateness = timedelta(seconds=args.lateness)

    def outcomes(counts: dict[str, int]) -> None:
        for outcome, n in counts.items():
            metrics.outcomes.labels(outcome).inc(n)

    applier = Applier(open_ledger, lateness, wall_clock, log,
                      say=say, tolerance=tolerance, on_outcomes=outcomes,
                      on_retry=metrics.retries.labels("applier").inc)
    settings = webapp.Settings(key=key, secret=secret, lateness=lateness,
                               max_lag=args.max_lag, body_timeout=args.body_timeout,
                               clock=wall_clock, ack=say)
    app = webapp.create_app(ledger, applier, settings, metrics, log)
    http = server(app, max_connections=args.max_connections,
                  header_timeout=args.header_timeout, keep_alive=args.keep_alive)

    def stop_for_failure() -> None:
        http.should_exit = True

    applier.on_failure = stop_for_failure
    # Ours, so that uvicorn's re-raising of the signal after its graceful shutdown
    # ends here rather than killing the process before the applier has stopped.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
    applier.start()
    host, port = sock.getsockname()[:2]
    stats = ledger.index.inbox_stats()
    print(f"listening on http://{_host(host)}:{port}/ (inbox of {redacted(ledger.url)}: "
          f"{stats.received:,} bodies, {stats.backlog:,} not yet applied)", flush=True)
    log.info("listening", extra={"fields": {"host": host, "port": port,
                                            "pid": os.getpid()}})
    try:
        http.run(sockets=[sock])
    finally:
        sock.close()
        applier.close()  # after the transaction under way
        log.info("stopped", extra={"fields": {
            "store_retries": applier.progress.store_retries}})
    print("stopped", flush=True)
    return EXIT_STORE if applier.progress.failed is not None else 0


def serve_to_stream(args: Namespace, partitions: int) -> int:
    """`serve-webhook --nats`: the same service, each accepted body published to the
    NATS stream (`aftersales.feeds.publish.StreamIntake`)."""
    import asyncio

    from aftersales.feeds.jetstream import Target
    from aftersales.feeds.publish import StreamIntake
    from aftersales.feeds.webhook import secrets
    from aftersales.service import app as webapp
    from aftersales.service.logs import configure
    from aftersales.service.metrics import WebhookMetrics
    from aftersales.service.server import listen, server

    key, secret = secrets()
    log = configure(args.log_level)
    target = Target.of(args.nats, args.stream)
    try:
        sock = listen(args.host, args.port)
    except OSError as e:
        return fail(f"cannot listen on {args.host}:{args.port}: {e.strerror}", EXIT_USAGE)

    def say(text: str) -> None:
        if args.ack:
            print(text, flush=True)

    intake = StreamIntake(target, partitions)
    settings = webapp.Settings(key=key, secret=secret, lateness=timedelta(
        seconds=args.lateness), max_lag=args.max_lag, body_timeout=args.body_timeout,
        clock=wall_clock, ack=say)
    app = webapp.create_app(None, None, settings, WebhookMetrics(), log, intake)
    http = server(app, max_connections=args.max_connections,
                  header_timeout=args.header_timeout, keep_alive=args.keep_alive)
    host, port = sock.getsockname()[:2]
    print(f"listening on http://{_host(host)}:{port}/ (publishing to stream {target.stream} "
          f"at {', '.join(target.servers)}, {partitions} partition(s))", flush=True)
    log.info("listening", extra={"fields": {"host": host, "port": port, "pid": os.getpid(),
                                            "stream": target.stream}})

    async def run() -> None:
        try:
            await http.serve(sockets=[sock])
        finally:
            await intake.close()

    for sig in (signal.SIGINT, signal.SIGTERM):  # (as above: uvicorn's re-raise ends here)
        signal.signal(sig, lambda *_: None)

    try:
        asyncio.run(run())
    finally:
        sock.close()
    print("stopped", flush=True)
    return 0


def check_options(args: object) -> str | None:
    """What is wrong with the options or the app's secrets, said before anything is
    opened."""
    from aftersales.errors import SettingsError
    from aftersales.feeds.webhook import secrets
    try:
        secrets()
    except SettingsError as e:
        return str(e)
    return None  # the ranges of the options: checked as they are read (cli/parser.py)


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def show_inbox(ledger: Ledger, zone: tzinfo) -> int:
    """What the webhook received and applied."""
    stats = ledger.index.inbox_stats()
    print(f"inbox of {redacted(ledger.url)}: {stats.received:,} bodies received, "
          f"{stats.applied:,} applied, {stats.backlog:,} waiting")
    if stats.oldest_unapplied is not None:
        waited = wall_clock() - stats.oldest_unapplied
        print(f"  oldest waiting: body {stats.first_unapplied}, received "
              f"{local(stats.oldest_unapplied, zone)} ({_span(waited)} ago)")
    return 0


def _span(d: timedelta) -> str:
    seconds = max(0, int(d.total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"
