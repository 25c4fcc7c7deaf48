"""Rows of the read models printed as an aligned table for a person, as JSON or CSV for a
program, or as CSV for a spreadsheet (values as `aftersales.cli.human` says).

The spreadsheet's CSV (`excel-csv`, docs/reporting.md, "CSV for spreadsheets") is what
Excel opens as it is, by a double click: UTF-8 with a byte order mark (else Excel reads
the Chinese text as the system's code page), lines ended CRLF, times in the business zone
without an offset (`2026-03-10 01:33:50`: Excel has no time zones and takes a trailing
offset for text), money in yuan with two decimals under a heading that names the currency
(`compensation (CNY)`, as the table for a person heads it), TRUE/FALSE for a flag, and
text that Excel would take for a formula (`=`, `+`, `-`, `@` first) made text with a
leading `'`.  Plain CSV stays as a program wants it: fen, times with their offsets,
true/false.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Sequence
from datetime import date, datetime, tzinfo
from decimal import Decimal
from typing import Any, TextIO

from aftersales.cli.fitting import Table
from aftersales.cli.human import CURRENCY, FEN, cell, heading, is_number, output_width, plain

#: The spreadsheet's flavour of CSV (`render(..., EXCEL_CSV, ...)`).
EXCEL_CSV = "excel-csv"
#: What `render` writes.
FORMATS = ("table", "json", "csv", EXCEL_CSV)
#: The byte order mark that tells Excel a CSV file is UTF-8.
BOM = "\ufeff"
#: A cell Excel would evaluate as a formula starts with one of these.
FORMULA_FIRST = ("=", "+", "-", "@", "\t", "\r")


def render(rows: Sequence[dict[str, Any]], fmt: str, columns: Sequence[str], zone: tzinfo,
           total: dict[str, Any] | None = None, currency: str = CURRENCY, *,
           width: int | None = None, keep: Sequence[str] = (),
           every: str = "--format csv or json") -> str:
    """As an aligned table (numbers to the right; `total`, a last row under a rule), JSON
    (a list of objects), CSV (a heading line; true/false for flags), or the spreadsheet's
    CSV (`EXCEL_CSV`: write it with `emit`, which keeps its bytes as they are).

    The table fits `width` columns (None: `output_width()`, the terminal's; 0: no limit)
    as `fit` says, keeping the columns of `keep` first (`every`: how to see them all)."""
    if fmt == "json":
        return json.dumps([{c: plain(r[c]) for c in columns} for r in rows],
                          ensure_ascii=False, indent=1)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[_csv(r[c]) for c in columns] for r in rows])
        return out.getvalue().rstrip("\n")
    if fmt == EXCEL_CSV:
        return excel_csv(rows, columns, zone, currency)
    body = [*rows, total] if total is not None else list(rows)
    table = Table([heading(c, currency) for c in columns],
                  [[cell(c, r.get(c), zone, currency) for c in columns] for r in body],
                  [any(is_number(r.get(c)) for r in body) for c in columns],
                  totals=total is not None)
    limit = output_width() if width is None else width
    return "\n".join(table.fit(limit, [list(columns).index(c) for c in keep
                                        if c in columns], every))


def _csv(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return plain(value)


def excel_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str], zone: tzinfo,
              currency: str = CURRENCY) -> str:
    """The rows as CSV for a spreadsheet (see the module's docstring): the byte order mark,
    a heading line, a line per row, each ended CRLF."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([heading(c, currency) for c in columns])
    writer.writerows([[excel_cell(c, r.get(c), zone) for c in columns] for r in rows])
    return BOM + out.getvalue()


def excel_cell(column: str, value: Any, zone: tzinfo) -> str:
    """A value as the spreadsheet's CSV writes it: money in yuan (`1299.00`), a time in
    the business zone without offset (`2026-03-10 01:33:50`, milliseconds only when it
    has any), a date as `2026-03-10`, TRUE/FALSE, nothing for null."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if column.endswith(FEN):
        return yuan_number(int(value))
    if isinstance(value, datetime):
        local = value.astimezone(zone).replace(tzinfo=None)
        return local.isoformat(" ", "milliseconds" if local.microsecond else "seconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):  # PostgreSQL's SUM of a bigint
        value = plain(value)
    if isinstance(value, str):
        return "'" + value if value.startswith(FORMULA_FIRST) else value
    return str(value)


def yuan_number(fen: int) -> str:
    """Integer fen as a number of yuan with two decimals, for a spreadsheet: 129900 ->
    '1299.00', -5 -> '-0.05' (no thousands separator, no currency: the heading says it)."""
    whole, cents = divmod(abs(fen), 100)
    return f"{'-' if fen < 0 else ''}{whole}.{cents:02d}"


def emit(text: str, fmt: str, out: TextIO | None = None) -> None:
    """Print what `render` made: the spreadsheet's CSV as its UTF-8 bytes exactly (the byte
    order mark and CRLF kept, whatever the terminal's encoding or the platform's newline,
    no newline added); the other formats with `print`."""
    out = out if out is not None else sys.stdout
    if fmt != EXCEL_CSV:
        print(text, file=out)
        return
    binary = getattr(out, "buffer", None)
    if binary is None:  # a text stream with no bytes under it (io.StringIO)
        out.write(text)
        return
    out.flush()
    binary.write(text.encode("utf-8"))
    binary.flush()
