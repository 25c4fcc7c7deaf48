"""Text on the pages: what a value shows (control characters made visible), how wide a
label is drawn, and where labels go so that none covers another.

A page has no script, so the layout is decided when the page is written, from an estimate
of each label's width: the advance widths of DejaVu Sans (the widest of the fonts the
pages' `font-family` falls back to; Debian's chromium draws with it), one em for any
character outside ASCII, plus a margin.  The browser test measures the labels as drawn
and checks that none overlaps another and none leaves its drawing."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

#: Advance widths in em (DejaVu Sans), by character; other characters count one em.
_WIDTHS: dict[str, float] = {}
for _chars, _em in (
        (" ,.", 0.318), ("'", 0.275), ("IJijl", 0.295), ("!", 0.401), ("\"", 0.46),
        ("()[]", 0.39), ("-", 0.361), (":;/\\|", 0.337), ("frt", 0.411), ("*_`", 0.5),
        ("?", 0.531), ("sz", 0.525), ("c", 0.55), ("L", 0.557), ("F", 0.575),
        ("kvxy", 0.592), ("TY", 0.611), ("aeo", 0.615), ("P", 0.603), ("E", 0.632),
        ("0123456789$bdghnpqu{}S", 0.636), ("K", 0.656), ("AVXZ", 0.685), ("BR", 0.695),
        ("C", 0.698), ("U", 0.732), ("HN", 0.752), ("D", 0.77), ("G", 0.775),
        ("&", 0.78), ("OQ", 0.787), ("w", 0.818), ("#+<=>^~", 0.838), ("M", 0.863),
        ("%", 0.95), ("m", 0.974), ("W@", 1.0)):
    for _c in _chars:
        _WIDTHS[_c] = _em
#: How much wider than the estimate a label is taken to be (other fonts, rounding).
MARGIN = 1.06


def text_width(text: str, size: float = 11.0) -> float:
    """The width, in px, a label of `text` takes at font size `size` (an upper estimate)."""
    return sum(_WIDTHS.get(c, 1.0) for c in text) * size * MARGIN + 1.0


#: Characters a page shows as escapes: the control characters (C0, DEL, C1), the line and
#: paragraph separators, and the bidirectional controls that reorder what follows them.
_HIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e"
                     "\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def visible(text: str) -> str:
    """`text` with every character that could hide or fake what a page shows written as
    an escape (`\\n`, `\\x1b`, `\\u202e`): a reason from outside cannot start a line of
    its own, colour the text or reverse it.  (Markup is the templates' to escape.)"""
    return _HIDDEN.sub(lambda m: _NAMED.get(m[0]) or (
        f"\\x{ord(m[0]):02x}" if ord(m[0]) < 0x100 else f"\\u{ord(m[0]):04x}"), text)


@dataclass
class Box:
    """A label's place: its left and right edges along a row, and the row."""

    left: float
    right: float
    row: int


def place(spans: Sequence[tuple[float, float]], rows: int | None = None, lo: float = 0.0,
          hi: float = float("inf"), gap: float = 6.0) -> list[Box | None]:
    """Rows for labels, in order: each label (its wanted left and right edge) moved inside
    [lo, hi], then put in the first row where it keeps `gap` from every label already
    there; None when `rows` rows are all taken there (no limit: a new row)."""
    taken: list[list[tuple[float, float]]] = []
    out: list[Box | None] = []
    for left, right in spans:
        width = right - left
        left = max(lo, min(left, hi - width))
        right = left + width
        for row, boxes in enumerate(taken):
            if all(right + gap <= a or b + gap <= left for a, b in boxes):
                boxes.append((left, right))
                out.append(Box(left, right, row))
                break
        else:
            if rows is not None and len(taken) >= rows:
                out.append(None)
                continue
            taken.append([(left, right)])
            out.append(Box(left, right, len(taken) - 1))
    return out
