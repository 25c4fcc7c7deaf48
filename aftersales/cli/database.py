"""`db`, for operators: `init` creates the store's tables, `check` says whether the store
is ready (`--json` for a monitor; `--max-lag`, `--max-overdue`: exit 1 beyond them), and
`upgrade` adds the chained record to a store written before it; `grant-reader ROLE` gives a
PostgreSQL role SELECT on the read models and nothing on the ledger."""

from __future__ import annotations

import json
import sys
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aftersales.application.clock import wall_clock
from aftersales.application.ledger import Ledger
from aftersales.cli.edge import Edge, fail, failure
from aftersales.cli.progress import Progress
from aftersales.cli.projecting import open_views
from aftersales.errors import EXIT_INTEGRITY, EXIT_USAGE, LedgerMissing, StoreUnavailable
from aftersales.storage.config import redacted, sqlite_path
from aftersales.storage.integrity import check
from aftersales.storage.retry import Patience, is_store_error, may_pass
from aftersales.storage.retry import describe as store_error
from projections.boundary import grant_reader
from projections.database import ReadModels, views_url
from projections.runner import Lag, Projected, lag_behind, projected
from projections.schema import SCHEMA_VERSION


def cmd_db(edge: Edge) -> int:
    """`db init` creates every table; `db check` reports on the store, creating nothing
    (`--json` for a monitor; `--max-lag`, `--max-overdue`: exit 1 beyond them); `db
    upgrade` adds the chained record to a store written before it."""
    args = edge.args
    if (args.action == "grant-reader") != (args.role is not None):
        return fail("a role is named by `db grant-reader ROLE` only", EXIT_USAGE)
    if args.action == "grant-reader":
        if args.json or args.max_lag is not None or args.max_overdue is not None:
            return fail("--json, --max-lag and --max-overdue are for `db check`",
                        EXIT_USAGE)
        return _grant_reader(edge, args.role)
    if args.action == "upgrade":
        if args.json or args.max_lag is not None or args.max_overdue is not None:
            return fail("--json, --max-lag and --max-overdue are for `db check`",
                        EXIT_USAGE)
        if edge.partitions is not None:
            return fail("db upgrade is for a store written before the chained record; a "
                        "partitioned ledger's stores were made with it (run it on each "
                        "store with --db before making them partitions)", EXIT_USAGE)
        return _upgrade(edge)
    for name in ("max_lag", "max_overdue"):
        bound = getattr(args, name)
        if bound is not None and not 0 <= bound < float("inf"):
            return fail(f"--{name.replace('_', '-')} {bound:g}: expected 0 or more seconds",
                        EXIT_USAGE)
    init = args.action == "init"
    if edge.partitions is not None:
        return _partitions_health(edge, init)
    try:
        with closing(edge.ledger(create=init)) as ledger:
            health = _health(ledger, edge, init)
    except Exception as e:
        if not args.json:
            raise
        code, said = failure(e)
        print(json.dumps(_health_json(Health(redacted(edge.url), problems=[said]))))
        return fail(said, code)
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


def _partitions_health(edge: Edge, init: bool) -> int:
    """`db init` and `db check` of a partitioned ledger: each partition's store and its
    read-model position (a partition that cannot be reached is said, the others checked);
    `--json`: the sums, and each partition's object under `partitions`."""
    assert edge.partitions is not None
    found: list[Health] = []
    worst = 0  # a partition that cannot be reached: its exit code (3)
    for k, url in edge.partitions:
        try:
            with closing(edge.ledger(create=init, partition=k)) as ledger:
                health = _health(ledger, edge, init)
        except Exception as e:
            code, said = failure(e)
            worst = max(worst, code)
            health = Health(redacted(url), problems=[said])
        health.problems = [f"partition {k}: {p}" for p in health.problems]
        found.append(health)
    problems = [p for h in found for p in h.problems]
    if edge.args.json:
        whole = _health_json(Health(f"{edge.partitions.count} partitions", problems=problems))
        parts = [{"partition": k, **_health_json(h)} for k, h in enumerate(found)]
        whole.update(_sums(parts))
        whole["partitions"] = parts
        print(json.dumps(whole))
        for problem in problems:
            print(f"aftersales: {problem}", file=sys.stderr)
        return worst or (1 if problems else 0)
    for k, health in enumerate(found):
        print(f"partition {k} of {edge.partitions.count}:")
        if health.events is None:  # not reached, or no ledger there
            print(f"store {health.store}: cannot be checked (below)")
            for problem in health.problems:
                print(f"aftersales: {problem}", file=sys.stderr)
        else:
            _say_health(health, init)
    return worst or (1 if problems else 0)


def _sums(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The partitions' figures together: counts summed, the oldest of the ages (None where
    a partition's is unknown)."""
    def total(values: list[Any]) -> Any:
        return None if any(v is None for v in values) else sum(values)

    def oldest(values: list[Any]) -> Any:
        known = [v for v in values if v is not None]
        return max(known) if known else None

    models = [p["read_models"] for p in parts]
    return {
        "events": total([p["events"] for p in parts]),
        "pending_deadlines": total([p["pending_deadlines"] for p in parts]),
        "overdue_deadlines": total([p["overdue_deadlines"] for p in parts]),
        "oldest_overdue_seconds": oldest([p["oldest_overdue_seconds"] for p in parts]),
        "read_models": {
            "position": None,
            "lag_events": total([m["lag_events"] for m in models]),
            "lag_seconds": None if any(m["lag_seconds"] is None for m in models)
            else oldest([m["lag_seconds"] for m in models]),
            "schema_version": oldest([m["schema_version"] for m in models]),
            "created": all(m["created"] for m in models),
        },
    }


def _grant_reader(edge: Edge, role: str) -> int:
    """`db grant-reader ROLE`: the role reads the read models (now and after every
    rebuild) and nothing of the ledger (docs/reporting.md, "The reporting boundary")."""
    views = ReadModels(views_url(edge.url, getattr(edge.args, "views", None)),
                       settings=edge.settings)
    try:
        done = edge.patience(None).run(lambda: grant_reader(views, role),
                                       "granting the reporting role")
    finally:
        views.close()
    for statement in done:
        print(statement)
    print(f"{role} may read the read models in {redacted(views.url)}, and nothing of the "
          "ledger")
    return 0


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
    views = open_views(ledger, edge)
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
    print(f"  events recorded: {health.events:,}")
    if health.overdue:
        print(f"  pending deadlines: {health.pending:,} ({health.overdue:,} past due, the "
              f"oldest by {_duration(health.oldest_overdue or 0.0)}: run `aftersales tick`)")
    else:
        print(f"  pending deadlines: {health.pending:,}")
    models, lag = health.read_models, health.lag
    if models is None or lag is None:
        print("  read models: cannot be read (below)")
    elif not models.created:
        print("  read models: not created (run `aftersales project`)")
    else:
        behind = f"lag {lag.events:,}"
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
    print(f"store {where}: upgraded: {done:,} events, none changed; log head "
          f"{found.head.hex()} at position {found.position} (keep it elsewhere)")
    return 0 if found.intact else EXIT_INTEGRITY
