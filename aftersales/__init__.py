"""aftersales: an event-sourced ledger for e-commerce after-sales.

The public API is what `__all__` names; everything else is private to the package.
"""

from aftersales.application.commands import Command, parse_command
from aftersales.application.decisions import Outcome
from aftersales.application.ledger import Ledger
from aftersales.application.status import history_entry, status_document
from aftersales.domain.order import Order, order_uuid
from aftersales.domain.policy import DEFAULT_POLICY, Policy
from aftersales.errors import AftersalesError, CommandRefused, ConflictError, StoreConfigError

__all__ = [
    "DEFAULT_POLICY",
    "AftersalesError",
    "Command",
    "CommandRefused",
    "ConflictError",
    "Ledger",
    "Order",
    "Outcome",
    "Policy",
    "StoreConfigError",
    "history_entry",
    "order_uuid",
    "parse_command",
    "status_document",
]
