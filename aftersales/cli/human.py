"""How values read for a person: money in yuan with two decimals and its currency, times
in the business zone ($AFTERSALES_TZ, default Asia/Shanghai), yes or no for a flag.
Machine formats (JSON, CSV) keep what the read models hold: integer fen in columns named
`…_fen`, times with their offsets, true/false.

The one place these choices are made: the tables, the status text, the audit trail's text
and the HTML pages all read values through here.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from decimal import Decimal
from typing import Any

#: The currency of the read models' money columns (an order's own currency is in its
#: status document; the tables sum fen of the default currency).
CURRENCY = "CNY"
#: The fields of an event (and of the status document) that hold money, in fen.
MONEY_FIELDS = frozenset({"goods_amount", "postage", "amount", "refund_amount", "debt",
                          "refunded_total", "paid_to_user", "merchant_debt", "old_amount",
                          "new_amount"})
#: A column holding money in fen, by its name's ending.
FEN = "_fen"


def yuan(fen: int, currency: str = CURRENCY) -> str:
    """Integer fen as yuan with two decimals and the currency: 129900 -> '1,299.00 CNY'."""
    whole, cents = divmod(abs(int(fen)), 100)
    return f"{'-' if fen < 0 else ''}{whole:,}.{cents:02d} {currency}".rstrip()


def local(at: datetime | str | None, zone: tzinfo) -> str:
    """A business time in the business zone, as ISO 8601 with a space and its offset
    (microseconds only when there are any): '2026-03-03 10:00:00+08:00'."""
    if at is None:
        return "-"
    if isinstance(at, str):
        at = datetime.fromisoformat(at)
    return at.astimezone(zone).isoformat(" ")


def heading(column: str, currency: str = CURRENCY) -> str:
    """A table's heading for a column: a money column names its currency."""
    return f"{column.removesuffix(FEN)} ({currency})" if column.endswith(FEN) else column


def cell(column: str, value: Any, zone: tzinfo) -> str:
    """A value of a column as a person reads it in a table."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if column.endswith(FEN):
        return yuan(int(value), "")
    if isinstance(value, datetime):
        return local(value, zone)
    if isinstance(value, Decimal):  # PostgreSQL's SUM of a bigint
        value = int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value.isoformat() if hasattr(value, "isoformat") else value)


def is_number(value: Any) -> bool:
    """Whether a cell is right-aligned (a count, an amount, a rate)."""
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def plain(value: Any) -> Any:
    """A value for JSON or CSV: numbers as numbers, times as ISO 8601 with their offset."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value.isoformat() if hasattr(value, "isoformat") else value
