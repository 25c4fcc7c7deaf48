"""Applying a command file (JSON Lines) line by line.

Lines are decided and recorded a unit of work at a time (a batch of lines in one
transaction, or one line).  A unit the store fails is tried again while the failure may
pass (`aftersales.storage.retry.Patience`); if it does not pass, the ingest stops there: nothing
after that unit is decided (a later tick would otherwise decide on a state that lacks
the failed lines, and a re-run could not repair it), the report names the cause and the
first line not acknowledged, and running the same file again carries on from there.

Lines of one order must reach the ledger in one stream.  An order this ingest decides lines
of that another process recorded commands for meanwhile is told once (`on_other`; see
`aftersales.application.other_writers` for what is seen, and what it costs: nothing unless
another writer moved an order on) and counted in the report; the lines are decided and
reported as any others (the exit code does not change: docs/operations.md, "What may run
at once").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from aftersales.application.commands import OrderCommand, Tick, parse_command
from aftersales.application.decisions import Outcome
from aftersales.application.ledger import Ledger
from aftersales.domain import rules
from aftersales.errors import CommandRefused, StoreUnavailable
from aftersales.runtime.garbage import give_back_memory
from aftersales.settings import INGEST_BATCH
from aftersales.storage.retry import Patience

#: Lines (commands and ticks) recorded per transaction (the measured reason: settings.py).
BATCH = INGEST_BATCH
#: A longer line is refused unread (see docs/rules.md, limits).
MAX_LINE_BYTES = 16 * 1024


@dataclass(frozen=True)
class Settled:
    """What became of a line, once that is durable."""

    line: int
    status: str  # applied, duplicate, tick, or the refusal's code
    reason: str | None = None  # the refusal's reason
    events: int = 0
    timeouts: int = 0

    @property
    def refusal(self) -> CommandRefused | None:
        return None if self.reason is None else CommandRefused(self.status, self.reason)


class Stop(NamedTuple):
    """Where an ingest stopped because the store failed: the first line not acknowledged
    (every line before it is recorded), and the cause."""

    line: int
    reason: str


@dataclass
class IngestReport:
    lines: int = 0
    applied: int = 0
    duplicates: int = 0
    ticks: int = 0
    events: int = 0  # recorded by the commands (with the timeouts their times revealed)
    timeouts: int = 0  # swept by the ticks
    swept_events: int = 0  # recorded by those timeouts (refunds, penalties and all)
    #: A store failure was tried again: what a unit of work had recorded before it is
    #: counted as already applied, without its events.
    retried: bool = False
    refused: Counter[str] = field(default_factory=Counter)
    stopped: Stop | None = None
    #: The orders found with a broken history (refused, or skipped by sweeps), by name.
    broken: set[str] = field(default_factory=set)
    #: The orders another process recorded commands for while this ingest decided their
    #: lines, by name.
    others: set[str] = field(default_factory=set)

    def add(self, settled: Settled) -> None:
        self.lines += 1
        self.timeouts += settled.timeouts
        if settled.status == "tick" and settled.reason is None:
            self.swept_events += settled.events
        else:
            self.events += settled.events
        if settled.reason is not None:
            self.refused[settled.status] += 1
        elif settled.status == "tick":
            self.ticks += 1
        elif settled.status == "duplicate":
            self.duplicates += 1
        else:
            self.applied += 1

    def summary(self) -> str:
        refused = sum(self.refused.values())
        by_code = ", ".join(f"{code} {n:,}" for code, n in sorted(self.refused.items()))
        return (
            f"{self.lines:,} lines: {self.applied:,} applied, {self.duplicates:,} already "
            f"applied, {self.ticks:,} ticks, {refused:,} refused"
            + (f" ({by_code})" if by_code else "")
            + f"; {self.events + self.swept_events:,} events recorded: {self.events:,} by "
            f"the commands (with the timeouts their times revealed), {self.swept_events:,} "
            f"by the {self.timeouts:,} timeouts the ticks swept (with the refunds, penalties "
            "and compensations that follow them)"
            + ("; a store failure was tried again, and what was recorded before it counts "
               "as already applied, without its events: `aftersales db check` gives the "
               "store's total" if self.retried else "")
            + (f"; {len(self.others):,} "
               + ("order was" if len(self.others) == 1 else "orders were")
               + " written by another process while this ingest ran (see the warnings)"
               if self.others else "")
        )

    def other_writer(self, order_id: str) -> bool:
        """Count an order another process wrote meanwhile; whether it is new here."""
        if order_id in self.others:
            return False
        self.others.add(order_id)
        return True

    def stop_message(self) -> str | None:
        """What to tell when the ingest stopped early (None: it did not)."""
        if self.stopped is None:
            return None
        return (f"stopped before line {self.stopped.line}: the store failed: "
                f"{self.stopped.reason}.  Every line before line {self.stopped.line} is "
                "recorded; from it on nothing was acknowledged.  When the store is back, "
                "run the same ingest again: it recognises what was recorded and carries "
                "on from there.")


class Halted(Exception):
    """The ingest stops (the store failed, or another worker's did)."""


def decode_line(raw: bytes, limit: int = MAX_LINE_BYTES) -> str:
    if len(raw) > limit:
        raise CommandRefused(rules.INPUT, f"line longer than {limit} bytes")
    try:
        return raw.decode("utf-8").removeprefix("\ufeff")  # a BOM from a spreadsheet
    except UnicodeDecodeError as e:
        raise CommandRefused(rules.INPUT, f"not valid UTF-8 at byte {e.start}") from None


class Share(Protocol):
    """A parallel ingest worker's part of a file (see `aftersales.ingest.parallel`)."""

    def take(self, number: int, text: str | None) -> bool:
        """Whether this worker decides the line (text None: not readable as text)."""

    def must_wait(self, number: int) -> bool:
        """Whether the line must wait for other workers (it is then decided after
        `wait`, once this worker's earlier lines are settled)."""

    def wait(self, number: int) -> None: ...

    def settled_upto(self, number: int) -> None:
        """Every line up to `number` that this worker decides is settled and durable."""


def ingest(
    ledger: Ledger,
    lines: Iterable[bytes],
    on_refused: Callable[[int, CommandRefused], None],
    on_line: Callable[[int], None] = lambda n: None,
    on_done: Callable[[Settled], None] = lambda settled: None,
    batch: int = BATCH,
    share: Share | None = None,
    patience: Patience | None = None,
    on_other: Callable[[str], None] = lambda order_id: None,
) -> IngestReport:
    """Apply each line; report each refusal and go on.  Blank lines are skipped.

    Up to `batch` lines are recorded in one transaction (group commit, ticks included;
    `aftersales.application.group_commit`).  `on_done` hears of each line, in line order, once its
    outcome is durable.  A parallel ingest's worker decides only the lines its `share`
    gives it.  A unit of work the store fails is tried again as `patience` allows (no
    retry if None); if the store still fails, the ingest stops (`IngestReport.stopped`).
    `on_other` hears, once each, of the orders found written by another process while
    this one decided their lines (`aftersales.application.other_writers`).
    """
    report = IngestReport()
    others = ledger.uow.others

    def tell_others() -> None:
        for order_id in others.take():
            if report.other_writer(order_id):
                on_other(order_id)
    pending: list[tuple[int, OrderCommand | Tick | CommandRefused]] = []
    patience = patience or Patience(0.0)

    def settle(number: int, result: object, kind: str) -> None:
        if isinstance(result, CommandRefused):
            settled = Settled(number, result.code, result.reason, result.events)
            on_refused(number, result)
        else:
            assert isinstance(result, Outcome), result
            status = ("tick" if kind == "tick" else
                      "duplicate" if result.duplicate else "applied")
            settled = Settled(number, status, None, result.events, result.timeouts)
        report.add(settled)
        on_done(settled)

    def flush(upto: int) -> None:
        items = [x for _, x in pending if not isinstance(x, CommandRefused)]
        try:
            results = iter(_run(ledger, items, batch, patience, pending))
        except StoreUnavailable as e:
            report.stopped = Stop(pending[0][0], str(e))
            raise Halted from e
        finally:
            tell_others()
        for number, item in pending:
            if isinstance(item, CommandRefused):
                settle(number, item, "command")
            else:
                settle(number, next(results), "tick" if isinstance(item, Tick) else "command")
        pending.clear()
        if share is not None:
            share.settled_upto(upto)
        give_back_memory()  # after the other workers hear of the progress

    number = 0
    item: OrderCommand | Tick | CommandRefused
    try:
        for number, raw in enumerate(lines, start=1):
            on_line(len(raw))
            if not raw.strip():
                continue
            try:
                text = decode_line(raw)
            except CommandRefused as refusal:
                text, item = None, refusal
            if share is not None:
                if not share.take(number, text):
                    continue
                if share.must_wait(number):
                    flush(number - 1)
                    share.wait(number)
            if text is not None:
                try:
                    item = parse_command(text)
                except CommandRefused as refusal:
                    item = refusal
            pending.append((number, item))
            if len(pending) >= batch:
                flush(number)
        flush(number)
    except Halted:
        pass
    report.broken |= broken_names(ledger)
    report.retried = patience.retries > 0
    return report


def broken_names(ledger: Ledger) -> set[str]:
    """The orders a ledger found broken, by order number where known."""
    return {b.order_id or str(b.originator_id) for b in ledger.broken.values()}


def _run(ledger: Ledger, items: list[OrderCommand | Tick], batch: int, patience: Patience,
         pending: Sequence[tuple[int, object]]) -> list[object]:
    """The outcomes of one unit of work: the items in one transaction (group commit), or
    the one item; tried again as `patience` allows."""
    if not items:
        return []
    first, last = pending[0][0], pending[-1][0]
    lines = f"line {first}" if first == last else f"lines {first} to {last}"
    if batch <= 1:
        return [patience.run(lambda c=c: ledger.writer.outcome_of(c), f"recording {lines}")  # type: ignore[misc]
                for c in items]
    return patience.run(lambda: ledger.execute_batch(items), f"recording {lines}")
