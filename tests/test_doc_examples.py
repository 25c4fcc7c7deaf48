"""The shell examples of README.md and docs/commands.md run as written, on the examples the
repository ships (examples/commands.jsonl, examples/douyin.jsonl).

Each line of a doc's ```bash blocks is run by bash, in order, in a fresh directory that
holds a copy of examples/, on a fresh SQLite store ($AFTERSALES_DB), with `aftersales`
this checkout's command line; it must exit 0, or the code the docs give it (`EXIT`).  A
```text block right after a ```bash block is what the block's last line prints.

Not run, each for its reason (`BLOCKS_NOT_RUN`, `LINES_NOT_RUN`): README's first block
(installing, the demo and the whole test suite, which CI runs as its own steps) and its
Development block (lint, types, the suite again); the services, which run until stopped
(`serve-webhook`, `project --follow`: their own tests start and stop them); and `bench`,
which runs for minutes (tests/e2e test it on small workloads).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
#: Blocks not run, by what they contain, and why.
BLOCKS_NOT_RUN = {
    "pip install": "installs, runs the demo and the test suite: CI's own steps",
    "python -m pytest": "lint, types and the whole test suite: CI's own steps",
}
#: Lines not run, by what they contain, and why.
LINES_NOT_RUN = {
    "serve-webhook": "a service: it runs until stopped",
    "project --follow": "a service: it runs until stopped",
    "aftersales bench": "runs for minutes",
}
#: Lines whose documented exit code is not 0, by what they contain.
EXIT = {
    # docs/commands.md, "Reporting users": on SQLite it exits 2.
    "db grant-reader": 2,
}
#: What each line runs under: `aftersales` is this checkout's, and `alert` (a monitor's
#: hook in docs/commands.md) fails the line when it is called.
PRELUDE = ('aftersales() { "$AFTERSALES_PYTHON" -m aftersales "$@"; }\n'
           'alert() { echo "alert: the check failed" >&2; return 1; }\n')
_BLOCK = re.compile(r"^```(\w*)\n(.*?)^```$", re.M | re.S)


def blocks(doc: Path) -> list[tuple[str, str, str]]:
    """The doc's fenced blocks: their language, their text, and the text between each and
    the block before it."""
    text, found, end = doc.read_text(), [], 0
    for m in _BLOCK.finditer(text):
        found.append((m.group(1), m.group(2), text[end:m.start()]))
        end = m.end()
    return found


def commands(block: str) -> list[str]:
    return [line for line in block.splitlines() if line.strip()
            and not line.lstrip().startswith("#")]


def _shell(line: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AFTERSALES_") and k != "COLUMNS"}
    env.update(AFTERSALES_DB=f"sqlite:///{cwd / 'aftersales.db'}",
               AFTERSALES_PYTHON=sys.executable)
    return subprocess.run(["bash", "-c", PRELUDE + line], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("name", ["README.md", "docs/commands.md"])
def test_the_shell_examples_run_as_written(name: str, tmp_path: Path) -> None:
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    found = blocks(ROOT / name)
    ran = 0
    for n, (language, text, _) in enumerate(found):
        if language != "bash" or any(what in text for what in BLOCKS_NOT_RUN):
            continue
        out = None
        for line in commands(text):
            if any(what in line for what in LINES_NOT_RUN):
                continue
            out = _shell(line, tmp_path)
            expected = next((code for what, code in EXIT.items() if what in line), 0)
            assert out.returncode == expected, f"{name}: {line}\n{out.stderr}"
            ran += 1
        after = found[n + 1] if n + 1 < len(found) else None
        if after and after[0] == "text" and not after[2].strip():
            assert out is not None
            assert out.stdout == after[1], f"{name}: what {commands(text)[-1]} prints"
    assert ran >= 5


def test_the_examples_hold_every_command_of_the_table_and_the_docs_lines() -> None:
    doc = (ROOT / "docs" / "commands.md").read_text()
    rows = doc.split("| command | who |", 1)[1].split("\n\n", 1)[0]
    table = set(re.findall(r"^\| `(\w+)` \|", rows, re.M))
    assert {"place_order", "arbitrate", "record_blame", "tick"} <= table
    lines = (EXAMPLES / "commands.jsonl").read_text().splitlines()
    kinds = {json.loads(line)["command"] for line in lines}
    assert table <= kinds
    assert "reconcile" in kinds  # the platform feeds' command, too
    shown = next(text for language, text, _ in blocks(ROOT / "docs" / "commands.md")
                 if language == "jsonl")
    assert [line for line in shown.splitlines() if '"tick"' not in line] == [
        line for line in lines if line in shown]


def test_the_readme_ingests_the_examples_it_ships() -> None:
    readme = (ROOT / "README.md").read_text()
    for path in re.findall(r"aftersales ingest (?:--format douyin )?(\S+\.jsonl)", readme):
        assert (ROOT / path).is_file(), path
    assert "examples/commands.jsonl" in readme and "examples/douyin.jsonl" in readme
