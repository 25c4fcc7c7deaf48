"""aftersales: an event-sourced ledger for e-commerce after-sales.

The public API is what `__all__` names; everything else is private to the package.
"""

from aftersales.application import Ledger
from aftersales.commands import Command, parse_command
from aftersales.decisions import Outcome
from aftersales.domain.errors import AftersalesError, CommandRefused
from aftersales.domain.order import Order, order_uuid
from aftersales.domain.policy import DEFAULT_POLICY, Policy
from aftersales.errors import ConflictError
from aftersales.status import history_entry, status_document
from aftersales.store import StoreConfigError

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
