"""Rows of the read models printed as an aligned table for a person, or as JSON or CSV for
a program (values as `aftersales.cli.human` says)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import tzinfo
from typing import Any

from aftersales.cli.human import CURRENCY, cell, heading, is_number, plain


def render(rows: Sequence[dict[str, Any]], fmt: str, columns: Sequence[str], zone: tzinfo,
           total: dict[str, Any] | None = None, currency: str = CURRENCY) -> str:
    """As an aligned table (numbers to the right; `total`, a last row under a rule), JSON
    (a list of objects), or CSV (a heading line; true/false for flags)."""
    if fmt == "json":
        return json.dumps([{c: plain(r[c]) for c in columns} for r in rows],
                          ensure_ascii=False, indent=1)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[_csv(r[c]) for c in columns] for r in rows])
        return out.getvalue().rstrip("\n")
    body = [*rows, total] if total is not None else list(rows)
    cells = [[heading(c, currency) for c in columns]] + [[cell(c, r.get(c), zone) for c in columns]
                                               for r in body]
    right = [any(is_number(r.get(c)) for r in body) for c in columns]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]

    def line(row: list[str]) -> str:
        return "  ".join(v.rjust(w) if r else v.ljust(w)
                         for v, w, r in zip(row, widths, right, strict=True)).rstrip()

    lines = [line(row) for row in cells]
    if total is not None:
        lines.insert(len(lines) - 1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _csv(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return plain(value)
