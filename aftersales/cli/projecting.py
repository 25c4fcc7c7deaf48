"""The read models kept up to date: after each command that writes (unless
--no-project), by `project` (`--follow`: a service), and by `rebuild`; and a warning of
the orders they could not vouch for."""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing
from typing import TYPE_CHECKING

from aftersales.application.ledger import Ledger
from aftersales.cli.anchors import FollowAnchors
from aftersales.cli.edge import Edge, fail, failure, few
from aftersales.cli.progress import Progress
from aftersales.errors import (
    EXIT_INTEGRITY,
    EXIT_USAGE,
    AftersalesError,
    StoreUnavailable,
    ViewsMismatch,
)
from aftersales.storage.config import redacted
from projections.database import ReadModels, views_url
from projections.queries import broken_orders
from projections.rebuild import default_workers as rebuild_workers
from projections.runner import Runner, lag_behind

if TYPE_CHECKING:
    from aftersales.service.projection_metrics import ProjectionMetrics

#: `rebuild_workers`, how many processes a rebuild of so many events takes, is handed on
#: for `aftersales bench` (only the command line imports the read side).
__all__ = ["broken_in_read_models", "cmd_project", "cmd_rebuild", "open_views", "project",
           "rebuild_workers"]


def open_views(ledger: Ledger, edge: Edge) -> ReadModels:
    """The read models: --views, else $AFTERSALES_VIEWS_DB, else in the store's database
    (a partitioned ledger's: partition 0's; every partition projects into them)."""
    return ReadModels(views_url(edge.url, getattr(edge.args, "views", None)),
                      settings=edge.settings)


def partition_ledgers(edge: Edge, ledger: Ledger | None = None, only: int | None = None,
                      create: bool = False) -> Iterator[tuple[int, Ledger]]:
    """Each partition (its index and ledger) in turn, opened and closed (`ledger`, already
    open, is given as it is); partition 0, the one ledger, where there is no map."""
    if edge.partitions is None:
        assert ledger is not None
        yield 0, ledger
        return
    for k, url in edge.partitions:
        if only is not None and k != only:
            continue
        if ledger is not None and ledger.url == url:
            yield k, ledger
            continue
        with closing(edge.ledger(create=create, partition=k)) as opened:
            yield k, opened


def all_partitions(edge: Edge, ledger: Ledger, stack: ExitStack) -> list[Ledger]:
    """Every partition's ledger, open at once (closed with `stack`), partition 0 first;
    `ledger`, already open, given as it is."""
    assert edge.partitions is not None
    found = []
    for k, url in edge.partitions:
        if ledger.url == url:
            found.append(ledger)
        else:
            found.append(stack.enter_context(closing(edge.ledger(create=False, partition=k))))
    return found


def check_positions(views: ReadModels, edge: Edge) -> None:
    """The read models' positions are this partition map's (or one store's): read models
    projected from another map would fold events twice; refused."""
    expected = {"aftersales"} if edge.partitions is None else {
        edge.partitions.name(k) for k, _ in edge.partitions}
    foreign = sorted(set(views.positions()) - expected)
    if foreign:
        raise ViewsMismatch(
            f"the read models at {redacted(views.url)} were projected from another "
            f"partition map (positions {', '.join(foreign)}; this one's are "
            f"{', '.join(sorted(expected))}): run `aftersales rebuild` with this map")


def project(ledger: Ledger, edge: Edge, label: str = "project", closing_line: bool = True
            ) -> int:
    """Bring the read models up to date (unless --no-project); return events projected,
    saying so after a command that wrote (`closing_line`; a query's output is its rows
    alone).  The ledger is recorded whatever happens here: if the read models' store
    fails, say so, and how to catch up."""
    if getattr(edge.args, "no_project", False):
        return 0

    if edge.partitions is not None:
        def step(k: int, one: Ledger, views: ReadModels) -> int:
            runner = Runner(one, views)
            progress = Progress(f"{label} {k}", runner.lag(), unit="events")
            found = runner.catch_up(progress.advance_by)
            progress.close()
            return found

        done = _project_partitions(ledger, edge, step)
        if done and closing_line:
            print(f"projected {done:,} events into the read models")
        return done

    def catch_up() -> int:
        with closing(open_views(ledger, edge)) as views:
            check_positions(views, edge)
            runner = Runner(ledger, views)
            progress = Progress(label, runner.lag(), unit="events")
            done = runner.catch_up(progress.advance_by)
            progress.close()
            return done

    try:
        done = edge.patience(ledger).run(catch_up, "bringing the read models up to date")
    except StoreUnavailable as e:
        raise StoreUnavailable(f"{e}.  The ledger itself is recorded; run `aftersales "
                               "project` when the store is back") from e
    if done and closing_line:
        print(f"projected {done:,} events into the read models")
    return done


def _project_partitions(ledger: Ledger, edge: Edge,
                        step: Callable[[int, Ledger, ReadModels], int],
                        only: int | None = None) -> int:
    """`step` for every partition (or `only` one), into the one reporting database, each
    partition from its own position: a partition whose store cannot be reached is passed
    over (its rows wait; the others' are brought up to date), and said once the others
    are done.  How many events the steps projected."""
    assert edge.partitions is not None
    with closing(open_views(ledger, edge)) as views:
        edge.patience(url=views.url).run(lambda: check_positions(views, edge),
                                         "reading the read models")
        done, down = 0, []
        for k, url in edge.partitions:
            if only is not None and k != only:
                continue

            def catch_up(k: int = k, url: str = url) -> int:
                with ExitStack() as stack:
                    one = ledger if ledger.url == url else \
                        stack.enter_context(closing(edge.ledger(create=False, partition=k,
                                                                patient=False)))
                    return step(k, one, views)
            try:
                done += edge.patience(url=url).run(catch_up, f"projecting partition {k}")
            except StoreUnavailable as e:
                down.append(f"partition {k}: {e}")
    if down:
        raise StoreUnavailable("; ".join(down) + ".  The ledger itself is recorded, and the "
                               "other partitions' rows are up to date; run `aftersales "
                               "project` when it is back")
    return done


def broken_in_read_models(ledger: Ledger, edge: Edge) -> int:
    """Warn of orders the read models could not vouch for; the exit code that goes with
    it."""
    with closing(open_views(ledger, edge)) as views:
        broken = broken_orders(views)
    if not broken:
        return 0
    names = [b["order_id"] or b["order_uuid"] for b in broken]
    print(f"aftersales: warning: {len(names)} order(s) have a broken history and are counted "
          f"only up to the break (table integrity_breaks): {few(names)}; run `aftersales "
          "verify`", file=sys.stderr)
    return EXIT_INTEGRITY


def cmd_project(ledger: Ledger, edge: Edge) -> int:
    args = edge.args
    if args.partition is not None and edge.partitions is None:
        return fail("--partition is for a partitioned ledger (--partitions, or "
                    "$AFTERSALES_PARTITIONS)", EXIT_USAGE)
    if args.follow and edge.partitions is not None and args.partition is None:
        return fail("project --follow on a partitioned ledger follows one partition: give "
                    "--partition K (one runner per partition)", EXIT_USAGE)
    if not args.follow:
        if args.metrics_port is not None:
            return fail("--metrics-port is for `project --follow` (a service to scrape)",
                        EXIT_USAGE)
        return _project_once(ledger, edge)
    metrics = None
    if args.metrics_port is not None:
        if not 0 <= args.metrics_port <= 65535:
            return fail(f"--metrics-port {args.metrics_port}: a port is 0 to 65535",
                        EXIT_USAGE)
        from aftersales.service.projection_metrics import ProjectionMetrics
        metrics = ProjectionMetrics()
        try:
            metrics.serve(args.metrics_host, args.metrics_port)
        except OSError as e:
            return fail(f"cannot serve metrics on {args.metrics_host}:{args.metrics_port}: "
                        f"{e.strerror or e}", EXIT_USAGE)
    try:
        return _follow(ledger, edge, metrics)
    finally:
        if metrics is not None:
            metrics.close()


def _follow(ledger: Ledger, edge: Edge, metrics: ProjectionMetrics | None) -> int:
    """`project --follow`: a service.  Its stdout lines as ever (`following …`, `ack
    position N`, `stopped at position N`); JSON log lines on stderr (started, each store
    failure waited out, stopped); with `metrics`, its Prometheus metrics kept."""
    import logging

    from aftersales.service.logs import configure, log
    args = edge.args
    logger = configure(args.log_level)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    # A service: after a store failure that may pass it reconnects, with growing pauses,
    # for as long as it takes (--retry-for bounds it, counted from the first failure since
    # it last projected anything), and stops at once on SIGTERM, even while it waits.
    print(f"following {redacted(ledger.url)}", flush=True)
    position = [0]
    before = [0]
    said = [""]
    patience = edge.patience(ledger, retry_for=getattr(args, "retry_for", None))

    def waiting_for(text: str) -> None:
        said[0] = text

    def pause(seconds: float) -> object:
        """Each store failure waited out: a warning, and the metric, then the pause."""
        if metrics is not None:
            metrics.retried()
        log(logger, logging.WARNING, "store failure: waiting", position=position[0],
            retries=patience.retries, pause_seconds=round(seconds, 3),
            message=f"aftersales: waiting: {said[0].rstrip()}")
        return stop.wait(seconds)

    patience.on_wait, patience.waits, patience.sleep = waiting_for, "reconnecting to", pause
    served = {} if metrics is None else {"metrics": metrics.url}
    anchor = None if args.anchor_every is None else FollowAnchors(ledger, edge, logger)

    def session() -> None:
        if stop.is_set():
            return
        before[0] = position[0]
        with closing(open_views(ledger, edge)) as views:
            check_positions(views, edge)
            runner = Runner(ledger, views, batch=max(1, args.batch))
            position[0] = runner.position
            print(f"projecting from position {position[0]}", flush=True)
            log(logger, logging.INFO, "following", store=redacted(ledger.url),
                position=position[0], **served)

            def observe() -> None:
                if metrics is not None:
                    metrics.observe(lag_behind(ledger, position[0]))
                if anchor is not None:
                    anchor()  # on its own timer: between batches, and when caught up

            def acknowledge(n: int, runner: Runner = runner) -> None:
                position[0] = runner.position
                if args.ack:
                    print(f"ack position {position[0]}", flush=True)
                if metrics is not None:
                    metrics.projected(n)  # before the position: a scrape that sees the
                    observe()             # new position sees these events counted
                elif anchor is not None:
                    anchor()

            observe()
            runner.follow(stop, args.poll, acknowledge, on_idle=observe)

    try:
        patience.run(session, "following", progressed=lambda: position[0] > before[0])
    except AftersalesError as e:
        code, text = failure(e)
        log(logger, logging.ERROR, "stopped: failed", position=position[0], error=text)
        return code
    finally:
        if anchor is not None:
            anchor.close()
    log(logger, logging.INFO, "stopped", position=position[0], retries=patience.retries)
    print(f"stopped at position {position[0]}")
    return 0


def _project_once(ledger: Ledger, edge: Edge) -> int:
    def once(k: int, one: Ledger, views: ReadModels) -> int:
        runner = Runner(one, views, batch=max(1, edge.args.batch))

        def acknowledge(n: int) -> None:
            if edge.args.ack:
                print(f"ack position {runner.position}", flush=True)

        done = runner.catch_up(acknowledge)
        print(f"projected {done:,} events; position {runner.position}"
              + ("" if edge.partitions is None else f" of partition {k}"))
        return done

    def alone() -> int:
        with closing(open_views(ledger, edge)) as views:
            check_positions(views, edge)
            return once(0, ledger, views)

    if edge.partitions is None:
        edge.patience(ledger).run(alone, "bringing the read models up to date")
    else:
        _project_partitions(ledger, edge, once, getattr(edge.args, "partition", None))
    return broken_in_read_models(ledger, edge)


def cmd_rebuild(ledger: Ledger, edge: Edge) -> int:
    args = edge.args
    if args.workers is not None and not 1 <= args.workers <= 16:
        return fail("--workers takes 1 to 16", EXIT_USAGE)

    def rebuild() -> tuple[int, float]:
        with closing(open_views(ledger, edge)) as views, ExitStack() as stack:
            runner = Runner(ledger, views, prepare=False)  # whatever is there is replaced
            partitions = [] if edge.partitions is None else \
                all_partitions(edge, ledger, stack)
            total = sum(one.recorder.max_notification_id() or 0
                        for one in partitions or [ledger])
            progress = Progress("rebuild", total, unit="events")
            started = time.perf_counter()
            done = runner.rebuild(progress.advance_by, args.workers, partitions)
            progress.close()
            return done, time.perf_counter() - started

    done, elapsed = edge.patience(ledger).run(rebuild, "rebuilding the read models")
    print(f"rebuilt the read models from {done:,} events in {elapsed:.1f}s "
          f"({done / max(elapsed, 1e-9):,.0f} events/s)")
    return broken_in_read_models(ledger, edge)
