"""The `aftersales` command line (SPEC section 6)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from eventsourcing.persistence import PersistenceError
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.exc import SQLAlchemyError

from aftersales.application import Ledger
from aftersales.collector import tune_for_batch_work
from aftersales.commands import At
from aftersales.domain.errors import AftersalesError, CommandRefused
from aftersales.ingest import BATCH, IngestReport, Settled, ingest
from aftersales.partition import SHARDS
from aftersales.progress import Progress
from aftersales.status import history_entry, render_history, render_status, status_document
from aftersales.store import DEFAULT_URL, ENV_VAR, redacted
from aftersales.workers import PARALLEL_FROM, default_workers, ingest_in_parallel
from aftersales.workload import Workload, generate
from projections.queries import SCORECARD, list_violations, render, scorecard
from projections.runner import BATCH as PROJECTION_BATCH
from projections.runner import Runner, verify
from projections.schema import SCHEMA_VERSION
from projections.views import VIEWS_ENV_VAR, ReadModels, views_url

VIOLATION_COLUMNS = ("deadline", "rule", "merchant_id", "order_id", "case_no",
                     "consequence", "penalty")

_TIME: TypeAdapter[datetime] = TypeAdapter(At)


def business_time(text: str) -> datetime:
    """An ISO-8601 timestamp with an offset, for --now and --as-of."""
    try:
        return _TIME.validate_python(text)
    except ValidationError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO-8601 timestamp with an offset "
            "(e.g. 2026-03-01T10:00:00+08:00)") from None


def build_parser() -> argparse.ArgumentParser:
    db = argparse.ArgumentParser(add_help=False)
    db.add_argument("--db", metavar="URL", default=argparse.SUPPRESS,
                    help=f"store URL (default: ${ENV_VAR} or {DEFAULT_URL})")
    db.add_argument("--views", metavar="URL", default=argparse.SUPPRESS,
                    help=f"read-model URL (default: ${VIEWS_ENV_VAR} or the store's database)")
    projecting = argparse.ArgumentParser(add_help=False)
    projecting.add_argument("--no-project", action="store_true",
                            help="leave the read models for `aftersales project`")
    since_until = argparse.ArgumentParser(add_help=False)
    since_until.add_argument("--since", type=business_time, help="from business time T")
    since_until.add_argument("--until", type=business_time, help="before business time T")
    since_until.add_argument("--format", choices=("table", "json", "csv"), default="table")
    parser = argparse.ArgumentParser(
        prog="aftersales", parents=[db],
        description="An event-sourced ledger for e-commerce after-sales.")
    sub = parser.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    ack = argparse.ArgumentParser(add_help=False)
    ack.add_argument("--ack", action="store_true",
                     help="print a line to standard output as each unit of work is committed")

    p = sub.add_parser("ingest", parents=[db, projecting, ack],
                       help="apply a command file (JSON Lines)")
    p.add_argument("file", help="the command file, or - for standard input")
    p.add_argument("--batch", type=int, default=BATCH,
                   help=f"lines per transaction (default {BATCH}; 1: one each)")
    p.add_argument("--workers", type=int, default=None,
                   help="processes, each deciding the orders it owns (default: one per core, "
                   f"up to 4, for files of {PARALLEL_FROM >> 20} MiB or more; else 1)")

    p = sub.add_parser("tick", parents=[db, projecting, ack], help="sweep due timeouts")
    p.add_argument("--now", type=business_time, help="business time (default: wall clock)")

    p = sub.add_parser("status", parents=[db], help="an order's current state")
    p.add_argument("order_id")
    p.add_argument("--json", action="store_true", help="the status document as JSON")
    p.add_argument("--as-of", type=business_time, help="the state as it stood at T")

    p = sub.add_parser("history", parents=[db], help="an order's audit trail")
    p.add_argument("order_id")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("project", parents=[db, ack], help="bring the read models up to date")
    p.add_argument("--follow", action="store_true", help="then keep following new events")
    p.add_argument("--poll", type=float, default=0.5, help="seconds between polls (--follow)")
    p.add_argument("--batch", type=int, default=PROJECTION_BATCH,
                   help=f"events per transaction (default {PROJECTION_BATCH})")
    p = sub.add_parser("rebuild", parents=[db], help="drop the read models and replay all events")
    p.add_argument("--workers", type=int, default=None,
                   help="processes, each replaying a range of orders (default: one per core, "
                   "up to 4, for 100,000 events or more; else 1)")
    sub.add_parser("verify", parents=[db],
                   help="rebuild into a scratch database and compare with the read models")
    p = sub.add_parser("db", parents=[db], help="operators: create or check the store")
    p.add_argument("action", choices=("init", "check"))
    p = sub.add_parser("violations", parents=[db, since_until], help="list violations")
    p.add_argument("--merchant")
    p.add_argument("--rule")
    sub.add_parser("report", parents=[db, since_until], help="the merchant scorecard")

    p = sub.add_parser("bench", parents=[db], help="measure speed against same-run baselines")
    p.add_argument("--orders", type=int, default=100_000)
    p.add_argument("--repeat", type=int, default=3, help="runs per figure (median)")
    p.add_argument("--big", action="store_true", help="also scale to 10x the orders")
    p.add_argument("--json", metavar="FILE", help="write the full report here")
    p.add_argument("--workdir", metavar="DIR", help="keep the generated files and stores")

    for name, text in (("demo", "generate a workload, ingest it, sweep, and report"),
                       ("gen", "write a generated command file to standard output")):
        p = sub.add_parser(name, parents=[db, projecting] if name == "demo" else [db],
                           help=text)
        p.add_argument("--orders", type=int, default=3000)
        p.add_argument("--seed", type=int, default=7)
        p.add_argument("--days", type=int, default=42)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    tune_for_batch_work()
    url = getattr(args, "db", None)
    try:
        if args.cmd == "gen":
            return cmd_gen(args)
        if args.cmd == "db":
            return cmd_db(args, url)
        if args.cmd == "bench":
            return cmd_bench(args, url)
        with closing(Ledger(url)) as ledger:
            handler = {"ingest": cmd_ingest, "tick": cmd_tick, "status": cmd_status,
                       "history": cmd_history, "demo": cmd_demo, "project": cmd_project,
                       "rebuild": cmd_rebuild, "verify": cmd_verify,
                       "violations": cmd_violations, "report": cmd_report}[args.cmd]
            return handler(ledger, args)
    except (AftersalesError, PersistenceError) as e:
        print(f"aftersales: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _views(ledger: Ledger, args: argparse.Namespace) -> ReadModels:
    return ReadModels(views_url(ledger.url, getattr(args, "views", None)))


def _project(ledger: Ledger, args: argparse.Namespace, label: str = "project") -> int:
    """Bring the read models up to date (unless --no-project); return events projected."""
    if getattr(args, "no_project", False):
        return 0
    with closing(_views(ledger, args)) as views:
        runner = Runner(ledger, views)
        progress = Progress(label, runner.lag(), unit="events")
        done = runner.catch_up(progress.advance_by)
        progress.close()
        return done


def _print_refusal(number: int, refusal: CommandRefused) -> None:
    print(f"line {number}: {refusal.code}: {refusal.reason}", file=sys.stderr)


def _acknowledge(settled: Settled) -> None:
    print(f"ack {settled.line} {settled.status}", flush=True)


def _lines_of(stream: BinaryIO) -> Iterator[bytes]:
    yield from stream


def cmd_ingest(ledger: Ledger, args: argparse.Namespace) -> int:
    if args.file == "-":
        source, total = sys.stdin.buffer, None
    else:
        try:
            source, total = open(args.file, "rb"), os.path.getsize(args.file)  # noqa: SIM115
        except OSError as e:
            print(f"aftersales: cannot read {args.file}: {e.strerror}", file=sys.stderr)
            return 2
    workers = _workers(args, ledger, total)
    if isinstance(workers, str):
        source.close()
        print(f"aftersales: {workers}", file=sys.stderr)
        return 2
    progress = Progress("ingest", total)
    acknowledge = _acknowledge if args.ack else lambda settled: None
    with source:
        if workers == 1:
            report = ingest(ledger, _lines_of(source), _print_refusal, progress.advance,
                            acknowledge, batch=args.batch)
        else:
            def done(settled: Settled) -> None:
                progress.count()
                acknowledge(settled)

            report = ingest_in_parallel(ledger.url, args.file, workers, _print_refusal,
                                        done, progress.reach, batch=args.batch)
    progress.close()
    print(report.summary())
    _project(ledger, args)
    return 1 if report.refused else 0


def _workers(args: argparse.Namespace, ledger: Ledger, size: int | None) -> int | str:
    """How many processes ingest the file (or why the number asked for cannot be)."""
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


def cmd_tick(ledger: Ledger, args: argparse.Namespace) -> int:
    now = args.now or datetime.now(UTC)
    swept = ledger.tick(now, lambda oid, n: print(f"ack swept {oid.hex} {n}", flush=True)
                        if args.ack else None)
    print(f"swept {swept} timeouts due before {now.isoformat()}")
    _project(ledger, args)
    return 0


def cmd_status(ledger: Ledger, args: argparse.Namespace) -> int:
    if args.as_of is not None:
        order = ledger.order_as_of(args.order_id, args.as_of)
        when = f" at {args.as_of.isoformat()}"
    else:
        order = ledger.get_order(args.order_id)
        when = ""
    if order is None:
        print(f"aftersales: order {args.order_id} was not placed{when}", file=sys.stderr)
        return 1
    doc = status_document(order)
    print(json.dumps(doc, ensure_ascii=False) if args.json else render_status(doc))
    return 0


def cmd_history(ledger: Ledger, args: argparse.Namespace) -> int:
    entries = [history_entry(e) for e in ledger.order_events(args.order_id)]
    if not entries:
        print(f"aftersales: order {args.order_id} was not placed", file=sys.stderr)
        return 1
    print(json.dumps(entries, ensure_ascii=False, indent=1) if args.json
          else render_history(entries))
    return 0


def _workload(args: argparse.Namespace) -> Workload:
    return Workload(orders=args.orders, seed=args.seed, days=args.days)


def cmd_gen(args: argparse.Namespace) -> int:
    out = sys.stdout
    for line in generate(_workload(args)):
        out.write(json.dumps(line, separators=(",", ":")) + "\n")
    return 0


def cmd_demo(ledger: Ledger, args: argparse.Namespace) -> int:
    w = _workload(args)
    print(f"demo: {w.orders} orders over {w.days} days (seed {w.seed}) into "
          f"{redacted(ledger.url)}")
    lines = [json.dumps(line).encode() for line in generate(w)]
    progress = Progress("ingest", len(lines))
    started = time.perf_counter()
    report: IngestReport = ingest(ledger, lines, _print_refusal, lambda _: progress.advance())
    progress.close()
    elapsed = time.perf_counter() - started
    swept = ledger.tick(w.end)
    print(report.summary())
    print(f"ingested in {elapsed:.1f}s ({report.lines / elapsed:,.0f} lines/s); "
          f"final sweep at {w.end.isoformat()}: {swept} timeouts")
    started = time.perf_counter()
    projected = _project(ledger, args)
    print(f"projected {projected} events into the read models in "
          f"{time.perf_counter() - started:.1f}s")
    if not getattr(args, "no_project", False):
        with closing(_views(ledger, args)) as views:
            rows = scorecard(views)
            found = list_violations(views)
        by_rule: dict[str, int] = {}
        for v in found:
            by_rule[v["rule"]] = by_rule.get(v["rule"], 0) + 1
        print("\nviolations by rule (read model `violations`):")
        for rule, n in sorted(by_rule.items()):
            print(f"  {rule:<24} {n:>6}")
        print("\nworst merchants (read model `merchant_compliance`):")
        print(render(rows[:8], "table", SCORECARD))
    return 1 if report.refused else 0


def cmd_project(ledger: Ledger, args: argparse.Namespace) -> int:
    with closing(_views(ledger, args)) as views:
        runner = Runner(ledger, views, batch=max(1, args.batch))
        def acknowledge(n: int) -> None:
            if args.ack:
                print(f"ack position {runner.position}", flush=True)

        if not args.follow:
            print(f"projected {runner.catch_up(acknowledge)} events; "
                  f"position {runner.position}")
            return 0
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        print(f"following {redacted(ledger.url)} from position {runner.position}", flush=True)
        runner.follow(stop, args.poll, acknowledge)
        print(f"stopped at position {runner.position}")
        return 0


def cmd_rebuild(ledger: Ledger, args: argparse.Namespace) -> int:
    with closing(_views(ledger, args)) as views:
        runner = Runner(ledger, views, prepare=False)  # whatever is there is replaced
        total = ledger.recorder.max_notification_id() or 0
        progress = Progress("rebuild", total, unit="events")
        started = time.perf_counter()
        if args.workers is not None and not 1 <= args.workers <= 16:
            print("aftersales: --workers takes 1 to 16", file=sys.stderr)
            return 2
        done = runner.rebuild(progress.advance_by, args.workers)
        progress.close()
        elapsed = time.perf_counter() - started
        print(f"rebuilt the read models from {done} events in {elapsed:.1f}s "
              f"({done / max(elapsed, 1e-9):,.0f} events/s)")
        return 0


def cmd_verify(ledger: Ledger, args: argparse.Namespace) -> int:
    with closing(_views(ledger, args)) as views:
        differences = verify(ledger, views)
    for line in differences:
        print(line)
    if differences:
        print(f"verify: the read models differ from a rebuild ({len(differences)} lines)",
              file=sys.stderr)
        return 1
    print("verify: the read models equal a rebuild from the events")
    return 0


def cmd_db(args: argparse.Namespace, url: str | None) -> int:
    """`db init` creates every table; `db check` reports on the store, creating nothing."""
    init = args.action == "init"
    with closing(Ledger(url, create_tables=init)) as ledger:
        where = redacted(ledger.url)
        views = _views(ledger, args)
        try:
            if init:
                views.create_table()
            events = ledger.recorder.max_notification_id() or 0
            pending = ledger.index.pending_deadlines()
            position = views.max_tracking_id(ledger.name) or 0
        except (PersistenceError, SQLAlchemyError) as e:
            print(f"aftersales: {where} is not usable: {str(e).splitlines()[0]}",
                  file=sys.stderr)
            print("aftersales: run `aftersales db init` to create the tables",
                  file=sys.stderr)
            return 1
        finally:
            views.close()
        now = datetime.now(UTC)
        overdue = sum(1 for _, row in pending if row.deadline < now)
        print(f"store {where}: {'initialised' if init else 'ok'}")
        print(f"  events recorded: {events}")
        print(f"  pending deadlines: {len(pending)} ({overdue} past due: run `aftersales "
              "tick`)" if overdue else f"  pending deadlines: {len(pending)}")
        print(f"  read models at position {position} of {events} (lag {events - position}),"
              f" schema version {SCHEMA_VERSION}, business days in {views.tz_name}")
        return 0


def cmd_bench(args: argparse.Namespace, url: str | None) -> int:
    from aftersales.bench import Bench, render

    def say(text: str) -> None:
        if sys.stderr.isatty():
            print(f"bench: {text}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(args.workdir or scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        report = Bench(orders=args.orders, workdir=workdir, db=url, repeat=max(1, args.repeat),
                       big=args.big, say=say).run()
    print(render(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


def cmd_violations(ledger: Ledger, args: argparse.Namespace) -> int:
    _project(ledger, args)
    with closing(_views(ledger, args)) as views:
        rows = list_violations(views, args.merchant, args.rule, args.since, args.until)
    print(render(rows, args.format, VIOLATION_COLUMNS))
    return 0


def cmd_report(ledger: Ledger, args: argparse.Namespace) -> int:
    _project(ledger, args)
    with closing(_views(ledger, args)) as views:
        rows = scorecard(views, args.since, args.until)
    print(render(rows, args.format, SCORECARD))
    return 0


if __name__ == "__main__":
    sys.exit(main())
