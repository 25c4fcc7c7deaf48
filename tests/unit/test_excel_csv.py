"""CSV for a spreadsheet (`excel-csv`): what Excel opens by a double click as a person reads
it (UTF-8 with its byte order mark, CRLF, business-zone times without offset, yuan with
two decimals, TRUE/FALSE, no formulas), while plain CSV stays as a program reads it."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

from aftersales.cli.tables import BOM, EXCEL_CSV, emit, excel_cell, render, yuan_number

SHANGHAI = ZoneInfo("Asia/Shanghai")
AT = datetime(2026, 3, 9, 17, 33, 50, tzinfo=UTC)  # as the read models return it
ROWS = [
    {"merchant_id": "M1", "compensation_fen": 129900, "deadline": AT, "penalty": True,
     "business_day": date(2026, 3, 10), "reason": "尺码不合适", "case_no": None,
     "median_response_hours": 1.5},
    {"merchant_id": "M2", "compensation_fen": Decimal(5), "deadline": AT + timedelta(
        microseconds=250_000), "penalty": False, "business_day": date(2026, 3, 11),
     "reason": "=HYPERLINK(\"http://x\")", "case_no": 2, "median_response_hours": None},
]
COLUMNS = tuple(ROWS[0])


def parsed(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text.removeprefix(BOM), newline="")))


def test_the_spreadsheet_csv_reads_as_a_person_reads_it() -> None:
    text = render(ROWS, EXCEL_CSV, COLUMNS, SHANGHAI, currency="CNY")
    assert text.startswith(BOM) and text.count(BOM) == 1
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    assert parsed(text) == [
        ["merchant_id", "compensation (CNY)", "deadline", "penalty", "business_day", "reason",
         "case_no", "median_response_hours"],
        ["M1", "1299.00", "2026-03-10 01:33:50", "TRUE", "2026-03-10", "尺码不合适", "",
         "1.5"],
        ["M2", "0.05", "2026-03-10 01:33:50.250", "FALSE", "2026-03-11",
         "'=HYPERLINK(\"http://x\")", "2", ""],
    ]


def test_plain_csv_is_unchanged_for_programs() -> None:
    text = render(ROWS[:1], "csv", COLUMNS, SHANGHAI)
    assert not text.startswith(BOM) and "\r" not in text
    assert parsed(text) == [list(COLUMNS), [
        "M1", "129900", "2026-03-09T17:33:50+00:00", "true", "2026-03-10", "尺码不合适", "",
        "1.5"]]


def test_money_in_yuan_with_two_decimals() -> None:
    assert [yuan_number(f) for f in (0, 5, 100, 129900, 123456789, -5, -129901)] == [
        "0.00", "0.05", "1.00", "1299.00", "1234567.89", "-0.05", "-1299.01"]
    assert excel_cell("refunded_total_fen", 9900, UTC) == "99.00"
    assert excel_cell("shift_seconds", -3600, UTC) == "-3600"  # a number, not a formula


def test_times_in_the_business_zone_without_offset() -> None:
    other = datetime(2026, 3, 10, 1, 33, 50, tzinfo=timezone(timedelta(hours=8)))
    assert excel_cell("opened_at", other, SHANGHAI) == "2026-03-10 01:33:50"
    assert excel_cell("opened_at", AT, ZoneInfo("UTC")) == "2026-03-09 17:33:50"


def test_text_excel_would_take_for_a_formula_is_kept_as_text() -> None:
    for formula in ("=1+1", "+86 138", "-2", "@SUM(A1)", "\t=1"):
        assert excel_cell("reason", formula, UTC) == "'" + formula
    assert excel_cell("reason", "1+1=2", UTC) == "1+1=2"


def test_emit_writes_the_spreadsheet_csv_as_its_bytes() -> None:
    text = render(ROWS[:1], EXCEL_CSV, COLUMNS, SHANGHAI)
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="ascii", newline=None)  # a narrow terminal
    emit(text, EXCEL_CSV, out)
    assert raw.getvalue() == text.encode("utf-8")
    assert raw.getvalue().startswith(b"\xef\xbb\xbf") and raw.getvalue().endswith(b"\r\n")
    plain = io.StringIO()
    emit("a,b", "csv", plain)
    assert plain.getvalue() == "a,b\n"
