"""Text that fits a width: an aligned table (`Table.fit`) and a line of words with a
hanging indent (`wrap`), for a person at a terminal (`aftersales.cli.human.output_width`).

A table wider than the width first wraps its headings at their underscores and spaces
(`dispute_loss_` over `per_1000_` over `orders`); then it shows its columns in the order
they are kept (the command's key columns first), each that fits, a text column cut short
to fit (its cells ending in `…`) when at least `MIN_CUT` characters of it still do; and it
ends with a line naming the columns left out and how to see everything.  The cells are
single lines already (`aftersales.cli.human.printable`): a row stays one line, so `grep`
finds it.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

#: What ends a cell cut short.
ELLIPSIS = "…"
#: Between two columns.
GAP = "  "
#: A text column is cut short to no fewer characters than this (a time is 25).
MIN_CUT = 26
#: A heading is wrapped when that makes its column at least this much narrower.
MIN_SAVING = 3
#: The columns left out that the note under a table names (the rest it counts).
NAMED = 8
#: A wrapped heading has at most this many lines (wider columns beyond that).
HEADING_LINES = 3
#: Where text may break: a space, but not within a time (`2026-03-08 09:00:00+08:00`)
#: nor before a currency (`39.00 CNY`).
_BREAK = re.compile(r"(?<!\d{4}-\d{2}-\d{2}) (?![A-Z]{3}\b)")


@dataclass
class Table:
    """Rows of cells (strings) under a heading; numbers right-aligned; with `totals`, the
    last row is the totals row, under a rule."""

    head: list[str]
    rows: list[list[str]]
    right: list[bool]
    totals: bool = False

    def fit(self, width: int | None, keep: Sequence[int] = (),
            every: str = "--format csv or json") -> list[str]:
        """The table's lines, none wider than `width` (None or 0: as wide as it is),
        keeping the columns of `keep` (indexes) first, then the others left to right;
        after it, a line saying what was left out and that `every` shows everything."""
        n = len(self.head)
        cells = [max((len(r[i]) for r in self.rows), default=0) for i in range(n)]
        natural = [max(len(self.head[i]), cells[i]) for i in range(n)]
        if not width or _span(natural) <= width:
            return self._lines(list(range(n)), natural, [[h] for h in self.head], self.rows)
        heads, widths = [[h] for h in self.head], list(natural)
        for i in sorted(range(n), key=lambda i: cells[i] - len(self.head[i])):
            if _span(widths) <= width:
                break
            wrapped = _wrap_heading(self.head[i], cells[i])
            if natural[i] - max(cells[i], *map(len, wrapped)) >= MIN_SAVING:
                heads[i], widths[i] = wrapped, max(cells[i], *map(len, wrapped))
        shown: list[int] = []
        cut: dict[int, int] = {}
        for i in [*dict.fromkeys(keep), *(i for i in range(n) if i not in keep)]:
            room = width - _span([widths[j] for j in shown] + [0]) if shown else width
            if widths[i] <= room:
                shown.append(i)
            elif not shown or (not self.right[i] and room >= max(MIN_CUT, *map(len, heads[i]))):
                shown.append(i)
                cut[i] = widths[i] = max(room, 1)
        shown.sort()
        for i in sorted(shown, key=lambda i: natural[i] - widths[i]):  # unwrap what fits
            if i not in cut and len(heads[i]) > 1 and _span(
                    [natural[j] if j == i else widths[j] for j in shown]) <= width:
                heads[i], widths[i] = [self.head[i]], natural[i]
        rows = [[_cut(v, cut[i]) if i in cut else v for i, v in enumerate(r)]
                for r in self.rows]
        heads = [[_cut(h, cut[i]) for h in heads[i]] if i in cut else heads[i]
                 for i in range(n)]
        lines = self._lines(shown, widths, heads, rows)
        left = [self.head[i] for i in range(n) if i not in shown]
        shortened = any(len(r[i]) > cut[i] for r in self.rows for i in cut)
        if left or shortened:
            named = ", ".join(left[:NAMED]) + (
                f" and {len(left) - NAMED} more" if len(left) > NAMED else "")
            said = [f"{len(left)} of {n} columns left out to fit {width} columns: {named}"
                    ] if left else []
            said += [f"cells cut short end in {ELLIPSIS}"] if shortened else []
            note = f"({'; '.join(said)}.  Everything: {every}, or a pipe: | less -S)"
            lines += [line.replace("\0", " ") for line in textwrap.wrap(
                note.replace("--format ", "--format\0").replace("| less -S", "|\0less\0-S"),
                width, break_on_hyphens=False)]
        return lines

    def _lines(self, shown: list[int], widths: list[int], heads: list[list[str]],
               rows: list[list[str]]) -> list[str]:
        depth = max((len(heads[i]) for i in shown), default=1)

        def line(row: list[str]) -> str:
            return GAP.join(row[i].rjust(widths[i]) if self.right[i] else
                            row[i].ljust(widths[i]) for i in shown).rstrip()

        top = [line([([""] * (depth - len(h)) + h)[k] for h in heads]) for k in range(depth)]
        body = [line(r) for r in rows]
        if self.totals and body:
            body.insert(len(body) - 1, GAP.join("-" * widths[i] for i in shown))
        return top + body


def wrap(words: Sequence[tuple[str, str]], width: int | None, indent: int) -> list[str]:
    """Words, each with the separator it takes after the word before it (the first word's
    starts the first line; a word that starts a later line goes without it), packed into
    lines of at most `width` (None or 0: one line), every line after the first indented
    by `indent` spaces; a word wider than a line is broken."""
    whole = "".join(sep + word for sep, word in words)
    if not width or len(whole) <= width:
        return [whole]
    indent = min(indent, width // 2)
    lines = [""]
    for n, (sep, word) in enumerate(words):
        if n and len(lines[-1]) + len(sep) + len(word) > width:
            lines.append(" " * indent + word)
        else:
            lines[-1] += sep + word
        while len(lines[-1]) > width:
            lines[-1], spill = lines[-1][:width], lines[-1][width:]
            lines.append(" " * indent + spill)
    return [line.rstrip() for line in lines]


def words(text: str, first: str = "") -> list[tuple[str, str]]:
    """Text as `wrap`'s words: the first after `first`, each other after a space."""
    head, *rest = _BREAK.split(text)
    return [(first, head), *((" ", w) for w in rest)]


def _span(widths: Sequence[int]) -> int:
    return sum(widths) + len(GAP) * max(len(widths) - 1, 0)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:max(width - 1, 0)] + ELLIPSIS


def _wrap_heading(heading: str, cells: int) -> list[str]:
    """A heading wrapped after its underscores and spaces to about the width of its
    column's cells (in at most `HEADING_LINES` lines); a short heading stays whole."""
    if len(heading) <= cells:
        return [heading]
    pieces: list[str] = []
    for part in heading.replace("_", "_\0").replace(" ", " \0").split("\0"):
        if part:
            pieces.append(part)
    width = max(cells, *(len(p.rstrip()) for p in pieces))
    while True:
        lines = [""]
        for piece in pieces:
            if lines[-1] and len(lines[-1]) + len(piece.rstrip()) > width:
                lines.append("")
            lines[-1] += piece
        if len(lines) <= HEADING_LINES:
            return [line.rstrip() for line in lines]
        width += 1
