"""The development tools on the command line: `gen` (a generated command file or Douyin
feed), `demo` (a workload ingested, swept and reported) and `bench`.  Each loads
aftersales.devtools on use, inside the command."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

from aftersales.application.ledger import Ledger
from aftersales.cli.edge import Edge, fail, report_broken
from aftersales.cli.human import local, printable
from aftersales.cli.progress import Progress
from aftersales.cli.projecting import open_views, project
from aftersales.cli.reporting import scorecard_html, warn_currencies
from aftersales.cli.tables import render
from aftersales.cli.writing import refusals_beside
from aftersales.errors import EXIT_STORE, EXIT_USAGE, LedgerMissing
from aftersales.ingest.serial import IngestReport, broken_names, ingest
from aftersales.storage.config import redacted, sqlite_path
from projections.queries import (
    DEMO_SCORECARD,
    cases_by_kind,
    deadline_changes_by_actor,
    disputes_by_merchant,
    hours,
    list_discrepancies,
    list_violations,
)
from projections.reports import Scorecard

if TYPE_CHECKING:
    from aftersales.devtools.douyin_feed import FeedPlan
    from aftersales.devtools.workload import Workload


def _workload(args: argparse.Namespace) -> Workload:
    from aftersales.devtools.workload import Workload  # a development tool: loaded on use
    return Workload(orders=args.orders or 3000, seed=args.seed, days=args.days,
                    kinds=not args.returns_only)


def _feed_plan(args: argparse.Namespace) -> FeedPlan:
    from aftersales.devtools.douyin_feed import FeedPlan  # a development tool
    return FeedPlan(orders=args.orders or 300, seed=args.seed, days=min(args.days, 28))


def demo_store_problem(edge: Edge) -> str | None:
    """Why the demo may not write into the store at the URL (None: it may): the demo's
    orders are made up, so it writes only into a store that holds no event yet, never
    beside real orders or an earlier demo's."""
    path = sqlite_path(edge.url)
    if path is not None and not Path(path).exists():
        return None
    try:
        with closing(edge.ledger(create=False)) as ledger:
            if not ledger.store_log.max_notification_id():
                return None
    except LedgerMissing:
        return None
    instead = (f"remove {path} (with its -wal and -shm files) or give another --db, e.g. "
               "--db sqlite:///demo.db" if path is not None else
               "give the URL of an empty database with --db")
    return (f"the store at {redacted(edge.url)} already holds events: the demo writes its "
            f"made-up orders only into an empty store; nothing was written ({instead})")


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
    print(f"demo: a Douyin feed of {plan.orders:,} orders of one shop over {plan.days} days "
          f"(seed {plan.seed}), {len(lines):,} lines, into {redacted(ledger.url)}")
    report = ingest_feed(ledger, lines, lateness=plan.lateness,
                         on_refused=lambda text: print(printable(text), file=sys.stderr))
    print(report.summary())
    swept = edge.patience(ledger).run(lambda: ledger.sweep(end_of(plan)), "sweeping")
    print(f"final sweep at {local(end_of(plan), edge.zone)}: {swept.timeouts:,} timeouts, "
          f"{swept.events:,} events")
    project(ledger, edge)
    if getattr(edge.args, "no_project", False):
        return 0
    with closing(open_views(ledger, edge)) as views:
        found = list_discrepancies(views)
        card = Scorecard.read(views, None, None, charts=bool(edge.args.page))
    warn_currencies(card)
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
    _write_page(ledger, edge, card)
    return 1 if report.refused else 0


def _write_page(ledger: Ledger, edge: Edge, card: Scorecard) -> None:
    """The demo's scorecard page, unless --page ''."""
    if edge.args.page:
        Path(edge.args.page).write_text(scorecard_html(ledger, edge, card), encoding="utf-8")
        print(f"\nthe scorecard page: {Path(edge.args.page).resolve()} (open it in a "
              "browser; `aftersales report --format html` writes it again)")


def cmd_demo(ledger: Ledger, edge: Edge) -> int:
    args = edge.args
    if args.platform == "douyin":
        return _demo_douyin(ledger, edge)
    from aftersales.devtools.workload import generate
    w = _workload(args)
    print(f"demo: {w.orders:,} orders over {w.days} days (seed {w.seed}) into "
          f"{redacted(ledger.url)}")
    lines = [json.dumps(line).encode() for line in generate(w)]
    progress = Progress("ingest", len(lines))
    started = time.perf_counter()
    report: IngestReport = ingest(ledger, lines, refusals_beside(progress),
                                  lambda _: progress.advance(),
                                  patience=edge.patience(ledger))
    progress.close()
    elapsed = time.perf_counter() - started
    print(report.summary())
    if (stopped := report.stop_message()) is not None:
        return fail(stopped, EXIT_STORE)
    swept = edge.patience(ledger).run(lambda: ledger.sweep(w.end), "sweeping")
    print(f"ingested in {elapsed:.1f}s ({report.lines / elapsed:,.0f} lines/s); "
          f"final sweep at {local(w.end, edge.zone)}: {swept.timeouts:,} timeouts, "
          f"{swept.events:,} events")
    project(ledger, edge)
    if not getattr(args, "no_project", False):
        zone = edge.zone
        with closing(open_views(ledger, edge)) as views:
            card = Scorecard.read(views, None, None, charts=bool(args.page))
            warn_currencies(card)
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
        _write_page(ledger, edge, card)
    return report_broken(report.broken | broken_names(ledger)) or (
        1 if report.refused else 0)


def cmd_bench(args: argparse.Namespace, url: str | None) -> int:
    def say(text: str) -> None:
        if sys.stderr.isatty():
            print(f"bench: {text}", file=sys.stderr, flush=True)

    if args.webhook and args.bodies < 1:
        return fail("--bodies must be at least 1", EXIT_USAGE)
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(args.workdir or scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        if args.nats is not None:
            from aftersales.devtools import nats_bench

            report = nats_bench.NatsBench(
                orders=args.orders, workdir=workdir, nats=args.nats, db=url,
                repeat=max(1, args.repeat or 3), say=say).run()
            text, ok = nats_bench.render(report), True
        elif args.webhook:
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
