"""Applying a command file (JSON Lines) line by line."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from eventsourcing.persistence import PersistenceError

from aftersales.application import Ledger
from aftersales.commands import parse_command
from aftersales.domain.errors import AftersalesError, CommandRefused

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
) -> IngestReport:
    """Apply each line; report each refusal and go on.  Blank lines are skipped.

    `on_done(line, status)` is called once a line's outcome is durable: `applied`,
    `duplicate`, `tick`, or the refusal code."""
    report = IngestReport()
    for number, raw in enumerate(lines, start=1):
        on_line(len(raw))
        if not raw.strip():
            continue
        report.lines += 1
        try:
            command = parse_command(decode_line(raw))
            outcome = ledger.execute(command)
        except CommandRefused as refusal:
            report.refused[refusal.code] += 1
            on_refused(number, refusal)
            on_done(number, refusal.code)
            continue
        except (AftersalesError, PersistenceError) as trouble:
            # The store failed (or conflicts outlasted the retries): nothing of this line
            # was recorded; report it like a refusal and go on.
            report.refused[STORE] += 1
            on_refused(number, CommandRefused(STORE, f"{type(trouble).__name__}: {trouble}"))
            on_done(number, STORE)
            continue
        if command.command == "tick":
            report.ticks += 1
            status = "tick"
        elif outcome.duplicate:
            report.duplicates += 1
            status = "duplicate"
        else:
            report.applied += 1
            status = "applied"
        on_done(number, status)
        report.events += outcome.events
        report.timeouts += outcome.timeouts
    return report
