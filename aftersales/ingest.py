"""Applying a command file (JSON Lines) line by line."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from eventsourcing.persistence import PersistenceError

from aftersales.application import Ledger, Outcome
from aftersales.commands import OrderCommand, Tick, parse_command
from aftersales.domain.errors import AftersalesError, CommandRefused

#: Commands recorded per transaction (group commit).
BATCH = 500
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

    Up to `batch` commands are recorded in one transaction (group commit; a tick line
    closes the batch before it sweeps).  `on_done(line, status)` is called, in line order,
    once a line's outcome is durable: `applied`, `duplicate`, `tick`, or the refusal code.
    """
    report = IngestReport()
    pending: list[tuple[int, OrderCommand | CommandRefused]] = []

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
        commands = [x for _, x in pending if not isinstance(x, CommandRefused)]
        results = iter(_run(ledger, commands, batch))
        for number, item in pending:
            settle(number, item if isinstance(item, CommandRefused) else next(results),
                   "command")
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
        if isinstance(command, Tick):
            flush()
            settle(number, _one(ledger, command), "tick")
        else:
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


def _run(ledger: Ledger, commands: list[OrderCommand], batch: int) -> list[object]:
    if not commands:
        return []
    if batch <= 1:
        return [_one(ledger, c) for c in commands]
    try:
        return ledger.execute_batch(commands)
    except (AftersalesError, PersistenceError) as e:
        return [e] * len(commands)
