"""The errors of the ledger's edges: the store, the record's integrity, the clock.

    AftersalesError                  (aftersales.domain.errors)
    ├── CommandRefused               a command broke a rule (domain)
    ├── IntegrityBroken              an order's stored history fails its chain: refused
    ├── ConflictError                writers kept conflicting on one order (50 attempts)
    ├── StoreUnavailable             the store kept failing past the retry time: stopped
    ├── LedgerMissing                a read-only command found no ledger: nothing created
    └── NeedsUpgrade                 the store was written before the chained record

Each carries a message written for the person at the terminal; the command line prints it
on one line and exits with the code `EXIT_CODES` gives (docs/operations.md).
"""

from __future__ import annotations

from uuid import UUID

from aftersales.domain.errors import AftersalesError
from aftersales.recorders.chain import Break

#: The command line's exit codes (besides 0: done, 1: some lines refused or differences).
EXIT_USAGE = 2
EXIT_STORE = 3
EXIT_INTEGRITY = 4


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
