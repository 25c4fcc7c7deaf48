"""`verify`: the chained record and the log checked (and against a head digest kept
elsewhere, and the anchor log), then the read models compared with a rebuild; and which
orders a break of the log names."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from contextlib import ExitStack, closing
from typing import Any

from aftersales.application.clock import wall_clock
from aftersales.application.ledger import Ledger
from aftersales.cli.anchors import verify_anchors
from aftersales.cli.edge import Edge, fail
from aftersales.cli.progress import Progress
from aftersales.cli.projecting import all_partitions, check_positions, open_views
from aftersales.errors import EXIT_INTEGRITY, EXIT_USAGE
from aftersales.storage.config import redacted
from aftersales.storage.integrity import Check, check, order_names, record_breaks
from aftersales.storage.logcheck import LogBreak
from projections.runner import verify


def blamed_names(ledger: Ledger, upto: int, breaks: list[LogBreak]) -> dict[Any, str]:
    """The order numbers of the orders these breaks of the log name."""
    return order_names(ledger.index, upto, {oid for b in breaks for oid, _ in b.blamed},
                       ledger.order_number)


def cmd_verify(ledger: Ledger, edge: Edge) -> int:
    args = edge.args
    count = 1 if edge.partitions is None else edge.partitions.count
    kept: list[bytes | None] = [None] * count
    if args.head is not None:
        try:
            given = bytes.fromhex(args.head)
            if len(given) != 32 * count:
                raise ValueError
        except ValueError:
            return fail(f"--head {args.head!r}: expected the {64 * count} hex digits verify "
                        "printed" + ("" if count == 1 else " (the combined head of the "
                                     f"{count} partitions)"), EXIT_USAGE)
        kept = [given[32 * k:32 * (k + 1)] for k in range(count)]
    if edge.partitions is None:
        return _verify_one(ledger, edge, kept[0])
    with ExitStack() as stack:
        ledgers = all_partitions(edge, ledger, stack)
        code, heads = 0, []
        for k, one in enumerate(ledgers):
            print(f"verify: partition {k} of {count}: {redacted(one.url)}")
            upto = _log_end(one, edge)
            progress = Progress(f"verify {k}", 2 * upto, unit="events")
            found_code, found = _check_chains(one, edge, kept[k], upto, progress,
                                              f"partition {k}: ")
            progress.close()
            code = max(code, found_code, verify_anchors(one, edge, found, (k, count)))
            heads.append(found.head)
        print(f"verify: combined head {b''.join(heads).hex()} (the {count} partitions' log "
              "heads, in order: keep it elsewhere; `verify --head` checks it later)")
        if args.head is not None and not code:
            print("verify: the combined head kept holds in every partition: the history "
                  "up to it is unchanged")
        progress = Progress("verify", sum(one.recorder.max_notification_id() or 0
                                          for one in ledgers), unit="events")
        differences = edge.patience(ledger).run(
            lambda: _compare(ledger, edge, progress, ledgers),
            "comparing the read models with a rebuild")
        progress.close()
        return _said(differences, code)


def _verify_one(ledger: Ledger, edge: Edge, kept: bytes | None) -> int:
    # One bar for the whole run: each event is read three times (its order's chain, the
    # log's chain, and the rebuild the read models are compared with).
    upto = _log_end(ledger, edge)
    progress = Progress("verify", 3 * upto, unit="events")
    code, found = _check_chains(ledger, edge, kept, upto, progress)
    code = max(code, verify_anchors(ledger, edge, found))  # against the anchor log, if any
    differences = edge.patience(ledger).run(lambda: _compare(ledger, edge, progress),
                                            "comparing the read models with a rebuild")
    progress.close()
    return _said(differences, code)


def _log_end(ledger: Ledger, edge: Edge) -> int:
    found: int = edge.patience(ledger).run(
        lambda: ledger.recorder.max_notification_id() or 0, "reading the log's end")
    return found


def _said(differences: list[str], code: int) -> int:
    for line in differences:
        print(line)
    if differences:
        print(f"verify: the read models differ from a rebuild ({len(differences)} lines)",
              file=sys.stderr)
        return code or 1
    print("verify: the read models equal a rebuild from the events")
    return code


def _check_chains(ledger: Ledger, edge: Edge, kept: bytes | None, upto: int,
                  progress: Progress, where: str = "") -> tuple[int, Check]:
    """Check one ledger's chained record and log up to `upto` (and the head kept), saying
    what was found (`where`: which partition); the exit code it makes, and what was
    found."""

    def chains() -> Check:
        progress.done = 0  # (a store failure that passed: checked again from the start)
        return check(ledger.index, upto, ledger.order_number, kept, progress.advance_by)

    found = edge.patience(ledger).run(chains, "checking the chained record")
    progress.clear()
    code = 0
    for broken, order_id in found.breaks:
        print(f"verify: {where}order {order_id or broken.originator_id}: its history is "
              f"broken at {broken.describe()}")
    edge.patience(ledger).run(lambda: record_breaks(ledger.index, found.log_breaks,
                                                    wall_clock()), "recording the breaks")
    names = blamed_names(ledger, found.position, found.log_breaks)
    for b in found.log_breaks:
        print(f"verify: {where}log position {b.position} (order {b.originator_id}, version "
              f"{b.version}): {b.reason}; refused from now on: "
              + ", ".join(f"order {names.get(oid, oid)} (from version {v})"
                          for oid, v in b.blamed))
    if found.intact:
        print(f"verify: {where}the chained record holds: {found.events:,} events of "
              f"{found.orders:,} orders, and the log")
    else:
        print(f"verify: {where}the chained record is broken: {len(found.breaks)} order(s), "
              f"{len(found.log_breaks)} log position(s)", file=sys.stderr)
        code = EXIT_INTEGRITY
    print(f"verify: {where}log head {found.head.hex()} at position {found.position}"
          + ("" if where else " (keep it elsewhere; `verify --head` checks it later)"))
    if kept is not None:
        if found.kept_at is None:
            print(f"verify: {where}the digest kept is not in the log: the history up to it was "
                  "changed (or it is not this ledger's)", file=sys.stderr)
            code = EXIT_INTEGRITY
        elif any(b.position <= found.kept_at for b in found.log_breaks):
            print(f"verify: {where}the digest kept is the log's link at position {found.kept_at}, "
                  "but the log breaks before it", file=sys.stderr)
            code = EXIT_INTEGRITY
        elif not found.intact:
            print(f"verify: {where}the digest kept is the log's link at position {found.kept_at}, "
                  "but the chained record is broken (above): the history up to it was "
                  "changed", file=sys.stderr)
            code = EXIT_INTEGRITY
        else:
            print(f"verify: {where}the digest kept is the log's link at position {found.kept_at}: "
                  "the history up to it is unchanged")
    return code, found


def _compare(ledger: Ledger, edge: Edge, progress: Progress,
             partitions: Sequence[Ledger] = ()) -> list[str]:
    with closing(open_views(ledger, edge)) as views:
        check_positions(views, edge)
        return verify(ledger, views, on_page=progress.advance_by, partitions=partitions)
