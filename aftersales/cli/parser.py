"""The command line's arguments: `build_parser()`, every command with its help and
options (each command's in a function of its own, below), and the exit codes each
command's help states.  The option types and the groups of options several commands
share are `aftersales.cli.options`.

A command's options are added when the command is used, or its help asked for: `aftersales
--help` builds none of them, and `aftersales status ...` only status's.  With the types
importing nothing heavy, `--help` and a bad option load no store, no command models and
no SQL toolkit (docs/performance.md, "Starting a command"; tests/e2e/test_startup.py).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from aftersales.cli import options
from aftersales.settings import INGEST_BATCH, PARALLEL_INGEST_FROM, PROJECTION_BATCH
from projections.captions import SCORECARD_CAPTION

#: How a command's options are added to its parser.
Fill = Callable[[argparse.ArgumentParser], None]


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
    "publish": "some lines were refused (each printed as `line N: CODE: reason`) and not "
               "published",
}


def exit_codes(command: str) -> str:
    """The exit codes of a command, for its --help."""
    if command == "gen":
        return "exit codes: 0 done; 2 a bad option"
    one = f"1 {_EXIT_1[command]}; " if command in _EXIT_1 else ""
    return (f"exit codes: 0 done; {one}2 it cannot run as asked (a bad option or time, an "
            "unreadable file, no ledger at the URL); 3 the store failed past the retry "
            "time; 4 an order's stored history is broken (docs/operations.md)")


if TYPE_CHECKING:  # generic for the type checker only
    _SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]
else:
    _SubParsers = argparse._SubParsersAction


class _Commands(_SubParsers):
    """The commands, each parser made with its options when the command is used (its
    help line, for `aftersales --help`, is there from the start)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fills: dict[str, tuple[str, Fill]] = {}

    def declare(self, name: str, text: str, fill: Fill) -> None:
        self._choices_actions.append(self._ChoicesPseudoAction(name, (), text))
        self._name_parser_map[name] = None  # type: ignore[assignment]  # made on use
        self.fills[name] = (text, fill)

    def made(self, name: str) -> argparse.ArgumentParser:
        """The command's parser, made now if it was not yet."""
        if self._name_parser_map.get(name) is None:
            text, fill = self.fills[name]
            del self._name_parser_map[name]
            parser = self.add_parser(name, description=text, epilog=exit_codes(name))
            fill(parser)
        made: argparse.ArgumentParser = self._name_parser_map[name]
        return made

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        if isinstance(values, Sequence) and values and values[0] in self.fills:
            self.made(values[0])
        super().__call__(parser, namespace, values, option_string)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aftersales", description="An event-sourced ledger for e-commerce after-sales.")
    options.store(parser)
    parser.add_argument("--version", action=options.Version)
    parser.register("action", "parsers", _Commands)
    sub = parser.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    assert isinstance(sub, _Commands)
    for name, text, fill in COMMANDS:
        sub.declare(name, text, fill)
    return parser


def every_command(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Every command's parser, made (for the tests that read every option's help)."""
    sub = next(a for a in parser._actions if isinstance(a, _Commands))
    return {name: sub.made(name) for name in sub.fills}


def _ingest(p: argparse.ArgumentParser) -> None:
    options.store(p)
    options.projecting(p)
    options.ack(p)
    options.future(p)
    options.feeding(p)
    p.add_argument("file", help="the command file, or - for standard input")
    p.add_argument("--format", choices=("commands", "douyin"), default="commands",
                   help="commands: JSON Lines of ledger commands (default); douyin: "
                   "Douyin push bodies, one per line, with ledger command lines mixed in "
                   "(docs/platforms/douyin.md)")
    p.add_argument("--lateness", metavar="SECONDS", type=options.lateness, default=600.0,
                   help="--format douyin: how long after a later message an earlier one "
                   "may arrive and still be applied in its place (default 600)")
    p.add_argument("--received-at", metavar="T", type=options.business_time,
                   help="--format douyin: when bare bodies (lines without received_at) were "
                   "received: the time of their messages that carry none (default: such "
                   "messages are refused)")
    p.add_argument("--batch", type=options.count(1, 1_000_000), default=INGEST_BATCH,
                   help=f"lines per transaction (default {INGEST_BATCH:,}; 1: one each)")
    p.add_argument("--workers", type=options.count(1, 64), default=None,
                   help="processes, each deciding the orders it owns (default: one per core, "
                   f"up to 4, for files of {PARALLEL_INGEST_FROM >> 20} MiB or more; else 1)")


def _tick(p: argparse.ArgumentParser) -> None:
    options.store(p)
    options.projecting(p)
    options.ack(p)
    options.future(p)
    p.add_argument("--now", metavar="T", type=options.business_time,
                   help="business time (default: wall clock)")
    options.partition(p, "sweep only this partition of a partitioned ledger (default: "
                      "every one, in turn)")
    options.anchor_every(p, follow=False)


def _status(p: argparse.ArgumentParser) -> None:
    options.store(p)
    p.add_argument("order_id", help="the platform's order number")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="text for a person (default), or json: the status document")
    p.add_argument("--json", action="store_true",
                   help="the same as --format json")
    p.add_argument("--as-of", metavar="T", type=options.business_time,
                   help="the state as it stood at business time T")


def _history(p: argparse.ArgumentParser) -> None:
    options.store(p)
    p.add_argument("order_id", help="the platform's order number")
    p.add_argument("--json", action="store_true",
                   help="the same as --format json")
    p.add_argument("--format", choices=("text", "json", "html"), default="text",
                   help="text for a person (default), json for a program, or html: the "
                   "order's timeline page, one self-contained file (`> order.html`)")


def _project(p: argparse.ArgumentParser) -> None:
    options.store(p)
    options.ack(p)
    p.add_argument("--follow", action="store_true", help="then keep following new events")
    p.add_argument("--poll", metavar="SECONDS", type=options.seconds(positive=True, most=3600.0),
                   default=0.5,
                   help="with --follow: the longest wait before looking for new events "
                   "(default 0.5; on PostgreSQL a NOTIFY wakes it at once)")
    p.add_argument("--batch", type=options.count(1, 1_000_000), default=PROJECTION_BATCH,
                   help=f"events per transaction (default {PROJECTION_BATCH:,})")
    p.add_argument("--metrics-port", metavar="PORT", type=options.port, default=None,
                   help="with --follow: serve Prometheus metrics (position, lag in events "
                   "and seconds, events projected, store failures waited out) at "
                   "http://HOST:PORT/metrics")
    p.add_argument("--metrics-host", metavar="HOST", default="127.0.0.1",
                   help="the address the metrics are served on (default 127.0.0.1)")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"),
                   default="info", help="with --follow: the JSON log lines on standard "
                   "error (default info)")
    options.partition(p, "project only this partition of a partitioned ledger (one "
                      "runner per partition; --follow needs it)")
    options.anchor_every(p, follow=True)


def _serve_webhook(p: argparse.ArgumentParser) -> None:
    options.store(p)
    options.ack(p)
    options.feeding(p)
    p.add_argument("--port", type=options.listening_port, required=True,
                   help="the port to listen on (0: a free one, printed as it starts)")
    p.add_argument("--host", default="127.0.0.1",
                   help="the address to listen on (default 127.0.0.1)")
    p.add_argument("--spool", metavar="FILE", type=options.spool,
                   default="aftersales-webhook.spool",
                   help="a spool file an earlier version kept: its bodies are moved into "
                   "the inbox on start (default aftersales-webhook.spool, if it exists)")
    p.add_argument("--lateness", metavar="SECONDS", type=options.lateness, default=600.0,
                   help="how long a message is held for earlier ones to arrive (default "
                   "600)")
    p.add_argument("--max-connections", metavar="N", type=options.count(1, 100_000), default=256,
                   help="connections served at once; more are answered 503 (default 256)")
    p.add_argument("--header-timeout", metavar="SECONDS", type=options.seconds(positive=True),
                   default=10.0,
                   help="a connection that sends no complete request head within this is "
                   "closed (default 10)")
    p.add_argument("--body-timeout", metavar="SECONDS", type=options.seconds(positive=True),
                   default=30.0,
                   help="a body not received whole within this is answered 408 (default "
                   "30)")
    p.add_argument("--keep-alive", metavar="SECONDS", type=options.seconds(positive=True),
                   default=5.0,
                   help="how long an idle kept-alive connection stays open (default 5)")
    p.add_argument("--max-lag", metavar="SECONDS", type=options.seconds(most=1e9), default=60.0,
                   help="/readyz answers 503 when the oldest unapplied body is older than "
                   "the lateness window and this (default 60)")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"),
                   default="info", help="the JSON log lines on standard error (default "
                   "info; debug: one line per accepted body)")
    p.add_argument("--nats", metavar="URL", default=None,
                   help="publish each accepted body to this NATS JetStream server's stream "
                   "(nats://HOST:PORT), for the partitions' workers (`aftersales work`), "
                   "instead of the store's inbox; a partitioned ledger's webhook needs it")
    p.add_argument("--stream", metavar="NAME", type=options.stream_name, default="AFTERSALES",
                   help="with --nats: the JetStream stream (default AFTERSALES)")


def _nats(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nats", metavar="URL", required=True,
                   help="the NATS server with JetStream: nats://HOST:PORT (several: "
                   "separated by commas)")
    p.add_argument("--stream", metavar="NAME", type=options.stream_name, default="AFTERSALES",
                   help="the JetStream stream (default AFTERSALES; made if it is not there)")


def _publish(p: argparse.ArgumentParser) -> None:
    options.store(p)
    _nats(p)
    p.add_argument("file", help="the file, or - for standard input")
    p.add_argument("--format", choices=("commands", "douyin"), default="commands",
                   help="commands: JSON Lines of ledger commands (default); douyin: "
                   "Douyin push bodies, one per line, with ledger command lines mixed in")
    p.add_argument("--received-at", metavar="T", type=options.business_time,
                   help="--format douyin: when bare bodies were received (the time of "
                   "their messages that carry none)")


def _work(p: argparse.ArgumentParser) -> None:
    options.store(p)
    options.ack(p)
    options.future(p)
    options.feeding(p)
    _nats(p)
    p.add_argument("--partition", metavar="K", type=options.count(0, 15), required=True,
                   help="the partition this worker decides (one worker per partition)")
    p.add_argument("--lateness", metavar="SECONDS", type=options.lateness, default=600.0,
                   help="how long a message is held for earlier ones of the partition to "
                   "arrive (default 600)")
    p.add_argument("--batch", type=options.count(1, 100_000), default=1_000,
                   help="messages taken from the stream at a time, and recorded in one "
                   "transaction (default 1,000)")
    p.add_argument("--poll", metavar="SECONDS", type=options.seconds(positive=True, most=60.0),
                   default=1.0, help="how long a fetch waits for messages (default 1)")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"),
                   default="info", help="the JSON log lines on standard error (default "
                   "info)")


def _feed(p: argparse.ArgumentParser) -> None:
    options.store(p)
    options.projecting(p)
    options.feeding(p)
    p.add_argument("action", nargs="?", choices=("inbox", "retry"), default="inbox",
                   help="inbox (default): what the webhook received and applied; retry: "
                   "decide every reported message again, on the ledger as it is now, in "
                   "business-time order")


def _rebuild(p: argparse.ArgumentParser) -> None:
    options.store(p)
    p.add_argument("--workers", type=options.count(1, 64), default=None,
                   help="processes, each replaying a range of orders (default: one per core, "
                   "up to 4, for 100,000 events or more; else 1)")


def _verify(p: argparse.ArgumentParser) -> None:
    options.store(p)
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


def _anchor(p: argparse.ArgumentParser) -> None:
    options.store(p)
    p.epilog = (p.epilog or "").replace(
        "4 an order's stored history is broken", "4 the log no longer holds the anchor "
        "appended last (nothing was appended: run `aftersales verify`)", 1)
    p.add_argument("--to", metavar="TARGET", default=None,
                   help="the anchor log: a file (JSON Lines), sqlite:///PATH or "
                   "postgresql://USER@HOST/DB (the table ledger_anchors), never the "
                   "ledger's own database; - : the anchor's line to standard output "
                   "(default: $AFTERSALES_ANCHOR)")


def _db(p: argparse.ArgumentParser) -> None:
    options.store(p)
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
    p.add_argument("--max-lag", metavar="SECONDS", type=options.seconds(most=1e9), default=None,
                   help="check: exit 1 if the read models are further behind than this "
                   "(wall clock minus the recorded time of the oldest event not yet "
                   "projected; read models never created are behind by every event)")
    p.add_argument("--max-overdue", metavar="SECONDS", type=options.seconds(most=1e9),
                   default=None,
                   help="check: exit 1 if a pending deadline is past by more than this "
                   "(the sweep, `aftersales tick`, is not running)")


def _violations(p: argparse.ArgumentParser) -> None:
    from aftersales.domain.steps import VIOLATION_RULES
    options.store(p)
    options.listing(p, ("table", "json", "csv"))
    p.add_argument("--merchant", help="only this merchant's")
    p.add_argument("--rule", type=options.rule_of("violation"),
                   help=f"only this violation: {', '.join(VIOLATION_RULES)}")


def _lapses(p: argparse.ArgumentParser) -> None:
    from aftersales.domain.steps import LAPSE_RULES
    options.store(p)
    options.listing(p, ("table", "json", "csv"))
    p.add_argument("--merchant", help="only on this merchant's orders")
    p.add_argument("--user", help="only this user's")
    p.add_argument("--rule", type=options.rule_of("lapse"),
                   help=f"only this lapse: {', '.join(LAPSE_RULES)}")


def _discrepancies(p: argparse.ArgumentParser) -> None:
    from aftersales.domain.reconciliation import KINDS
    options.store(p)
    options.listing(p, ("table", "json", "csv"))
    p.add_argument("--merchant", help="only this merchant's")
    p.add_argument("--kind", choices=KINDS, help="only discrepancies of this kind")


def _disputes(p: argparse.ArgumentParser) -> None:
    options.store(p)
    options.listing(p, ("table", "json", "csv"))
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


def _report(p: argparse.ArgumentParser) -> None:
    options.store(p)
    options.listing(p, ("table", "json", "csv", "html"), "; html: the scorecard page, one "
                    "self-contained file (`> scorecard.html`)")


def _bench(p: argparse.ArgumentParser) -> None:
    options.store(p)
    p.epilog = (p.epilog or "").replace(
        "0 done; ", "0 done; 1 --webhook: a body was not answered 200 or not applied, a "
        "connection failed, or a server did not stop cleanly; ", 1)
    p.add_argument("--orders", type=options.count(1, 100_000_000), default=100_000,
                   help="orders of the main workload (default 100000)")
    p.add_argument("--repeat", type=options.count(1, 100), default=None,
                   help="runs per figure (median; default 3, with --webhook 1)")
    p.add_argument("--big", action="store_true", help="also scale to 10x the orders")
    p.add_argument("--returns-only", action="store_true",
                   help="the returns-only workload of earlier versions (to time old code "
                   "against new on the same lines)")
    p.add_argument("--json", metavar="FILE", type=options.new_file,
                   help="write the full report here")
    p.add_argument("--workdir", metavar="DIR", help="keep the generated files and stores")
    p.add_argument("--webhook", action="store_true",
                   help="instead: a load benchmark of serve-webhook (signed Douyin bodies "
                   "from concurrent kept-alive clients; SQLite, and PostgreSQL with --db "
                   "postgresql://...) beside the same run's ingest of the same payments")
    p.add_argument("--nats", metavar="URL", default=None,
                   help="instead: commands per second through NATS JetStream (this "
                   "server: nats://HOST:PORT) into 1, 2 and 4 partitions (schemas of --db "
                   "postgresql://..., or SQLite files), beside one partition and a direct "
                   "ingest of the same file")
    p.add_argument("--bodies", type=options.count(1, 10_000_000), default=1_000,
                   help="--webhook: bodies (and orders) per run (default 1000)")
    p.add_argument("--clients", metavar="N,N,...", type=options.client_counts, default=(8, 32, 64),
                   help="--webhook: the numbers of concurrent clients (default 8,32,64)")


def _demo(p: argparse.ArgumentParser) -> None:
    options.store(p)
    options.projecting(p)
    options.future(p)
    options.generated(p)
    p.add_argument("--page", metavar="FILE", type=options.page_file, default="scorecard.html",
                   help="write the scorecard page here (default scorecard.html; '' for "
                   "none)")


def _gen(p: argparse.ArgumentParser) -> None:
    options.generated(p)


#: Every command: its name, its help line, and the function that adds its options.
COMMANDS: list[tuple[str, str, Fill]] = [
    ('ingest', "apply a command file (JSON Lines); files ingested at the same "
     "time must split the orders between them (docs/operations.md, \"What may "
     "run at once\")", _ingest),
    ('tick', "sweep due timeouts", _tick),
    ('status', "an order's current state", _status),
    ('history', "an order's audit trail: every event with its actor, business "
     "time, recorded time, and the rule behind a system act", _history),
    ('project', "bring the read models up to date", _project),
    ('serve-webhook', "receive Douyin's live pushes over HTTP: check each "
     "body's event-sign (app key and secret from $AFTERSALES_DOUYIN_APP_KEY and "
     "$AFTERSALES_DOUYIN_APP_SECRET, or the files their _FILE variables name), "
     "commit it to the store's inbox before answering success, and apply it to "
     "the ledger; /healthz, /readyz and /metrics (docs/operations.md)", _serve_webhook),
    ('publish', "put a file's lines (ledger commands, or Douyin push bodies with "
     "--format douyin) on the NATS JetStream stream, each on its partition's subject "
     "(docs/operations.md, \"Partitions\")", _publish),
    ('work', "a partition's worker: decide what was published on its subject, "
     "acknowledging each message once the transaction that decided it committed",
     _work),
    ('feed', "platform feeds: the webhook's inbox (received, applied, backlog), "
     "or decide the reported messages again (after the orders they named were "
     "placed)", _feed),
    ('rebuild', "replay all events into new read models and swap them in at "
     "once (readers see the old ones until then)", _rebuild),
    ('verify', "check the chained record, then rebuild into a scratch database "
     "and compare with the read models", _verify),
    ('anchor', "append the log's position and head digest, with the time, to "
     "an anchor log outside the ledger's database, for `verify` to check the "
     "log against (docs/operations.md, \"Anchoring the head outside the store\")", _anchor),
    ('db', "operators: create, check or upgrade the store; give a reporting "
     "role read access", _db),
    ('violations', "list violations (missed merchant deadlines), by deadline", _violations),
    ('lapses', "list user lapses (missed user deadlines), by deadline", _lapses),
    ('discrepancies', "list the platform's accounts that differ from the "
     "ledger (platform feeds: docs/platforms/douyin.md), by the time reported", _discrepancies),
    ('disputes', "list disputes (appeals to the platform), by the time opened", _disputes),
    ('report', "the merchant scorecard: per merchant, the counters of "
     "merchant_compliance over the business days --since/--until touch, with a "
     f"totals row.  {SCORECARD_CAPTION}", _report),
    ('bench', "measure speed against same-run baselines", _bench),
    ('demo', "generate a workload, ingest it, sweep, and report", _demo),
    ('gen', "write a generated command file to standard output", _gen),
]
