"""aftersales: an event-sourced ledger for e-commerce after-sales.

The public API is what `__all__` names; everything else is private to the package.
Each name is imported from its module on first use, so that importing a part of the
package (the pure domain, say) does not import the rest: `import aftersales.domain.order`
loads neither the stores nor SQLAlchemy (`tests/unit/test_architecture.py`).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aftersales.application.commands import Command, parse_command
    from aftersales.application.decisions import Outcome
    from aftersales.application.ledger import Ledger
    from aftersales.application.status import history_entry, status_document
    from aftersales.domain.order import Order, order_uuid
    from aftersales.domain.policy import DEFAULT_POLICY, Policy
    from aftersales.errors import (
        AftersalesError,
        CommandRefused,
        ConflictError,
        StoreConfigError,
    )

#: The version (the package's metadata reads it from here: pyproject.toml).
__version__ = "0.1.0"

#: Where each public name lives.
_HOMES = {
    "Command": "aftersales.application.commands",
    "parse_command": "aftersales.application.commands",
    "Outcome": "aftersales.application.decisions",
    "Ledger": "aftersales.application.ledger",
    "history_entry": "aftersales.application.status",
    "status_document": "aftersales.application.status",
    "Order": "aftersales.domain.order",
    "order_uuid": "aftersales.domain.order",
    "DEFAULT_POLICY": "aftersales.domain.policy",
    "Policy": "aftersales.domain.policy",
    "AftersalesError": "aftersales.errors",
    "CommandRefused": "aftersales.errors",
    "ConflictError": "aftersales.errors",
    "StoreConfigError": "aftersales.errors",
}

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


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'aftersales' has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
