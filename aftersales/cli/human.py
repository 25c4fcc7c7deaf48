"""How values read for a person: money in yuan with two decimals and its currency, times
in the business zone ($AFTERSALES_TZ, default Asia/Shanghai), yes or no for a flag.
Machine formats (JSON, CSV) keep what the read models hold: integer fen in columns named
`…_fen`, times with their offsets, true/false.

The one place these choices are made: the tables, the status text, the audit trail's text
and the HTML pages all read values through here.  Text for a terminal also goes through
`printable` (no value may move the cursor, colour the screen, start a line or reorder one)
and fits `output_width()`.
"""

from __future__ import annotations

import os
import re
import sys
import unicodedata
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
#: The fields (and columns) of a platform's account held against the ledger: text with
#: amounts as `7500 fen` and times as ISO 8601 (`aftersales.domain.reconciliation`).
ACCOUNT_FIELDS = frozenset({"ledger", "platform"})
_FEN_TEXT = re.compile(r"(?<![\w.])(-?\d+) fen\b")
_ISO_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:[+-]\d{2}:\d{2}|Z)")


def yuan(fen: int, currency: str = CURRENCY) -> str:
    """Integer fen as yuan with two decimals and the currency: 129900 -> '1,299.00 CNY'."""
    whole, cents = divmod(abs(int(fen)), 100)
    return f"{'-' if fen < 0 else ''}{whole:,}.{cents:02d} {currency}".rstrip()


#: The narrowest width text is fitted to (a smaller $COLUMNS counts as this).
MIN_WIDTH = 40
#: The Unicode categories a terminal acts on instead of showing: controls (C0, DEL, C1),
#: format characters (bidi embeddings, overrides and isolates, zero-width characters),
#: line and paragraph separators, and lone surrogates (which cannot even be encoded).
_ACTED_ON = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
#: Format characters that only join letters (scripts that need them, emoji sequences):
#: shown as they are.
_JOINERS = frozenset({"\u200c", "\u200d"})
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_NOT_PLAIN = re.compile(r"[^ -~]")


def printable(text: str) -> str:
    """Text as a terminal shows it and never acts on it: every control character (a
    newline, ESC, the C1 controls), bidi override or isolate (U+202E, which reverses the
    rest of a line), zero-width or other format character and line separator written as
    its Python escape (`\\n`, `\\x1b`, `\\u202e`); everything else, Chinese included,
    as it is.  A backslash stays a backslash: the exact text is in `--json`."""
    if text.isprintable():
        return text
    return _NOT_PLAIN.sub(_shown, text)


def _shown(match: re.Match[str]) -> str:
    c = match.group()
    if c in _JOINERS or unicodedata.category(c) not in _ACTED_ON:
        return c
    if c in _NAMED:
        return _NAMED[c]
    return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"


def output_width() -> int | None:
    """The width text output is fitted to: `$COLUMNS` when it is set, else the terminal's
    when standard output is one, else none (a pipe or a file gets whole lines)."""
    columns = os.environ.get("COLUMNS", "").strip()
    if columns.isdigit() and int(columns) > 0:
        return max(MIN_WIDTH, int(columns))
    try:
        if not sys.stdout.isatty():
            return None
        return max(MIN_WIDTH, os.get_terminal_size(sys.stdout.fileno()).columns)
    except (OSError, ValueError, AttributeError):
        return None


def readable(account: str, zone: tzinfo, currency: str = CURRENCY) -> str:
    """A platform account's text as the tables read: `7500 fen` as `75.00 CNY`, an ISO
    time in the business zone ('approved by merchant at 2026-03-06 09:05:00+08:00')."""
    text = _FEN_TEXT.sub(lambda m: yuan(int(m.group(1)), currency), account)
    return _ISO_TEXT.sub(lambda m: local(m.group().replace("Z", "+00:00"), zone), text)


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


def cell(column: str, value: Any, zone: tzinfo, currency: str = CURRENCY) -> str:
    """A value of a column as a person reads it in a table (one line: `printable`)."""
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
    if column in ACCOUNT_FIELDS and isinstance(value, str):
        value = readable(value, zone, currency)
    return printable(str(value.isoformat() if hasattr(value, "isoformat") else value))


def is_number(value: Any) -> bool:
    """Whether a cell is right-aligned (a count, an amount, a rate)."""
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def plain(value: Any) -> Any:
    """A value for JSON or CSV: numbers as numbers, times as ISO 8601 with their offset."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value.isoformat() if hasattr(value, "isoformat") else value
