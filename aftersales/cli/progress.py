"""A progress line for long work: shown on a terminal, silent when piped."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """`advance(size)` per item; the share done follows `size` against `total` (bytes of a
    file, say) while the rate counts items (lines)."""

    def __init__(self, label: str, total: int | None, stream: TextIO | None = None,
                 unit: str = "lines") -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty()
        self.label, self.total, self.unit = label, total, unit
        self.done = 0
        self.items = 0
        self._shown = 0.0
        self._start = time.monotonic()

    def advance(self, size: int = 1) -> None:
        self.done += size
        self.items += 1
        if self.enabled and time.monotonic() - self._shown > 0.1:
            self._draw()

    def count(self) -> None:
        """One more item, its size told by `reach`."""
        self.items += 1

    def reach(self, done: int) -> None:
        """The size done so far (a file offset, say)."""
        self.done = done
        if self.enabled and time.monotonic() - self._shown > 0.1:
            self._draw()

    def advance_by(self, n: int) -> None:
        """`n` items of size one at once (a batch)."""
        self.done += n
        self.items += n
        if self.enabled and time.monotonic() - self._shown > 0.1:
            self._draw()

    def _draw(self) -> None:
        self._shown = time.monotonic()
        rate = self.items / max(self._shown - self._start, 1e-9)
        if self.total:
            share = min(self.done / self.total, 1.0)
            text = f"{self.label} [{'#' * int(30 * share):<30}] {share:6.1%}"
        else:
            text = f"{self.label} {self.items:,} {self.unit}"
        self.stream.write(f"\r{text}  {rate:,.0f} {self.unit}/s ")
        self.stream.flush()

    def clear(self) -> None:
        """Take the bar off the terminal (lines printed next start clean; the next advance
        draws it again)."""
        if self.enabled and self._shown:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()

    def say(self, text: str) -> None:
        """A line of its own (a refusal, say): on a terminal the bar is cleared first and
        drawn again after it."""
        if self.enabled and self._shown:
            self.stream.write("\r\x1b[2K")
        self.stream.write(text + "\n")
        if self.enabled and self._shown:
            self._draw()
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()
