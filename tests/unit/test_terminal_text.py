"""Text for a person at a terminal: no value acts on the terminal (`printable`), tables and
lines fit the width (`aftersales.cli.fitting`), a platform's account reads in yuan."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from aftersales.cli.fitting import ELLIPSIS, Table, wrap
from aftersales.cli.human import cell, printable, readable
from aftersales.cli.tables import render

SHANGHAI = ZoneInfo("Asia/Shanghai")
#: What a terminal would act on, were it printed as it is.
ACTED_ON = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def test_control_characters_are_written_as_their_escapes() -> None:
    forged = "ok\n  2 2026-03-01 FAKE EVENT by platform\x1b[31m red\x1b[0m\r\t\x00\x7f\x9b"
    assert printable(forged) == ("ok\\n  2 2026-03-01 FAKE EVENT by platform\\x1b[31m red"
                                 "\\x1b[0m\\r\\t\\x00\\x7f\\x9b")


def test_characters_that_reorder_or_hide_text_are_written_as_their_escapes() -> None:
    assert printable("invoice\u202efdp.exe") == "invoice\\u202efdp.exe"
    assert printable("a\u2066b\u2069c\u200bd\u2028e\u2029f\ufeff") == (
        "a\\u2066b\\u2069c\\u200bd\\u2028e\\u2029f\\ufeff")


def test_text_a_terminal_only_shows_stays_as_it_is() -> None:
    for text in ("退货退款: 尺码不对", "café", "👨\u200d👩\u200d👧", "C:\\path\\n", "a\u3000b",
                 "tab-free text with spaces"):
        assert printable(text) == text


@given(st.text())
def test_printable_text_never_holds_what_a_terminal_acts_on(text: str) -> None:
    shown = printable(text)
    assert not ACTED_ON.search(shown)
    assert printable(shown) == shown  # escaping twice changes nothing


def test_a_table_cell_is_one_printable_line() -> None:
    assert cell("reason", "a\nb\x1b[2J", SHANGHAI) == "a\\nb\\x1b[2J"
    text = render([{"order_id": "D1", "note": "x\n  2 FAKE\x1b[31m"}], "table",
                  ("order_id", "note"), SHANGHAI, width=0)
    assert text.splitlines() == ["order_id  note", "D1        x\\n  2 FAKE\\x1b[31m"]


def test_json_and_csv_keep_the_exact_text() -> None:
    row = [{"note": "x\n\x1b[31m\u202e"}]
    assert '"x\\n\\u001b[31m\u202e"' in render(row, "json", ("note",), SHANGHAI)
    assert render(row, "csv", ("note",), SHANGHAI) == 'note\n"x\n\x1b[31m\u202e"'


def test_a_platform_account_reads_in_yuan_and_the_business_zone() -> None:
    assert readable("7500 fen", SHANGHAI) == "75.00 CNY"
    assert readable("-5 fen", SHANGHAI, "USD") == "-0.05 USD"
    assert readable("approved by merchant at 2026-03-06T01:05:00+00:00", SHANGHAI) == (
        "approved by merchant at 2026-03-06 09:05:00+08:00")
    assert cell("ledger", "123456 fen", SHANGHAI) == "1,234.56 CNY"
    assert cell("reason", "7500 fen", SHANGHAI) == "7500 fen"  # a person's words stay


# --- fitting ----------------------------------------------------------------------------

def _table() -> Table:
    head = ["order_id", "merchant_id", "status", "opened_at", "hours_to_ruling", "note"]
    rows = [["D7-0000001", "M0001", "ruled", "2026-03-09 08:06:37+08:00", "49.17",
             "a long note " * 5],
            ["D7-0000002", "M0002", "open", "2026-03-10 08:06:37+08:00", "-", "short"]]
    return Table(head, rows, [False, False, False, False, True, False])


def test_a_table_that_fits_is_printed_whole() -> None:
    lines = _table().fit(None)
    assert lines[0].split() == _table().head
    assert len(lines) == 3 and _table().fit(500) == lines


def test_a_narrow_table_keeps_its_key_columns_and_names_the_others() -> None:
    lines = _table().fit(60, keep=[0, 2, 4])
    assert all(len(line) <= 60 for line in lines)
    body = [line for line in lines if line.startswith("D7-")]
    assert [line.split()[:3] for line in body] == [["D7-0000001", "M0001", "ruled"],
                                                  ["D7-0000002", "M0002", "open"]]
    note = " ".join(lines[lines.index(body[-1]) + 1:])
    assert note.startswith("(2 of 6 columns left out to fit 60 columns: opened_at, note.")
    assert "--format csv or json" in note


def test_headings_wrap_at_their_underscores_before_a_column_is_left_out() -> None:
    lines = _table().fit(45, keep=[0, 2, 4])
    assert [line.split()[-1] for line in lines[:3]] == ["hours_", "to_", "ruling"]
    assert lines[2].startswith("order_id    merchant_id  status")  # whole: they fit
    assert lines[3].endswith("49.17") and len(lines[3]) == len(lines[2])  # right-aligned


def test_a_long_text_cell_is_cut_short_to_stay() -> None:
    lines = Table(["order_id", "ledger"], [["D1", "approved by merchant at " + "x" * 80]],
                  [False, False]).fit(50)
    assert lines[0] == "order_id  ledger"
    assert lines[1].endswith(ELLIPSIS) and len(lines[1]) == 50
    assert "cells cut short end in" in " ".join(lines[2:])


@given(st.lists(st.lists(st.text(max_size=40), min_size=4, max_size=4), max_size=5),
       st.integers(min_value=40, max_value=200))
def test_a_fitted_table_is_never_wider_than_asked_and_a_row_stays_one_line(
        rows: list[list[str]], width: int) -> None:
    cells = [[printable(v) for v in row] for row in rows]
    table = Table(["order_id", "dispute_loss_per_1000_orders", "c", "ledger"], cells,
                  [False, True, False, False])
    lines = table.fit(width)
    assert all(len(line) <= width for line in lines)
    heading_lines = next(i for i, line in enumerate(lines) if "order_id" in line) + 1
    for row, line in zip(cells, lines[heading_lines:], strict=False):
        assert line.startswith(row[0][:1] if row[0] else "")


def test_a_wrapped_line_goes_on_indented_and_never_breaks_a_time() -> None:
    words = [("", "  1 2026-03-01 10:00:00+08:00  OrderCancelled  by user"),
             ("  ", "reason=ok\\n"), (" ", "2"), (" ", "2026-03-01"), (" ", "FAKE"),
             ("  ", "deadline=2026-03-02 10:00:00+08:00")]
    lines = wrap(words, 70, 31)
    assert lines[0].startswith("  1 2026-03-01")
    assert all(line.startswith(" " * 31) for line in lines[1:])
    assert "deadline=2026-03-02 10:00:00+08:00" in [line.strip() for line in lines]
    assert wrap(words, None, 31) == ["".join(s + w for s, w in words)]
