"""Every error the package raises on purpose, in one hierarchy.

    AftersalesError                  base: a message written for the person at the terminal
    ├── CommandRefused               a command broke a rule; `code` is the rule ID or refusal code
    ├── IntegrityBroken              an order's stored history fails its chain: refused
    ├── LogBroken                    the log's last event lost its link: nothing is recorded
    ├── ConflictError                writers kept conflicting on one order (50 attempts)
    ├── StoreUnavailable             the store kept failing past the retry time: stopped
    ├── LedgerMissing                a read-only command found no ledger: nothing created
    ├── NeedsUpgrade                 the store was written before the chained record
    ├── StoreConfigError             the store URL cannot be used
    ├── SettingsError                an environment variable holds no usable value
    ├── AnchorLogError               the anchor log cannot be used: its target, or a line of it
    ├── WorkerFailed                 a worker of a parallel ingest stopped with an error
    ├── RebuildFailed                a rebuild worker failed (or was killed)
    ├── RebuildInterrupted           another process replaced the read models meanwhile
    ├── Unsettled                    the read models kept moving while `verify` compared them
    └── ViewsConfigError             the read models' URL or time zone cannot be used
        └── ViewsMismatch            the read models belong to another schema or time zone

Refusal codes beside the rule IDs (SPEC section 3): INPUT, TIME, UNKNOWN-ORDER,
DUPLICATE-ORDER, DUPLICATE-ID, FLOW, R-OPEN, R-AMOUNT, DEADLINE, FUTURE, INTEGRITY.

The command line prints an error's message on one line and exits with the code below
(docs/operations.md, "Exit codes").  Private signals that never leave their module
(`ChainGap`, `StaleRepair`, `Halted`, `StaleTracking`) are not errors of this hierarchy.

This module imports nothing from the package, so every layer, the domain too, may use it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from uuid import UUID

if TYPE_CHECKING:
    from aftersales.storage.chain import Break

#: The command line's exit codes (besides 0: done, 1: some lines refused or differences).
EXIT_USAGE = 2
EXIT_STORE = 3
EXIT_INTEGRITY = 4
#: Another process replaced what this one was writing or comparing (the read models
#: rebuilt meanwhile): nothing is wrong; running it again does it.
EXIT_INTERRUPTED = 5


class AftersalesError(Exception):
    """Base class of every error this package raises on purpose."""


class CommandRefused(AftersalesError):
    """A command was refused; nothing but the timeouts it revealed was recorded."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason
        #: The events of the timeouts it revealed, recorded (set by the write path).
        self.events = 0


class IntegrityBroken(AftersalesError):
    """An order's stored events do not match the chained record (SPEC section 11)."""

    def __init__(self, broken: Break, order_id: str | None = None) -> None:
        self.broken = broken
        self.order_id = order_id
        super().__init__(self.describe())

    @property
    def originator_id(self) -> UUID | str:
        return self.broken.originator_id

    def describe(self) -> str:
        who = f"order {self.order_id}" if self.order_id else f"order {self.broken.originator_id}"
        return (f"{who}: its recorded history is broken at {self.broken.describe()}; "
                "nothing is answered from it (run `aftersales verify`)")

    def naming(self, order_id: str) -> IntegrityBroken:
        """The same break, naming the order by its order number."""
        return IntegrityBroken(self.broken, order_id)


class LogBroken(AftersalesError):
    """The log's last event has no link (its chained record was removed): no event can be
    chained after it, so nothing is recorded until the store is restored."""

    def __init__(self, position: int) -> None:
        self.position = position
        super().__init__(f"the log's last event (position {position}) has no log link: the "
                         "store was changed, and nothing can be recorded after it until it "
                         "is restored (run `aftersales verify`)")


class ConflictError(AftersalesError):
    """Concurrent writers kept conflicting on one order beyond the retry limit."""


class StoreUnavailable(AftersalesError):
    """The store failed, and went on failing for longer than the retry time allows."""

    def __init__(self, reason: str, waited: float = 0.0) -> None:
        self.reason = reason
        self.waited = waited
        super().__init__(reason if not waited else
                         f"{reason} (gave up after retrying for {waited:.0f} s)")


class LedgerMissing(AftersalesError):
    """A command that only reads found no ledger where the URL points (and created none)."""


class NeedsUpgrade(AftersalesError):
    """The store was written by an earlier version, before the chained record."""


class StoreConfigError(AftersalesError):
    """The store URL cannot be used."""


class SettingsError(AftersalesError):
    """An environment variable holds no usable value."""


class AnchorLogError(AftersalesError):
    """The anchor log (`aftersales anchor`, `verify`) cannot be used: a target that is the
    ledger's own database or no anchor log at all, a file that cannot be read or appended
    to, or a line (a row) that is not an anchor, named by its number."""


class WorkerFailed(AftersalesError):
    """A worker of a parallel ingest stopped with an error (or was killed)."""


class RebuildFailed(AftersalesError):
    """A rebuild worker failed (or was killed)."""


class RebuildInterrupted(AftersalesError):
    """Another process replaced the read models while this rebuild ran."""


class Unsettled(AftersalesError):
    """The read models kept moving while `verify` compared them."""


class ViewsConfigError(AftersalesError):
    """The read models' URL or time zone cannot be used."""


class ViewsMismatch(ViewsConfigError):
    """The read models belong to another schema version or time zone."""
