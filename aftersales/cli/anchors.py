"""Anchors outside the store on the command line (aftersales/storage/anchor.py):
`aftersales anchor`, `tick --anchor-every`, `project --follow --anchor-every`, and the
check of the log against every anchor that `verify` makes.  The wall clock is read here,
at the edge."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Protocol, TypeVar

from aftersales.application.clock import wall_clock
from aftersales.cli.edge import waiting
from aftersales.cli.options import ANCHOR_TARGETS
from aftersales.errors import (
    EXIT_INTEGRITY,
    EXIT_STORE,
    EXIT_USAGE,
    AnchorLogError,
    StoreUnavailable,
)
from aftersales.settings import ANCHOR_ENV_VAR
from aftersales.storage.anchor import (
    Anchor,
    AnchorFailure,
    AnchorLog,
    Part,
    anchor_target,
    check_anchors,
    check_target,
    links_at,
    log_head,
    open_anchor_log,
    parse_anchors,
    redacted_or,
)
from aftersales.storage.config import redacted
from aftersales.storage.integrity import watch_log
from aftersales.storage.logcheck import LogBreak
from aftersales.storage.retry import Patience

if TYPE_CHECKING:
    from aftersales.application.ledger import Ledger
    from aftersales.settings import Settings
    from aftersales.storage.integrity import Check
    from aftersales.storage.partition_map import PartitionMap

T = TypeVar("T")


class Edge(Protocol):
    """What anchoring takes from the command line's run (`aftersales.cli.edge.Edge`)."""

    args: argparse.Namespace
    settings: Settings
    partitions: PartitionMap | None

    def patience(self, ledger: Ledger | None = None, retry_for: float | None = -1.0
                 ) -> Patience: ...

    def ledger(self, create: bool, patient: bool = True, partition: int | None = None
               ) -> Ledger: ...


class Reader(Protocol):
    """A reader of the ledger: `step()`, tried again as the caller's patience says."""

    def __call__(self, step: Callable[[], T], doing: str) -> T: ...


def _direct(step: Callable[[], T], doing: str) -> T:
    """A read whose store failures are the caller's to wait out (the follower's)."""
    return step()


#: Failures of anchors printed one by one; the rest are counted.
MOST = 10
#: How soon the follower tries again after the anchor log failed (seconds, at most).
FOLLOW_RETRY = 60.0


def check_options(args: argparse.Namespace, ledger_url: str) -> str | None:
    """Why the anchor options given cannot be used (None: they can, or none was given):
    said before any work is done."""
    if args.cmd == "anchor":
        given, option, needed = args.to, "--to", True
    elif args.cmd in ("tick", "project"):
        if args.anchor_every is None:
            return "--anchor-to is for --anchor-every" if args.anchor_to else None
        if args.cmd == "project" and not args.follow:
            return ("--anchor-every is for `project --follow` (a service); a one-shot "
                    "anchor: `aftersales anchor`, or `tick --anchor-every`")
        given, option, needed = args.anchor_to, "--anchor-to", True
    elif args.cmd == "verify":
        given, option, needed = args.anchors, "--anchors", False
    else:
        return None
    target = anchor_target(given)
    if target is None:
        return (f"no anchor log: give {option} TARGET or set ${ANCHOR_ENV_VAR} ({ANCHOR_TARGETS})"
                if needed else None)
    if target == "-":
        return (None if args.cmd in ("anchor", "verify") else
                f"{option} -: --anchor-every reads the last anchor's time from the anchor "
                "log: give a file or a database")
    try:
        check_target(target, ledger_url)
    except AnchorLogError as e:
        return str(e)
    return None


def _patience(target: str, retry_for: float | None) -> Patience:
    """How long the anchor log's store is waited for."""
    return Patience(retry_for, redacted_or(target), on_wait=waiting)


def _name(target: str) -> str:
    return "standard output" if target == "-" else redacted_or(target)


@dataclass(frozen=True)
class Anchored:
    """What anchoring did: the anchor appended; or the anchor appended last, which the log
    no longer holds (nothing appended); or neither: the ledger holds no events."""

    appended: Anchor | None = None
    failure: AnchorFailure | None = None
    #: Breaks the walk of the log since its last check found (nothing appended).
    breaks: list[LogBreak] = field(default_factory=list)


def last_of(log: AnchorLog, part: Part) -> Anchor | None:
    """The anchor appended last (of partition `part`, for a partitioned ledger)."""
    if part is None:
        return log.last()
    return next((a for a in reversed(log.read()) if a.part == part), None)


def anchor_now(ledger: Ledger, log: AnchorLog, at: datetime, read: Reader,
               patience: Patience, last: Anchor | None = None, known: bool = False,
               part: Part = None) -> Anchored:
    """Append the log's head, taken at `at`, once the anchor appended last (`last` if
    `known`, else read first) is found to hold still at its position (a cheap look: one
    link; `verify` checks every anchor against the whole chain).  `part`: the ledger is
    that partition of a partitioned ledger."""
    if not known:
        last = patience.run(lambda: last_of(log, part), "reading the anchor log")

    def head() -> tuple[tuple[int, bytes] | None, dict[int, bytes | None]]:
        end = ledger.recorder.max_notification_id() or 0
        found = log_head(ledger.index, end)
        return found, ({} if last is None or found is None
                       else links_at(ledger.index, [last.position]))

    walked = read(lambda: watch_log(ledger.index, at), "walking the log since its last check")
    if walked.breaks:  # never vouch for a broken log: the breaks are recorded instead
        return Anchored(breaks=walked.breaks)
    found, links = read(head, "reading the log's head")
    if last is not None:
        failed = check_anchors([last], links, 0 if found is None else found[0], ())
        if failed:
            return Anchored(failure=failed[0])
    if found is None:
        return Anchored()
    anchor = Anchor(found[0], found[1], at, part)
    patience.run(lambda: log.append(anchor), "appending to the anchor log")
    return Anchored(appended=anchor)


def _say(done: Anchored, ledger: Ledger, target: str) -> int:
    """Print what anchoring did (`anchor`, `tick`); its exit code."""
    if done.appended is not None:
        a = done.appended
        print(f"anchor: {_of(a.part)}position {a.position}, head {a.head.hex()}, appended "
              f"to {_name(target)}", flush=True)
        return 0
    if done.breaks:
        for b in done.breaks:
            print(f"anchor: the log chain breaks at position {b.position}: {b.reason}; "
                  "refused from now on: " + ", ".join(f"order {oid}" for oid, _ in b.blamed))
        print(f"aftersales: nothing was appended to {_name(target)}: the log is broken "
              "(the orders named are refused from now on); run `aftersales verify`",
              file=sys.stderr)
        return EXIT_INTEGRITY
    if done.failure is not None:
        print(f"anchor: {done.failure.describe()}")
        print(f"aftersales: nothing was appended to {_name(target)}: the log no longer holds "
              "its last anchor; run `aftersales verify`", file=sys.stderr)
        return EXIT_INTEGRITY
    print(f"anchor: the ledger at {redacted(ledger.url)} holds no events yet: nothing to "
          "anchor, nothing appended")
    return 0


def _head_of(ledger: Ledger) -> tuple[int, bytes] | None:
    return log_head(ledger.index, ledger.recorder.max_notification_id() or 0)


def _of(part: Part) -> str:
    return "" if part is None else f"partition {part[0]} of {part[1]}: "


def _parts(ledger: Ledger, edge: Edge) -> Iterator[tuple[Part, Ledger]]:
    """The ledger, or each partition of a partitioned one (opened in turn)."""
    partitions = edge.partitions
    if partitions is None:
        yield None, ledger
        return
    for k, url in partitions:
        if url == ledger.url:
            yield (k, partitions.count), ledger
            continue
        with closing(edge.ledger(create=False, partition=k)) as one:
            yield (k, partitions.count), one


def cmd_anchor(ledger: Ledger, edge: Edge) -> int:
    """`aftersales anchor [--to TARGET]`: the log's position and head, with the time,
    appended to the anchor log (`--to -`: the line written to standard output); a
    partitioned ledger's: one anchor per partition, all taken at the same time."""
    target = anchor_target(edge.args.to)
    assert target is not None  # checked before the ledger was opened
    at = wall_clock()
    code, heads = 0, []
    for part, one in _parts(ledger, edge):
        read = edge.patience(one).run
        if target == "-":
            found = read(partial(_head_of, one), "reading the log's head")
            if found is None:
                code = max(code, _say(Anchored(), one, target))
                continue
            anchor = Anchor(found[0], found[1], at, part)
            print(anchor.line(), flush=True)
            print(f"anchor: {_of(part)}position {anchor.position}, head {anchor.head.hex()}, "
                  "written to standard output", file=sys.stderr)
            heads.append(anchor.head)
            continue
        with closing(open_anchor_log(target, one.url, edge.settings)) as log:
            done = anchor_now(one, log, at, read, _patience(target, edge.settings.retry_for),
                              part=part)
        code = max(code, _say(done, one, target))
        if done.appended is not None:
            heads.append(done.appended.head)
    if edge.partitions is not None and len(heads) == edge.partitions.count:
        print(f"anchor: combined head {b''.join(heads).hex()}", file=sys.stderr
              if target == "-" else sys.stdout)
    elif edge.partitions is not None:  # a partition empty, or refused: no whole head
        print(f"anchor: no combined head: {edge.partitions.count - len(heads)} of the "
              f"{edge.partitions.count} partitions appended nothing (above)",
              file=sys.stderr)
    return code


def _due(last: Anchor | None, every: timedelta, now: datetime) -> bool:
    """Whether an anchor is due: none yet, or the last is `every` old or older (or dated
    ahead of the clock: a clock that was wrong then must not stop the anchoring)."""
    return last is None or not now - every < last.at <= now


def anchor_if_due(ledger: Ledger, edge: Edge) -> int:
    """`tick --anchor-every MINUTES`, after the sweep: an anchor appended if the anchor
    log's last one is MINUTES old or older; the exit code."""
    args = edge.args
    target = anchor_target(args.anchor_to)
    assert target is not None  # checked before the ledger was opened
    every = timedelta(minutes=args.anchor_every)
    patience = _patience(target, edge.settings.retry_for)
    now = wall_clock()
    code = 0
    for part, one in _parts(ledger, edge):
        with closing(open_anchor_log(target, one.url, edge.settings)) as log:
            last = patience.run(partial(last_of, log, part), "reading the anchor log")
            if not _due(last, every, now):
                assert last is not None
                print(f"anchor: {_of(part)}the last anchor, of {last.when}, is less than "
                      f"{args.anchor_every:g} minutes old: none appended")
                continue
            done = anchor_now(one, log, now, edge.patience(one).run, patience, last,
                              known=True, part=part)
        code = max(code, _say(done, one, target))
    return code


class FollowAnchors:
    """`project --follow --anchor-every MINUTES`: called between batches and whenever the
    follower has caught up, it appends an anchor when the last one is MINUTES old, then
    every MINUTES on its own timer.  A failure of the anchor log is logged and tried
    again within a minute (the follower goes on); the ledger's own store failures are
    the follower's to wait out."""

    def __init__(self, ledger: Ledger, edge: Edge, logger: logging.Logger) -> None:
        from aftersales.service.logs import log
        self.ledger, self.logger, self._log = ledger, logger, log
        target = anchor_target(edge.args.anchor_to)
        assert target is not None  # checked before the ledger was opened
        self.target = target
        self.every = timedelta(minutes=edge.args.anchor_every)
        self.anchors = open_anchor_log(target, ledger.url, edge.settings)
        #: Which partition's log this follower anchors (None: one store's).
        self.part: Part = None if edge.partitions is None else (
            edge.args.partition, edge.partitions.count)
        self.due: float | None = None  # monotonic; None: as the anchor log's last says

    def __call__(self) -> None:
        now = time.monotonic()
        if self.due is not None and now < self.due:
            return
        patience = Patience(0.0, redacted_or(self.target))  # no wait: tried again later
        every = self.every.total_seconds()
        try:
            last = patience.run(lambda: last_of(self.anchors, self.part),
                                "reading the anchor log")
            wall = wall_clock()
            if self.due is None and not _due(last, self.every, wall):
                assert last is not None
                self.due = now + (last.at + self.every - wall).total_seconds()
                return
            done = anchor_now(self.ledger, self.anchors, wall, _direct,
                              patience, last, known=True, part=self.part)
        except (AnchorLogError, StoreUnavailable) as e:
            self.due = now + min(FOLLOW_RETRY, every)
            self._log(self.logger, logging.WARNING, "anchor failed: trying again",
                      anchor_log=_name(self.target), error=str(e),
                      retry_seconds=round(self.due - now, 3))
            return
        self.due = now + every
        if done.appended is not None:
            a = done.appended
            print(f"anchor: position {a.position}, head {a.head.hex()}, appended to "
                  f"{_name(self.target)}", flush=True)
            self._log(self.logger, logging.INFO, "anchored", position=a.position,
                      head=a.head.hex(), anchor_log=_name(self.target))
        elif done.failure is not None:
            self._log(self.logger, logging.ERROR, "anchor refused: the log no longer holds "
                      "the last anchor (run `aftersales verify`)",
                      anchor_log=_name(self.target), failure=done.failure.describe())

    def close(self) -> None:
        self.anchors.close()


def verify_anchors(ledger: Ledger, edge: Edge, found: Check, part: Part = None) -> int:
    """`verify`'s check of the log against every anchor of the anchor log (`--anchors`,
    else $AFTERSALES_ANCHOR; none: nothing to check), after the chain check `found`:
    printed; the exit code (0, or 4: an anchor does not hold, or is of another shape of
    ledger; 2 or 3: the anchor log cannot be read).  `part`: the ledger is this partition
    of a partitioned one, held against that partition's anchors."""
    target = anchor_target(getattr(edge.args, "anchors", None))
    if target is None:
        return 0
    name = "standard input" if target == "-" else redacted_or(target)
    try:
        if target == "-":
            anchors = parse_anchors(sys.stdin.buffer, "standard input")
        else:
            with closing(open_anchor_log(target, ledger.url, edge.settings)) as log:
                anchors = _patience(target, edge.settings.retry_for).run(
                    log.read, "reading the anchor log")
    except (AnchorLogError, StoreUnavailable) as e:
        print(f"aftersales: the log was not checked against its anchors: {e}",
              file=sys.stderr)
        return EXIT_STORE if isinstance(e, StoreUnavailable) else EXIT_USAGE
    where = _of(part)
    shape = None if part is None else part[1]
    alien = [a for a in anchors if (None if a.part is None else a.part[1]) != shape]
    anchors = [a for a in anchors if a.part == part]
    code = 0
    if alien and (part is None or part[0] == 0):  # said once
        print(f"verify: {_anchors(len(alien))} of {name} "
              f"{'is' if len(alien) == 1 else 'are'} of "
              + ("one store's ledger" if alien[0].part is None else
                 f"a ledger of {alien[0].part[1]} partitions")
              + (": this one is one store" if part is None else
                 f": this one has {part[1]}") + ": the log was not checked against them "
              "(a re-partitioned ledger starts an anchor log of its own)", file=sys.stderr)
        code = EXIT_INTEGRITY
    if not anchors:
        print(f"verify: {where}the anchor log {name} holds no anchors yet (`aftersales "
              "anchor` appends one)")
        return code

    def read() -> tuple[int, dict[int, bytes | None]]:
        end = ledger.recorder.max_notification_id() or 0
        return end, links_at(ledger.index, [a.position for a in anchors])

    end, links = edge.patience(ledger).run(read, "reading the log at the anchored positions")
    failures = check_anchors(anchors, links, end, [b.position for b in found.log_breaks])
    if not failures:
        last = anchors[-1]
        print(f"verify: {where}{_anchors(len(anchors))} of {name} "
              f"{'holds' if len(anchors) == 1 else 'hold'} (the last at position "
              f"{last.position}, {last.when})")
        return code
    for failure in failures[:MOST]:
        print(f"verify: {where}{failure.describe()}")
    if len(failures) > MOST:
        print(f"verify: {where}... and {_anchors(len(failures) - MOST)} more that do not "
              "hold")
    first = min(f.anchor.position for f in failures)
    held = [a for a in anchors if a.position < first]
    summary = (f"verify: {where}{len(failures):,} of {_anchors(len(anchors))} of {name} do "
               "not hold: the log was changed after they were taken")
    if held:
        best = max(held, key=lambda a: a.position)
        summary += (f"; it is unchanged up to position {best.position} (the anchor of "
                    f"{best.when})")
    print(summary, file=sys.stderr)
    return EXIT_INTEGRITY


def _anchors(n: int) -> str:
    return f"{n:,} anchor" + ("" if n == 1 else "s")
