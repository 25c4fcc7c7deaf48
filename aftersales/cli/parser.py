"""The command line's arguments: `build_parser()`, every command's options and help, and
the types that read them (business times, counts, seconds, ports, paths, rules).

Every option is checked here, before any work is done (a count of 0, a negative wait, a
port out of range, a path whose directory does not exist), and this module imports
nothing heavy: `aftersales --help` loads no store, no models and no SQL toolkit
(docs/performance.md, "Starting a command"); the business-time type loads the command
models only when a time is given.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from aftersales.domain.reconciliation import KINDS
from aftersales.domain.steps import TIMEOUTS
from aftersales.settings import (
    ANCHOR_ENV_VAR,
    DEFAULT_URL,
    ENV_VAR,
    INGEST_BATCH,
    PARALLEL_INGEST_FROM,
    PROJECTION_BATCH,
    VIEWS_ENV_VAR,
)
from projections.captions import SCORECARD_CAPTION

#: The violations and the lapses of the rules table, by name.
VIOLATION_RULES = tuple(dict.fromkeys(t.missed for t in TIMEOUTS.values() if t.is_violation))
LAPSE_RULES = tuple(dict.fromkeys(t.missed for t in TIMEOUTS.values() if not t.is_violation))
#: Where an anchor log may be (the anchor options' help and their errors).
ANCHOR_TARGETS = ("a file, sqlite:///PATH or postgresql://USER@HOST/DB, outside the "
                  "ledger's database")


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


def _number(text: str, kind: type[int] | type[float]) -> float:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected {'a whole number' if kind is int else 'a number'}"
        ) from None


def count(least: int = 1, most: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number from `least` (to `most`)."""
    def read(text: str) -> int:
        value = int(_number(text, int))
        if value < least or (most is not None and value > most):
            upper = f" to {most:,}" if most is not None else " or more"
            raise argparse.ArgumentTypeError(f"{text!r}: expected {least:,}{upper}")
        return value
    read.__name__ = "count"  # argparse names the type in its own errors
    return read


def seconds(positive: bool = False, most: float = 7 * 86400.0) -> Callable[[str], float]:
    """An argparse type: seconds, 0 (more than 0 if `positive`) to `most`."""
    def read(text: str) -> float:
        value = _number(text, float)
        low = value > 0 if positive else value >= 0
        if not (low and value <= most):  # (NaN is neither)
            lower = "more than 0" if positive else "0"
            raise argparse.ArgumentTypeError(f"{text!r}: expected {lower} to {most:,.0f} "
                                             "seconds")
        return value
    read.__name__ = "seconds"
    return read


def port(text: str) -> int:
    """A TCP port: 1 to 65535."""
    value = int(_number(text, int))
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: a port is 1 to 65535")
    return value


def new_file(text: str) -> str:
    """A file the command will write: not a directory, in a directory that exists and may
    be written (checked before any work, so that a long run does not end in a failure to
    save its result)."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a directory: give a file's path")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r}: there is no directory {str(folder)!r}")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise argparse.ArgumentTypeError(f"{text!r}: not writable")
    return text


def _spool(text: str) -> str:
    """--spool: an earlier version's spool file, if there is one at this path (not a
    directory, and in a directory that exists)."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a directory: give the spool file")
    if str(path.parent) and not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r}: there is no directory "
                                         f"{str(path.parent)!r}")
    return text


def _page_file(text: str) -> str:
    """demo --page: a file to write, or '' for none."""
    return new_file(text) if text else text


def _lateness(text: str) -> float:
    """--lateness: 0 to 7 days, in seconds."""
    return seconds()(text)


def _minutes(text: str) -> float:
    """--anchor-every: more than 0 minutes (at most about two years)."""
    value = _number(text, float)
    if not 0 < value <= 1_000_000:
        raise argparse.ArgumentTypeError(f"{text!r}: expected more than 0 minutes")
    return value


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


def business_time(text: str) -> datetime:
    """An ISO-8601 timestamp with an offset, for --now and --as-of (as strict as a
    command's `at`, and saying what is wrong with it)."""
    from pydantic import TypeAdapter, ValidationError  # the models: loaded for a time only

    from aftersales.application.commands import At, describe
    try:
        value: datetime = TypeAdapter(At).validate_python(text)
    except ValidationError as e:
        why = re.sub(r"^field '[^']*': ", "", describe(e, tagged=False))
        raise argparse.ArgumentTypeError(f"{text!r}: {why}") from None
    return value


def add_anchor_every(p: argparse.ArgumentParser, follow: bool) -> None:
    """The options of a command that anchors as it goes (`tick`, `project --follow`)."""
    p.add_argument("--anchor-every", metavar="MINUTES", type=_minutes, default=None,
                   help=("with --follow, between batches" if follow else "after the sweep")
                   + ": append an anchor (the log's position and head digest, with the "
                   "time) to the anchor log when its last anchor is this many minutes old "
                   "or older" + (", then every MINUTES" if follow else "")
                   + " (docs/operations.md, \"Anchoring the head outside the store\")")
    p.add_argument("--anchor-to", metavar="TARGET", default=None,
                   help=f"the anchor log of --anchor-every: {ANCHOR_TARGETS} (default: "
                   f"${ANCHOR_ENV_VAR})")


class _Version(argparse.Action):
    """--version: the installed package's version (read only when asked)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="print the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        from importlib.metadata import PackageNotFoundError, version
        try:
            found = version("aftersales")
        except PackageNotFoundError:  # run from a checkout that was never installed
            found = "(not installed)"
        print(f"aftersales {found}")
        parser.exit()


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
    db.add_argument("--retry-for", metavar="SECONDS", type=seconds(most=86400.0),
                    default=argparse.SUPPRESS,
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
        found.add_argument("--json", action="store_true",
                           help="the same as --format json")
        found.add_argument("--excel", action="store_true",
                           help="with --format csv: CSV for a spreadsheet (UTF-8 with a "
                           "byte order mark, CRLF, times in the business zone without "
                           "offset, money in yuan with two decimals)")
        return found

    since_until = listing(("table", "json", "csv"))
    scored = listing(("table", "json", "csv", "html"), "; html: the scorecard page, one "
                     "self-contained file (`> scorecard.html`)")
    generated = argparse.ArgumentParser(add_help=False)
    generated.add_argument("--orders", type=count(1, 10_000_000), default=None,
                           help="how many orders the workload has (default 3000; 300 with "
                           "--platform douyin)")
    generated.add_argument("--platform", choices=("douyin",), default=None,
                           help="douyin: a Douyin feed of one shop instead (push bodies "
                           "and its order export; docs/platforms/douyin.md)")
    generated.add_argument("--seed", type=int, default=7,
                           help="the random seed: the same seed gives the same lines "
                           "(default 7)")
    generated.add_argument("--days", type=count(1, 3660), default=42,
                           help="business days simulated from 2026-03-01 (default 42)")
    generated.add_argument("--returns-only", action="store_true",
                           help="returns only: the workload of earlier versions, line for "
                           "line")
    parser = argparse.ArgumentParser(
        prog="aftersales", parents=[db],
        description="An event-sourced ledger for e-commerce after-sales.")
    parser.add_argument("--version", action=_Version)
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
    p.add_argument("--batch", type=count(1, 1_000_000), default=INGEST_BATCH,
                   help=f"lines per transaction (default {INGEST_BATCH:,}; 1: one each)")
    p.add_argument("--workers", type=count(1, 64), default=None,
                   help="processes, each deciding the orders it owns (default: one per core, "
                   f"up to 4, for files of {PARALLEL_INGEST_FROM >> 20} MiB or more; else 1)")

    p = command("tick", "sweep due timeouts", db, projecting, ack, future)
    p.add_argument("--now", metavar="T", type=business_time,
                   help="business time (default: wall clock)")
    add_anchor_every(p, follow=False)

    p = command("status", "an order's current state", db)
    p.add_argument("order_id", help="the platform's order number")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="text for a person (default), or json: the status document")
    p.add_argument("--json", action="store_true",
                   help="the same as --format json")
    p.add_argument("--as-of", metavar="T", type=business_time,
                   help="the state as it stood at business time T")

    p = command("history", "an order's audit trail: every event with its actor, business "
                "time, recorded time, and the rule behind a system act", db)
    p.add_argument("order_id", help="the platform's order number")
    p.add_argument("--json", action="store_true",
                   help="the same as --format json")
    p.add_argument("--format", choices=("text", "json", "html"), default="text",
                   help="text for a person (default), json for a program, or html: the "
                   "order's timeline page, one self-contained file (`> order.html`)")

    p = command("project", "bring the read models up to date", db, ack)
    p.add_argument("--follow", action="store_true", help="then keep following new events")
    p.add_argument("--poll", metavar="SECONDS", type=seconds(positive=True, most=3600.0),
                   default=0.5,
                   help="with --follow: the longest wait before looking for new events "
                   "(default 0.5; on PostgreSQL a NOTIFY wakes it at once)")
    p.add_argument("--batch", type=count(1, 1_000_000), default=PROJECTION_BATCH,
                   help=f"events per transaction (default {PROJECTION_BATCH:,})")
    p.add_argument("--metrics-port", metavar="PORT", type=port, default=None,
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
    p.add_argument("--port", type=port, required=True, help="the port to listen on")
    p.add_argument("--host", default="127.0.0.1",
                   help="the address to listen on (default 127.0.0.1)")
    p.add_argument("--spool", metavar="FILE", type=_spool,
                   default="aftersales-webhook.spool",
                   help="a spool file an earlier version kept: its bodies are moved into "
                   "the inbox on start (default aftersales-webhook.spool, if it exists)")
    p.add_argument("--lateness", metavar="SECONDS", type=_lateness, default=600.0,
                   help="how long a message is held for earlier ones to arrive (default "
                   "600)")
    p.add_argument("--max-connections", metavar="N", type=count(1, 100_000), default=256,
                   help="connections served at once; more are answered 503 (default 256)")
    p.add_argument("--header-timeout", metavar="SECONDS", type=seconds(positive=True),
                   default=10.0,
                   help="a connection that sends no complete request head within this is "
                   "closed (default 10)")
    p.add_argument("--body-timeout", metavar="SECONDS", type=seconds(positive=True),
                   default=30.0,
                   help="a body not received whole within this is answered 408 (default "
                   "30)")
    p.add_argument("--keep-alive", metavar="SECONDS", type=seconds(positive=True),
                   default=5.0,
                   help="how long an idle kept-alive connection stays open (default 5)")
    p.add_argument("--max-lag", metavar="SECONDS", type=seconds(most=1e9), default=60.0,
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
    p = command("rebuild", "replay all events into new read models and swap them in at "
                "once (readers see the old ones until then)", db)
    p.add_argument("--workers", type=count(1, 64), default=None,
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
    p = command("db", "operators: create, check or upgrade the store; give a reporting "
                "role read access", db)
    p.add_argument("action", choices=("init", "check", "upgrade", "grant-reader"),
                   help="init: create the store's tables; check: say whether the store is "
                   "ready; upgrade: add the chained record to a store written before it; "
                   "grant-reader ROLE (PostgreSQL): SELECT on the read models, now and "
                   "after every rebuild, and nothing on the ledger's tables")
    p.add_argument("role", nargs="?", default=None,
                   help="grant-reader: the PostgreSQL role (create it first)")

    p.add_argument("--json", action="store_true",
                   help="check: one JSON object (events, deadlines, the read models' lag, "
                   "the inbox, problems), for a program or a monitor")
    p.add_argument("--max-lag", metavar="SECONDS", type=seconds(most=1e9), default=None,
                   help="check: exit 1 if the read models are further behind than this "
                   "(wall clock minus the recorded time of the oldest event not yet "
                   "projected; read models never created are behind by every event)")
    p.add_argument("--max-overdue", metavar="SECONDS", type=seconds(most=1e9), default=None,
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
    p.add_argument("--orders", type=count(1, 100_000_000), default=100_000,
                   help="orders of the main workload (default 100000)")
    p.add_argument("--repeat", type=count(1, 100), default=None,
                   help="runs per figure (median; default 3, with --webhook 1)")
    p.add_argument("--big", action="store_true", help="also scale to 10x the orders")
    p.add_argument("--returns-only", action="store_true",
                   help="the returns-only workload of earlier versions (to time old code "
                   "against new on the same lines)")
    p.add_argument("--json", metavar="FILE", type=new_file,
                   help="write the full report here")
    p.add_argument("--workdir", metavar="DIR", help="keep the generated files and stores")
    p.add_argument("--webhook", action="store_true",
                   help="instead: a load benchmark of serve-webhook (signed Douyin bodies "
                   "from concurrent kept-alive clients; SQLite, and PostgreSQL with --db "
                   "postgresql://...) beside the same run's ingest of the same payments")
    p.add_argument("--bodies", type=count(1, 10_000_000), default=1_000,
                   help="--webhook: bodies (and orders) per run (default 1000)")
    p.add_argument("--clients", metavar="N,N,...", type=_client_counts, default=(8, 32, 64),
                   help="--webhook: the numbers of concurrent clients (default 8,32,64)")

    p = command("demo", "generate a workload, ingest it, sweep, and report", db, projecting,
                future, generated)
    p.add_argument("--page", metavar="FILE", type=_page_file, default="scorecard.html",
                   help="write the scorecard page here (default scorecard.html; '' for "
                   "none)")
    command("gen", "write a generated command file to standard output", generated)
    return parser
