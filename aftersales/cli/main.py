"""The `aftersales` command line (SPEC section 6): the arguments read (cli/parser.py),
the command run (each group of commands in a module of its own: writing, reading,
projecting, integrity, reporting, database, anchors, tools), and an error said with its
exit code (cli/edge.py)."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from contextlib import closing

from aftersales.cli.anchors import check_options as anchor_problem
from aftersales.cli.anchors import cmd_anchor
from aftersales.cli.database import cmd_db
from aftersales.cli.edge import Edge, fail, failure
from aftersales.cli.integrity import cmd_verify
from aftersales.cli.parser import build_parser
from aftersales.cli.projecting import cmd_project, cmd_rebuild
from aftersales.cli.reading import cmd_history, cmd_status
from aftersales.cli.reporting import (
    cmd_discrepancies,
    cmd_disputes,
    cmd_lapses,
    cmd_report,
    cmd_violations,
)
from aftersales.cli.tools import cmd_bench, cmd_demo, cmd_gen
from aftersales.cli.writing import (
    cmd_feed,
    cmd_ingest,
    cmd_serve_webhook,
    cmd_tick,
    unreadable,
)
from aftersales.errors import EXIT_USAGE
from aftersales.runtime.garbage import tune_for_batch_work

#: Commands that may create a ledger; every other one needs one already there.
CREATING = {"ingest", "demo", "serve-webhook"}

#: Commands that change the ledger or its read models (the others only read).
WRITING = {"ingest", "tick", "demo", "project", "rebuild", "db", "serve-webhook", "feed",
           "anchor"}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    tune_for_batch_work()
    try:
        edge = Edge(args)
        if getattr(args, "excel", False) and args.format != "csv":
            return fail("--excel is for --format csv (a spreadsheet's CSV)", EXIT_USAGE)
        if args.cmd == "gen":
            return cmd_gen(args)
        if args.cmd == "db":
            return cmd_db(edge)
        if args.cmd == "bench":
            return cmd_bench(args, getattr(args, "db", None))
        if args.cmd == "ingest" and args.file != "-" and not os.access(args.file, os.R_OK):
            return unreadable(args.file)  # before any store is opened (or created)
        if args.cmd == "ingest":  # a file of the wrong kind: said before any store
            from aftersales.ingest.sniff import wrong_kind
            if (kind := wrong_kind(args.file, args.format, acked=args.ack)) is not None:
                return fail(kind, EXIT_USAGE)
        if args.cmd == "serve-webhook":  # before a store is opened (or created)
            from aftersales.cli.webhook import check_options
            if (problem := check_options(args)) is not None:
                return fail(problem, EXIT_USAGE)
        if (problem := anchor_problem(args, edge.url)) is not None:  # before any work
            return fail(problem, EXIT_USAGE)
        if args.cmd == "serve-webhook" or getattr(args, "follow", False):
            from aftersales.storage.retry import FirstContact  # a service waits for a
            FirstContact.wait_at_start()  # store not up yet (a command: says so at once)
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
    except BrokenPipeError:  # the reader went away (`| head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        if args.cmd in WRITING:  # work was cut short: say so (what is recorded stays)
            return fail("standard output was closed: stopped.  What was acknowledged is "
                        "recorded; run the same command again to carry on", 1)
        return 0  # a reader that has seen enough is not an error
    except Exception as e:
        code, text = failure(e)  # an error of ours or the store's; any other is raised
        return fail(text, code)


if __name__ == "__main__":
    sys.exit(main())
