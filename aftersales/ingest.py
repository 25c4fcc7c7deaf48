"""Applying a command file (JSON Lines) line by line."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from eventsourcing.persistence import PersistenceError

from aftersales.application import Ledger
from aftersales.commands import OrderCommand, Tick, parse_command
from aftersales.decisions import Outcome
from aftersales.domain.errors import AftersalesError, CommandRefused

#: Lines (commands and ticks) recorded per transaction (group commit).
BATCH = 10_000
#: The code reported for a line the store failed to record (it may succeed when re-run).
STORE = "STORE"
#: A longer line is refused unread (see docs/rules.md, limits).
MAX_LINE_BYTES = 16 * 1024


@dataclass
class IngestReport:
    lines: int = 0
    applied: int = 0
    duplicates: int = 0
    ticks: int = 0
    events: int = 0
    timeouts: int = 0
    refused: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        refused = sum(self.refused.values())
        by_code = ", ".join(f"{code} {n}" for code, n in sorted(self.refused.items()))
        return (
            f"{self.lines} lines: {self.applied} applied, {self.duplicates} already applied, "
            f"{self.ticks} ticks, {refused} refused" + (f" ({by_code})" if by_code else "")
            + f"; {self.events} events from commands, {self.timeouts} timeouts swept"
        )


def decode_line(raw: bytes) -> str:
    if len(raw) > MAX_LINE_BYTES:
        raise CommandRefused("INPUT", f"line longer than {MAX_LINE_BYTES} bytes")
    try:
        return raw.decode("utf-8").removeprefix("\ufeff")  # a BOM from a spreadsheet
    except UnicodeDecodeError as e:
        raise CommandRefused("INPUT", f"not valid UTF-8 at byte {e.start}") from None


def ingest(
    ledger: Ledger,
    lines: Iterable[bytes],
    on_refused: Callable[[int, CommandRefused], None],
    on_line: Callable[[int], None] = lambda n: None,
    on_done: Callable[[int, str], None] = lambda number, status: None,
    batch: int = BATCH,
) -> IngestReport:
    """Apply each line; report each refusal and go on.  Blank lines are skipped.

    Up to `batch` lines are recorded in one transaction (group commit, ticks included;
    `aftersales.group_commit`).  `on_done(line, status)` is called, in line order, once a
    line's outcome is durable: `applied`, `duplicate`, `tick`, or the refusal code.
    """
    report = IngestReport()
    pending: list[tuple[int, OrderCommand | Tick | CommandRefused]] = []

    def settle(number: int, result: object, kind: str) -> None:
        if isinstance(result, CommandRefused):
            report.refused[result.code] += 1
            on_refused(number, result)
            on_done(number, result.code)
            return
        if isinstance(result, Exception):
            # The store failed (or conflicts outlasted the retries): nothing of this line
            # was recorded; report it like a refusal and go on.
            report.refused[STORE] += 1
            on_refused(number, CommandRefused(STORE, f"{type(result).__name__}: {result}"))
            on_done(number, STORE)
            return
        assert isinstance(result, Outcome)
        if kind == "tick":
            report.ticks += 1
            status = "tick"
        elif result.duplicate:
            report.duplicates += 1
            status = "duplicate"
        else:
            report.applied += 1
            status = "applied"
        report.events += result.events
        report.timeouts += result.timeouts
        on_done(number, status)

    def flush() -> None:
        items = [x for _, x in pending if not isinstance(x, CommandRefused)]
        results = iter(_run(ledger, items, batch))
        for number, item in pending:
            if isinstance(item, CommandRefused):
                settle(number, item, "command")
            else:
                settle(number, next(results), "tick" if isinstance(item, Tick) else "command")
        pending.clear()

    for number, raw in enumerate(lines, start=1):
        on_line(len(raw))
        if not raw.strip():
            continue
        report.lines += 1
        try:
            command = parse_command(decode_line(raw))
        except CommandRefused as refusal:
            pending.append((number, refusal))
            continue
        pending.append((number, command))
        if len(pending) >= batch:
            flush()
    flush()
    return report


def _one(ledger: Ledger, command: OrderCommand | Tick) -> object:
    try:
        return ledger.execute(command)
    except (AftersalesError, PersistenceError) as e:
        return e


def _run(ledger: Ledger, items: list[OrderCommand | Tick], batch: int) -> list[object]:
    if not items:
        return []
    if batch <= 1:
        return [_one(ledger, c) for c in items]
    try:
        return ledger.execute_batch(items)
    except (AftersalesError, PersistenceError) as e:
        return [e] * len(items)
