"""The pages in a real headless browser (Debian's chromium, driven by Playwright): a page
loaded with what it said and asked for, and what the layout tests measure of it.

Without chromium the browser tests skip, saying so; in CI ($CI set) they fail instead:
`.ci/run` installs Debian's `chromium`."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

#: The widths a page must read at: a small laptop's window, and a common screen.
WIDTHS = (800, 1280)


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        reason = "no chromium on this machine (Debian: apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"CI runs the browser tests, never skips them: {reason}")
        pytest.skip(reason)
    return found


class Browser:
    """A page loaded in headless chromium, with what it said and asked for."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        self.requests: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error"
                else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("request", lambda r: self.requests.append(r.url))

    def open(self, path: Path) -> None:
        """Load a page written to a file: no error, and no request beyond the file."""
        self.requests.clear()
        self.page.goto(path.as_uri())
        self.page.wait_for_load_state("load")
        assert self.errors == []
        assert [u for u in self.requests if u != path.as_uri()] == []  # it loads nothing

    def width(self, pixels: int) -> None:
        self.page.set_viewport_size({"width": pixels, "height": 900})

    def all(self, selector: str, script: str) -> list[Any]:
        return list(self.page.eval_on_selector_all(selector, script))

    def shot(self, path: Path) -> None:
        self.page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 10_000


#: Boxes of the elements a selector finds (`boxes(selector)`), and the pairs of them that
#: overlap by more than half a pixel each way (`overlapping(a, b)`).
GEOMETRY = """
window.boxes = sel => [...document.querySelectorAll(sel)].map(e => {
  const r = e.getBoundingClientRect();
  return {text: e.textContent, left: r.left, right: r.right, top: r.top, bottom: r.bottom};
});
window.overlapping = (a, b) => {
  const found = [];
  a.forEach((p, i) => b.forEach((q, j) => {
    if (a === b && j <= i) return;
    const w = Math.min(p.right, q.right) - Math.max(p.left, q.left);
    const h = Math.min(p.bottom, q.bottom) - Math.max(p.top, q.top);
    if (w > 0.5 && h > 0.5) found.push([p.text, q.text]);
  }));
  return found;
};
window.outside = (boxes, r) => boxes.filter(b => b.left < r.left - 0.5 ||
  b.right > r.right + 0.5 || b.top < r.top - 0.5 || b.bottom > r.bottom + 0.5)
  .map(b => b.text);
"""


def measure(tab: Browser, script: str) -> Any:
    """Run `script` (an expression) in the page with the geometry helpers defined."""
    return tab.page.evaluate(f"() => {{ {GEOMETRY}; return {script}; }}")


def overflowing(tab: Browser) -> dict[str, Any]:
    """What sticks out at the page's width: the page itself (a horizontal scroll), any
    table beyond its section, any cell whose content is wider than the cell."""
    return measure(tab, """(() => {
      const page = document.documentElement.scrollWidth - window.innerWidth;
      const tables = [...document.querySelectorAll('section table')].filter(t => {
        const frame = t.closest('.frame');
        if (frame) return false;  // a table in its own scrolling frame may be wider
        const s = t.closest('section'), cs = getComputedStyle(s);
        const inner = s.getBoundingClientRect().right - parseFloat(cs.paddingRight)
                      - parseFloat(cs.borderRightWidth);
        return t.getBoundingClientRect().right > inner + 0.5;
      }).map(t => t.closest('section').id);
      const cells = [...document.querySelectorAll('td, th')].filter(
        c => c.scrollWidth > c.clientWidth + 1).map(c => c.textContent.slice(0, 60));
      const frames = [...document.querySelectorAll('section')].filter(s => {
        const r = s.getBoundingClientRect();
        return r.right > window.innerWidth + 0.5;
      }).map(s => s.id);
      return {page: page > 0 ? page : 0, tables, cells, sections: frames};
    })()""")
