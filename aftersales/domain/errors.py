"""Domain errors.

    AftersalesError
    └── CommandRefused        a command broke a rule; `code` is the rule ID or refusal code

Refusal codes beside the rule IDs (SPEC section 3): INPUT, TIME, UNKNOWN-ORDER,
DUPLICATE-ORDER, DUPLICATE-ID, FLOW, R-OPEN, R-AMOUNT, DEADLINE.
"""

from __future__ import annotations


class AftersalesError(Exception):
    """Base class of every error this package raises on purpose."""


class CommandRefused(AftersalesError):
    """A command was refused; nothing but the timeouts it revealed was recorded."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason
