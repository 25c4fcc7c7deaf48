"""The `aftersales` command line (SPEC section 6)."""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import tempfile
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

from pydantic import TypeAdapter, ValidationError

from aftersales.application.clock import guard_for, wall_clock
from aftersales.application.commands import At, describe
from aftersales.application.ledger import Ledger
from aftersales.application.status import history_entry, status_document
from aftersales.cli.anchors import (
    FollowAnchors,
    add_anchor_every,
    anchor_if_due,
    cmd_anchor,
    verify_anchors,
)
from aftersales.cli.anchors import check_options as anchor_problem
from aftersales.cli.human import CURRENCY, local
from aftersales.cli.progress import Progress
from aftersales.cli.render import render_history, render_status
from aftersales.cli.tables import render
from aftersales.domain.reconciliation import KINDS
from aftersales.domain.steps import TIMEOUTS
from aftersales.errors import (
    EXIT_INTEGRITY,
    EXIT_INTERRUPTED,
    EXIT_STORE,
    EXIT_USAGE,
    AftersalesError,
    CommandRefused,
    IntegrityBroken,
    LedgerMissing,
    LogBroken,
    RebuildInterrupted,
    StoreUnavailable,
    Unsettled,
)
from aftersales.ingest.parallel import PARALLEL_FROM, default_workers, ingest_in_parallel
from aftersales.ingest.serial import BATCH, IngestReport, Settled, broken_names, ingest
from aftersales.runtime.garbage import tune_for_batch_work
from aftersales.settings import Settings, business_zone
from aftersales.storage.config import DEFAULT_URL, ENV_VAR, redacted, resolve_url, sqlite_path
from aftersales.storage.integrity import Check, check, order_names, record_breaks, watch_log
from aftersales.storage.logcheck import LogBreak, LogWalk
from aftersales.storage.retry import Patience, is_store_error, may_pass
from aftersales.storage.retry import describe as store_error
from aftersales.storage.shard import SHARDS
from projections.database import VIEWS_ENV_VAR, ReadModels, views_url
from projections.queries import (
    DEMO_SCORECARD,
    DISCREPANCY_COLUMNS,
    DISPUTE_COLUMNS,
    LAPSE_COLUMNS,
    SCORECARD,
    SCORECARD_CAPTION,
    broken_orders,
    business_days,
    cases_by_kind,
    compensation_per_month,
    currencies,
    deadline_changes_by_actor,
    disputes_by_merchant,
    hours,
    list_discrepancies,
    list_disputes,
    list_lapses,
    list_violations,
    per_day,
    scorecard_table,
    scorecard_with_total,
)
from projections.rebuild import default_workers as rebuild_workers  # noqa: F401 (bench)
from projections.runner import BATCH as PROJECTION_BATCH
from projections.runner import Lag, Projected, Runner, lag_behind, projected, verify
from projections.schema import SCHEMA_VERSION

if TYPE_CHECKING:
    from aftersales.devtools.douyin_feed import FeedPlan
    from aftersales.devtools.workload import Workload
    from aftersales.feeds.douyin import Tolerance
    from aftersales.service.projection_metrics import ProjectionMetrics

T = TypeVar("T")

VIOLATION_COLUMNS = ("deadline", "rule", "merchant_id", "order_id", "case_no",
                     "consequence", "penalty")

_TIME: TypeAdapter[datetime] = TypeAdapter(At)

#: The violations and the lapses of the rules table, by name.
VIOLATION_RULES = tuple(dict.fromkeys(t.missed for t in TIMEOUTS.values() if t.is_violation))
LAPSE_RULES = tuple(dict.fromkeys(t.missed for t in TIMEOUTS.values() if not t.is_violation))


def _rule_of(kind: str) -> Callable[[str], str]:
    """An argparse type for --rule: a violation's (or a lapse's) name, in any case; any
    other is refused, naming the valid ones (and where a rule of the other kind is)."""
    names, others = ((VIOLATION_RULES, LAPSE_RULES) if kind == "violation"
                     else (LAPSE_RULES, VIOLATION_RULES))

    def rule(text: str) -> str:
        name = text.strip().upper()
        if name in names:
            return name
        if name in others:
            other = "lapse" if kind == "violation" else "violation"
            raise argparse.ArgumentTypeError(
                f"{name} is a {other}, not a {kind}: see `aftersales "
                f"{'lapses' if other == 'lapse' else 'violations'}`")
        raise argparse.ArgumentTypeError(
            f"no {kind} is called {text!r}; the {kind}s are {', '.join(names)}")
    return rule


def _lateness(text: str) -> float:
    """--lateness: 0 to 7 days, in seconds."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 7 * 86400:
        raise argparse.ArgumentTypeError(f"{text!r}: expected 0 to 604800 seconds")
    return value


def business_time(text: str) -> datetime:
    """An ISO-8601 timestamp with an offset, for --now and --as-of (as strict as a
    command's `at`, and saying what is wrong with it)."""
    try:
        return _TIME.validate_python(text)
    except ValidationError as e:
        why = re.sub(r"^field '[^']*': ", "", describe(e, tagged=False))
        raise argparse.ArgumentTypeError(f"{text!r}: {why}") from None


#: What exit code 1 means, for the commands where it means something.
_EXIT_1 = {
    "ingest": "some lines were refused (each printed as `line N: CODE: reason`; a "
              "warning alone changes no exit code)",
    "demo": "some generated lines were refused",
    "status": "the order was not placed (or not yet at --as-of)",
    "history": "the order was not placed",
    "verify": "the read models differ from a rebuild (a broken chain is 4)",
    "db": "check: the store's tables are not usable (run `aftersales db init`), or "
          "the read models or the deadlines are later than --max-lag or --max-overdue",
    "feed": "some messages were refused or are still reported",
}


def exit_codes(command: str) -> str:
    """The exit codes of a command, for its --help."""
    if command == "gen":
        return "exit codes: 0 done; 2 a bad option"
    one = f"1 {_EXIT_1[command]}; " if command in _EXIT_1 else ""
    return (f"exit codes: 0 done; {one}2 it cannot run as asked (a bad option or time, an "
            "unreadable file, no ledger at the URL); 3 the store failed past the retry "
            "time; 4 an order's stored history is broken (docs/operations.md)")


def build_parser() -> argparse.ArgumentParser:
    db = argparse.ArgumentParser(add_help=False)
    db.add_argument("--db", metavar="URL", default=argparse.SUPPRESS,
                    help=f"store URL (default: ${ENV_VAR} or {DEFAULT_URL})")
    db.add_argument("--views", metavar="URL", default=argparse.SUPPRESS,
                    help=f"read-model URL (default: ${VIEWS_ENV_VAR} or the store's database)")
    db.add_argument("--retry-for", metavar="SECONDS", type=float, default=argparse.SUPPRESS,
                    help="how long a store failure that may pass (lost connection, locked "
                    "database, ...) is retried before giving up (default: "
                    "$AFTERSALES_RETRY_FOR or 60)")
    projecting = argparse.ArgumentParser(add_help=False)
    projecting.add_argument("--no-project", action="store_true",
                            help="leave the read models for `aftersales project`")
    future = argparse.ArgumentParser(add_help=False)
    future.add_argument("--allow-future", action="store_true",
                        help="accept business times more than $AFTERSALES_FUTURE_MARGIN "
                        "(default 600 s) ahead of the wall clock (replaying future-dated "
                        "test data)")
    def listing(formats: Sequence[str], page: str = "") -> argparse.ArgumentParser:
        """The options of a query command: its window and its output's format."""
        found = argparse.ArgumentParser(add_help=False)
        found.add_argument("--since", metavar="T", type=business_time,
                           help="from business time T (ISO-8601 with an offset)")
        found.add_argument("--until", metavar="T", type=business_time,
                           help="before business time T")
        found.add_argument("--format", choices=formats, default="table",
                           help="an aligned table for a person (default), or JSON or CSV "
                           "for a program" + page)
        return found

    since_until = listing(("table", "json", "csv"))
    scored = listing(("table", "json", "csv", "html"), "; html: the scorecard page, one "
                     "self-contained file (`> scorecard.html`)")
    generated = argparse.ArgumentParser(add_help=False)
    generated.add_argument("--orders", type=int, default=None,
                           help="how many orders the workload has (default 3000; 300 with "
                           "--platform douyin)")
    generated.add_argument("--platform", choices=("douyin",), default=None,
                           help="douyin: a Douyin feed of one shop instead (push bodies "
                           "and its order export; docs/platforms/douyin.md)")
    generated.add_argument("--seed", type=int, default=7,
                           help="the random seed: the same seed gives the same lines "
                           "(default 7)")
    generated.add_argument("--days", type=int, default=42,
                           help="business days simulated from 2026-03-01 (default 42)")
    generated.add_argument("--returns-only", action="store_true",
                           help="returns only: the workload of earlier versions, line for "
                           "line")
    parser = argparse.ArgumentParser(
        prog="aftersales", parents=[db],
        description="An event-sourced ledger for e-commerce after-sales.")
    sub = parser.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    def command(name: str, text: str, *parents: argparse.ArgumentParser
                ) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=list(parents), help=text, description=text,
                              epilog=exit_codes(name))

    ack = argparse.ArgumentParser(add_help=False)
    ack.add_argument("--ack", action="store_true",
                     help="print a line to standard output as each unit of work is committed")

    feeding = argparse.ArgumentParser(add_help=False)
    feeding.add_argument("--tolerance", metavar="SECONDS", type=_lateness, default=600.0,
                         help="platform feeds: how far the platform's time of a step its "
                         "timers took may lie from the ledger's and still agree (default "
                         "600)")
    feeding.add_argument("--refund-tolerance", metavar="SECONDS", type=_lateness,
                         default=259200.0,
                         help="platform feeds: the same for money arriving (RefundSuccess; "
                         "default 259200, 72 hours)")

    p = command("ingest", "apply a command file (JSON Lines); files ingested at the same "
                "time must split the orders between them (docs/operations.md, \"What may "
                "run at once\")", db, projecting, ack, future, feeding)
    p.add_argument("file", help="the command file, or - for standard input")
    p.add_argument("--format", choices=("commands", "douyin"), default="commands",
                   help="commands: JSON Lines of ledger commands (default); douyin: "
                   "Douyin push bodies, one per line, with ledger command lines mixed in "
                   "(docs/platforms/douyin.md)")
    p.add_argument("--lateness", metavar="SECONDS", type=_lateness, default=600.0,
                   help="--format douyin: how long after a later message an earlier one "
                   "may arrive and still be applied in its place (default 600)")
    p.add_argument("--received-at", metavar="T", type=business_time,
                   help="--format douyin: when bare bodies (lines without received_at) were "
                   "received: the time of their messages that carry none (default: such "
                   "messages are refused)")
    p.add_argument("--batch", type=int, default=BATCH,
                   help=f"lines per transaction (default {BATCH}; 1: one each)")
    p.add_argument("--workers", type=int, default=None,
                   help="processes, each deciding the orders it owns (default: one per core, "
                   f"up to 4, for files of {PARALLEL_FROM >> 20} MiB or more; else 1)")

    p = command("tick", "sweep due timeouts", db, projecting, ack, future)
    p.add_argument("--now", metavar="T", type=business_time,
                   help="business time (default: wall clock)")
    add_anchor_every(p, follow=False)

    p = command("status", "an order's current state", db)
    p.add_argument("order_id", help="the platform's order number")
    p.add_argument("--json", action="store_true", help="the status document as JSON")
    p.add_argument("--as-of", metavar="T", type=business_time,
                   help="the state as it stood at business time T")

    p = command("history", "an order's audit trail: every event with its actor, business "
                "time, recorded time, and the rule behind a system act", db)
    p.add_argument("order_id", help="the platform's order number")
    p.add_argument("--json", action="store_true",
                   help="one JSON object per event, for a program (as --format json)")
    p.add_argument("--format", choices=("text", "json", "html"), default="text",
                   help="text for a person (default), json for a program, or html: the "
                   "order's timeline page, one self-contained file (`> order.html`)")

    p = command("project", "bring the read models up to date", db, ack)
    p.add_argument("--follow", action="store_true", help="then keep following new events")
    p.add_argument("--poll", metavar="SECONDS", type=float, default=0.5,
                   help="with --follow: the longest wait before looking for new events "
                   "(default 0.5; on PostgreSQL a NOTIFY wakes it at once)")
    p.add_argument("--batch", type=int, default=PROJECTION_BATCH,
                   help=f"events per transaction (default {PROJECTION_BATCH})")
    p.add_argument("--metrics-port", metavar="PORT", type=int, default=None,
                   help="with --follow: serve Prometheus metrics (position, lag in events "
                   "and seconds, events projected, store failures waited out) at "
                   "http://HOST:PORT/metrics")
    p.add_argument("--metrics-host", metavar="HOST", default="127.0.0.1",
                   help="the address the metrics are served on (default 127.0.0.1)")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"),
                   default="info", help="with --follow: the JSON log lines on standard "
                   "error (default info)")
    add_anchor_every(p, follow=True)
    p = command("serve-webhook", "receive Douyin's live pushes over HTTP: check each "
                "body's event-sign (app key and secret from $AFTERSALES_DOUYIN_APP_KEY and "
                "$AFTERSALES_DOUYIN_APP_SECRET, or the files their _FILE variables name), "
                "commit it to the store's inbox before answering success, and apply it to "
                "the ledger; /healthz, /readyz and /metrics (docs/operations.md)",
                db, ack, feeding)
    p.add_argument("--port", type=int, required=True, help="the port to listen on")
    p.add_argument("--host", default="127.0.0.1",
                   help="the address to listen on (default 127.0.0.1)")
    p.add_argument("--spool", metavar="FILE", default="aftersales-webhook.spool",
                   help="a spool file an earlier version kept: its bodies are moved into "
                   "the inbox on start (default aftersales-webhook.spool, if it exists)")
    p.add_argument("--lateness", metavar="SECONDS", type=_lateness, default=600.0,
                   help="how long a message is held for earlier ones to arrive (default "
                   "600)")
    p.add_argument("--max-connections", metavar="N", type=int, default=256,
                   help="connections served at once; more are answered 503 (default 256)")
    p.add_argument("--header-timeout", metavar="SECONDS", type=float, default=10.0,
                   help="a connection that sends no complete request head within this is "
                   "closed (default 10)")
    p.add_argument("--body-timeout", metavar="SECONDS", type=float, default=30.0,
                   help="a body not received whole within this is answered 408 (default "
                   "30)")
    p.add_argument("--keep-alive", metavar="SECONDS", type=float, default=5.0,
                   help="how long an idle kept-alive connection stays open (default 5)")
    p.add_argument("--max-lag", metavar="SECONDS", type=float, default=60.0,
                   help="/readyz answers 503 when the oldest unapplied body is older than "
                   "the lateness window and this (default 60)")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"),
                   default="info", help="the JSON log lines on standard error (default "
                   "info; debug: one line per accepted body)")
    p = command("feed", "platform feeds: the webhook's inbox (received, applied, backlog), "
                "or decide the reported messages again (after the orders they named were "
                "placed)", db, projecting, feeding)
    p.add_argument("action", nargs="?", choices=("inbox", "retry"), default="inbox",
                   help="inbox (default): what the webhook received and applied; retry: "
                   "decide every reported message again, on the ledger as it is now, in "
                   "business-time order")
    p = command("rebuild", "drop the read models and replay all events", db)
    p.add_argument("--workers", type=int, default=None,
                   help="processes, each replaying a range of orders (default: one per core, "
                   "up to 4, for 100,000 events or more; else 1)")
    p = command("verify", "check the chained record, then rebuild into a scratch database "
                "and compare with the read models", db)
    p.add_argument("--head", metavar="DIGEST",
                   help="a log head digest printed by an earlier verify and kept elsewhere: "
                   "check that the history up to it is unchanged")
    p.add_argument("--anchors", metavar="TARGET", default=None,
                   help="check the log against every anchor of this anchor log (a file, "
                   "sqlite:///PATH, postgresql://...; - : standard input; default: "
                   "$AFTERSALES_ANCHOR, if set)")
    p.epilog = (p.epilog or "").replace(
        "4 an order's stored history is broken", "4 an order's stored history or the log "
        "is broken, or the log no longer holds an anchor of the anchor log", 1)
    p = command("anchor", "append the log's position and head digest, with the time, to "
                "an anchor log outside the ledger's database, for `verify` to check the "
                "log against (docs/operations.md, \"Anchoring the head outside the store\")",
                db)
    p.epilog = (p.epilog or "").replace(
        "4 an order's stored history is broken", "4 the log no longer holds the anchor "
        "appended last (nothing was appended: run `aftersales verify`)", 1)
    p.add_argument("--to", metavar="TARGET", default=None,
                   help="the anchor log: a file (JSON Lines), sqlite:///PATH or "
                   "postgresql://USER@HOST/DB (the table ledger_anchors), never the "
                   "ledger's own database; - : the anchor's line to standard output "
                   "(default: $AFTERSALES_ANCHOR)")
    p = command("db", "operators: create, check or upgrade the store", db)
    p.add_argument("action", choices=("init", "check", "upgrade"),
                   help="init: create the store's tables; check: say whether the store is "
                   "ready; upgrade: add the chained record to a store written before it")
    p.add_argument("--json", action="store_true",
                   help="check: one JSON object (events, deadlines, the read models' lag, "
                   "the inbox, problems), for a program or a monitor")
    p.add_argument("--max-lag", metavar="SECONDS", type=float, default=None,
                   help="check: exit 1 if the read models are further behind than this "
                   "(wall clock minus the recorded time of the oldest event not yet "
                   "projected; read models never created are behind by every event)")
    p.add_argument("--max-overdue", metavar="SECONDS", type=float, default=None,
                   help="check: exit 1 if a pending deadline is past by more than this "
                   "(the sweep, `aftersales tick`, is not running)")
    p = command("violations", "list violations (missed merchant deadlines), by deadline",
                db, since_until)
    p.add_argument("--merchant", help="only this merchant's")
    p.add_argument("--rule", type=_rule_of("violation"),
                   help=f"only this violation: {', '.join(VIOLATION_RULES)}")
    p = command("lapses", "list user lapses (missed user deadlines), by deadline", db,
                since_until)
    p.add_argument("--merchant", help="only on this merchant's orders")
    p.add_argument("--user", help="only this user's")
    p.add_argument("--rule", type=_rule_of("lapse"),
                   help=f"only this lapse: {', '.join(LAPSE_RULES)}")
    p = command("discrepancies", "list the platform's accounts that differ from the "
                "ledger (platform feeds: docs/platforms/douyin.md), by the time reported",
                db, since_until)
    p.add_argument("--merchant", help="only this merchant's")
    p.add_argument("--kind", choices=KINDS, help="only discrepancies of this kind")
    p = command("disputes", "list disputes (appeals to the platform), by the time opened",
                db, since_until)
    p.add_argument("--merchant", help="only this merchant's")
    p.add_argument("--status", choices=("open", "ruled", "withdrawn"),
                   help="only open, ruled or withdrawn ones (the user withdrew the appeal)")
    p.add_argument("--outcome", choices=("user", "merchant"), help="ruled for whom")
    p.add_argument("--blame", choices=("merchant", "user", "both", "platform", "creator",
                                       "unknown"),
                   help="only rulings with this blame (unknown: ruled from a platform's "
                   "push, the blame not recorded yet; neither lost nor won)")
    p.add_argument("--lost", action="store_true",
                   help="only the merchants' lost disputes (blame merchant or both)")
    command("report", "the merchant scorecard: per merchant, the counters of "
            "merchant_compliance over the business days --since/--until touch, with a "
            f"totals row.  {SCORECARD_CAPTION}", db, scored)

    p = command("bench", "measure speed against same-run baselines", db)
    p.epilog = (p.epilog or "").replace(
        "0 done; ", "0 done; 1 --webhook: a body was not answered 200 or not applied, a "
        "connection failed, or a server did not stop cleanly; ", 1)
    p.add_argument("--orders", type=int, default=100_000,
                   help="orders of the main workload (default 100000)")
    p.add_argument("--repeat", type=int, default=None,
                   help="runs per figure (median; default 3, with --webhook 1)")
    p.add_argument("--big", action="store_true", help="also scale to 10x the orders")
    p.add_argument("--returns-only", action="store_true",
                   help="the returns-only workload of earlier versions (to time old code "
                   "against new on the same lines)")
    p.add_argument("--json", metavar="FILE", help="write the full report here")
    p.add_argument("--workdir", metavar="DIR", help="keep the generated files and stores")
    p.add_argument("--webhook", action="store_true",
                   help="instead: a load benchmark of serve-webhook (signed Douyin bodies "
                   "from concurrent kept-alive clients; SQLite, and PostgreSQL with --db "
                   "postgresql://...) beside the same run's ingest of the same payments")
    p.add_argument("--bodies", type=int, default=1_000,
                   help="--webhook: bodies (and orders) per run (default 1000)")
    p.add_argument("--clients", metavar="N,N,...", type=_client_counts, default=(8, 32, 64),
                   help="--webhook: the numbers of concurrent clients (default 8,32,64)")

    p = command("demo", "generate a workload, ingest it, sweep, and report", db, projecting,
                future, generated)
    p.add_argument("--page", metavar="FILE", default="scorecard.html",
                   help="write the scorecard page here (default scorecard.html; '' for "
                   "none)")
    command("gen", "write a generated command file to standard output", generated)
    return parser


#: Commands that may create a ledger; every other one needs one already there.
CREATING = {"ingest", "demo", "serve-webhook"}
#: Commands that change the ledger or its read models (the others only read).
WRITING = {"ingest", "tick", "demo", "project", "rebuild", "db", "serve-webhook", "feed",
           "anchor"}


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
        self.url = resolve_url(getattr(args, "db", None))
        self.tz_name, self.zone = business_zone()  # where a person reads business times

    def ledger(self, create: bool, patient: bool = True) -> Ledger:
        """The ledger at the URL; a command that does not create one needs it there.  A
        store that cannot be reached is waited for (`--retry-for`), unless not `patient`
        (a service's own loop waits, and hears its stop signal meanwhile)."""
        path = sqlite_path(self.url)
        if not create and path is not None and not Path(path).exists():
            raise LedgerMissing(self.missing())

        def open_it() -> Ledger:
            return Ledger(self.url, create_tables=create, settings=self.settings,
                          guard=guard_for(self.settings))

        ledger = self.patience().run(open_it, "opening the ledger") if patient else open_it()
        if not create and not ledger.index.has_ledger():
            ledger.close()
            raise LedgerMissing(self.missing())
        return ledger

    def missing(self) -> str:
        return (f"no ledger at {redacted(self.url)}: nothing was created (give --db or "
                f"${ENV_VAR}, or start one with `aftersales ingest FILE` or `aftersales db "
                "init`)")

    def patience(self, ledger: Ledger | None = None, retry_for: float | None = -1.0
                 ) -> Patience:
        return Patience(self.settings.retry_for if retry_for == -1.0 else retry_for,
                        redacted(self.url), on_wait=waiting,
                        explain=ledger.store_reason if ledger is not None else lambda: None)


def waiting(text: str) -> None:
    """Say what is waited for (on a line of its own, even when a progress bar shows)."""
    print(f"\raftersales: waiting: {text}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    tune_for_batch_work()
    try:
        edge = Edge(args)
        if args.cmd == "gen":
            return cmd_gen(args)
        if args.cmd == "db":
            return cmd_db(edge)
        if args.cmd == "bench":
            return cmd_bench(args, getattr(args, "db", None))
        if args.cmd == "ingest" and args.file != "-" and not os.access(args.file, os.R_OK):
            return _unreadable(args.file)  # before any store is opened (or created)
        if args.cmd == "ingest" and args.format == "commands" and _json_array(args.file):
            name = "standard input" if args.file == "-" else args.file
            return _fail(f"{name} is a JSON array: a command file is JSON Lines, one "
                         "command (a JSON object) per line; nothing was applied (convert "
                         "it with `jq -c '.[]'`)", EXIT_USAGE)
        if args.cmd == "serve-webhook":  # before a store is opened (or created)
            from aftersales.cli.webhook import check_options
            if (problem := check_options(args)) is not None:
                return _fail(problem, EXIT_USAGE)
        if (problem := anchor_problem(args, edge.url)) is not None:  # before any work
            return _fail(problem, EXIT_USAGE)
        with closing(edge.ledger(create=args.cmd in CREATING)) as ledger:
            handler = {"ingest": cmd_ingest, "tick": cmd_tick, "status": cmd_status,
                       "history": cmd_history, "demo": cmd_demo, "project": cmd_project,
                       "rebuild": cmd_rebuild, "verify": cmd_verify,
                       "serve-webhook": cmd_serve_webhook, "feed": cmd_feed,
                       "anchor": cmd_anchor,
                       "violations": cmd_violations, "lapses": cmd_lapses,
                       "disputes": cmd_disputes, "discrepancies": cmd_discrepancies,
                       "report": cmd_report}[args.cmd]
            return handler(ledger, edge)
    except (IntegrityBroken, LogBroken) as e:
        return _fail(str(e), EXIT_INTEGRITY)
    except (RebuildInterrupted, Unsettled) as e:
        return _fail(str(e), EXIT_INTERRUPTED)
    except StoreUnavailable as e:
        return _fail(str(e), EXIT_STORE)
    except AftersalesError as e:
        return _fail(str(e), EXIT_USAGE)
    except BrokenPipeError:  # the reader went away (`| head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        if args.cmd in WRITING:  # work was cut short: say so (what is recorded stays)
            return _fail("standard output was closed: stopped.  What was acknowledged is "
                         "recorded; run the same command again to carry on", 1)
        return 0  # a reader that has seen enough is not an error
    except Exception as e:
        if not is_store_error(e):
            raise
        return _fail(f"the store failed: {store_error(e)}", EXIT_STORE)


def _fail(text: str, code: int) -> int:
    print(f"aftersales: {text}", file=sys.stderr)
    return code


def _unreadable(path: str) -> int:
    try:
        open(path, "rb").close()
        reason = "cannot be read"
    except OSError as e:
        reason = e.strerror or "cannot be read"
    return _fail(f"cannot read {path}: {reason}", EXIT_USAGE)


def _views(ledger: Ledger, edge: Edge) -> ReadModels:
    return ReadModels(views_url(ledger.url, getattr(edge.args, "views", None)),
                      settings=edge.settings)


def _project(ledger: Ledger, edge: Edge, label: str = "project", closing_line: bool = True
             ) -> int:
    """Bring the read models up to date (unless --no-project); return events projected,
    saying so after a command that wrote (`closing_line`; a query's output is its rows
    alone).  The ledger is recorded whatever happens here: if the read models' store
    fails, say so, and how to catch up."""
    if getattr(edge.args, "no_project", False):
        return 0

    def catch_up() -> int:
        with closing(_views(ledger, edge)) as views:
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


def _report_broken(names: set[str]) -> int:
    """Say which orders this run found broken; the exit code that goes with it."""
    if not names:
        return 0
    print(f"aftersales: {len(names)} order(s) with a broken history were refused or "
          f"skipped: {_few(sorted(names))}; run `aftersales verify`", file=sys.stderr)
    return EXIT_INTEGRITY


def _few(names: list[str], most: int = 5) -> str:
    return ", ".join(names[:most]) + (f" and {len(names) - most} more"
                                      if len(names) > most else "")


def _refusals_beside(progress: Progress) -> Callable[[int, CommandRefused], None]:
    """Refusals written on lines of their own, the progress bar drawn again after each."""
    def say(number: int, refusal: CommandRefused) -> None:
        progress.say(f"line {number}: {refusal.code}: {refusal.reason}")
    return say


def _json_array(path: str) -> bool:
    """Whether a command file (`-`: standard input, read without consuming it) starts as
    a JSON array: commands that are not JSON Lines."""
    if path == "-":
        head = getattr(sys.stdin.buffer, "peek", lambda n: b"")(512)[:512]
    else:
        try:
            with open(path, "rb") as f:
                head = f.read(512)
        except OSError:
            return False  # said when it is opened
    return head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"["


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
            return _unreadable(args.file)
    if args.format == "douyin":
        return _ingest_feed(ledger, edge, source)
    workers = _workers(args, ledger, total)
    if isinstance(workers, str):
        source.close()
        return _fail(workers, EXIT_USAGE)
    progress = Progress("ingest", total)
    acknowledge = _acknowledge if args.ack else lambda settled: None
    others = _OtherWriters(progress)
    with source:
        refused = _refusals_beside(progress)
        if workers == 1:
            report = ingest(ledger, _lines_of(source), refused, progress.advance,
                            acknowledge, batch=args.batch, patience=edge.patience(ledger),
                            on_other=others)
        else:
            def done(settled: Settled) -> None:
                progress.count()
                acknowledge(settled)

            report = ingest_in_parallel(ledger.url, args.file, workers, refused,
                                        done, progress.reach, batch=args.batch,
                                        settings=edge.settings, on_wait=waiting,
                                        on_other=others)
    progress.close()
    others.close()
    print(report.summary())
    if (stopped := report.stop_message()) is not None:
        return _fail(stopped, EXIT_STORE)
    _project(ledger, edge)
    broken = _report_broken(report.broken)
    return broken or (1 if report.refused else 0)


def _ingest_feed(ledger: Ledger, edge: Edge, source: BinaryIO) -> int:
    """`ingest --format douyin`: a platform's push messages, in business-time order."""
    from aftersales.feeds.run import ingest_feed
    # A store failure stops it (exit 3); run it again: what was applied is skipped by
    # its message id, the rest applied.
    with source:
        report = ingest_feed(ledger, _lines_of(source),
                             lateness=timedelta(seconds=edge.args.lateness),
                             on_refused=lambda text: print(text, file=sys.stderr),
                             tolerance=_tolerance(edge.args),
                             received_at=edge.args.received_at)
    print(report.summary())
    _project(ledger, edge)
    return _report_broken(broken_names(ledger)) or (
        1 if report.refused or report.reported else 0)


def _tolerance(args: argparse.Namespace) -> Tolerance:
    from aftersales.feeds.douyin import Tolerance
    return Tolerance(timedelta(seconds=args.tolerance),
                     timedelta(seconds=args.refund_tolerance))


def cmd_feed(ledger: Ledger, edge: Edge) -> int:
    """`feed` (`feed inbox`): what the webhook received and applied; `feed retry`: the
    reported messages decided again, on the ledger as it is now."""
    from aftersales.feeds.run import retry
    ledger.index.create_table()  # a store older than the messages' table gets it
    if edge.args.action == "inbox":
        from aftersales.cli.webhook import show_inbox
        return show_inbox(ledger, edge.zone)
    report = retry(ledger, tolerance=_tolerance(edge.args),
                   on_refused=lambda text: print(text, file=sys.stderr))
    print(f"{report.messages:,} reported messages decided again: {report.applied:,} applied "
          f"({report.reconciled:,} reconciled), {report.ignored:,} ignored, "
          f"{report.reported:,} still reported, {sum(report.refused.values()):,} refused; "
          f"{report.events:,} events recorded")
    _project(ledger, edge)
    return _report_broken(broken_names(ledger)) or (
        1 if report.refused or report.reported else 0)


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


def cmd_tick(ledger: Ledger, edge: Edge) -> int:
    now = edge.args.now or wall_clock()

    def acknowledge(oid: object, n: int) -> None:
        if edge.args.ack:
            print(f"ack swept {getattr(oid, 'hex', oid)} {n}", flush=True)

    patience = edge.patience(ledger)
    walked = patience.run(lambda: watch_log(ledger.index, wall_clock()),
                          "walking the log since its last check")
    _say_log_breaks(ledger, walked)
    swept = patience.run(lambda: ledger.sweep(now, acknowledge),
                         f"sweeping the timeouts due before {now.isoformat()}")
    print(f"swept {swept.timeouts} timeouts due before {local(now, edge.zone)} "
          f"({swept.events} events recorded, with the refunds, penalties and compensations "
          "that follow)" + ("; a store failure was tried again, and what the sweep had "
                            "recorded before it is not counted here" if patience.retries
                            else ""))
    _project(ledger, edge)
    broken = _report_broken(broken_names(ledger)) or (EXIT_INTEGRITY if walked.breaks else 0)
    anchored = anchor_if_due(ledger, edge) if edge.args.anchor_every is not None else 0
    return broken or anchored


def _blamed_names(ledger: Ledger, upto: int, breaks: list[LogBreak]) -> dict[Any, str]:
    """The order numbers of the orders these breaks of the log name."""
    return order_names(ledger.index, upto, {oid for b in breaks for oid, _ in b.blamed},
                       ledger.order_number)


def _say_log_breaks(ledger: Ledger, walked: LogWalk) -> None:
    """Warn of the breaks a walk of the log found (recorded: those orders are refused)."""
    if not walked.breaks:
        return
    names = _blamed_names(ledger, walked.position, walked.breaks)
    for b in walked.breaks:
        print(f"aftersales: warning: the log chain breaks at position {b.position}: "
              f"{b.reason}; refused from now on: "
              + ", ".join(f"order {names.get(oid, oid)}" for oid, _ in b.blamed)
              + " (run `aftersales verify`)", file=sys.stderr)


def _read(ledger: Ledger, edge: Edge, step: Callable[[], T], doing: str) -> T:
    """A read of the ledger, tried again while a store failure may pass."""
    return edge.patience(ledger).run(step, doing)


def cmd_status(ledger: Ledger, edge: Edge) -> int:
    args = edge.args
    if args.as_of is not None:
        order = _read(ledger, edge, lambda: ledger.order_as_of(args.order_id, args.as_of),
                      f"reading order {args.order_id}")
        when = f" at {args.as_of.isoformat()}"
    else:
        order = _read(ledger, edge, lambda: ledger.get_order(args.order_id),
                      f"reading order {args.order_id}")
        when = ""
    if order is None:
        return _fail(f"order {args.order_id} was not placed{when}", 1)
    doc = status_document(order)
    print(json.dumps(doc, ensure_ascii=False) if args.json else render_status(doc, edge.zone))
    return 0


def cmd_history(ledger: Ledger, edge: Edge) -> int:
    args = edge.args
    events = _read(ledger, edge, lambda: list(ledger.order_events(args.order_id)),
                   f"reading order {args.order_id}")
    if not events:
        return _fail(f"order {args.order_id} was not placed", 1)
    if args.json and args.format not in ("text", "json"):
        return _fail(f"--json and --format {args.format}: give one of them", EXIT_USAGE)
    fmt = "json" if args.json else args.format
    if fmt == "html":
        from aftersales.cli.pages import timeline_page  # Jinja2: loaded for a page only
        print(timeline_page(events, edge.zone, wall_clock(), redacted(ledger.url)))
    else:
        print(json.dumps([history_entry(e) for e in events], ensure_ascii=False, indent=1)
              if fmt == "json" else render_history(events, edge.zone))
    return 0


def _workload(args: argparse.Namespace) -> Workload:
    from aftersales.devtools.workload import Workload  # a development tool: loaded on use
    return Workload(orders=args.orders or 3000, seed=args.seed, days=args.days,
                    kinds=not args.returns_only)


def _feed_plan(args: argparse.Namespace) -> FeedPlan:
    from aftersales.devtools.douyin_feed import FeedPlan  # a development tool
    return FeedPlan(orders=args.orders or 300, seed=args.seed, days=min(args.days, 28))


def cmd_gen(args: argparse.Namespace) -> int:
    out = sys.stdout
    if args.platform == "douyin":
        from aftersales.devtools.douyin_feed import generate as feed
        for text in feed(_feed_plan(args)):
            out.write(text + "\n")
    else:
        from aftersales.devtools.workload import generate
        for line in generate(_workload(args)):
            out.write(json.dumps(line, separators=(",", ":")) + "\n")
    out.flush()
    return 0


def _demo_douyin(ledger: Ledger, edge: Edge) -> int:
    """`demo --platform douyin`: a generated Douyin feed of one shop ingested, swept, and
    its reconciliation printed."""
    from aftersales.devtools.douyin_feed import end_of, generate
    from aftersales.feeds.run import ingest_feed
    plan = _feed_plan(edge.args)
    lines = [text.encode() for text in generate(plan)]
    print(f"demo: a Douyin feed of {plan.orders} orders of one shop over {plan.days} days "
          f"(seed {plan.seed}), {len(lines):,} lines, into {redacted(ledger.url)}")
    report = ingest_feed(ledger, lines, lateness=plan.lateness,
                         on_refused=lambda text: print(text, file=sys.stderr))
    print(report.summary())
    swept = edge.patience(ledger).run(lambda: ledger.sweep(end_of(plan)), "sweeping")
    print(f"final sweep at {local(end_of(plan), edge.zone)}: {swept.timeouts:,} timeouts, "
          f"{swept.events:,} events")
    _project(ledger, edge)
    if getattr(edge.args, "no_project", False):
        return 0
    with closing(_views(ledger, edge)) as views:
        found = list_discrepancies(views)
        card = Scorecard.read(views, None, None, charts=False)
    total = card.total
    print(f"\nreconciliation: {total['platform_agreed'] + total['discrepancies']:,} of the "
          f"platform's accounts held against the ledger: {total['platform_agreed']:,} "
          f"agree, {total['discrepancies']:,} differ")
    by_kind = Counter((d["discrepancy"], d["fact"]) for d in found)
    print(render([{"discrepancy": k, "fact": f, "count": n}
                  for (k, f), n in sorted(by_kind.items())], "table",
                 ("discrepancy", "fact", "count"), edge.zone))
    print("\nthe first of them (`aftersales discrepancies` lists them all):")
    print(render(found[:5], "table", ("reported_at", "discrepancy", "order_id", "ledger",
                                      "platform"), edge.zone))
    return 1 if report.refused else 0


def cmd_demo(ledger: Ledger, edge: Edge) -> int:
    args = edge.args
    if args.platform == "douyin":
        return _demo_douyin(ledger, edge)
    from aftersales.devtools.workload import generate
    w = _workload(args)
    print(f"demo: {w.orders} orders over {w.days} days (seed {w.seed}) into "
          f"{redacted(ledger.url)}")
    lines = [json.dumps(line).encode() for line in generate(w)]
    progress = Progress("ingest", len(lines))
    started = time.perf_counter()
    report: IngestReport = ingest(ledger, lines, _refusals_beside(progress),
                                  lambda _: progress.advance(),
                                  patience=edge.patience(ledger))
    progress.close()
    elapsed = time.perf_counter() - started
    print(report.summary())
    if (stopped := report.stop_message()) is not None:
        return _fail(stopped, EXIT_STORE)
    swept = edge.patience(ledger).run(lambda: ledger.sweep(w.end), "sweeping")
    print(f"ingested in {elapsed:.1f}s ({report.lines / elapsed:,.0f} lines/s); "
          f"final sweep at {local(w.end, edge.zone)}: {swept.timeouts:,} timeouts, "
          f"{swept.events:,} events")
    _project(ledger, edge)
    if not getattr(args, "no_project", False):
        zone = edge.zone
        with closing(_views(ledger, edge)) as views:
            card = Scorecard.read(views, None, None, charts=bool(args.page))
            rows = card.rows
            found = list_violations(views)
            kinds = cases_by_kind(views)
            moves = deadline_changes_by_actor(views)
            per_merchant = disputes_by_merchant(views)
        by_rule: dict[str, int] = {}
        for v in found:
            by_rule[v["rule"]] = by_rule.get(v["rule"], 0) + 1
        print("\nviolations by rule (read model `violations`):")
        for rule, n in sorted(by_rule.items()):
            print(f"  {rule:<24} {n:>6}")
        print("\ncases by kind (read model `return_cases`):")
        print(render(kinds, "table", ("kind", "cases", "refunded", "exchanged",
                                      "converted_to_refund", "deadline_moved"), zone))
        print("\ndeadline changes (read model `deadline_changes`):")
        for move in moves:
            move["shift_hours"] = hours(move["shift_seconds"])
        print(render(moves, "table", ("change", "changed_by", "changes", "shift_hours"), zone))
        print("\ndisputes per merchant, most lost first (read model `disputes`):")
        print(render(per_merchant[:8], "table", (
            "merchant_id", "disputes", "open", "lost", "won", "unknown_blame", "withdrawn",
            "evidence_missed", "median_hours_to_ruling"), zone))
        print("\nworst merchants (read model `merchant_compliance`; all of them: "
              "`aftersales report`):")
        print(render(rows[:8], "table", DEMO_SCORECARD, zone, currency=card.currency))
        if args.page:
            Path(args.page).write_text(_scorecard_page(ledger, edge, card),
                                       encoding="utf-8")
            print(f"\nthe scorecard page: {Path(args.page).resolve()} (open it in a "
                  "browser; `aftersales report --format html` writes it again)")
    return _report_broken(report.broken | broken_names(ledger)) or (
        1 if report.refused else 0)


def cmd_project(ledger: Ledger, edge: Edge) -> int:
    args = edge.args
    if not args.follow:
        if args.metrics_port is not None:
            return _fail("--metrics-port is for `project --follow` (a service to scrape)",
                         EXIT_USAGE)
        return _project_once(ledger, edge)
    metrics = None
    if args.metrics_port is not None:
        if not 0 <= args.metrics_port <= 65535:
            return _fail(f"--metrics-port {args.metrics_port}: a port is 0 to 65535",
                         EXIT_USAGE)
        from aftersales.service.projection_metrics import ProjectionMetrics
        metrics = ProjectionMetrics()
        try:
            metrics.serve(args.metrics_host, args.metrics_port)
        except OSError as e:
            return _fail(f"cannot serve metrics on {args.metrics_host}:{args.metrics_port}: "
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
        with closing(_views(ledger, edge)) as views:
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
        code, text = _failure(e)
        log(logger, logging.ERROR, "stopped: failed", position=position[0], error=text)
        return code
    finally:
        if anchor is not None:
            anchor.close()
    log(logger, logging.INFO, "stopped", position=position[0], retries=patience.retries)
    print(f"stopped at position {position[0]}")
    return 0


def _project_once(ledger: Ledger, edge: Edge) -> int:
    def once() -> int:
        with closing(_views(ledger, edge)) as views:
            runner = Runner(ledger, views, batch=max(1, edge.args.batch))

            def acknowledge(n: int) -> None:
                if edge.args.ack:
                    print(f"ack position {runner.position}", flush=True)

            done = runner.catch_up(acknowledge)
            print(f"projected {done} events; position {runner.position}")
            return done

    edge.patience(ledger).run(once, "bringing the read models up to date")
    return _broken_in_read_models(ledger, edge)


def cmd_serve_webhook(ledger: Ledger, edge: Edge) -> int:
    """Serve Douyin's pushes until SIGTERM or Ctrl-C (aftersales/cli/webhook.py)."""
    from aftersales.cli.webhook import serve_webhook
    return serve_webhook(ledger, edge.args, lambda: edge.ledger(create=False, patient=False),
                         _tolerance(edge.args))


def cmd_rebuild(ledger: Ledger, edge: Edge) -> int:
    args = edge.args
    if args.workers is not None and not 1 <= args.workers <= 16:
        return _fail("--workers takes 1 to 16", EXIT_USAGE)

    def rebuild() -> tuple[int, float]:
        with closing(_views(ledger, edge)) as views:
            runner = Runner(ledger, views, prepare=False)  # whatever is there is replaced
            total = ledger.recorder.max_notification_id() or 0
            progress = Progress("rebuild", total, unit="events")
            started = time.perf_counter()
            done = runner.rebuild(progress.advance_by, args.workers)
            progress.close()
            return done, time.perf_counter() - started

    done, elapsed = edge.patience(ledger).run(rebuild, "rebuilding the read models")
    print(f"rebuilt the read models from {done} events in {elapsed:.1f}s "
          f"({done / max(elapsed, 1e-9):,.0f} events/s)")
    return _broken_in_read_models(ledger, edge)


def _broken_in_read_models(ledger: Ledger, edge: Edge) -> int:
    """Warn of orders the read models could not vouch for; the exit code that goes with
    it."""
    with closing(_views(ledger, edge)) as views:
        broken = broken_orders(views)
    if not broken:
        return 0
    names = [b["order_id"] or b["order_uuid"] for b in broken]
    print(f"aftersales: warning: {len(names)} order(s) have a broken history and are counted "
          f"only up to the break (table integrity_breaks): {_few(names)}; run `aftersales "
          "verify`", file=sys.stderr)
    return EXIT_INTEGRITY


def cmd_verify(ledger: Ledger, edge: Edge) -> int:
    args = edge.args
    kept = None
    if args.head is not None:
        try:
            kept = bytes.fromhex(args.head)
            if len(kept) != 32:
                raise ValueError
        except ValueError:
            return _fail(f"--head {args.head!r}: expected the 64 hex digits verify printed",
                         EXIT_USAGE)

    def chains() -> Check:
        upto = ledger.recorder.max_notification_id() or 0
        progress = Progress("verify", 2 * upto, unit="events")
        found = check(ledger.index, upto, ledger.order_number, kept, progress.advance_by)
        progress.close()
        return found

    found = edge.patience(ledger).run(chains, "checking the chained record")
    code = 0
    for broken, order_id in found.breaks:
        print(f"verify: order {order_id or broken.originator_id}: its history is broken at "
              f"{broken.describe()}")
    edge.patience(ledger).run(lambda: record_breaks(ledger.index, found.log_breaks,
                                                    wall_clock()), "recording the breaks")
    names = _blamed_names(ledger, found.position, found.log_breaks)
    for b in found.log_breaks:
        print(f"verify: log position {b.position} (order {b.originator_id}, version "
              f"{b.version}): {b.reason}; refused from now on: "
              + ", ".join(f"order {names.get(oid, oid)} (from version {v})"
                          for oid, v in b.blamed))
    if found.intact:
        print(f"verify: the chained record holds: {found.events} events of {found.orders} "
              "orders, and the log")
    else:
        print(f"verify: the chained record is broken: {len(found.breaks)} order(s), "
              f"{len(found.log_breaks)} log position(s)", file=sys.stderr)
        code = EXIT_INTEGRITY
    print(f"verify: log head {found.head.hex()} at position {found.position} (keep it "
          "elsewhere; `verify --head` checks it later)")
    if kept is not None:
        if found.kept_at is None:
            print("verify: the digest kept is not in the log: the history up to it was "
                  "changed (or it is not this ledger's)", file=sys.stderr)
            code = EXIT_INTEGRITY
        elif any(b.position <= found.kept_at for b in found.log_breaks):
            print(f"verify: the digest kept is the log's link at position {found.kept_at}, "
                  "but the log breaks before it", file=sys.stderr)
            code = EXIT_INTEGRITY
        elif not found.intact:
            print(f"verify: the digest kept is the log's link at position {found.kept_at}, "
                  "but the chained record is broken (above): the history up to it was "
                  "changed", file=sys.stderr)
            code = EXIT_INTEGRITY
        else:
            print(f"verify: the digest kept is the log's link at position {found.kept_at}: "
                  "the history up to it is unchanged")
    code = max(code, verify_anchors(ledger, edge, found))  # against the anchor log, if any
    differences = edge.patience(ledger).run(lambda: _compare(ledger, edge),
                                            "comparing the read models with a rebuild")
    for line in differences:
        print(line)
    if differences:
        print(f"verify: the read models differ from a rebuild ({len(differences)} lines)",
              file=sys.stderr)
        return code or 1
    print("verify: the read models equal a rebuild from the events")
    return code


def _compare(ledger: Ledger, edge: Edge) -> list[str]:
    with closing(_views(ledger, edge)) as views:
        return verify(ledger, views)


def cmd_db(edge: Edge) -> int:
    """`db init` creates every table; `db check` reports on the store, creating nothing
    (`--json` for a monitor; `--max-lag`, `--max-overdue`: exit 1 beyond them); `db
    upgrade` adds the chained record to a store written before it."""
    args = edge.args
    if args.action == "upgrade":
        if args.json or args.max_lag is not None or args.max_overdue is not None:
            return _fail("--json, --max-lag and --max-overdue are for `db check`",
                         EXIT_USAGE)
        return _upgrade(edge)
    for name in ("max_lag", "max_overdue"):
        bound = getattr(args, name)
        if bound is not None and not 0 <= bound < float("inf"):
            return _fail(f"--{name.replace('_', '-')} {bound:g}: expected 0 or more seconds",
                         EXIT_USAGE)
    init = args.action == "init"
    try:
        with closing(edge.ledger(create=init)) as ledger:
            health = _health(ledger, edge, init)
    except Exception as e:
        if not args.json:
            raise
        code, said = _failure(e)
        print(json.dumps(_health_json(Health(redacted(edge.url), problems=[said]))))
        return _fail(said, code)
    if args.json:
        print(json.dumps(_health_json(health)))
        for problem in health.problems:
            print(f"aftersales: {problem}", file=sys.stderr)
        return health.code
    if health.unusable is not None:
        print(f"aftersales: {health.unusable}", file=sys.stderr)
        print("aftersales: run `aftersales db init` to create the tables", file=sys.stderr)
        return health.code
    _say_health(health, init)
    return health.code


def _failure(error: Exception) -> tuple[int, str]:
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


@dataclass
class Health:
    """What `db check` found."""

    store: str
    events: int | None = None
    pending: int | None = None
    overdue: int | None = None
    oldest_overdue: float | None = None  # seconds
    read_models: Projected | None = None
    lag: Lag | None = None
    lag_seconds: float | None = None
    inbox: InboxFigures | None = None
    #: Why the ledger's tables are not usable (None: they are).
    unusable: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def code(self) -> int:
        return 1 if self.problems else 0


@dataclass(frozen=True)
class InboxFigures:
    received: int
    applied: int
    backlog: int
    oldest_unapplied: float | None  # seconds


def _lasting(error: StoreUnavailable) -> BaseException | None:
    """The store's error behind `error` if waiting would not pass it (a missing table, a
    permission): the tables are not usable.  None: the store could not be reached."""
    cause = error.__cause__
    return cause if cause is not None and is_store_error(cause) and not may_pass(cause) \
        else None


def _health(ledger: Ledger, edge: Edge, init: bool) -> Health:
    """Read what `db check` reports (creating the read models' tables for `db init`): a
    failure that may pass is waited for, then raised (exit 3); one that will not is said."""
    args = edge.args
    health = Health(redacted(ledger.url))
    patience = edge.patience(ledger)
    views = _views(ledger, edge)
    try:
        def read_models() -> Projected:
            if init:
                views.create_table()
            return projected(views, ledger.name)

        try:
            health.read_models = patience.run(read_models, "reading the read models")
        except StoreUnavailable as e:
            if (cause := _lasting(e)) is None:
                raise
            health.problems.append(f"the read models at {redacted(views.url)} cannot be "
                                   f"read: {store_error(cause)}")
        position = health.read_models.position if health.read_models is not None else 0

        def ledger_figures() -> tuple[Lag, list[tuple[Any, Any]]]:
            return lag_behind(ledger, position), ledger.index.pending_deadlines()

        try:
            lag, pending = patience.run(ledger_figures, "checking the ledger")
        except StoreUnavailable as e:
            if (cause := _lasting(e)) is None:
                raise
            health.unusable = f"{health.store} is not usable: {store_error(cause)}"
            health.problems = [f"{health.unusable}; run `aftersales db init` to create "
                               "the tables"]
            return health
        health.inbox = _inbox(ledger, patience)
    finally:
        views.close()
    now = wall_clock()
    overdue = [row.deadline for _, row in pending if row.deadline < now]
    health.events, health.pending, health.overdue = lag.head, len(pending), len(overdue)
    health.oldest_overdue = (now - min(overdue)).total_seconds() if overdue else None
    if health.read_models is not None:
        health.lag, health.lag_seconds = lag, lag.seconds(now)
    health.problems += _beyond_bounds(health, args.max_lag, args.max_overdue)
    return health


def _inbox(ledger: Ledger, patience: Patience) -> InboxFigures | None:
    """The webhook's inbox (None: a store without one)."""
    stats_of = getattr(ledger.index, "inbox_stats", None)
    if stats_of is None:
        return None
    try:
        stats = patience.run(stats_of, "reading the inbox")
    except StoreUnavailable as e:
        if _lasting(e) is None:
            raise
        return None  # a store written before the inbox: nothing received
    oldest = stats.oldest_unapplied
    return InboxFigures(stats.received, stats.applied, stats.backlog,
                        None if oldest is None
                        else max(0.0, (wall_clock() - oldest).total_seconds()))


def _beyond_bounds(health: Health, max_lag: float | None, max_overdue: float | None
                   ) -> list[str]:
    """What breaks --max-lag and --max-overdue."""
    problems = []
    lag, seconds = health.lag, health.lag_seconds
    if max_lag is not None and lag is not None and lag.events:
        never = ("; never created: run `aftersales project`"
                 if health.read_models is not None and not health.read_models.created
                 else "")
        if seconds is None:
            problems.append(f"the read models are {lag.events:,} events behind the ledger "
                            f"(the time of the first cannot be read: `aftersales verify`"
                            f"{never}): more than --max-lag {max_lag:g} s?")
        elif seconds > max_lag:
            problems.append(f"the read models are {_duration(seconds)} behind the ledger "
                            f"({lag.events:,} events{never}): more than --max-lag "
                            f"{max_lag:g} s")
    if (max_overdue is not None and health.oldest_overdue is not None
            and health.oldest_overdue > max_overdue):
        problems.append(f"{health.overdue:,} pending deadline(s) past due, the oldest by "
                        f"{_duration(health.oldest_overdue)}: more than --max-overdue "
                        f"{max_overdue:g} s (is `aftersales tick` running?)")
    return problems


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _health_json(health: Health) -> dict[str, Any]:
    """`db check --json`'s object."""
    models, lag, inbox = health.read_models, health.lag, health.inbox
    return {
        "store": health.store,
        "ok": not health.problems,
        "events": health.events,
        "pending_deadlines": health.pending,
        "overdue_deadlines": health.overdue,
        "oldest_overdue_seconds": _seconds(health.oldest_overdue),
        "read_models": {
            "position": None if models is None else models.position,
            "lag_events": None if lag is None else lag.events,
            "lag_seconds": _seconds(health.lag_seconds),
            "schema_version": None if models is None else models.schema_version,
            "created": None if models is None else models.created,
        },
        "inbox": None if inbox is None else {
            "received": inbox.received,
            "applied": inbox.applied,
            "backlog": inbox.backlog,
            "oldest_unapplied_seconds": _seconds(inbox.oldest_unapplied),
        },
        "problems": health.problems,
    }


def _say_health(health: Health, init: bool) -> None:
    """`db check`'s lines for a person (the problems on standard error)."""
    state = "initialised" if init else "ok"
    if health.problems:
        state += f", but {len(health.problems)} problem(s) (below)"
    print(f"store {health.store}: {state}")
    print(f"  events recorded: {health.events}")
    if health.overdue:
        print(f"  pending deadlines: {health.pending} ({health.overdue} past due, the "
              f"oldest by {_duration(health.oldest_overdue or 0.0)}: run `aftersales tick`)")
    else:
        print(f"  pending deadlines: {health.pending}")
    models, lag = health.read_models, health.lag
    if models is None or lag is None:
        print("  read models: cannot be read (below)")
    elif not models.created:
        print("  read models: not created (run `aftersales project`)")
    else:
        behind = f"lag {lag.events}"
        if lag.events:
            behind += (", the oldest recorded "
                       + ("at a time that cannot be read" if health.lag_seconds is None
                          else f"{_duration(health.lag_seconds)} ago"))
        version = f"schema version {models.schema_version}" + (
            f" (this version's is {SCHEMA_VERSION}: `aftersales project` rebuilds them)"
            if models.schema_version != SCHEMA_VERSION else "")
        print(f"  read models at position {models.position} of {health.events} ({behind}),"
              f" {version}, business days in {models.timezone}")
    inbox = health.inbox
    if inbox is not None and inbox.received:
        print(f"  inbox: {inbox.received:,} bodies received, {inbox.applied:,} applied, "
              f"{inbox.backlog:,} waiting" + (
                  "" if inbox.oldest_unapplied is None
                  else f" (the oldest for {_duration(inbox.oldest_unapplied)})"))
    for problem in health.problems:
        print(f"aftersales: {problem}", file=sys.stderr)


def _duration(seconds: float) -> str:
    """A span of time for a person: 42 s, 5 min, 3 h, 2 days."""
    whole = max(0, int(seconds))
    if whole < 120:
        return f"{seconds:.1f} s" if seconds < 10 else f"{whole} s"
    if whole < 7200:
        return f"{whole // 60} min"
    if whole < 2 * 86400:
        return f"{whole // 3600} h"
    return f"{whole // 86400} days"


def _upgrade(edge: Edge) -> int:
    path = sqlite_path(edge.url)
    if path is not None and not Path(path).exists():
        raise LedgerMissing(edge.missing())
    with closing(Ledger(edge.url, create_tables=False, upgrading=True,
                        settings=edge.settings)) as ledger:
        if not ledger.index.has_ledger():
            raise LedgerMissing(edge.missing())
        where = redacted(ledger.url)
        if not ledger.index.needs_upgrade():
            missing = ledger.index.unchained()
            if missing:  # never computed here: that would make the change look valid
                print(f"aftersales: store {where}: {missing} event(s) have no digest or "
                      "log link; a chained store always has them, so they were removed, "
                      "and an upgrade does not compute them (that would hide the change); "
                      "run `aftersales verify`", file=sys.stderr)
                return EXIT_INTEGRITY
            print(f"store {where}: already has the chained record; nothing to do")
            return 0
        total = ledger.recorder.max_notification_id() or 0
        progress = Progress("upgrade", total, unit="events")
        done = ledger.index.upgrade(progress.advance_by)
        progress.close()
    with closing(edge.ledger(create=False)) as ledger:
        found = check(ledger.index, ledger.recorder.max_notification_id() or 0,
                      ledger.order_number)
    print(f"store {where}: upgraded: {done} events, none changed; log head "
          f"{found.head.hex()} at position {found.position} (keep it elsewhere)")
    return 0 if found.intact else EXIT_INTEGRITY


def _client_counts(text: str) -> tuple[int, ...]:
    """--clients: numbers of concurrent clients, 1 to 1000, comma-separated."""
    try:
        counts = tuple(int(part) for part in text.split(","))
    except ValueError:
        counts = ()
    if not counts or not all(1 <= n <= 1000 for n in counts):
        raise argparse.ArgumentTypeError(f"{text!r}: expected numbers of clients, 1 to "
                                         "1000, comma-separated (e.g. 8,32,64)")
    return counts


def cmd_bench(args: argparse.Namespace, url: str | None) -> int:
    def say(text: str) -> None:
        if sys.stderr.isatty():
            print(f"bench: {text}", file=sys.stderr, flush=True)

    if args.webhook and args.bodies < 1:
        return _fail("--bodies must be at least 1", EXIT_USAGE)
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(args.workdir or scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        if args.webhook:
            from aftersales.devtools import webhook_load

            report = webhook_load.WebhookBench(
                bodies=args.bodies, workdir=workdir, db=url, clients=args.clients,
                repeat=max(1, args.repeat or 1), say=say).run()
            text, ok = webhook_load.render(report), webhook_load.complete(report)
        else:
            from aftersales.devtools.bench import Bench, render

            report = Bench(orders=args.orders, workdir=workdir, db=url,
                           repeat=max(1, args.repeat or 3), big=args.big,
                           kinds=not args.returns_only, say=say).run()
            text, ok = render(report), True
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0 if ok else 1


def _listing(ledger: Ledger, edge: Edge, ask: Callable[[ReadModels], list[dict[str, Any]]],
             what: str, columns: Sequence[str]) -> int:
    """A query command: the read models brought up to date, asked, printed in the
    chosen format; exit 4 if they hold orders with a broken history."""
    _project(ledger, edge, closing_line=False)
    rows = _read(ledger, edge, lambda: _query(ledger, edge, ask), f"reading the {what}")
    print(render(rows, edge.args.format, columns, edge.zone))
    return _broken_in_read_models(ledger, edge)


def cmd_violations(ledger: Ledger, edge: Edge) -> int:
    a = edge.args
    return _listing(ledger, edge, lambda views: list_violations(
        views, a.merchant, a.rule, a.since, a.until), "violations", VIOLATION_COLUMNS)


def cmd_lapses(ledger: Ledger, edge: Edge) -> int:
    a = edge.args
    return _listing(ledger, edge, lambda views: list_lapses(
        views, a.merchant, a.rule, a.since, a.until, a.user), "lapses", LAPSE_COLUMNS)


def cmd_discrepancies(ledger: Ledger, edge: Edge) -> int:
    a = edge.args
    return _listing(ledger, edge, lambda views: list_discrepancies(
        views, a.merchant, a.kind, a.since, a.until), "discrepancies", DISCREPANCY_COLUMNS)


def cmd_disputes(ledger: Ledger, edge: Edge) -> int:
    a = edge.args
    return _listing(ledger, edge, lambda views: list_disputes(
        views, a.merchant, a.since, a.until, a.status, a.outcome, a.blame,
        True if a.lost else None), "disputes", DISPUTE_COLUMNS)


def cmd_report(ledger: Ledger, edge: Edge) -> int:
    a = edge.args
    _project(ledger, edge, closing_line=False)
    card = _read(ledger, edge, lambda: _query(ledger, edge, lambda views: Scorecard.read(
        views, a.since, a.until, charts=a.format == "html")), "reading the scorecard")
    if a.format == "html":
        print(_scorecard_page(ledger, edge, card, a.since, a.until))
    else:
        if a.format == "table":
            print(textwrap.fill(f"{_window(a.since, a.until, edge)}.  {card.note}", 88)
                  + "\n")
        table = a.format == "table"
        print(render(card.rows, a.format, scorecard_table(card.total) if table else SCORECARD,
                     edge.zone, currency=card.currency, total=card.total if table else None))
    return _broken_in_read_models(ledger, edge)


@dataclass
class Scorecard:
    """What the scorecard shows, read at once: its rows and totals, the currency of its
    money, and (for the page) the charts' figures."""

    rows: list[dict[str, Any]]
    total: dict[str, Any]
    currency: str
    #: violations and lapses per day and rule, compensation per month (for the page)
    charts: tuple[list[dict[str, Any]], ...] = ()

    @property
    def note(self) -> str:
        return f"{SCORECARD_CAPTION}  Money in {self.currency}; response times in hours."

    @classmethod
    def read(cls, views: ReadModels, since: datetime | None, until: datetime | None,
             charts: bool) -> Scorecard:
        rows, total = scorecard_with_total(views, since, until)
        found = currencies(views)
        if len(found) > 1:
            print(f"aftersales: warning: the orders are in several currencies "
                  f"({', '.join(found)}): the money columns sum fen of them all; split them "
                  "by order_status.currency in SQL (docs/reporting.md)", file=sys.stderr)
        card = cls(rows, total, "+".join(found) or CURRENCY)
        if charts:
            card.charts = (per_day(views, "violations", since, until),
                           per_day(views, "lapses", since, until),
                           compensation_per_month(views, since, until))
        return card


def _scorecard_page(ledger: Ledger, edge: Edge, card: Scorecard,
                    since: datetime | None = None, until: datetime | None = None) -> str:
    from aftersales.cli.pages import scorecard_page  # Jinja2: loaded for a page only
    found, lapsed, months = card.charts or ([], [], [])
    return scorecard_page(
        rows=card.rows, total=card.total, columns=SCORECARD, violations=found,
        lapses=lapsed, months=months, violation_rules=VIOLATION_RULES,
        lapse_rules=LAPSE_RULES, window=_window(since, until, edge), caption=card.note,
        zone=edge.zone, generated=wall_clock(), source=redacted(ledger.url),
        currency=card.currency)


def _window(since: datetime | None, until: datetime | None, edge: Edge) -> str:
    """Which business days a report covers, in words."""
    first, end = business_days(edge.zone, since, until)
    days = ("every business day recorded" if first is None and end is None else
            f"the business days from {first or 'the first recorded'} to "
            f"{end - timedelta(days=1) if end else 'the last recorded'}")
    return f"Scorecard of {days} ({edge.tz_name})"


def _query(ledger: Ledger, edge: Edge, ask: Callable[[ReadModels], T]) -> T:
    with closing(_views(ledger, edge)) as views:
        return ask(views)


if __name__ == "__main__":
    sys.exit(main())
