"""The `aftersales` command line (SPEC section 6)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import closing
from datetime import UTC, datetime
from typing import BinaryIO

from pydantic import AwareDatetime, TypeAdapter, ValidationError

from aftersales.application import Ledger
from aftersales.compliance import summarize
from aftersales.domain.errors import AftersalesError, CommandRefused
from aftersales.ingest import IngestReport, ingest
from aftersales.progress import Progress
from aftersales.status import history_entry, render_history, render_status, status_document
from aftersales.store import DEFAULT_URL, ENV_VAR
from aftersales.workload import Workload, generate

_TIME = TypeAdapter(AwareDatetime)


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
    parser = argparse.ArgumentParser(
        prog="aftersales", parents=[db],
        description="An event-sourced ledger for e-commerce after-sales.")
    sub = parser.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    p = sub.add_parser("ingest", parents=[db], help="apply a command file (JSON Lines)")
    p.add_argument("file", help="the command file, or - for standard input")

    p = sub.add_parser("tick", parents=[db], help="sweep due timeouts")
    p.add_argument("--now", type=business_time, help="business time (default: wall clock)")

    p = sub.add_parser("status", parents=[db], help="an order's current state")
    p.add_argument("order_id")
    p.add_argument("--json", action="store_true", help="the status document as JSON")
    p.add_argument("--as-of", type=business_time, help="the state as it stood at T")

    p = sub.add_parser("history", parents=[db], help="an order's audit trail")
    p.add_argument("order_id")
    p.add_argument("--json", action="store_true")

    for name, text in (("demo", "generate a workload, ingest it, sweep, and report"),
                       ("gen", "write a generated command file to standard output")):
        p = sub.add_parser(name, parents=[db], help=text)
        p.add_argument("--orders", type=int, default=3000)
        p.add_argument("--seed", type=int, default=7)
        p.add_argument("--days", type=int, default=42)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    url = getattr(args, "db", None)
    try:
        if args.cmd == "gen":
            return cmd_gen(args)
        with closing(Ledger(url)) as ledger:
            handler = {"ingest": cmd_ingest, "tick": cmd_tick, "status": cmd_status,
                       "history": cmd_history, "demo": cmd_demo}[args.cmd]
            return handler(ledger, args)
    except AftersalesError as e:
        print(f"aftersales: {e}", file=sys.stderr)
        return 2


def _print_refusal(number: int, refusal: CommandRefused) -> None:
    print(f"line {number}: {refusal.code}: {refusal.reason}", file=sys.stderr)


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
    progress = Progress("ingest", total)
    with source:
        report = ingest(ledger, _lines_of(source), _print_refusal, progress.advance)
    progress.close()
    print(report.summary())
    return 1 if report.refused else 0


def cmd_tick(ledger: Ledger, args: argparse.Namespace) -> int:
    now = args.now or datetime.now(UTC)
    swept = ledger.tick(now)
    print(f"swept {swept} timeouts due before {now.isoformat()}")
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
    print(f"demo: {w.orders} orders over {w.days} days (seed {w.seed}) into {ledger.url}")
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
    print(summarize(ledger).render())
    return 1 if report.refused else 0


if __name__ == "__main__":
    sys.exit(main())
