"""The `aftersales` command line (SPEC section 6): the arguments read (cli/parser.py),
the command run (each group of commands in a module of its own: writing, reading,
projecting, integrity, reporting, database, anchors, tools), and an error said with its
exit code (cli/edge.py).

A command's module is imported when the command runs, not before: `--help` and a bad
option load nothing but the parser, and `status` loads neither the read side nor the
SQL toolkit (docs/performance.md, "Starting a command"; pinned by
tests/e2e/test_startup.py).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from contextlib import closing
from importlib import import_module
from typing import TYPE_CHECKING

from aftersales.cli.parser import build_parser
from aftersales.errors import EXIT_USAGE

if TYPE_CHECKING:
    import argparse

    from aftersales.cli.edge import Edge

#: Commands that may create a ledger; every other one needs one already there.
CREATING = {"ingest", "demo", "serve-webhook", "work"}

#: Commands that change the ledger or its read models (the others only read).
WRITING = {"ingest", "tick", "demo", "project", "rebuild", "db", "serve-webhook", "feed",
           "anchor", "publish", "work"}

#: Each command's handler: (module in aftersales.cli, function).
HANDLERS = {
    "ingest": ("writing", "cmd_ingest"), "tick": ("writing", "cmd_tick"),
    "feed": ("writing", "cmd_feed"), "serve-webhook": ("writing", "cmd_serve_webhook"),
    "status": ("reading", "cmd_status"), "history": ("reading", "cmd_history"),
    "project": ("projecting", "cmd_project"), "rebuild": ("projecting", "cmd_rebuild"),
    "verify": ("integrity", "cmd_verify"), "anchor": ("anchors", "cmd_anchor"),
    "violations": ("reporting", "cmd_violations"), "lapses": ("reporting", "cmd_lapses"),
    "disputes": ("reporting", "cmd_disputes"),
    "discrepancies": ("reporting", "cmd_discrepancies"), "report": ("reporting", "cmd_report"),
    "demo": ("tools", "cmd_demo"), "work": ("streaming", "cmd_work"),
}

#: Commands a partitioned ledger does not run, and why.
NOT_PARTITIONED = {
    "demo": "makes a ledger of its own: run it without a partition map",
}

#: What to do after Ctrl-C, by command (the others: run it again to carry on).
AFTER_INTERRUPT = {
    "demo": "the demo's store is incomplete: remove it (or give another --db) and run the "
            "demo again",
    "rebuild": "the read models are as they were (the unfinished rebuild is not used: "
               "the next one starts afresh); run `aftersales rebuild` again",
    "gen": "the output is incomplete",
    "bench": "no figures were kept",
}


def handler(command: str) -> Callable[..., int]:
    module, name = HANDLERS[command]
    found: Callable[..., int] = getattr(import_module(f"aftersales.cli.{module}"), name)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    edge: Edge | None = None
    try:
        from aftersales.cli.edge import Edge
        from aftersales.runtime.garbage import tune_for_batch_work
        tune_for_batch_work()
        edge = Edge(args)
        if (problem := _before_any_work(args, edge)) is not None:
            return _fail(problem, EXIT_USAGE)
        if args.cmd == "gen":
            from aftersales.cli.tools import cmd_gen
            return cmd_gen(args)
        if args.cmd == "db":
            from aftersales.cli.database import cmd_db
            return cmd_db(edge)
        if args.cmd == "publish":
            from aftersales.cli.streaming import cmd_publish
            return cmd_publish(edge)
        if args.cmd == "bench":
            from aftersales.cli.tools import cmd_bench
            return cmd_bench(args, getattr(args, "db", None))
        if args.cmd == "ingest" and (refused := _unreadable_input(args)) is not None:
            return refused
        if args.cmd == "demo":
            from aftersales.cli.tools import demo_store_problem
            if (problem := demo_store_problem(edge)) is not None:
                return _fail(problem, EXIT_USAGE)
        if args.cmd in ("serve-webhook", "work") or getattr(args, "follow", False):
            from aftersales.storage.retry import FirstContact  # a service waits for a
            FirstContact.wait_at_start()  # store not up yet (a command: says so at once)
        run = handler(args.cmd)
        if edge.partitions is not None and args.cmd == "ingest":
            for k in range(edge.partitions.count):  # every partition's tables (a worker
                edge.ledger(create=True, partition=k).close()  # makes its own only)
        if args.cmd == "serve-webhook" and args.nats is not None:  # no store: the
            from aftersales.cli.webhook import serve_to_stream  # workers have them
            return serve_to_stream(args, 1 if edge.partitions is None
                                   else edge.partitions.count)
        with closing(edge.ledger(create=args.cmd in CREATING)) as ledger:
            return run(ledger, edge)
    except KeyboardInterrupt:  # Ctrl-C: one line, where it stopped and how to go on
        where = f" after {edge.reached}" if edge is not None and edge.reached else ""
        then = AFTER_INTERRUPT.get(args.cmd, (
            "what was committed is recorded; run the same command again to carry on"
            if args.cmd in WRITING else "nothing was changed"))
        return _fail(f"interrupted (Ctrl-C){where}: {then}", 130)
    except BrokenPipeError:  # the reader went away (`| head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        if args.cmd in WRITING:  # work was cut short: say so (what is recorded stays)
            return _fail("standard output was closed: stopped.  What was acknowledged is "
                         "recorded; run the same command again to carry on", 1)
        return 0  # a reader that has seen enough is not an error
    except Exception as e:
        from aftersales.cli.edge import failure
        code, text = failure(e)  # an error of ours or the store's; any other is raised
        return _fail(text, code)


def _fail(text: str, code: int) -> int:
    print(f"aftersales: {text}", file=sys.stderr)
    return code


def _before_any_work(args: argparse.Namespace, edge: Edge) -> str | None:
    """What is wrong with options that the parser cannot judge alone (said before a store
    is opened or created)."""
    if getattr(args, "json", None) is True and hasattr(args, "format"):  # --json: a synonym
        if args.format not in ("json", "table", "text"):  # (the defaults)
            return f"--json and --format {args.format}: give one of them"
        args.format = "json"
    if getattr(args, "excel", False) and args.format != "csv":
        return "--excel is for --format csv (a spreadsheet's CSV)"
    since, until = getattr(args, "since", None), getattr(args, "until", None)
    if since is not None and until is not None and since >= until:
        return (f"--since {since.isoformat()} is not before --until {until.isoformat()}: "
                "the window is empty")
    if edge.partitions is not None and args.cmd == "serve-webhook" and args.nats is None:
        return ("serve-webhook on a partitioned ledger publishes to NATS: give --nats URL "
                "(and run `aftersales work --partition K` for each partition)")
    if edge.partitions is not None and args.cmd in NOT_PARTITIONED:
        return (f"`{args.cmd}` {NOT_PARTITIONED[args.cmd]} (a partition map is given: "
                f"{edge.partitions.source})")
    if args.cmd == "serve-webhook":
        from aftersales.cli.webhook import check_options
        if (problem := check_options(args)) is not None:
            return problem
    if args.cmd in ("anchor", "tick", "project", "verify"):
        from aftersales.cli.anchors import check_options as anchor_problem
        for url in [edge.url] if edge.partitions is None else edge.partitions.urls:
            if (problem := anchor_problem(args, url)) is not None:
                return problem
    return None


def _unreadable_input(args: argparse.Namespace) -> int | None:
    """An ingest's file that cannot be read, or is not a command file: said before any
    store is opened (or created)."""
    from aftersales.cli.writing import unreadable
    from aftersales.ingest.sniff import wrong_kind
    if args.file != "-" and not os.access(args.file, os.R_OK):
        return unreadable(args.file)
    if (kind := wrong_kind(args.file, args.format, acked=args.ack)) is not None:
        return _fail(kind, EXIT_USAGE)
    return None


if __name__ == "__main__":
    sys.exit(main())
