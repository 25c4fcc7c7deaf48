"""The pages' text: what a value shows, and where labels go (`aftersales.cli.page_text`);
the browser tests measure the labels as drawn."""

from __future__ import annotations

from aftersales.cli.page_text import place, text_width, visible


def test_control_and_bidirectional_characters_show_as_escapes() -> None:
    assert visible("a\nb\r\tc\x1b[31md\x7f\x85") == "a\\nb\\r\\tc\\x1b[31md\\x7f\\x85"
    assert visible("\u202eabc\u2066\u2028") == "\\u202eabc\\u2066\\u2028"
    assert visible("退款 <b>ok</b> \\n") == "退款 <b>ok</b> \\n"  # markup is the template's


def test_labels_take_the_first_row_where_they_keep_apart() -> None:
    boxes = place([(0, 50), (40, 90), (45, 95), (100, 150)], lo=0, hi=200)
    assert [b.row if b else None for b in boxes] == [0, 1, 2, 0]
    # Moved inside [lo, hi], their width kept; beyond the rows allowed, none.
    inside = place([(-30, 10), (190, 230)], lo=0, hi=200)
    assert [(b.left, b.right) for b in inside if b] == [(0, 40), (160, 200)]
    assert place([(0, 50), (10, 60)], rows=1)[1] is None


def test_a_labels_width_grows_with_its_text_and_counts_wide_characters_wide() -> None:
    assert text_width("WWW") > text_width("iii") * 2
    assert text_width("退款") > text_width("ab")
    assert text_width("x", 22) > text_width("x", 11) * 1.8
